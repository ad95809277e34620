"""`vsgg demo`: the main job on bundled real data — tracker score on TUD-Campus, then the full engine publishing
over ZeroMQ to a `vsgg watch` in a second process, ending with the final graph, the figures and the overlay path."""
from __future__ import annotations

import argparse
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
    parser.add_argument("--det", default=str(TUD / "det.txt"), help="MOT det.txt to run on")
    parser.add_argument("--gt", default=str(TUD / "gt.txt"), help="MOT ground truth for the tracker score")
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


def run(args) -> int:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    _tracker_score(args.det, args.gt, out)

    port = _free_port_pair()
    endpoint = f"tcp://127.0.0.1:{port}"
    watch_log = out / "watch.log"
    print(f"[2/2] engine + default relation model on TUD-Campus, publishing on {endpoint}; "
          f"`vsgg watch` runs in a second process (log: {watch_log})")
    with open(watch_log, "w") as log:
        watcher = subprocess.Popen([sys.executable, "-m", "engine.cli", "watch", endpoint, "--timeout", "120",
                                    "--status-every", "0"], stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        try:
            time.sleep(1.0)  # let the watcher connect before the first delta: it resyncs anyway, but the log reads better
            from engine.cli.run import add_parser as run_parser
            p = argparse.ArgumentParser()
            run = run_parser(p)
            rc = run(p.parse_args(["--source", f"mot:{args.det}", "--zmq", endpoint, "--jsonl",
                                   str(out / "deltas.jsonl"), "--overlay", str(out / "overlay.mp4"), "--realtime",
                                   "--linger", "1.5", "--quiet"]))
        finally:
            watcher.terminate()
            watcher.wait(timeout=10)
    lines = watch_log.read_text().splitlines()
    changes = [ln for ln in lines if not ln.startswith("#")]
    print(f"watcher received {len(changes)} graph changes; last lines of {watch_log}:")
    for ln in lines[-6:]:
        print(f"  {ln}")
    print(f"delta log: {out / 'deltas.jsonl'}; overlay video: {out / 'overlay.mp4'}")
    return rc
