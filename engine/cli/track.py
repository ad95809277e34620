"""``vsgg track``: run the tracker over MOTChallenge detections and write MOTChallenge results.

    vsgg track --mot PATH/det.txt --out results.txt [--config FILE] [--gt gt.txt] [key=value ...]

Overrides are dotted engine-config keys, e.g. ``tracker.max_age=30`` (see ``engine.config``). The results file has
one line per reported box: ``frame,id,left,top,width,height,score,-1,-1,-1`` with ``id = track id + 1``
(MOTChallenge ids start at 1). With ``--gt`` the run is scored (MOTA, IDF1; needs py-motmetrics).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from engine.boxes import xyxy_to_ltwh
from engine.config import load_engine_config
from engine.jit import use_numba_cache_dir
from engine.io.sources import SCORE_TRANSFORMS, MotDetections
from engine.track.tracker import Tracker


def add_parser(parser: argparse.ArgumentParser):
    parser.description = "Track MOTChallenge detections and write MOTChallenge results."
    parser.add_argument("--mot", required=True, type=Path, metavar="DET_TXT", help="MOTChallenge det.txt")
    parser.add_argument("--out", required=True, type=Path, metavar="RESULTS_TXT", help="results file to write")
    parser.add_argument("--config", type=Path, default=None, help="engine config YAML")
    parser.add_argument("--fps", type=float, default=30.0, help="frame rate for timestamps (default 30)")
    parser.add_argument("--score-transform", choices=SCORE_TRANSFORMS, default="none",
                        help="map detector confidences into [0, 1] (default: none, they must already be)")
    parser.add_argument("--gt", type=Path, default=None, metavar="GT_TXT", help="ground truth: print MOTA / IDF1")
    parser.add_argument("--max-frame-gap", type=int, default=None, help="longest run of frames without any "
                        "detection that is accepted (default 10000; a longer one is usually a typo in det.txt)")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. tracker.max_age=30")
    return run


def run(args) -> int:
    cfg = load_engine_config(args.config, args.overrides)
    if cfg.numba_cache_dir:
        use_numba_cache_dir(cfg.numba_cache_dir)
    source = MotDetections(args.mot, fps=args.fps, score_transform=args.score_transform,
                           **({} if args.max_frame_gap is None else {"max_frame_gap": args.max_frame_gap}))
    tracker = Tracker(cfg.tracker)
    tracker.warmup()

    from tqdm import tqdm  # only the CLI needs it

    rows, step_ms, n_dets = [], [], 0
    for frame, t, dets in tqdm(source, total=len(source), desc=f"track {args.mot.parent.name or args.mot.name}",
                               unit="frame", file=sys.stderr):
        t0 = time.perf_counter()
        tracks = tracker.step(dets, t)
        step_ms.append((time.perf_counter() - t0) * 1e3)
        n_dets += len(dets)
        if len(tracks):
            rows.append(np.column_stack([np.full(len(tracks), frame), tracks.ids + 1,
                                         xyxy_to_ltwh(tracks.boxes_xyxy), tracks.scores]))
    table = np.concatenate(rows) if rows else np.zeros((0, 7))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w") as f:
        for r in table:
            f.write(f"{int(r[0])},{int(r[1])},{r[2]:.2f},{r[3]:.2f},{r[4]:.2f},{r[5]:.2f},{r[6]:.4f},-1,-1,-1\n")
    n_ids = len(np.unique(table[:, 1])) if len(table) else 0
    ms = np.array(step_ms) if step_ms else np.zeros(1)
    print(f"{args.mot}: {len(source)} frames, {n_dets} detections -> {len(table)} boxes in {n_ids} tracks, "
          f"step median {np.median(ms):.3f} ms, p95 {np.percentile(ms, 95):.3f} ms; wrote {args.out}")
    if args.gt is not None:
        from engine.track.mot_eval import evaluate_mot

        m = evaluate_mot(table, args.gt)
        print(f"MOTA {m['mota']:.3f}  IDF1 {m['idf1']:.3f}  recall {m['recall']:.3f}  precision {m['precision']:.3f}  "
              f"FP {m['num_false_positives']}  FN {m['num_misses']}  IDsw {m['num_switches']}")
    return 0
