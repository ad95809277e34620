"""`vsgg eval [--model PATH] (--vidvrd FILES_OR_DIR | --meva DIR) --out preds.json --report report.json`: causal PredCls evaluation."""
from __future__ import annotations

import argparse
import json
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
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--vidvrd", nargs="+", help="VidVRD/VidOR annotation JSON files or folders")
    src.add_argument("--meva", nargs="+", help="MEVA annotation folder(s) (KPF .yml/.yml.xz), e.g. "
                     "../shared/data/meva")
    parser.add_argument("--split", default="test", choices=("train", "val", "test"),
                        help="--meva: the recording-date split to score (offline_train.data.meva.DEFAULT_SPLITS)")
    parser.add_argument("--dates", nargs="*", default=(), help="--meva: score these YYYY-MM-DD dates instead")
    parser.add_argument("--fps", type=float, default=None,
                        help="--meva: model frame rate (must divide 30); default: the model's training rate")
    parser.add_argument("--workers", type=int, default=1, help="--meva: clips are scored in this many processes")
    parser.add_argument("--max-clips", type=int, default=0, help="--meva: score at most this many clips (0 = all)")
    parser.add_argument("--sweep", nargs="+", type=float, default=None, metavar="THRESHOLD",
                        help="--meva: figures at each merge threshold from one scoring pass, written to --report "
                             "(choose the threshold on the val date, never on test)")
    parser.add_argument("--out", required=True, type=Path, help="predictions JSON (official VidVRD format)")
    parser.add_argument("--report", required=True, type=Path, help="report JSON")
    parser.add_argument("--predicate-map", default="", help="YAML/JSON {dataset predicate: model predicate}")
    parser.add_argument("--category-map", default="", help="YAML/JSON {dataset category: model category}")
    parser.add_argument("--unknown", choices=("error", "drop"), default="error",
                        help="what to do with labels that are neither mapped nor in the model's vocabulary")
    parser.add_argument("--no-baselines", action="store_true", help="score the model only (no baseline rows)")
    parser.add_argument("--threshold", type=float, default=None,
                        help="merge threshold (default: --meva 0.03, chosen on the val date; --vidvrd 0.3)")
    parser.add_argument("--max-gap", type=int, default=None,
                        help="merge: runs this many model frames apart are joined (default: --meva 40, --vidvrd 2)")
    parser.add_argument("--length-tau", type=float, default=None,
                        help="merge: instance score = mean x (1 - exp(-length / TAU)), model frames; 0 = plain mean "
                             "(default: --meva 30, --vidvrd 0)")
    parser.add_argument("--triplet-min-score", type=float, default=None,
                        help="merge: name a triplet in a video only if its best instance scores this much "
                             "(default: --meva 0.1, --vidvrd 0)")
    return run


def merge_config(args):
    """The dataset's merge rules (offline_train.evaluate) with any value given on the command line."""
    from dataclasses import replace

    from offline_train.evaluate import MEVA_MERGE, MergeConfig
    given = {k: v for k, v in (("threshold", args.threshold), ("max_gap", args.max_gap),
                               ("length_tau", args.length_tau), ("triplet_min_score", args.triplet_min_score))
             if v is not None}
    for k, v in given.items():
        if v < 0:
            raise ValueError(f"--{k.replace('_', '-')} must be >= 0, got {v}")
    return replace(MEVA_MERGE if args.meva else MergeConfig(), **given)


def run(args) -> int:
    t0 = time.time()
    if args.workers < 1:
        raise ValueError(f"--workers must be >= 1, got {args.workers}")
    if args.meva and args.sweep:
        from offline_train.eval_meva import sweep_meva
        table = sweep_meva(args.model, args.meva, args.sweep, split=args.split, dates=args.dates,
                           workers=args.workers, fps=args.fps, max_clips=args.max_clips, merge=merge_config(args))
        args.report.parent.mkdir(parents=True, exist_ok=True)
        args.report.write_text(json.dumps({str(k): v for k, v in table.items()}, indent=1))
        print(f"{'threshold':>9s} {'method':18s}   mAP   R@50  R@100   P@1   P@5  mR@50")
        for t, rows in table.items():
            for k, f in rows.items():
                print(f"{t:9.3f} {k:18s} {f['mAP']:.3f}  {f['R@50']:.3f}  {f['R@100']:.3f}  {f['P@1']:.3f}  "
                      f"{f['P@5']:.3f}  {f['mR@50']:.3f}")
        print(f"sweep: {args.report} ({time.time() - t0:.0f} s)")
        return 0
    if args.meva:
        from offline_train.eval_meva import run_eval_meva
        report = run_eval_meva(args.model, args.meva, args.out, args.report, split=args.split, dates=args.dates,
                               workers=args.workers, fps=args.fps, baselines=not args.no_baselines,
                               max_clips=args.max_clips, merge=merge_config(args))
    else:
        from offline_train.eval_run import run_eval
        report = run_eval(args.model, args.vidvrd, args.out, args.report, predicate_map=args.predicate_map,
                          category_map=args.category_map, unknown=args.unknown, baselines=not args.no_baselines,
                          merge=merge_config(args))
    m = report["model"]
    print(f"{report['n_videos']} videos, {report['n_gt']} GT instances ({time.time() - t0:.1f} s)")
    for name, r in [("model", m)] + [(k, v) for k, v in report.get("baselines", {}).items()]:
        d, tg = r["relation_detection"], r["relation_tagging"]
        print(f"  {name:16s} mAP {d['mAP']:.3f}  R@50 {d['R@50']:.3f}  R@100 {d['R@100']:.3f}  "
              f"P@1 {tg['P@1']:.3f}  P@5 {tg['P@5']:.3f}  P@10 {tg['P@10']:.3f}  mR@50 {r['mean_recall@50']:.3f}")
    kinds = report.get("clip_kinds")
    if kinds:
        for kind, what in (("explained", "clips the prior's first guess explains"), ("rest", "other clips")):
            k = kinds[kind]
            if k["n_videos"]:
                print(f"  {what}: {k['n_videos']} ({k['n_gt']} GT), mAP model {k['model']:.3f}, "
                      f"prior {k['frequency_prior']:.3f}")
        prior_map = report["baselines"]["frequency_prior"]["relation_detection"]["mAP"]
        if prior_map > 0:
            print(f"  mAP ratio model / prior {m['relation_detection']['mAP'] / prior_map:.2f}x; highest possible "
                  f"(1 / prior mAP) {1 / prior_map:.2f}x")
    print(f"predictions: {args.out}\nreport: {args.report}" + (f"\nchart: {report['chart']}" if "chart" in report
                                                                 else ""))
    return 0
