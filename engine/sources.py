"""Detection streams for offline runs: per-frame ``(frame_index, t_seconds, Detections)`` from files.

* ``MotDetections``: a MOTChallenge ``det.txt`` (public detections), one item per frame from 1 to the last frame,
  frames without detections included (as empty ``Detections``), so a tracker sees every frame.
* ``VidvrdReplay``: a VidVRD / VidOR annotation replayed as a detector would produce it, optionally degraded by
  seeded box jitter, random drops and false positives, to stress-test trackers on real object motion.

Time base: ``t = (frame_index - first_frame) / fps`` seconds (MOT frames start at 1, VidVRD frames at 0).
Boxes are xyxy float32 pixels (image frame, origin top-left).
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator, Mapping

import numpy as np

from engine.boxes import ltwh_to_xyxy
from engine.types import Detections
from engine.vocab import Vocabulary

#: How MOT confidences are mapped into [0, 1]. MOTChallenge files mix conventions: the Faster R-CNN detections of
#: MOT15 (as shipped with SORT) are probabilities, MOT17's DPM scores are unbounded and can be negative.
#: ``none``: they must already lie in [0, 1] (an outlier is an error naming its line); ``clip``: clamp to [0, 1];
#: ``sigmoid``: 1 / (1 + exp(-s)), for logit-like scores; ``minmax``: affine map of the file's [min, max] onto
#: [0, 1] (all 1.0 when every score is equal).
SCORE_TRANSFORMS = ("none", "clip", "sigmoid", "minmax")

FrameItem = tuple[int, float, Detections]


def _parse_mot_det(path: Path) -> np.ndarray:
    """Rows of a det.txt as (K, 7) float64 [frame, left, top, width, height, conf, line number]; errors name the line."""
    rows = []
    for lineno, line in enumerate(path.read_text().splitlines(), start=1):
        text = line.strip()
        if not text:
            continue
        parts = text.split(",")
        if len(parts) < 7:
            raise ValueError(f"{path}:{lineno}: expected at least 7 comma-separated fields "
                             f"(frame,id,left,top,width,height,conf,...), got {len(parts)}: {text!r}")
        try:
            frame = float(parts[0])
            vals = [float(parts[i]) for i in (2, 3, 4, 5, 6)]
        except ValueError:
            raise ValueError(f"{path}:{lineno}: non-numeric field in {text!r}") from None
        if not np.isfinite([frame, *vals]).all():
            raise ValueError(f"{path}:{lineno}: NaN or inf in {text!r}")
        if frame != int(frame) or frame < 1:
            raise ValueError(f"{path}:{lineno}: frame must be an integer >= 1, got {parts[0].strip()!r}")
        if vals[2] < 0 or vals[3] < 0:
            raise ValueError(f"{path}:{lineno}: negative box width or height in {text!r}")
        rows.append([frame, *vals, lineno])
    return np.array(rows, np.float64).reshape(-1, 7)


def _map_scores(scores: np.ndarray, transform: str, path: Path, lines: np.ndarray) -> np.ndarray:
    if transform == "none":
        bad = np.flatnonzero((scores < 0) | (scores > 1))
        if bad.size:
            i = int(bad[0])
            raise ValueError(f"{path}:{int(lines[i])}: confidence {scores[i]} is outside [0, 1]; choose a "
                             f"score_transform other than 'none' (one of {', '.join(SCORE_TRANSFORMS)})")
        return scores
    if transform == "clip":
        return np.clip(scores, 0.0, 1.0)
    if transform == "sigmoid":
        return 1.0 / (1.0 + np.exp(-scores))
    lo, hi = (float(scores.min()), float(scores.max())) if scores.size else (0.0, 0.0)
    return (scores - lo) / (hi - lo) if hi > lo else np.ones_like(scores)


class MotDetections:
    """A MOTChallenge det.txt as a frame stream; the file is read and validated completely at construction.

    path:            ``frame,-1,left,top,width,height,conf,...`` per line (frames from 1, pixels).
    fps:             frame rate used for ``t = (frame - 1) / fps`` seconds.
    score_transform: one of ``SCORE_TRANSFORMS`` (see there); the TUD-Campus / SORT files need ``none``.
    label:           vocabulary index given to every detection (MOT det files carry no class).
    num_frames:      yield frames 1..num_frames (the sequence length, e.g. seqinfo.ini ``seqLength``) so that
                     trailing frames without detections are included; default: up to the last frame in the file.

    Iterating yields ``(frame_index, t, Detections)`` for every frame; ``len()`` is the number of frames.
    """

    def __init__(self, path: str | Path, fps: float = 30.0, score_transform: str = "none", label: int = 0,
                 num_frames: int | None = None):
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"path: MOT detection file not found: {p}")
        if not (isinstance(fps, (int, float)) and np.isfinite(fps) and fps > 0):
            raise ValueError(f"fps: must be a positive number, got {fps!r}")
        if score_transform not in SCORE_TRANSFORMS:
            raise ValueError(f"score_transform: unknown '{score_transform}' (one of {', '.join(SCORE_TRANSFORMS)})")
        if isinstance(label, bool) or not isinstance(label, (int, np.integer)) or label < 0:
            raise ValueError(f"label: must be a non-negative integer, got {label!r}")
        rows = _parse_mot_det(p)
        last = int(rows[:, 0].max()) if len(rows) else 0
        if num_frames is not None:
            if isinstance(num_frames, bool) or not isinstance(num_frames, (int, np.integer)) or num_frames < 0:
                raise ValueError(f"num_frames: must be a non-negative integer, got {num_frames!r}")
            if last > num_frames:
                raise ValueError(f"num_frames: {num_frames} is less than the last frame in {p} ({last})")
            last = int(num_frames)
        scores = _map_scores(rows[:, 5], score_transform, p, rows[:, 6])
        order = np.argsort(rows[:, 0], kind="stable")  # files are frame-sorted in practice; do not rely on it
        self.path, self.fps, self.num_frames = p, float(fps), last
        self._frames = rows[order, 0].astype(np.int64)
        self._boxes = ltwh_to_xyxy(rows[order, 1:5]).astype(np.float32)
        self._scores = scores[order].astype(np.float32)
        self._label = int(label)

    def __len__(self) -> int:
        return self.num_frames

    def __iter__(self) -> Iterator[FrameItem]:
        lo = np.searchsorted(self._frames, np.arange(1, self.num_frames + 1), "left")
        hi = np.searchsorted(self._frames, np.arange(1, self.num_frames + 1), "right")
        for f in range(1, self.num_frames + 1):
            a, b = lo[f - 1], hi[f - 1]
            dets = Detections(self._boxes[a:b], self._scores[a:b], np.full(b - a, self._label, np.int32))
            yield f, (f - 1) / self.fps, dets
