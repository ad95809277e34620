"""``vsgg synth``: write a seeded synthetic VidVRD dataset (train/val/test JSON) and its predicate frequency report.

Usage::

    vsgg synth --out DIR --videos N --seed S [--frames T] [--fps F] [--val-fraction 0.1] [--test-fraction 0.1]

Writes ``DIR/{train,val,test}/<video_id>.json`` (official VidVRD format) and ``DIR/stats.json`` (split sizes,
object counts, and per predicate the number of relation instances and of labelled (subject, object, frame)
triples), and prints the frequency table.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def add_parser(parser: argparse.ArgumentParser):
    parser.description = __doc__.splitlines()[0]
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    parser.add_argument("--videos", type=int, default=100, help="videos in total over all splits (default 100)")
    parser.add_argument("--seed", type=int, default=0, help="dataset seed (default 0)")
    parser.add_argument("--frames", type=int, default=150, help="frames per video (default 150)")
    parser.add_argument("--fps", type=float, default=15.0, help="frames per second (default 15)")
    parser.add_argument("--min-agents", type=int, default=2, help="fewest agents per video")
    parser.add_argument("--max-agents", type=int, default=5, help="most agents per video")
    parser.add_argument("--val-fraction", type=float, default=0.1, help="fraction of the videos in the val split")
    parser.add_argument("--test-fraction", type=float, default=0.1, help="fraction of the videos in the test split")
    parser.add_argument("--plain-layout", action="store_true",
                        help="name left/right/front/behind without the action (about 60 predicates instead of 100)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return run


def format_table(report: dict) -> str:
    """The per-predicate frequency table of a ``write_dataset`` report, most frequent first."""
    preds = report["predicates"]
    lines = [f"{'predicate':<16} {'instances':>9} {'frames':>9}"]
    lines += [f"{p:<16} {c['instances']:>9} {c['frames']:>9}" for p, c in preds.items()]
    lines.append(f"{len(preds)} distinct predicates, {report['relation_instances']} relation instances, "
                 f"splits {report['splits']}")
    return "\n".join(lines)


def run(args) -> int:
    from offline_train.synthetic.generate import SynthConfig, write_dataset   # keeps `vsgg --help` light

    if args.videos < 1:
        raise ValueError(f"--videos must be >= 1, got {args.videos}")
    if args.seed < 0:
        raise ValueError(f"--seed must be >= 0, got {args.seed}")
    cfg = SynthConfig(frames=args.frames, fps=args.fps, min_agents=args.min_agents, max_agents=args.max_agents,
                      val_fraction=args.val_fraction, test_fraction=args.test_fraction,
                      layout_with_action=not args.plain_layout)
    t0 = time.perf_counter()
    report = write_dataset(args.out, args.videos, args.seed, cfg, progress=not args.no_progress)
    seconds = time.perf_counter() - t0
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "stats.json").write_text(json.dumps(report, indent=1))   # no timings: same seed, same file
    print(format_table(report))
    print(f"wrote {args.videos} videos to {args.out} in {seconds:.1f} s")
    return 0
