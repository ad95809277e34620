"""`vsgg eval --meva DIR`: causal PredCls evaluation on MEVA's real relations, with two baselines, sharded over
worker processes.

Each clip is loaded once at the annotation's own 30 fps (the ground truth and the boxes of the predictions) and seen
by the model at its training frame rate (``offline_train.sparse_clips.subsample``); predictions are written at the
30 fps frame indices (``offline_train.sparse_eval``). The report has the same keys as ``--vidvrd``'s: for the model
and for each baseline, ``relation_detection`` {mAP, R@50, R@100}, ``relation_tagging`` {P@1, P@5, P@10},
``per_predicate_recall@50``, ``mean_recall@50``. Baselines, both from the ``prior.npy`` shipped with the model
(counted on its training dates): ``frequency_prior`` scores every co-present pair P(predicate | subject category,
object category); ``prior_x_proximity`` multiplies that by 1 / (1 + pair distance). Every method's scores are merged
into instances by the same rules (``offline_train.evaluate.MEVA_MERGE`` unless given).

Person-person activities are annotated in both directions by the loader (``offline_train.data.meva``), so a model
predicting either direction of a mutual relation is scored against its own direction's instance.
"""
from __future__ import annotations

import json
import multiprocessing as mp
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from tqdm import tqdm

from engine.vocab import Vocabulary
from offline_train.evaluate import MEVA_MERGE, MergeConfig, evaluate_videos, write_outputs
from offline_train.sparse_clips import make_sparse_clip, subsample
from offline_train.sparse_eval import merge_sparse, prior_scores, score_sparse
from offline_train.stepper import load_stepper

METHODS = ("model", "frequency_prior", "prior_x_proximity")
_worker: dict = {}


def model_fps(m, default: float = 10.0) -> float:
    """The frame rate a model was trained at (its training config's ``train_data.meva_fps`` for MEVA models)."""
    data = (m.train_config or {}).get("train_data", {})
    return float(data.get("meva_fps", default)) if data.get("kind") == "meva" else default


def _init_worker(model_path, merges: list, stride: int, baselines: bool, threads: int) -> None:
    import os
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    m = load_stepper(model_path)
    _worker.update(m=m, merges=merges, stride=stride, baselines=baselines)


def _predict(ann30) -> tuple[str, dict]:
    """Predictions of every method for one clip (annotation at 30 fps): {method: [relations per merge config]};
    the scores are computed once and merged with each config."""
    m, merges, stride = _worker["m"], _worker["merges"], _worker["stride"]
    preds = Vocabulary("predicates", tuple(m.predicates.names))
    clip = make_sparse_clip(subsample(ann30, stride), m.objects, _targets(m, ann30), m.lag)
    scores = {"model": score_sparse(m.step, m.init_state, clip, len(preds))}
    if _worker["baselines"] and m.prior is not None:
        scores["frequency_prior"] = prior_scores(m.prior, clip)
        scores["prior_x_proximity"] = prior_scores(m.prior, clip, with_proximity=True)
    return ann30.video_id, {k: [merge_sparse(s, clip, ann30, preds, mc, stride) for mc in merges]
                            for k, s in scores.items()}


def _targets(m, ann) -> Vocabulary:
    """The predicate vocabulary for the clip's (unused) targets: the model's, plus any annotated name it lacks, so
    a model trained on fewer predicates (open-vocabulary base split) can still be scored on every annotation."""
    extra = tuple(sorted({r.predicate for r in ann.relations} - set(m.predicates.names)))
    return Vocabulary("predicates", tuple(m.predicates.names) + extra)


def predict_all(model_path, anns30: list, stride: int, merges: list, *, workers: int = 1,
                baselines: bool = True, progress: bool = True) -> list[dict[str, dict]]:
    """Per merge config, {method: {video_id: [VideoRelation]}} over ``anns30``, in ``workers`` processes (1 = this
    process)."""
    results = [{k: {} for k in METHODS} for _ in merges]
    bar = tqdm(total=len(anns30), desc="eval meva", unit="clip", disable=not progress, leave=False)
    if workers <= 1:
        _init_worker(model_path, merges, stride, baselines, 1)
        it = map(_predict, anns30)
        pool = None
    else:
        # spawn, not fork: ONNX Runtime and OpenMP thread pools do not survive a fork
        pool = mp.get_context("spawn").Pool(workers, _init_worker, (model_path, merges, stride, baselines, 1))
        it = pool.imap_unordered(_predict, anns30, chunksize=1)
    try:
        for vid, out in it:
            for k, per_merge in out.items():
                for res, v in zip(results, per_merge):
                    res[k][vid] = v
            bar.update(1)
    finally:
        bar.close()
        if pool is not None:
            pool.close()
            pool.join()
    return [{k: v for k, v in res.items() if v} for res in results]


def _load(meva_paths, split, dates, cache_dir, max_clips, m, progress):
    from offline_train.data.meva import load_meva
    from offline_train.data.meva_cache import DEFAULT_CACHE_DIR
    clips = load_meva(list(meva_paths), fps=30, dates=tuple(dates), split="" if dates else split,
                      cache_dir=cache_dir or DEFAULT_CACHE_DIR, progress=progress)
    anns = [c.annotation for c in clips]
    anns = [a for a in anns if a.relations] + [a for a in anns if not a.relations]
    if max_clips:
        anns = anns[:max_clips]
    if not anns:
        raise ValueError(f"no MEVA clips found under {list(meva_paths)} for "
                         + (f"dates {list(dates)}" if dates else f"split '{split}'"))
    unknown = sorted({c for a in anns for c in a.categories} - set(m.objects.names))
    if unknown:
        raise ValueError(f"object categories {unknown} are not in the model's vocabulary {list(m.objects.names)}: "
                         "is this a MEVA model?")
    return anns


def _stride(m, fps):
    fps = fps or model_fps(m)
    stride = int(round(30 / fps))
    if stride < 1 or abs(30 / stride - fps) > 1e-6:
        raise ValueError(f"--fps must divide 30 (30, 15, 10, 6, 5, ...), got {fps}")
    return fps, stride


def sweep_meva(model_path, meva_paths, thresholds, *, split: str = "val", dates=(), workers: int = 1,
               fps: float | None = None, cache_dir: str = "", max_clips: int = 0, progress: bool = True,
               merge: MergeConfig = MEVA_MERGE) -> dict:
    """Relation detection and tagging figures of the model and both baselines at each merge threshold (the other
    rules from ``merge``), from one scoring pass: {threshold: {method: {mAP, R@50, R@100, P@1, P@5, P@10, mR@50}}}.
    For choosing the threshold on a validation date (never on the test dates)."""
    m = load_stepper(model_path)
    fps, stride = _stride(m, fps)
    anns = _load(meva_paths, split, dates, cache_dir, max_clips, m, progress)
    merges = [replace(merge, threshold=float(t)) for t in thresholds]
    per = predict_all(model_path, anns, stride, merges, workers=workers, progress=progress)
    out = {}
    for t, preds in zip(thresholds, per):
        out[float(t)] = {}
        for k, p in preds.items():
            r = evaluate_videos(anns, lambda a, p=p: p[a.video_id])[0]
            out[float(t)][k] = _summary(r)
    return out


def run_eval_meva(model_path, meva_paths, out, report_path, *, split: str = "test", dates=(), workers: int = 1,
                  fps: float | None = None, baselines: bool = True, threshold: float | None = None,
                  cache_dir: str = "", max_clips: int = 0, progress: bool = True,
                  merge: MergeConfig = MEVA_MERGE, compare_merges: dict | None = None) -> dict:
    """Evaluate on the MEVA clips of ``split`` (or ``dates``); writes predictions (VidVRD-helper JSON, 30 fps frame
    indices), the report JSON and a per-predicate recall chart beside the report. Returns the report. ``merge``:
    the instance rules (frame counts at the model's rate); ``threshold`` replaces its threshold.
    ``compare_merges`` {name: MergeConfig}: other rules scored from the same pass, under ``merge_compare``."""
    from offline_train.plots import plot_recall_comparison

    t0 = time.time()
    m = load_stepper(model_path)
    fps, stride = _stride(m, fps)
    anns = _load(meva_paths, split, dates, cache_dir, max_clips, m, progress)
    merge = merge if threshold is None else replace(merge, threshold=threshold)
    compare_merges = dict(compare_merges or {})
    every = predict_all(model_path, anns, stride, [merge, *compare_merges.values()], workers=workers,
                        baselines=baselines, progress=progress)
    preds = every[0]
    report, _ = evaluate_videos(anns, lambda a: preds["model"][a.video_id])
    full = {"model_path": m.name, "dataset": "meva", "split": split if not dates else "", "dates": list(dates),
            "model_fps": fps, "n_videos": report["n_videos"], "n_gt": report["n_gt"], "model": report,
            "merge": vars(merge), "workers": workers, "wall_s": 0.0,
            "ground_truth": "scored as annotated; person-person activities in both directions"}
    if baselines:
        full["baselines"] = {k: evaluate_videos(anns, lambda a, k=k: preds[k][a.video_id])[0]
                             for k in METHODS[1:] if k in preds}
    full["merge_compare"] = {
        name: {"merge": vars(mc), **{k: _summary(evaluate_videos(anns, lambda a, p=p: p[a.video_id])[0])
                                     for k, p in other.items()}}
        for (name, mc), other in zip(compare_merges.items(), every[1:])}
    full["confusion"] = predicate_confusion(anns, preds["model"])
    if baselines and m.prior is not None and "frequency_prior" in preds:
        full["clip_kinds"] = clip_kinds(anns, preds, m.prior, m.objects, m.predicates)
    full["wall_s"] = round(time.time() - t0, 1)
    write_outputs(preds["model"], full, out, report_path)
    chart = Path(report_path).with_suffix(".png")
    plot_recall_comparison({"model": report["per_predicate_recall@50"],
                            **{k: v["per_predicate_recall@50"] for k, v in full.get("baselines", {}).items()}},
                           chart, f"per-predicate recall@50, MEVA {full['split'] or ','.join(dates)} "
                                  f"({full['n_gt']} GT instances)")
    full["chart"] = str(chart)
    Path(report_path).write_text(json.dumps(full, indent=1, sort_keys=True))
    return full


def _summary(r: dict) -> dict:
    return {**r["relation_detection"], **r["relation_tagging"], "mR@50": r["mean_recall@50"]}


def predicate_confusion(anns30: list, preds: dict) -> dict[str, dict[str, int]]:
    """Which predicate a method ranks first on the very pair and span of each ground-truth instance: for every GT
    instance, the highest-scored prediction whose subject and object trajectories both reach vIoU >= 0.5 with it
    (any predicate) gives the column; 'none' when no prediction localises the pair. {gt predicate: {predicted:
    count}}. It shows which predicates a box-only model cannot tell apart (open vs close door, ...)."""
    from collections import Counter

    from offline_train.metrics import video_relations_from_annotation
    from offline_train.metrics.vidvrd import viou_xyxy

    out: dict[str, Counter] = {}
    for ann in anns30:
        ranked = sorted(preds.get(ann.video_id, []), key=lambda r: -r.score)
        for g in video_relations_from_annotation(ann):
            best = "none"
            for p in ranked:
                if (p.triplet[0], p.triplet[2]) != (g.triplet[0], g.triplet[2]) or \
                        p.end_fid <= g.begin_fid or p.begin_fid >= g.end_fid:
                    continue
                if min(viou_xyxy(g.sub_traj, g.begin_fid, p.sub_traj, p.begin_fid),
                       viou_xyxy(g.obj_traj, g.begin_fid, p.obj_traj, p.begin_fid)) >= 0.5:
                    best = p.triplet[1]
                    break
            out.setdefault(g.triplet[1], Counter())[best] += 1
    return {k: dict(v.most_common()) for k, v in sorted(out.items())}


def prior_explains(ann, prior: np.ndarray, objects: Vocabulary, predicates: Vocabulary) -> bool:
    """True when every ground-truth instance of ``ann`` is of the predicate that the frequency prior ``prior``
    (C_obj, C_obj, C_pred) ranks first for its subject and object categories: a clip that a constant per-category
    guess names correctly (on MEVA, mostly clips where people only talk). Names outside the vocabularies: False."""
    for r in ann.relations:
        s, o = ann.categories[ann.column(r.subject_tid)], ann.categories[ann.column(r.object_tid)]
        if s not in objects.names or o not in objects.names or r.predicate not in predicates.names:
            return False
        if predicates.names[int(np.argmax(prior[objects.index(s), objects.index(o)]))] != r.predicate:
            return False
    return True


def clip_kinds(anns30: list, preds: dict[str, dict], prior: np.ndarray, objects: Vocabulary,
               predicates: Vocabulary) -> dict:
    """mAP of each method over two kinds of clips: those whose every instance is the prior's first guess for its
    category pair (``prior_explains``), where the prior is already strong, and the rest. (Over all clips, no method
    can reach an mAP ratio to the prior above 1 / the prior's mAP, since mAP is at most 1.)

    ``preds``: {method: {video_id: [VideoRelation]}}, methods as ``METHODS``. Clips without an instance are left
    out, as the scorer does. Returns {"explained": {"n_videos", "n_gt", method: mAP, ...}, "rest": {...}}; a kind
    without clips has n_videos 0 and no mAP."""
    from offline_train.metrics import (RelationDetectionConfig, evaluate_relation_detection,
                                       video_relations_from_annotation)

    gt = {a.video_id: video_relations_from_annotation(a) for a in anns30 if a.relations}
    explained = {a.video_id for a in anns30 if a.relations and prior_explains(a, prior, objects, predicates)}
    out: dict = {}
    for kind, vids in (("explained", sorted(explained)), ("rest", sorted(set(gt) - explained))):
        block: dict = {"n_videos": len(vids), "n_gt": sum(len(gt[v]) for v in vids)}
        if vids:
            for k, p in preds.items():
                block[k] = evaluate_relation_detection({v: gt[v] for v in vids}, {v: p.get(v, []) for v in vids},
                                                       RelationDetectionConfig())["mAP"]
        out[kind] = block
    return out
