"""`vsgg eval [--model PATH] --vidvrd FILES_OR_DIR --out preds.json --report report.json`: causal PredCls evaluation."""
from __future__ import annotations

import argparse
import time
from pathlib import Path


def add_parser(parser: argparse.ArgumentParser):
    parser.description = ("Run a relation model causally, frame by frame, over each video's ground-truth "
                          "trajectories; write predictions in the official VidVRD format and a report with "
                          "relation detection / tagging metrics and two baselines (synthetic-world rules on the "
                          "input boxes, frequency prior).")
    parser.add_argument("--model", default=None,
                        help="checkpoint directory (torch) or exported .onnx / model directory; default: the "
                             "shipped default model")
    parser.add_argument("--vidvrd", nargs="+", required=True, help="annotation JSON files or folders")
    parser.add_argument("--out", required=True, type=Path, help="predictions JSON (official VidVRD format)")
    parser.add_argument("--report", required=True, type=Path, help="report JSON")
    parser.add_argument("--predicate-map", default="", help="YAML/JSON {dataset predicate: model predicate}")
    parser.add_argument("--category-map", default="", help="YAML/JSON {dataset category: model category}")
    parser.add_argument("--unknown", choices=("error", "drop"), default="error",
                        help="what to do with labels that are neither mapped nor in the model's vocabulary")
    parser.add_argument("--no-baselines", action="store_true", help="score the model only (no baseline rows)")
    parser.add_argument("--threshold", type=float, default=None, help="merge threshold (default from MergeConfig)")
    return run


def run(args) -> int:
    from offline_train.eval_run import run_eval

    t0 = time.time()
    report = run_eval(args.model, args.vidvrd, args.out, args.report, predicate_map=args.predicate_map,
                      category_map=args.category_map, unknown=args.unknown, baselines=not args.no_baselines,
                      threshold=args.threshold)
    m = report["model"]
    print(f"{report['n_videos']} videos, {report['n_gt']} GT instances ({time.time() - t0:.1f} s)")
    for name, r in [("model", m)] + [(k, v) for k, v in report.get("baselines", {}).items()]:
        d, tg = r["relation_detection"], r["relation_tagging"]
        print(f"  {name:16s} mAP {d['mAP']:.3f}  R@50 {d['R@50']:.3f}  R@100 {d['R@100']:.3f}  "
              f"P@1 {tg['P@1']:.3f}  P@5 {tg['P@5']:.3f}  P@10 {tg['P@10']:.3f}  mR@50 {r['mean_recall@50']:.3f}")
    print(f"predictions: {args.out}\nreport: {args.report}")
    return 0
