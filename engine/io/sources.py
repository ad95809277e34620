"""Detection streams for offline runs: per-frame ``(frame_index, t_seconds, Detections)`` from files.

* ``MotDetections``: a MOTChallenge ``det.txt`` (public detections), one item per frame from 1 to the last frame,
  frames without detections included (as empty ``Detections``), so a tracker sees every frame. Frames are produced
  one at a time from the sorted detections (nothing is allocated per frame number), and a stretch of more than
  ``max_frame_gap`` frames without any detection (before the first, between two, or after the last up to
  ``num_frames``) is refused: such a file is almost always a typo (frame ``300000000``) and would otherwise cost
  hours of empty frames. Exact duplicate lines and zero-area boxes are dropped with one warning per file.
* ``VidvrdReplay``: a VidVRD / VidOR annotation replayed as a detector would produce it, optionally degraded by
  seeded box jitter, random drops and false positives, to stress-test trackers on real object motion.

Time base: ``t = (frame_index - first_frame) / fps`` seconds (MOT frames start at 1, VidVRD frames at 0).
Boxes are xyxy float32 pixels (image frame, origin top-left).
"""
from __future__ import annotations

import numbers
import warnings
from pathlib import Path
from typing import Iterator, Mapping

import numpy as np

from engine.boxes import ltwh_to_xyxy
from engine.types import Detections
from engine.vocab import Vocabulary, read_text_file

#: How MOT confidences are mapped into [0, 1]. MOTChallenge files mix conventions: the Faster R-CNN detections of
#: MOT15 (as shipped with SORT) are probabilities, MOT17's DPM scores are unbounded and can be negative.
#: ``none``: they must already lie in [0, 1] (an outlier is an error naming its line); ``clip``: clamp to [0, 1];
#: ``sigmoid``: 1 / (1 + exp(-s)), for logit-like scores; ``minmax``: affine map of the file's [min, max] onto
#: [0, 1] (all 1.0 when every score is equal).
SCORE_TRANSFORMS = ("none", "clip", "sigmoid", "minmax")

FrameItem = tuple[int, float, Detections]

#: Default longest run of frames without any detection that ``MotDetections`` accepts (about 5.5 minutes at 30 fps).
MAX_FRAME_GAP = 10_000


def _parse_mot_det(path: Path) -> np.ndarray:
    """A det.txt as (K, 7) float64 rows [frame, left, top, width, height, conf, line number]; errors name the line."""
    rows = []
    for lineno, line in enumerate(read_text_file(path, "MOT detection file").splitlines(), start=1):
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


def _drop_degenerate(rows: np.ndarray, path: Path) -> tuple[np.ndarray, dict[str, int]]:
    """Rows without exact duplicates (same frame, box and confidence; the first line is kept) and without zero-area
    boxes, plus the counts dropped. One warning per file names the counts and the first line of each kind: a
    duplicated line would otherwise become two entities and ghost relations, a zero-area box an entity nobody sees."""
    dropped = {"duplicates": 0, "zero_area": 0}
    if not len(rows):
        return rows, dropped
    _, first = np.unique(rows[:, :6], axis=0, return_index=True)
    dup = np.ones(len(rows), bool)
    dup[first] = False
    zero = ~dup & ((rows[:, 3] == 0) | (rows[:, 4] == 0))
    notes = []
    for key, mask, one, many in (("duplicates", dup, "exact duplicate line", "exact duplicate lines"),
                                  ("zero_area", zero, "zero-area box", "zero-area boxes")):
        n = int(mask.sum())
        dropped[key] = n
        if n:
            notes.append(f"{n} {one if n == 1 else many} (first: line {int(rows[np.flatnonzero(mask)[0], 6])})")
    if notes:
        warnings.warn(f"{path}: dropped {' and '.join(notes)}", stacklevel=3)
    return rows[~(dup | zero)], dropped


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
        return 0.5 * (1.0 + np.tanh(scores / 2))  # = 1 / (1 + exp(-s)) without overflow for very negative s
    lo, hi = (float(scores.min()), float(scores.max())) if scores.size else (0.0, 0.0)
    return (scores - lo) / (hi - lo) if hi > lo else np.ones_like(scores)


class MotDetections:
    """A MOTChallenge det.txt as a frame stream; the file is read and validated completely at construction.

    path:            ``frame,-1,left,top,width,height,conf,...`` per line (frames from 1, pixels), UTF-8 text.
    fps:             frame rate used for ``t = (frame - 1) / fps`` seconds.
    score_transform: one of ``SCORE_TRANSFORMS`` (see there); the TUD-Campus / SORT files need ``none``.
    label:           vocabulary index given to every detection (MOT det files carry no class).
    num_frames:      yield frames 1..num_frames (the sequence length, e.g. seqinfo.ini ``seqLength``) so that
                     trailing frames without detections are included; default: up to the last frame in the file.
    max_frame_gap:   the longest run of consecutive frames without a detection that is accepted (counting frames
                     before the first detection and, with ``num_frames``, after the last); more is a ValueError
                     naming the line. Default ``MAX_FRAME_GAP``.

    Exact duplicate lines (same frame, box and confidence) and zero-area boxes are dropped with one warning per
    file; ``dropped`` holds the counts ``{"duplicates": n, "zero_area": m}``.
    Iterating yields ``(frame_index, t, Detections)`` for every frame; ``len()`` is the number of frames.
    Memory is proportional to the number of detections, never to the frame numbers.
    """

    def __init__(self, path: str | Path, fps: float = 30.0, score_transform: str = "none", label: int = 0,
                 num_frames: int | None = None, max_frame_gap: int = MAX_FRAME_GAP):
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"path: MOT detection file not found: {p}")
        if isinstance(fps, bool) or not (isinstance(fps, numbers.Real) and np.isfinite(fps) and fps > 0):
            raise ValueError(f"fps: must be a positive number, got {fps!r}")
        if score_transform not in SCORE_TRANSFORMS:
            raise ValueError(f"score_transform: unknown '{score_transform}' (one of {', '.join(SCORE_TRANSFORMS)})")
        if isinstance(label, bool) or not isinstance(label, (int, np.integer)) or label < 0:
            raise ValueError(f"label: must be a non-negative integer, got {label!r}")
        if num_frames is not None and (isinstance(num_frames, bool) or not isinstance(num_frames, (int, np.integer))
                                       or num_frames < 0):
            raise ValueError(f"num_frames: must be a non-negative integer, got {num_frames!r}")
        if isinstance(max_frame_gap, bool) or not isinstance(max_frame_gap, (int, np.integer)) or max_frame_gap < 1:
            raise ValueError(f"max_frame_gap: must be a positive integer, got {max_frame_gap!r}")
        rows, self.dropped = _drop_degenerate(_parse_mot_det(p), p)
        order = np.argsort(rows[:, 0], kind="stable")  # files are frame-sorted in practice; do not rely on it
        rows = rows[order]
        last = _check_gaps(rows, p, int(max_frame_gap))
        if num_frames is not None:
            if last > num_frames:
                raise ValueError(f"num_frames: {num_frames} is less than the last frame in {p} ({last})")
            if num_frames - max(last, 0) > max_frame_gap:
                raise ValueError(f"num_frames: {num_frames} leaves {num_frames - last} frames without detections "
                                 f"after the last detection in {p} (frame {last}); more than max_frame_gap="
                                 f"{max_frame_gap}")
            last = int(num_frames)
        self.path, self.fps, self.num_frames, self.max_frame_gap = p, float(fps), last, int(max_frame_gap)
        self._frames = rows[:, 0].astype(np.int64)
        self._boxes = ltwh_to_xyxy(rows[:, 1:5]).astype(np.float32)
        self._scores = _map_scores(rows[:, 5], score_transform, p, rows[:, 6]).astype(np.float32)
        self._label = int(label)

    def __len__(self) -> int:
        return self.num_frames

    def __iter__(self) -> Iterator[FrameItem]:
        k, n = 0, len(self._frames)
        for f in range(1, self.num_frames + 1):
            a = k
            while k < n and self._frames[k] == f:
                k += 1
            yield f, (f - 1) / self.fps, Detections(self._boxes[a:k], self._scores[a:k],
                                                    np.full(k - a, self._label, np.int32))


def _check_gaps(rows: np.ndarray, path: Path, max_gap: int) -> int:
    """The last frame number of frame-sorted ``rows``; ValueError naming the line where more than ``max_gap``
    consecutive frames (from frame 1 on) would pass without a detection."""
    if not len(rows):
        return 0
    frames = np.concatenate([[0.0], rows[:, 0]])     # frame 0 stands for "before the first frame"
    gaps = np.diff(frames) - 1                        # empty frames between consecutive detections
    bad = np.flatnonzero(gaps > max_gap)
    if bad.size:
        i = int(bad[0])
        after = f"frame {int(frames[i])}" if i else "the start"
        raise ValueError(f"{path}:{int(rows[i, 6])}: frame {int(rows[i, 0])} comes {int(gaps[i]):,} frames without "
                         f"detections after {after}; more than max_frame_gap={max_gap:,} (a typo in the frame "
                         "number? raise max_frame_gap if the gap is real)")
    return int(rows[-1, 0])


class VidvrdReplay:
    """A VidVRD / VidOR annotation replayed as a per-frame detection stream (frames from 0, ``t = f / fps``).

    Every object present in a frame becomes one detection with label ``vocab.index(category_map.get(c, c))``;
    an unknown category raises ValueError naming it (at construction). Optional degradations, all drawn from
    ``np.random.default_rng(seed)`` (a fresh generator per iteration, so every pass yields the same stream):

    jitter:          Gaussian noise on (cx, cy, w, h) with std ``jitter`` x box size (width for x, height for y);
                     the result is clipped to the image and kept at least 1 px wide and high.
    drop_prob:       probability that a present object is not detected in a frame.
    false_positives: mean number (Poisson) of false detections per frame: random boxes of 5-30 % of the image
                     size, with a label drawn from the video's own categories (so class gating cannot reject them),
                     or from the whole vocabulary for a video that has no objects at all.
    true_scores / false_scores: (low, high) ranges of the uniform scores of real and false detections.

    Iterating yields ``(frame_index, t, Detections)``; ``with_truth()`` also yields the (N,) int64 annotation tid
    of every detection (-1 for false positives), for scoring trackers on real motion.
    """

    def __init__(self, annotation, vocab: Vocabulary, category_map: Mapping[str, str] | None = None, *,
                 jitter: float = 0.0, drop_prob: float = 0.0, false_positives: float = 0.0,
                 true_scores: tuple[float, float] = (0.6, 1.0), false_scores: tuple[float, float] = (0.3, 0.8),
                 seed: int = 0):
        from engine.io.vidvrd import VideoAnnotation, load_vidvrd  # the JSON format lives there

        ann = annotation if isinstance(annotation, VideoAnnotation) else load_vidvrd(annotation)
        if not isinstance(vocab, Vocabulary):
            raise TypeError(f"vocab: expected an engine.vocab.Vocabulary, got {type(vocab).__name__}")
        cmap = dict(category_map or {})
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in cmap.items()):
            raise TypeError("category_map: expected a mapping of category name -> vocabulary name")
        labels = []
        for c in ann.categories:
            name = cmap.get(c, c)
            if name not in vocab:
                via = f" (mapped to {name!r})" if c in cmap else ""
                raise ValueError(f"category {c!r}{via} of video {ann.video_id} is not in vocabulary '{vocab.name}'; "
                                 "map it to a vocabulary name with a category map (vsgg run --category-map FILE, "
                                 "YAML {category: vocabulary name})")
            labels.append(vocab.index(name))
        for name, v in (("jitter", jitter), ("false_positives", false_positives)):
            if isinstance(v, bool) or not (isinstance(v, numbers.Real) and np.isfinite(v) and v >= 0):
                raise ValueError(f"{name}: must be a finite number >= 0, got {v!r}")
        if isinstance(drop_prob, bool) or not (isinstance(drop_prob, numbers.Real) and 0.0 <= drop_prob <= 1.0):
            raise ValueError(f"drop_prob: must be in [0, 1], got {drop_prob!r}")
        for name, r in (("true_scores", true_scores), ("false_scores", false_scores)):
            if len(r) != 2 or not 0.0 <= r[0] <= r[1] <= 1.0:
                raise ValueError(f"{name}: expected (low, high) with 0 <= low <= high <= 1, got {r!r}")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise TypeError(f"seed: expected an integer, got {type(seed).__name__}")
        self.annotation, self.vocab = ann, vocab
        self.labels = np.array(labels, np.int32)  # (K,) vocabulary index per annotated object
        self.jitter, self.drop_prob, self.false_positives = float(jitter), float(drop_prob), float(false_positives)
        self.true_scores, self.false_scores = tuple(map(float, true_scores)), tuple(map(float, false_scores))
        self.seed = int(seed)

    def __len__(self) -> int:
        return self.annotation.frame_count

    def __iter__(self) -> Iterator[FrameItem]:
        for f, t, dets, _ in self.with_truth():
            yield f, t, dets

    def with_truth(self) -> Iterator[tuple[int, float, Detections, np.ndarray]]:
        """Like iterating, plus the (N,) int64 annotation tid of each detection (-1: false positive)."""
        ann, rng = self.annotation, np.random.default_rng(self.seed)
        w_img, h_img = float(ann.width), float(ann.height)
        present = ann.present
        # an empty scene is valid (synthetic videos whose agents all stay out of view): its false positives cannot
        # copy a category of the video, so they take any label
        fp_pool = self.labels if len(self.labels) else np.arange(len(self.vocab), dtype=np.int32)
        for f in range(ann.frame_count):
            cols = np.flatnonzero(present[f])
            cols = cols[rng.random(len(cols)) >= self.drop_prob]
            boxes = ann.boxes[f, cols].astype(np.float64)
            if self.jitter > 0 and len(cols):
                size = np.maximum(boxes[:, 2:] - boxes[:, :2], 1.0)
                c = (boxes[:, :2] + boxes[:, 2:]) / 2 + rng.normal(0, self.jitter, (len(cols), 2)) * size
                wh = np.maximum(size * (1 + rng.normal(0, self.jitter, (len(cols), 2))), 1.0)
                boxes = np.concatenate([c - wh / 2, c + wh / 2], 1)
            n_fp = int(rng.poisson(self.false_positives)) if self.false_positives > 0 else 0
            fp_wh = rng.uniform(0.05, 0.3, (n_fp, 2)) * [w_img, h_img]
            fp_xy = rng.uniform(0, 1, (n_fp, 2)) * ([w_img, h_img] - fp_wh)
            boxes = np.concatenate([boxes, np.concatenate([fp_xy, fp_xy + fp_wh], 1)])
            boxes[:, [0, 2]] = np.clip(boxes[:, [0, 2]], 0, w_img)
            boxes[:, [1, 3]] = np.clip(boxes[:, [1, 3]], 0, h_img)
            boxes[:, 2:] = np.maximum(boxes[:, 2:], boxes[:, :2] + 1.0)  # keep >= 1 px after clipping
            scores = np.concatenate([rng.uniform(*self.true_scores, len(cols)), rng.uniform(*self.false_scores, n_fp)])
            fp_labels = rng.choice(fp_pool, n_fp) if n_fp else np.zeros(0, np.int32)
            labels = np.concatenate([self.labels[cols], fp_labels]).astype(np.int32)
            tids = np.concatenate([ann.tids[cols], np.full(n_fp, -1, np.int64)])
            yield f, f / ann.fps, Detections(boxes.astype(np.float32), scores.astype(np.float32), labels), tids
