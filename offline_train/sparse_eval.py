"""Causal evaluation of long videos from their SparseClip rows: per-row scores -> relation instances written at the
annotation's own frame indices, whatever frame rate the model runs at.

The model sees the video at the annotation rate divided by ``stride`` (model frame i = annotation frame i * stride,
``offline_train.sparse_clips.subsample``). Scoring streams exactly as the engine does: one state row per ordered
pair, advanced only on frames where both objects are present. Merging follows ``offline_train.evaluate``'s rules
(threshold, gap bridging, minimum length, mean score over the span with the optional length weight, the optional
per-triplet cut, ``max_predictions`` best per video) on the model frames; an instance on model frames [b, e) is written on annotation frames [b * stride, e * stride) (each model
frame stands for the ``stride`` annotation frames up to the next one) with the annotation's boxes.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from engine.io.vidvrd import VideoAnnotation
from engine.vocab import Vocabulary
from offline_train.evaluate import MergeConfig, _fill, keep_confident_triplets
from offline_train.metrics import VideoRelation
from offline_train.sparse_clips import SparseClip


def score_sparse(step: Callable, init_state: Callable[[int], tuple], clip: SparseClip,
                 num_predicates: int) -> np.ndarray:
    """(N, C) float32 scores of every row of ``clip`` from a causal stepper (``offline_train.stepper``)."""
    out = np.zeros((len(clip.row_pair), num_predicates), np.float32)
    state = init_state(clip.num_pairs)
    bounds = np.searchsorted(clip.row_frame, np.arange(clip.num_frames + 1))
    for t in np.unique(clip.row_frame):
        rows = slice(int(bounds[t]), int(bounds[t + 1]))
        ix = clip.row_pair[rows]
        scores, new = step(clip.feats[rows], clip.subj_label[ix], clip.obj_label[ix], tuple(s[ix] for s in state))
        out[rows] = scores
        for s, n in zip(state, new):
            s[ix] = n
    return out


def proximity(clip: SparseClip) -> np.ndarray:
    """(N,) in (0, 1]: 1 / (1 + pair distance) of each row (``offline_train.sparse_clips.pair_distance``); no
    parameter to tune."""
    return 1.0 / (1.0 + clip.dist)


def prior_scores(prior: np.ndarray, clip: SparseClip, with_proximity: bool = False) -> np.ndarray:
    """Baselines: each row scores P(predicate | subject, object categories), optionally times ``proximity``."""
    s = prior[clip.subj_label[clip.row_pair], clip.obj_label[clip.row_pair]]
    return (s * proximity(clip)[:, None]).astype(np.float32) if with_proximity else s.astype(np.float32)


def merge_sparse(scores: np.ndarray, clip: SparseClip, ann: VideoAnnotation, predicates: Vocabulary,
                 cfg: MergeConfig, stride: int = 1) -> list[VideoRelation]:
    """VideoRelation predictions on ``ann``'s frames (the annotation at its own rate) from per-row ``scores``."""
    above = scores >= cfg.threshold
    if not above.any():
        return []
    order = np.argsort(clip.row_pair, kind="stable")          # rows grouped by pair, in frame order
    bounds = np.searchsorted(clip.row_pair[order], np.arange(clip.num_pairs + 1))
    hit_pairs = np.unique(clip.row_pair[above.any(1)])
    found = []  # (score, pair, predicate, begin, end): trajectories are built for the kept ones only
    for p in hit_pairs.tolist():
        rows = order[bounds[p]:bounds[p + 1]]
        frames = clip.row_frame[rows]
        for c in np.flatnonzero(above[rows].any(0)).tolist():
            on = np.flatnonzero(above[rows, c])
            cuts = np.flatnonzero(np.diff(frames[on]) > cfg.max_gap + 1)
            for run in np.split(on, cuts + 1):
                b, e = int(frames[run[0]]), int(frames[run[-1]]) + 1
                if e - b < cfg.min_frames:
                    continue
                lo, hi = np.searchsorted(frames, [b, e])  # a pair's rows are in frame order
                found.append((cfg.instance_score(float(scores[rows[lo:hi], c].mean()), e - b), p, c, b, e))
    found.sort(key=lambda f: f[0], reverse=True)  # stable: ties keep the order they were found in
    # before the trajectories are built: only kept instances get them
    found = keep_confident_triplets(found, cfg, lambda f: _triplet(ann, clip, f), lambda f: f[0])
    return [_instance(ann, clip, p, predicates.names[c], b, e, s, stride)
            for s, p, c, b, e in found[: cfg.max_predictions]]


def _triplet(ann: VideoAnnotation, clip: SparseClip, f: tuple) -> tuple:
    """(subject category, predicate index, object category) of a found (score, pair, predicate, b, e)."""
    return ann.categories[int(clip.subj[f[1]])], f[2], ann.categories[int(clip.obj[f[1]])]


def _instance(ann: VideoAnnotation, clip: SparseClip, p: int, predicate: str, b: int, e: int, score: float,
              stride: int) -> VideoRelation:
    s_col, o_col = int(clip.subj[p]), int(clip.obj[p])
    b30, e30 = b * stride, min(e * stride, ann.frame_count)
    sub = ann.boxes[b30:e30, s_col].astype(np.float64)
    ob = ann.boxes[b30:e30, o_col].astype(np.float64)
    if np.isnan(sub).any() or np.isnan(ob).any():  # frames between the model's where the annotation has no box
        sub, ob = _fill(sub), _fill(ob)
    return VideoRelation((ann.categories[s_col], predicate, ann.categories[o_col]), b30, e30, sub, ob, score)
