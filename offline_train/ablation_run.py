"""One ablation variant on one track: train (resumable), build the evaluation checkpoint, evaluate, time, record.

See ``offline_train.ablate`` for the figures and their definitions. Everything lands in the variant's folder::

    run/                  the training run (train(); run/best is evaluated)
    base_*.txt            open-vocabulary variants: the base vocabulary they are trained on
    open_vocab/           open-vocabulary variants: run/best with the full vocabulary's text tables
    meva_report.json, meva_predictions.json, synthetic_report.json, synthetic_predictions.json
    relation.onnx         the exported model the latency was measured on
    result.json           the figures and the fingerprint of what produced them
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from engine.vocab import Vocabulary
from offline_train.ablate import (AblationConfig, Variant, fingerprint, flicker, open_vocab_split, report_figures,
                                  result_path, subset_figures, tail_predicates, training_counts,
                                  variant_train_config)
from engine.config import from_dict, to_dict
from offline_train.checkpoint import CheckpointError, CheckpointMeta, read_meta, save_checkpoint
from offline_train.config import TrainConfig


def run_complete(run_dir: Path, tc) -> bool:
    """True when ``run_dir/last`` holds a checkpoint of config ``tc`` trained for its epochs (or more); False when
    there is none or it is partial. A checkpoint of another config raises CheckpointError: its results would be
    credited to the wrong variant."""
    if not (run_dir / "last" / "checkpoint.json").is_file():
        return False
    meta = read_meta(run_dir / "last")
    if _comparable(from_dict(TrainConfig, meta.config)) != _comparable(tc):
        raise CheckpointError(f"{run_dir} was trained with another config than this variant's now; delete it (or "
                              "use another --out) to retrain")
    return meta.epoch >= tc.optim.epochs


def _comparable(tc) -> dict:
    """The config minus what may differ between a run and its resumption (as offline_train.train allows)."""
    d = to_dict(tc)
    d["optim"].pop("epochs")
    for k in ("out_dir", "progress", "threads"):
        d["run"].pop(k)
    return d


def run_variant(cfg: AblationConfig, track_name: str, v: Variant, d: Path, latency, progress: bool) -> dict:
    """Train and evaluate one (track, variant) in folder ``d``; a result matching the config is returned as is."""
    from offline_train.train import train

    tr = cfg.tracks[track_name]
    tc = variant_train_config(cfg, track_name, v, d)
    fp = fingerprint(cfg, track_name, v, tc)
    res_file = result_path(d)
    if res_file.is_file():
        old = json.loads(res_file.read_text())
        if old.get("fingerprint") == fp:
            return old
    d.mkdir(parents=True, exist_ok=True)
    full_tc = variant_train_config(cfg, track_name, Variant(v.name, v.overrides, False, v.tracks), d)
    split = None
    if v.open_vocab:
        split = open_vocab_split(tr, full_tc.train_data)
        (d / "base_predicates.txt").write_text("\n".join(split[0]) + "\n")
        (d / "base_objects.txt").write_text("\n".join(split[2]) + "\n")
    t0 = time.time()
    if not run_complete(d / "run", tc):
        train(tc)
    meta = read_meta(d / "run" / "last")
    train_s = meta.history[-1].get("time_s", time.time() - t0) if meta.history else time.time() - t0
    ckpt = d / "run" / "best"
    if split is not None:
        ckpt = open_vocab_checkpoint(ckpt, d / "open_vocab", full_tc.train_data)
    counts = training_counts(tc.train_data, d.parent / f"counts_{'base' if split else 'full'}.json", progress)
    tail = tail_predicates(counts)
    novel = (set(split[1]), set(split[3])) if split else None
    result = {"track": track_name, "variant": v.name, "paper": v.paper, "overrides": list(v.overrides),
              "open_vocab": v.open_vocab, "epochs": meta.epoch, "train_s": round(float(train_s), 1),
              "tail_predicates": list(tail), "evals": {}, "fingerprint": fp}
    if split:
        result["novel_predicates"], result["novel_objects"] = list(split[1]), list(split[3])
    if tr.meva is not None:
        result["evals"]["meva"] = _eval_meva(tr.meva, ckpt, d, tail, novel, progress)
    if tr.synthetic is not None:
        result["evals"]["synthetic"] = _eval_synthetic(tr.synthetic, full_tc.train_data, ckpt, d, tail, novel,
                                                       progress)
    if latency is not None:
        result.update(latency(ckpt, d, cfg.latency))
    tmp = res_file.with_name(res_file.name + ".tmp")
    tmp.write_text(json.dumps(result, indent=1))
    tmp.replace(res_file)  # atomic: an interrupted variant leaves no result, so it is redone on resume
    return result


def open_vocab_checkpoint(base_ckpt: Path, out: Path, full_data_cfg) -> Path:
    """``base_ckpt`` (trained on the base vocabulary) with the full vocabulary's text tables swapped in, saved to
    ``out``; its frequency prior is widened with zeros for the novel names (the prior never saw them)."""
    import torch

    from offline_train.data.registry import dataset_vocabularies
    from offline_train.embeddings import embed_names
    from offline_train.models.uasan import set_objects, set_predicates
    from offline_train.train import load_model

    objects, predicates = dataset_vocabularies(full_data_cfg)
    model, meta = load_model(base_ckpt)
    set_predicates(model, torch.from_numpy(embed_names(predicates.names)))
    set_objects(model, torch.from_numpy(embed_names(objects.names)))
    groups = (("all", "sigmoid", tuple(range(len(predicates)))),)
    full = CheckpointMeta(config=meta.config, objects=objects.names, predicates=predicates.names, groups=groups,
                          model_version=meta.model_version, epoch=meta.epoch, step=meta.step, metrics=meta.metrics)
    save_checkpoint(out, model, full)
    prior_file = Path(base_ckpt) / "prior.npy"
    if prior_file.is_file():
        old = np.load(prior_file, allow_pickle=False)
        oi = [objects.names.index(n) for n in meta.objects]
        pi = [predicates.names.index(n) for n in meta.predicates]
        prior = np.zeros((len(objects), len(objects), len(predicates)), np.float32)
        prior[np.ix_(oi, oi, pi)] = old
        np.save(out / "prior.npy", prior)
    return out


def _subsets(anns, preds: dict, tail, novel) -> dict:
    """{'all': figures} or, for an open-vocabulary variant, {'base', 'novel', 'all'}."""
    if novel is None:
        return {}
    nov_p, nov_o = novel

    def is_novel(tri):
        return tri[1] in nov_p or tri[0] in nov_o or tri[2] in nov_o

    return {"base": subset_figures(anns, preds, lambda t: not is_novel(t), tail),
            "novel": subset_figures(anns, preds, is_novel, tail),
            "all": subset_figures(anns, preds, lambda t: True, tail)}


def _eval_meva(spec, ckpt: Path, d: Path, tail, novel, progress: bool) -> dict:
    from offline_train.data.meva import load_meva
    from offline_train.data.meva_cache import DEFAULT_CACHE_DIR
    from offline_train.eval_meva import model_fps, run_eval_meva
    from offline_train.evaluate import MergeConfig
    from offline_train.metrics import predictions_from_json
    from offline_train.sparse_clips import make_sparse_clip, subsample
    from offline_train.stepper import load_stepper

    report = run_eval_meva(ckpt, spec.paths, d / "meva_predictions.json", d / "meva_report.json", split=spec.split,
                           dates=spec.dates, workers=spec.workers, baselines=True, cache_dir=spec.cache_dir,
                           max_clips=spec.max_clips, progress=progress,
                           # the ablation's plain rules (threshold only), as its config and table say
                           merge=MergeConfig(threshold=spec.threshold))
    out = {"subsets": {"-": report_figures(report, tail)}, "threshold": spec.threshold,
           "baselines": {k: report_figures({"model": r, "n_gt": r["n_gt"]}, tail)
                         for k, r in report.get("baselines", {}).items()}}
    need_anns = novel is not None or spec.flicker_clips > 0
    if not need_anns:
        return out
    preds = predictions_from_json(json.loads((d / "meva_predictions.json").read_text()))
    clips = load_meva(list(spec.paths), fps=30, dates=tuple(spec.dates), split="" if spec.dates else spec.split,
                      cache_dir=spec.cache_dir or DEFAULT_CACHE_DIR, progress=progress)
    anns = [c.annotation for c in clips if c.annotation.video_id in preds]
    out["subsets"].update(_subsets(anns, preds, tail, novel))
    if spec.flicker_clips > 0:
        m = load_stepper(ckpt)
        stride = int(round(30 / model_fps(m)))
        chosen = [a for a in anns if a.relations][: spec.flicker_clips]

        def items():
            for a in chosen:
                extra = tuple(sorted({r.predicate for r in a.relations} - set(m.predicates.names)))
                targets = Vocabulary("predicates", tuple(m.predicates.names) + extra)
                yield make_sparse_clip(subsample(a, stride), m.objects, targets, m.lag), a.fps / stride

        out.update(flicker(m, items(), spec.threshold))
    return out


def _eval_synthetic(spec, data_cfg, ckpt: Path, d: Path, tail, novel, progress: bool) -> dict:
    from engine.io.vidvrd import save_vidvrd
    from offline_train.eval_run import run_eval
    from offline_train.metrics import predictions_from_json
    from offline_train.sparse_clips import make_sparse_clip
    from offline_train.stepper import load_stepper
    from offline_train.synthetic.generate import generate_video

    test_dir = d.parent / "synthetic_test"
    anns = [generate_video(data_cfg.synthetic, data_cfg.synthetic_seed, i, "test") for i in range(spec.videos)]
    if len(list(test_dir.glob("*.json"))) != len(anns):
        test_dir.mkdir(parents=True, exist_ok=True)
        for a in anns:
            save_vidvrd(a, test_dir / f"{a.video_id}.json")
    report = run_eval(ckpt, [test_dir], d / "synthetic_predictions.json", d / "synthetic_report.json",
                      threshold=spec.threshold, baselines=False, progress=progress)
    out = {"subsets": {"-": report_figures(report, tail)}, "threshold": spec.threshold}
    if novel is not None:
        preds = predictions_from_json(json.loads((d / "synthetic_predictions.json").read_text()))
        out["subsets"].update(_subsets(anns, preds, tail, novel))
    if spec.flicker_clips > 0:
        m = load_stepper(ckpt)
        out.update(flicker(m, ((make_sparse_clip(a, m.objects, m.predicates, m.lag), a.fps)
                               for a in anns[: spec.flicker_clips]), spec.threshold))
    return out
