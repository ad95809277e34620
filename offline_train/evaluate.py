"""Causal PredCls evaluation on VidVRD-format videos: per-frame scores -> relation instances -> official metrics.

Each video is replayed frame by frame through a *stepper* (the torch model's ``forward_step`` or an exported model
run by ``engine.backends``) exactly as the engine streams: features from ``engine.relate.features`` on the ground-truth
trajectories, one state row per ordered pair, advanced only on frames where both objects are present.

Merging (per pair and predicate): frames with score >= ``threshold`` form runs; runs separated by at most
``max_gap`` frames are joined; runs shorter than ``min_frames`` are dropped. An instance's score is the mean
per-frame score over its span (bridged gap frames count as 0), times ``1 - exp(-length / length_tau)`` when
``length_tau`` > 0; its trajectories are the input boxes over the span. When ``triplet_min_score`` > 0, a video's
instances of a triplet are kept only if the triplet's best instance reaches it. Each video keeps its
``max_predictions`` best instances. ``MEVA_MERGE`` holds the rules chosen on MEVA's val date.

Ground truth is scored as annotated, as the official VidVRD-helper scorer does: every annotated relation instance
is one instance, touching, overlapping or duplicated ones included. The only merge is upstream, in
``offline_train.data.label_map.remap_annotation``: instances of two distinct source predicates that a label map
collapses into one name, where they overlap or touch. The report says so under ``ground_truth``.
"""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from engine.relate.features import video_pair_features
from engine.io.vidvrd import VideoAnnotation
from engine.vocab import Vocabulary
from offline_train.metrics import (RelationDetectionConfig, RelationTaggingConfig, VideoRelation,
                                   evaluate_relation_detection, evaluate_relation_tagging, predictions_to_json,
                                   video_relations_from_annotation)

GROUND_TRUTH_NOTE = ("scored as annotated (VidVRD-helper): no merging of touching, overlapping or duplicate "
                     "instances; only instances of distinct source predicates that a label map collapses into one "
                     "name are merged where they overlap or touch")

# stepper(feats (P,F), subj (P,), obj (P,), state tuple of (P, ...) arrays) -> (scores (P, C), new state tuple)
Stepper = Callable[[np.ndarray, np.ndarray, np.ndarray, tuple], tuple]


@dataclass(frozen=True)
class MergeConfig:
    """Per-frame scores -> relation instances. Frame counts are at the rate the model runs at."""

    threshold: float = 0.3
    max_gap: int = 2
    min_frames: int = 3
    max_predictions: int = 200
    # > 0: a long steady run outranks a short blip of the same mean score (MEVA's activities last seconds to
    # minutes, and a short run is mostly a transient of the causal model)
    length_tau: float = 0.0
    # > 0: a triplet the model never believes this much in a video is not named at all (relation tagging ranks
    # distinct triplets, so weak extra triplets only cost precision)
    triplet_min_score: float = 0.0

    def instance_score(self, mean_score: float, length: int) -> float:
        """The score of an instance of ``length`` frames whose per-frame scores average ``mean_score``."""
        if self.length_tau <= 0:
            return mean_score
        return mean_score * float(1.0 - np.exp(-length / self.length_tau))


# Chosen on MEVA's val date (2018-03-12) for the shipped MEVA model at 10 fps (model frames: a 4 s bridge, a 3 s
# length scale); see the MEVA model card for the val sweep. Figures on the test dates use these unchanged.
MEVA_MERGE = MergeConfig(threshold=0.03, max_gap=40, min_frames=3, length_tau=30.0, triplet_min_score=0.1)


def keep_confident_triplets(items: list, cfg: MergeConfig, triplet: Callable = lambda r: r.triplet,
                            score: Callable = lambda r: r.score) -> list:
    """``items`` (one video's instances, sorted by score, best first) without the instances of triplets whose best
    instance scores below ``cfg.triplet_min_score``; order kept. ``triplet`` / ``score`` read an item (default: a
    VideoRelation's)."""
    if cfg.triplet_min_score <= 0:
        return items
    best: dict = {}
    for x in items:
        best.setdefault(triplet(x), score(x))
    return [x for x in items if best[triplet(x)] >= cfg.triplet_min_score]


def score_video(step: Stepper, init_state: Callable[[int], tuple], ann: VideoAnnotation, labels: np.ndarray,
                lag: int, num_predicates: int):
    """Per-frame scores of every ordered pair: (T, P, C) float32 (NaN where the pair is absent), subj, obj (P,)."""
    times = np.arange(ann.frame_count) / ann.fps
    feats, present, subj, obj = video_pair_features(ann.boxes, times, (ann.width, ann.height), lag)
    t_len, p = present.shape
    out = np.full((t_len, p, num_predicates), np.nan, np.float32)
    state = init_state(p)
    for t in range(t_len):
        ix = np.flatnonzero(present[t])
        if len(ix) == 0:
            continue
        scores, new = step(feats[t, ix], labels[subj[ix]], labels[obj[ix]], tuple(s[ix] for s in state))
        out[t, ix] = scores
        for s, n in zip(state, new):
            s[ix] = n
    return out, subj, obj


def merge_instances(scores: np.ndarray, subj: np.ndarray, obj: np.ndarray, ann: VideoAnnotation,
                    predicates: Vocabulary, cfg: MergeConfig) -> list[VideoRelation]:
    """Turn (T, P, C) per-frame scores into VideoRelation predictions (see module docstring)."""
    out = []
    above = np.nan_to_num(scores, nan=0.0) >= cfg.threshold
    for p, c in zip(*np.nonzero(above.any(0))):
        on = above[:, p, c]
        idx = np.flatnonzero(on)
        # split where the gap between consecutive 'on' frames exceeds max_gap
        cuts = np.flatnonzero(np.diff(idx) > cfg.max_gap + 1)
        for run in np.split(idx, cuts + 1):
            b, e = int(run[0]), int(run[-1]) + 1
            if e - b < cfg.min_frames:
                continue
            s_col, o_col = int(subj[p]), int(obj[p])
            sub, ob = ann.boxes[b:e, s_col].astype(np.float64), ann.boxes[b:e, o_col].astype(np.float64)
            if np.isnan(sub).any() or np.isnan(ob).any():  # bridged a gap where a box is missing: fill it
                sub, ob = _fill(sub), _fill(ob)
            seg = scores[b:e, p, c]
            out.append(VideoRelation((ann.categories[s_col], predicates.names[c], ann.categories[o_col]), b, e, sub,
                                     ob, cfg.instance_score(float(np.nanmean(seg)), e - b)))
    out.sort(key=lambda r: r.score, reverse=True)
    return keep_confident_triplets(out, cfg)[: cfg.max_predictions]


def _fill(traj: np.ndarray) -> np.ndarray:
    """Hold the last known box over missing frames (and the first known one before it)."""
    t = traj.copy()
    ok = ~np.isnan(t).any(1)
    idx = np.where(ok, np.arange(len(t)), 0)
    np.maximum.accumulate(idx, out=idx)
    t = t[idx]
    first = int(np.flatnonzero(ok)[0])
    t[:first] = traj[first]
    return t


def frequency_prior_scores(prior: np.ndarray, ann: VideoAnnotation, labels: np.ndarray):
    """Baseline: each present pair scores P(predicate | subject category, object category) on every frame."""
    seen = ~np.isnan(ann.boxes).any(-1)
    k = len(labels)
    i, j = np.meshgrid(np.arange(k), np.arange(k), indexing="ij")
    subj, obj = i[i != j], j[i != j]
    present = seen[:, subj] & seen[:, obj]
    table = prior[labels[subj], labels[obj]]                   # (P, C)
    scores = np.where(present[..., None], table[None], np.nan).astype(np.float32)
    return scores, subj, obj


def frequency_prior(videos: list[VideoAnnotation], objects: Vocabulary, predicates: Vocabulary) -> np.ndarray:
    """(C_obj, C_obj, C_pred) P(predicate holds | subject, object categories) over co-present pair-frames of
    ``videos``; falls back to the marginal over all pairs for category pairs never seen together."""
    from engine.io.vidvrd import frame_labels
    co = np.zeros((len(objects), len(objects)))
    hits = np.zeros((len(objects), len(objects), len(predicates)))
    for ann in videos:
        lab = np.array(objects.indices(ann.categories))
        seen = ~np.isnan(ann.boxes).any(-1)
        fl = frame_labels(ann, predicates, unknown="drop")
        for a in range(len(lab)):
            for b in range(len(lab)):
                if a != b:
                    both = seen[:, a] & seen[:, b]
                    co[lab[a], lab[b]] += both.sum()
                    hits[lab[a], lab[b]] += fl[both, a, b].sum(0)
    marginal = hits.sum((0, 1)) / max(co.sum(), 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        prior = hits / co[..., None]
    return np.where(co[..., None] > 0, prior, marginal[None, None]).astype(np.float32)


def evaluate_videos(anns: list[VideoAnnotation], predict: Callable[[VideoAnnotation], list[VideoRelation]]) -> dict:
    """Official metrics of ``predict`` over ``anns``; returns (report dict, predictions by video id)."""
    gt = {a.video_id: video_relations_from_annotation(a) for a in anns}
    pred = {a.video_id: predict(a) for a in anns}
    det = evaluate_relation_detection(gt, pred, RelationDetectionConfig())
    tag = evaluate_relation_tagging(gt, pred, RelationTaggingConfig())
    per_pred = det.pop("per_predicate_recall@50", {})
    report = {"relation_detection": {k: det[k] for k in ("mAP", "R@50", "R@100")},
              "relation_tagging": {k: tag[k] for k in ("P@1", "P@5", "P@10")},
              "per_predicate_recall@50": per_pred,
              "mean_recall@50": det.get("mR@50", float(np.mean(list(per_pred.values()))) if per_pred else 0.0),
              "n_videos": det.get("n_videos", len(anns)), "n_gt": det.get("n_gt", 0),
              "ground_truth": GROUND_TRUTH_NOTE,
              "gt_predicates": dict(Counter(r.predicate for rels in gt.values() for r in rels))}
    return report, pred


def write_outputs(preds: dict, report: dict, preds_path: str | Path, report_path: str | Path) -> None:
    for p in (Path(preds_path), Path(report_path)):
        p.parent.mkdir(parents=True, exist_ok=True)
    Path(preds_path).write_text(json.dumps(predictions_to_json(preds)))
    Path(report_path).write_text(json.dumps(report, indent=1, sort_keys=True))
