"""The tracker's state and parameters as numba-passable named structures: ``TrackState`` and ``TrackParams``.

``TrackState`` is the fixed-capacity struct of arrays (one row per track slot) that the kernels of
``engine.track.tracker`` change in place; ``TrackParams`` holds the ``TrackerConfig`` values they read. Both are
``typing.NamedTuple`` classes, which numba types field by field, so the kernels read ``state.mean`` or
``params.max_age`` by name and one call passes the whole state instead of a long positional list.
Units: pixels and frames.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from engine.config import TrackerConfig

#: Slot status codes (``TrackState.status``, int8).
FREE, TENTATIVE, TRACKED, LOST = 0, 1, 2, 3


class TrackState(NamedTuple):
    """Fixed-capacity struct-of-arrays state of every track slot (C = ``max_tracks``), changed in place by the kernels.

    A slot is live while ``status != FREE``; the other columns of a free slot are stale and never read.
    """

    mean: np.ndarray      # (C, 8) float64 Kalman mean [cx, cy, w, h, vcx, vcy, vw, vh], pixels and pixels/frame
    cov: np.ndarray       # (C, 8, 8) float64 Kalman covariance
    ids: np.ndarray       # (C,) int64 track id
    status: np.ndarray    # (C,) int8 FREE / TENTATIVE / TRACKED / LOST
    hits: np.ndarray      # (C,) int32 matched frames since birth (consecutive while tentative)
    age: np.ndarray       # (C,) int32 frames since birth
    misses: np.ndarray    # (C,) int32 frames since the last match
    label: np.ndarray     # (C,) int32 class of the last matched detection
    score: np.ndarray     # (C,) float32 score of the last matched detection
    counters: np.ndarray  # (2,) int64 [next_id, dropped_births]

    @classmethod
    def zeros(cls, capacity: int) -> "TrackState":
        """All ``capacity`` slots free; the id counter at 0. ``capacity``: int >= 1."""
        if isinstance(capacity, bool) or not isinstance(capacity, (int, np.integer)):
            raise TypeError(f"capacity: expected an int, got {type(capacity).__name__}")
        if capacity < 1:
            raise ValueError(f"capacity: must be >= 1, got {capacity}")
        c = int(capacity)
        i32 = np.int32
        return cls(np.zeros((c, 8)), np.zeros((c, 8, 8)), np.zeros(c, np.int64), np.zeros(c, np.int8),
                   np.zeros(c, i32), np.zeros(c, i32), np.zeros(c, i32), np.zeros(c, i32), np.zeros(c, np.float32),
                   np.zeros(2, np.int64))


class TrackParams(NamedTuple):
    """The ``TrackerConfig`` values the kernels read, with numba-stable types (see ``TrackParams.from_config``)."""

    high_score: float       # detections with score >= this go to stage 1 (and stage 3)
    low_score: float        # low_score <= score < high_score go to stage 2; below is ignored
    new_track_score: float  # an unclaimed detection with score >= this starts a track
    iou_high: float         # stage 1 needs IoU > this
    iou_low: float          # stage 2 needs IoU > this
    iou_tentative: float    # stage 3 needs IoU > this
    min_hits: int           # consecutive matched frames that confirm a tentative track
    max_age: int            # a lost track is removed at its (max_age + 1)-th consecutive miss
    class_gating: bool      # detections only match tracks of the same label
    std_pos: np.ndarray     # (4,) float64 process noise weights of (cx, cy, w, h), fractions of the box size
    std_vel: np.ndarray     # (4,) float64 process noise weights of their rates
    std_meas: np.ndarray    # (4,) float64 measurement noise weights

    @classmethod
    def from_config(cls, cfg: TrackerConfig) -> "TrackParams":
        """Python floats, ints and a bool (one numba specialisation whatever the config's value types)."""
        size = cfg.size_noise_ratio
        return cls(float(cfg.high_score), float(cfg.low_score), float(cfg.new_track_score),
                   float(cfg.match_iou_high), float(cfg.match_iou_low), float(cfg.match_iou_tentative),
                   int(cfg.min_hits), int(cfg.max_age), bool(cfg.class_gating),
                   cfg.std_weight_position * np.array([1.0, 1.0, size, size]),
                   cfg.std_weight_velocity * np.array([1.0, 1.0, size, size]),
                   cfg.std_weight_measurement * np.ones(4))
