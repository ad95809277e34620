"""`vsgg release`: turn a trained checkpoint into a model folder the engine runs, with measured figures and a card.

    vsgg release --checkpoint runs/default/best --out engine/models/default [--heldout-videos 100]

Writes into OUT:
    relation.onnx + relation.json   the exported model and its side-car (vsgg export, parity-checked)
    checkpoint/                     the torch checkpoint it came from (safetensors + JSON; eval parity, benchmarks)
                                    and prior.npy, the training data's frequency prior (the `vsgg eval` baseline)
    loss.png, predicate_recall.png  the training run's plots, when the run folder has them
    release.json                    every figure below, machine-readable
    MODEL_CARD.md                   what it was trained on, how, and what it measures

Figures: `vsgg eval` on held-out synthetic videos (the training world's generator, split "test", never seen in
training) with both baselines; `vsgg eval` on the bundled real VidOR fixture (no target: real data the model
never saw) with the torch checkpoint and the ONNX export, whose reports must agree (eval parity); step parity
torch vs onnxruntime for 0..300 pairs.
"""
from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VIDOR = ROOT / "tests" / "data" / "vidor"


def add_parser(parser: argparse.ArgumentParser):
    parser.description = __doc__.splitlines()[0]
    parser.add_argument("--checkpoint", required=True, type=Path, help="checkpoint directory (e.g. runs/default/best)")
    parser.add_argument("--out", required=True, type=Path, help="model folder to write (e.g. engine/models/default)")
    parser.add_argument("--heldout-videos", type=int, default=100, help="held-out synthetic videos to evaluate on")
    parser.add_argument("--max-pairs", type=int, default=2048, help="largest pair count per step of the export")
    parser.add_argument("--vidor", type=Path, default=VIDOR / "3598080384.json", help="real VidOR annotation file")
    parser.add_argument("--predicate-map", type=Path, default=VIDOR / "predicate_map.yaml",
                        help="VidOR -> model predicate map for the VidOR fixture measurement")
    parser.add_argument("--category-map", type=Path, default=VIDOR / "category_map.yaml",
                        help="VidOR -> model category map for the VidOR fixture measurement")
    parser.add_argument("--meva", default="", help="MEVA annotation folder: measure a MEVA model on its held-out "
                        "test dates (and val) instead of the synthetic and VidOR figures")
    parser.add_argument("--threshold", type=float, default=None,
                        help="--meva: merge threshold of the evaluation (chosen on the val date, never on test)")
    parser.add_argument("--workers", type=int, default=2, help="--meva: evaluation worker processes")
    parser.add_argument("--figures-only", action="store_true",
                        help="--meva: keep the model folder's relation.onnx and re-measure its figures and card only "
                             "(e.g. after an evaluation rule changed); --checkpoint must be the folder's checkpoint")
    parser.add_argument("--compare", nargs="*", default=(), metavar="NAME=CHECKPOINT",
                        help="--meva: other checkpoints measured on the same test dates for the card (e.g. "
                             "scratch=runs/meva_scratch/best)")
    return run


def heldout_videos(train_config: dict, n: int, out_dir: Path) -> list[Path]:
    """Write ``n`` synthetic videos of the training world, split 'test', as VidVRD JSON files; return their paths."""
    from engine.config import from_dict
    from engine.io.vidvrd import save_vidvrd
    from offline_train.config import TrainConfig
    from offline_train.data.registry import load_dataset

    cfg = from_dict(TrainConfig, train_config).val_data
    if cfg.kind != "synthetic":
        raise ValueError(f"--heldout-videos: the checkpoint was validated on {cfg.kind!r} data, not the synthetic "
                         "world; pass --heldout-videos 0 and evaluate with `vsgg eval` on that dataset's test split")
    anns = load_dataset(replace(cfg, split="test", synthetic_videos=n), progress=False)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for a in anns:
        p = out_dir / f"{a.video_id}.json"
        save_vidvrd(a, p)
        paths.append(p)
    return paths


def _figures(block: dict) -> dict:
    d, t = block["relation_detection"], block["relation_tagging"]
    return {**{k: round(v, 4) for k, v in d.items()}, **{k: round(v, 4) for k, v in t.items()},
            "mR@50": round(block["mean_recall@50"], 4)}


def run(args) -> int:
    from export.to_onnx import export_onnx
    from export.verify import check_parity
    from engine.backends.ort import OrtRelationBackend
    from offline_train.checkpoint import read_meta
    from offline_train.eval_run import run_eval
    from offline_train.train import load_model

    if args.heldout_videos < 0:
        raise ValueError(f"--heldout-videos must be >= 0, got {args.heldout_videos}")
    t0 = time.time()
    src, out = args.checkpoint, args.out
    if args.figures_only:
        return _refigure_meva(args, src, out, t0)
    model, meta = load_model(src)
    out.mkdir(parents=True, exist_ok=True)
    ckpt = out / "checkpoint"
    if ckpt.resolve() != src.resolve():
        shutil.rmtree(ckpt, ignore_errors=True)
        ckpt.mkdir()
        for name in ("checkpoint.json", "model.safetensors", "prior.npy"):
            if (src / name).is_file():
                shutil.copy2(src / name, ckpt / name)
    (out / "prior.npy").unlink(missing_ok=True)  # eval finds it in checkpoint/ (one copy, not two)
    for plot in ("loss.png", "predicate_recall.png"):
        if (src.parent / plot).is_file():
            shutil.copy2(src.parent / plot, out / plot)

    info = export_onnx(model, meta, out / "relation.onnx", args.max_pairs)
    parity = check_parity(model, OrtRelationBackend(info, "ort-cpu"))
    print(f"[1/3] exported {info.path} (parity torch vs onnxruntime: {parity.summary()})")

    figures: dict = {"checkpoint": {"source": str(src), "epoch": meta.epoch, "step": meta.step,
                                    "val": {k: v for k, v in meta.metrics.items() if k != "per_predicate_recall"}},
                     "step_parity_max_abs_diff": parity.max_abs_diff,
                     "scoring": "ground truth scored as annotated, as VidVRD-helper's evaluation does "
                                "(offline_train.metrics; parity-tested against an independent re-implementation)"}
    if args.meva:
        return _release_meva(args, src, out, info, meta, figures, t0)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if args.heldout_videos:
            vids = heldout_videos(meta.config, args.heldout_videos, tmp / "heldout")
            rep = run_eval(str(info.path), [str(tmp / "heldout")], tmp / "heldout_preds.json",
                           tmp / "heldout_report.json")
            figures["heldout_synthetic"] = {
                "videos": len(vids), "n_gt": rep["n_gt"], "model": _figures(rep["model"]),
                "baselines": {k: _figures(v) for k, v in rep.get("baselines", {}).items()},
                "per_predicate_recall@50": rep["model"]["per_predicate_recall@50"],
                "gt_predicates": rep["model"]["gt_predicates"]}
            m = figures["heldout_synthetic"]["model"]
            print(f"[2/3] held-out synthetic ({len(vids)} videos, {rep['n_gt']} GT instances): P@1 {m['P@1']:.3f} "
                  f"mR@50 {m['mR@50']:.3f} mAP {m['mAP']:.3f}")
        maps = {"predicate_map": str(args.predicate_map), "category_map": str(args.category_map)}
        vidor_torch = run_eval(str(src), [str(args.vidor)], tmp / "vidor_torch_preds.json",
                               tmp / "vidor_torch_report.json", progress=False, **maps)
        vidor = run_eval(str(info.path), [str(args.vidor)], tmp / "vidor_preds.json", tmp / "vidor_report.json",
                         progress=False, **maps)
        diff = eval_report_parity_figure(vidor_torch["model"], vidor["model"])
        figures["vidor_fixture"] = {"file": args.vidor.name, "n_gt": vidor["n_gt"], "model": _figures(vidor["model"]),
                                    "baselines": {k: _figures(v) for k, v in vidor.get("baselines", {}).items()},
                                    "torch_vs_onnx_report_max_abs_diff": diff}
        f = figures["vidor_fixture"]["model"]
        print(f"[3/3] VidOR fixture ({vidor['n_gt']} GT instances): " + "  ".join(f"{k} {v:.3f}" for k, v in f.items())
              + f"; torch vs ONNX report max abs diff {diff:.2e}")
    figures["release_seconds"] = round(time.time() - t0, 1)
    (out / "release.json").write_text(json.dumps(figures, indent=1))
    from export.model_card import write_model_card
    write_model_card(out / "MODEL_CARD.md", read_meta(ckpt), info, figures)
    print(f"wrote {out}: relation.onnx, relation.json, checkpoint/, release.json, MODEL_CARD.md "
          f"({time.time() - t0:.0f} s)")
    return 0


def _refigure_meva(args, src: Path, out: Path, t0: float) -> int:
    """--figures-only: the MEVA figures and card of an already released model, its ONNX file untouched."""
    from engine.relate.relation_io import read_model_info
    from offline_train.checkpoint import read_meta

    if not args.meva:
        raise ValueError("--figures-only re-measures a MEVA model: give --meva DIR")
    if src.resolve() != (out / "checkpoint").resolve():
        raise ValueError(f"--figures-only: --checkpoint must be {out / 'checkpoint'} (the released model's own), "
                         f"got {src}")
    old = out / "release.json"
    if not old.is_file():
        raise FileNotFoundError(f"--figures-only: {old} not found; release the model once without it")
    prev = json.loads(old.read_text())
    info = read_model_info(out / "relation.onnx")
    figures = {k: prev[k] for k in ("checkpoint", "step_parity_max_abs_diff", "scoring") if k in prev}
    return _release_meva(args, src, out, info, read_meta(src), figures, t0)


def _meva_block(rep: dict) -> dict:
    return {"n_videos": rep["n_videos"], "n_gt": rep["n_gt"], "model": _figures(rep["model"]),
            "baselines": {k: _figures(v) for k, v in rep.get("baselines", {}).items()},
            "per_predicate_recall@50": rep["model"]["per_predicate_recall@50"],
            "baseline_per_predicate_recall@50": {k: v["per_predicate_recall@50"]
                                                 for k, v in rep.get("baselines", {}).items()},
            "gt_predicates": rep["model"]["gt_predicates"], "merge": rep["merge"], "wall_s": rep["wall_s"],
            "confusion": rep.get("confusion", {}), "merge_compare": rep.get("merge_compare", {}),
            "clip_kinds": rep.get("clip_kinds", {})}


def _release_meva(args, src: Path, out: Path, info, meta, figures: dict, t0: float) -> int:
    """Figures of a MEVA model: its held-out test dates and its val date with both baselines (the ONNX export, as
    the engine runs it), torch vs ONNX eval parity on a few clips, and the --compare checkpoints on test."""
    from export.model_card import write_meva_model_card
    from offline_train.checkpoint import read_meta
    from offline_train.eval_meva import run_eval_meva
    from offline_train.evaluate import MEVA_MERGE, MergeConfig

    meva = [args.meva]
    kw = {"threshold": args.threshold, "workers": args.workers}
    # the same scores merged by the threshold alone (no span-length weight, no triplet cut): what the rules add,
    # to the model and to the baselines alike
    plain = {"threshold only": MergeConfig(threshold=MEVA_MERGE.threshold if args.threshold is None
                                           else args.threshold)}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for split in ("test", "val"):
            rep = run_eval_meva(str(info.path), meva, tmp / f"{split}_preds.json", out / f"meva_{split}_report.json",
                                split=split, compare_merges=plain, **kw)
            shutil.move(str(out / f"meva_{split}_report.png"), out / f"meva_{split}_recall.png")
            (out / f"meva_{split}_report.json").unlink()
            figures[f"meva_{split}"] = _meva_block(rep)
            m = figures[f"meva_{split}"]["model"]
            print(f"[{2 if split == 'test' else 3}/4] MEVA {split} ({rep['n_videos']} clips, {rep['n_gt']} GT): "
                  f"mAP {m['mAP']:.3f} R@50 {m['R@50']:.3f} P@5 {m['P@5']:.3f} mR@50 {m['mR@50']:.3f}")
        a = run_eval_meva(str(src), meva, tmp / "pt.json", tmp / "pt_report.json", split="test", max_clips=8,
                          baselines=False, progress=False, threshold=args.threshold)
        b = run_eval_meva(str(info.path), meva, tmp / "ox.json", tmp / "ox_report.json", split="test", max_clips=8,
                          baselines=False, progress=False, threshold=args.threshold)
        figures["torch_vs_onnx_report_max_abs_diff"] = eval_report_parity_figure(a["model"], b["model"])
        figures["compare"] = {}
        for item in args.compare:
            name, _, path = item.partition("=")
            if not path:
                raise ValueError(f"--compare: expected NAME=CHECKPOINT, got {item!r}")
            rep = run_eval_meva(path, meva, tmp / f"{name}.json", tmp / f"{name}_report.json", split="test", **kw)
            other = read_meta(path)
            hist = other.history or []
            figures["compare"][name] = {"checkpoint": path, "model": _figures(rep["model"]), "epoch": other.epoch,
                                        "init_from": other.config["run"].get("init_from", ""),
                                        "train_minutes": round(hist[-1]["time_s"] / 60, 1) if hist else None}
        print(f"[4/4] torch vs ONNX eval parity on 8 test clips: max abs diff "
              f"{figures['torch_vs_onnx_report_max_abs_diff']:.2e}")
    figures["release_seconds"] = round(time.time() - t0, 1)
    (out / "release.json").write_text(json.dumps(figures, indent=1))
    write_meva_model_card(out / "MODEL_CARD.md", read_meta(out / "checkpoint"), info, figures)
    print(f"wrote {out}: relation.onnx, relation.json, checkpoint/, release.json, MODEL_CARD.md, "
          f"meva_test_recall.png ({time.time() - t0:.0f} s)")
    return 0


def eval_report_parity_figure(a: dict, b: dict) -> float:
    """Largest absolute difference between two `vsgg eval` model blocks over every numeric metric."""
    from export.verify import _numeric_leaves

    la, lb = dict(_numeric_leaves(a)), dict(_numeric_leaves(b))
    if set(la) != set(lb):
        raise ValueError(f"eval reports have different metrics: {sorted(set(la) ^ set(lb))[:10]}")
    return max((abs(la[k] - lb[k]) for k in la), default=0.0)
