"""VidVRD relation detection scores: per-video VOC AP (mAP), pooled Recall@N and per-predicate mean recall.

The semantics are those of VidVRD-helper ``evaluation/visual_relation_detection.py`` (ImageNet-VidVRD; the VidOR
variant ``video_relation_detection.py`` differs only by ``max_predictions=200``). Instances and vIoU: see
``offline_train.metrics.vidvrd``. Ground-truth instances are scored as given (as annotated: two instances of one
triplet are two instances even when they touch, overlap or coincide); this module never merges them.

Per video with at least one ground-truth instance (videos without any are skipped entirely, as the reference does;
ground-truth videos missing from the predictions score as having none):

1. Predictions are ranked by score, descending, ties in input order; with ``max_predictions`` only the first that
   many are kept, for every score below.
2. Greedy matching, in rank order: a prediction goes to the still-unmatched ground-truth instance with the **same
   triplet** that maximises ``min(vIoU(subject), vIoU(object))``, provided that is ``>= viou_threshold``; on equal
   overlaps the earlier ground-truth instance wins. A matched prediction is a true positive; later duplicates of the
   same instance are false positives. Because matching is greedy in rank order, the matches of the top N are the
   same whether or not the predictions after N exist.
3. AP: cumulative TP / FP over the ranking (float32, as the reference), recall = TP / #GT, precision =
   TP / (TP + FP); AP is the area under the monotone precision envelope ("VOC2010+": precision at each point is
   replaced by the maximum precision at any higher recall; AP sums Δrecall * envelope where recall changes). A
   video with no predictions has AP 0. ``mAP`` is the plain mean over videos.

``R@N`` is **pooled**: the true positives among each video's first N predictions, summed over videos, divided by
the total number of ground-truth instances. It is not the mean of per-video recalls.

Not in the reference (added here): ``per_predicate_recall@N`` = pooled hits / pooled ground-truth count for each
predicate that occurs in the ground truth, and ``mR@N``, their mean over those predicates (mean_recall variant A).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np
from tqdm import tqdm

from offline_train.metrics.mean_recall import MeanRecall
from offline_train.metrics.vidvrd import VideoRelation, check_video_ids, rank_by_score, viou_xyxy

_EPS32 = np.finfo(np.float32).eps


@dataclass(frozen=True)
class RelationDetectionConfig:
    """Scorer settings. viou_threshold in [0, 1]; recall_at: the N of R@N (>= 1 each); max_predictions: keep only
    each video's top-scored predictions (None: all, as ImageNet-VidVRD's scorer; 200: VidOR's)."""

    viou_threshold: float = 0.5
    recall_at: tuple[int, ...] = (50, 100)
    max_predictions: int | None = None

    def __post_init__(self):
        if not 0.0 <= self.viou_threshold <= 1.0:
            raise ValueError(f"viou_threshold must be in [0, 1], got {self.viou_threshold}")
        if not self.recall_at or any(isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in self.recall_at):
            raise ValueError(f"recall_at must be a non-empty tuple of integers >= 1, got {self.recall_at!r}")
        if self.max_predictions is not None and (not isinstance(self.max_predictions, int)
                                                 or self.max_predictions < 1):
            raise ValueError(f"max_predictions must be None or an integer >= 1, got {self.max_predictions!r}")


def match_greedy(gt: list[VideoRelation], ranked: list[VideoRelation], viou_threshold: float) -> np.ndarray:
    """Greedy matching of already-ranked predictions to ground truth. Returns (P,) int64: the index into ``gt`` of
    each prediction's match, or -1 for a false positive."""
    by_triplet: dict[tuple, list[int]] = {}
    for j, g in enumerate(gt):
        by_triplet.setdefault(g.triplet, []).append(j)
    taken = np.zeros(len(gt), dtype=bool)
    match = np.full(len(ranked), -1, dtype=np.int64)
    for i, p in enumerate(ranked):
        best, best_j = -np.inf, -1
        for j in by_triplet.get(p.triplet, ()):
            if taken[j]:
                continue
            g = gt[j]
            ov = min(viou_xyxy(p.sub_traj, p.begin_fid, g.sub_traj, g.begin_fid),
                     viou_xyxy(p.obj_traj, p.begin_fid, g.obj_traj, g.begin_fid))
            if ov >= viou_threshold and ov > best:  # strict: equal overlaps keep the earlier instance
                best, best_j = ov, j
        if best_j >= 0:
            match[i] = best_j
            taken[best_j] = True
    return match


def precision_recall(tp: np.ndarray, n_gt: int) -> tuple[np.ndarray, np.ndarray]:
    """(precision, recall) float32 curves over a ranked (P,) bool true-positive vector, as the reference."""
    cum_tp = np.cumsum(tp).astype(np.float32)
    cum_fp = np.cumsum(~tp).astype(np.float32)
    rec = cum_tp / np.maximum(n_gt, _EPS32)
    prec = cum_tp / np.maximum(cum_tp + cum_fp, _EPS32)
    return prec, rec


def voc_ap(rec: np.ndarray, prec: np.ndarray) -> float:
    """Area under the monotone precision envelope (VOC2010+). rec, prec: (P,) curves; empty gives 0."""
    mrec = np.concatenate(([0.0], rec, [1.0]))
    mpre = np.concatenate(([0.0], prec, [0.0]))
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]  # envelope: best precision at this or any higher recall
    i = np.flatnonzero(mrec[1:] != mrec[:-1])
    return float(np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1]))


def evaluate_relation_detection(gt: Mapping[str, list[VideoRelation]],
                                pred: Mapping[str, list[VideoRelation]],
                                cfg: RelationDetectionConfig = RelationDetectionConfig(),
                                progress: bool = False) -> dict:
    """Score relation detection. gt / pred: video id -> list of VideoRelation.

    Returns ``{"mAP", "R@N" for N in cfg.recall_at, "mR@N", "per_predicate_recall@N": {predicate: recall},
    "n_videos", "n_gt"}``; recalls and AP are fractions in [0, 1]. Raises ValueError if ``pred`` names a video that
    ``gt`` lacks or no ground-truth video has an instance.
    """
    check_video_ids(gt, pred)
    pred = {str(k): v for k, v in pred.items()}
    videos = [(str(vid), rels) for vid, rels in gt.items() if len(rels) > 0]
    if not videos:
        raise ValueError("gt: no video has a relation instance; nothing to score")
    predicates = sorted({r.predicate for _, rels in videos for r in rels})
    pidx = {p: i for i, p in enumerate(predicates)}
    recall_at = tuple(dict.fromkeys(cfg.recall_at))
    per_n = {n: MeanRecall(len(predicates)) for n in recall_at}
    aps, n_gt = [], 0
    hits_at = dict.fromkeys(recall_at, 0)
    for vid, gt_rels in tqdm(videos, desc="relation detection", disable=not progress, file=None):
        ranked = rank_by_score(pred.get(vid, []), cfg.max_predictions)
        match = match_greedy(gt_rels, ranked, cfg.viou_threshold)
        tp = match >= 0
        prec, rec = precision_recall(tp, len(gt_rels))
        aps.append(voc_ap(rec, prec))
        n_gt += len(gt_rels)
        gt_pred = np.array([pidx[r.predicate] for r in gt_rels], dtype=np.int64)
        counts = np.bincount(gt_pred, minlength=len(predicates))
        for n in recall_at:
            top = match[:n]
            hits_at[n] += int(np.count_nonzero(top >= 0))
            per_n[n].add(np.bincount(gt_pred[top[top >= 0]], minlength=len(predicates)), counts)
    out: dict = {"mAP": float(np.mean(aps)), "n_videos": len(videos), "n_gt": n_gt}
    for n in recall_at:
        out[f"R@{n}"] = float(np.float32(hits_at[n]) / np.maximum(np.float32(n_gt), _EPS32))
        per_class = per_n[n].accumulated()
        out[f"mR@{n}"] = MeanRecall.mean(per_class, over="present")
        out[f"per_predicate_recall@{n}"] = {p: float(per_class[i]) for i, p in enumerate(predicates)}
    return out
