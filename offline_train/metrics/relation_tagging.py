"""VidVRD relation tagging score: Precision@K of the deduplicated predicted triplets, averaged over videos.

Semantics of VidVRD-helper ``eval_tagging_scores`` + ``evaluate`` (trajectories are ignored), per video with at
least one ground-truth instance (other videos are skipped; ground-truth videos missing from the predictions count
as having none):

1. Predictions are ranked by score, descending, ties in input order (``max_predictions`` truncates **before**
   deduplication, as the VidOR scorer does with 200).
2. Triplets are deduplicated keeping the first (highest-ranked) occurrence.
3. A unique triplet is a hit when it is in the set of the video's ground-truth triplets.
4. ``P@K`` of the video = hits among the first ``min(K, U)`` unique triplets divided by ``min(K, U)``, where ``U`` is
   the number of unique predicted triplets: the reference reads its precision curve at ``min(K, U) - 1``, so **a
   video with fewer than K unique triplets is divided by U, not by K** (2 correct triplets out of 2 give
   P@10 = 1.0). A video with no predictions gets 0. (Dividing by K would be the textbook definition; the reference
   does not.)
5. ``P@K`` is the plain mean over videos.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np

from offline_train.metrics.vidvrd import VideoRelation, check_video_ids, rank_by_score


@dataclass(frozen=True)
class RelationTaggingConfig:
    """precision_at: the K of P@K (integers >= 1). max_predictions: see RelationDetectionConfig."""

    precision_at: tuple[int, ...] = (1, 5, 10)
    max_predictions: int | None = None

    def __post_init__(self):
        ks = self.precision_at
        if not ks or any(isinstance(k, bool) or not isinstance(k, int) or k < 1 for k in ks):
            raise ValueError(f"precision_at must be a non-empty tuple of integers >= 1, got {ks!r}")
        if self.max_predictions is not None and (not isinstance(self.max_predictions, int)
                                                 or self.max_predictions < 1):
            raise ValueError(f"max_predictions must be None or an integer >= 1, got {self.max_predictions!r}")


def unique_triplet_hits(gt: list[VideoRelation], ranked: list[VideoRelation]) -> np.ndarray:
    """(U,) bool: for each unique triplet of the ranked predictions, in first-occurrence order, whether it is a
    ground-truth triplet of the video."""
    gt_triplets = {r.triplet for r in gt}
    unique = dict.fromkeys(r.triplet for r in ranked)  # dicts keep insertion order: first occurrence wins
    return np.fromiter((t in gt_triplets for t in unique), dtype=bool, count=len(unique))


def evaluate_relation_tagging(gt: Mapping[str, list[VideoRelation]],
                              pred: Mapping[str, list[VideoRelation]],
                              cfg: RelationTaggingConfig = RelationTaggingConfig()) -> dict:
    """Score relation tagging. gt / pred: video id -> list of VideoRelation.

    Returns ``{"P@K" for K in cfg.precision_at: float in [0, 1], "n_videos": int}``. Raises ValueError if ``pred``
    names a video that ``gt`` lacks or no ground-truth video has an instance.
    """
    check_video_ids(gt, pred)
    pred = {str(k): v for k, v in pred.items()}
    videos = [(str(vid), rels) for vid, rels in gt.items() if len(rels) > 0]
    if not videos:
        raise ValueError("gt: no video has a relation instance; nothing to score")
    ks = tuple(dict.fromkeys(cfg.precision_at))
    per_video = {k: [] for k in ks}
    for vid, gt_rels in videos:
        hits = unique_triplet_hits(gt_rels, rank_by_score(pred.get(vid, []), cfg.max_predictions))
        cum = np.cumsum(hits).astype(np.float32)
        for k in ks:
            cut = min(k, len(hits))
            per_video[k].append(float(cum[cut - 1] / np.float32(cut)) if cut > 0 else 0.0)
    out: dict = {f"P@{k}": float(np.mean(per_video[k])) for k in ks}
    out["n_videos"] = len(videos)
    return out
