"""Training tensors of one video: causal pair features, presence, category labels and per-frame predicate targets.

Features come from ``engine.relate.features.video_pair_features`` — the same code the runtime runs on live tracks.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.relate.features import video_pair_features
from engine.io.vidvrd import VideoAnnotation, frame_labels
from engine.vocab import Vocabulary


@dataclass(frozen=True, eq=False)
class VideoClip:
    """All ordered pairs of one video. P = K (K - 1) pairs, C predicates, F features.

    feats (T, P, F) float32; present (T, P) bool (both boxes seen); subj/obj (P,) column indices into the video's
    objects; subj_label/obj_label (P,) int64 object-vocabulary indices; targets (T, P, C) bool.
    """

    video_id: str
    feats: np.ndarray
    present: np.ndarray
    subj: np.ndarray
    obj: np.ndarray
    subj_label: np.ndarray
    obj_label: np.ndarray
    targets: np.ndarray

    @property
    def num_frames(self) -> int:
        return int(self.feats.shape[0])

    def crop(self, start: int, length: int, max_pairs: int = 0) -> "VideoClip":
        """Frames [start, start + length); ``max_pairs`` is accepted for the SparseClip interface and ignored (a
        dense clip holds every ordered pair of a short video)."""
        s = slice(start, start + length)
        return VideoClip(self.video_id, self.feats[s], self.present[s], self.subj, self.obj, self.subj_label,
                         self.obj_label, self.targets[s])

    def frames_with_pairs(self) -> np.ndarray:
        """(T,) bool: frames where at least one pair is present."""
        return self.present.any(1)

    def observed(self) -> tuple[np.ndarray, np.ndarray]:
        """(feats (N, F), targets (N, C)) of every present pair-frame."""
        return self.feats[self.present], self.targets[self.present]

    def windows(self, length: int = 0, max_pairs: int = 0):
        """The whole clip as one window (short videos are validated in one piece)."""
        yield self


def make_clip(ann: VideoAnnotation, objects: Vocabulary, predicates: Vocabulary, lag: int) -> VideoClip:
    """Build the clip of ``ann`` (labels must already be in ``objects`` / ``predicates``; unknown ones raise)."""
    times = np.arange(ann.frame_count) / ann.fps
    feats, present, subj, obj = video_pair_features(ann.boxes, times, (ann.width, ann.height), lag)
    labels = np.array(objects.indices(ann.categories), np.int64)
    per_frame = frame_labels(ann, predicates)                               # (T, K, K, C)
    targets = per_frame[:, subj, obj] if len(subj) else np.zeros((ann.frame_count, 0, len(predicates)), bool)
    return VideoClip(ann.video_id, feats, present, subj, obj, labels[subj], labels[obj], targets)


def feature_stats(clips: list[VideoClip]) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std (F,) of the features over every present pair-frame (std floored so constants stay finite)."""
    rows = [f for f in (c.observed()[0] for c in clips) if len(f)]
    if not rows:
        raise ValueError("no present pair in the training data: cannot compute feature statistics")
    x = np.concatenate(rows).astype(np.float64)
    return x.mean(0).astype(np.float32), np.maximum(x.std(0), 1e-2).astype(np.float32)


def predicate_pos_weights(clips: list[VideoClip], base: float, balance: float) -> np.ndarray:
    """(C,) positive weights: ``base * (median / count_c) ** balance`` over predicates that occur, clipped to
    [base / 4, base * 8]; predicates that never occur get ``base``."""
    counts = sum(c.observed()[1].sum(0).astype(np.float64) for c in clips)
    w = np.full(len(counts), base, np.float64)
    seen = counts > 0
    if balance > 0 and seen.any():
        w[seen] = base * (np.median(counts[seen]) / counts[seen]) ** balance
    return np.clip(w, base / 4, base * 8).astype(np.float32)
