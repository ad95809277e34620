"""Greedy non-maximum suppression over xyxy boxes, class-aware or class-agnostic, as a numba kernel.

Why a numba kernel and not vectorised numpy: greedy NMS is sequential (whether box j survives depends on which
earlier boxes survived). The usual numpy form runs one Python iteration per *kept* box, each computing IoU of that
box against all remaining ones; with a few hundred candidates that is a few hundred numpy calls of ~5-10 us each.
The kernel below does the same greedy pass in one compiled loop, skips other-class pairs with one integer compare
(class-aware mode needs no coordinate-offset trick), and allocates nothing per iteration. ``warmup()`` compiles it
ahead of the first frame (numba compiles lazily; ``cache=True`` keeps the machine code between processes).

Semantics (the same as torchvision.ops.nms / batched_nms):
* boxes are visited in descending score order; ties keep the lower input index first (stable sort);
* a box is suppressed when its IoU with an already kept box of the same class (any class when class-agnostic) is
  strictly greater than ``iou_threshold``;
* IoU = intersection / union of the two xyxy boxes (continuous coordinates, no +1); two zero-area boxes have IoU 0.
"""
from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def _greedy_nms_sorted(boxes, labels, iou_threshold, max_keep, class_agnostic):
    """Greedy NMS over boxes already sorted by descending score.

    boxes: (N, 4) float32 xyxy, sorted. labels: (N,) int32. Returns (K,) int64 positions into the sorted arrays,
    K <= max_keep, in visiting (descending score) order.
    """
    n = boxes.shape[0]
    keep = np.empty(min(n, max_keep), np.int64)
    if n == 0 or max_keep <= 0:
        return keep[:0]
    # float64 copies: IoU near the threshold must not flip between this kernel and float64 references.
    x1 = boxes[:, 0].astype(np.float64)
    y1 = boxes[:, 1].astype(np.float64)
    x2 = boxes[:, 2].astype(np.float64)
    y2 = boxes[:, 3].astype(np.float64)
    area = (x2 - x1) * (y2 - y1)
    suppressed = np.zeros(n, np.bool_)
    k = 0
    for i in range(n):
        if suppressed[i]:
            continue
        keep[k] = i
        k += 1
        if k == max_keep:
            break
        li = labels[i]
        for j in range(i + 1, n):
            if suppressed[j] or (not class_agnostic and labels[j] != li):
                continue
            iw = min(x2[i], x2[j]) - max(x1[i], x1[j])
            if iw <= 0.0:
                continue
            ih = min(y2[i], y2[j]) - max(y1[i], y1[j])
            if ih <= 0.0:
                continue
            inter = iw * ih
            union = area[i] + area[j] - inter
            if union > 0.0 and inter / union > iou_threshold:
                suppressed[j] = True
    return keep[:k]


def nms_sorted_unchecked(boxes_xyxy: np.ndarray, scores: np.ndarray, labels: np.ndarray, iou_threshold: float,
                         max_keep: int, class_agnostic: bool) -> np.ndarray:
    """The hot-path entry for callers that already hold valid arrays (the detector): no validation.

    boxes_xyxy (N, 4) float32, scores (N,) float32, labels (N,) int32. Returns (K,) int64 indices into the inputs,
    in descending score order.
    """
    order = np.argsort(-scores, kind="stable")
    boxes_sorted = np.ascontiguousarray(boxes_xyxy[order], dtype=np.float32)
    labels_sorted = np.ascontiguousarray(labels[order], dtype=np.int32)
    pos = _greedy_nms_sorted(boxes_sorted, labels_sorted, float(iou_threshold), int(max_keep), bool(class_agnostic))
    return order[pos].astype(np.int64, copy=False)


def nms_xyxy(boxes_xyxy, scores, labels=None, *, iou_threshold: float, max_keep: int | None = None,
             class_agnostic: bool = False) -> np.ndarray:
    """Indices of the boxes that survive greedy NMS, highest score first.

    boxes_xyxy: (N, 4) float, pixels, x1 <= x2 and y1 <= y2. scores: (N,) float. labels: (N,) integer class ids,
    or None (then every box is one class). iou_threshold in [0, 1]: suppress when IoU > threshold.
    max_keep: stop after this many kept boxes (None = no limit). class_agnostic: ignore labels.
    Returns (K,) int64 indices into the inputs. Bad inputs raise ValueError naming the argument.
    """
    b = np.asarray(boxes_xyxy)
    if b.dtype.kind not in "fiu" or b.ndim != 2 or b.shape[1] != 4:
        raise ValueError(f"boxes_xyxy: expected a numeric (N, 4) array, got {b.dtype} {b.shape}")
    b = b.astype(np.float32, copy=False)
    if not np.isfinite(b).all():
        raise ValueError("boxes_xyxy: contains NaN or inf")
    if ((b[:, 2] < b[:, 0]) | (b[:, 3] < b[:, 1])).any():
        raise ValueError("boxes_xyxy: a box has x2 < x1 or y2 < y1 (expected xyxy)")
    s = np.asarray(scores)
    if s.dtype.kind not in "fiu" or s.shape != (len(b),):
        raise ValueError(f"scores: expected a numeric ({len(b)},) array, got {s.dtype} {s.shape}")
    s = s.astype(np.float32, copy=False)
    if np.isnan(s).any():
        raise ValueError("scores: contains NaN")
    if labels is None:
        lab = np.zeros(len(b), np.int32)
    else:
        lab = np.asarray(labels)
        if lab.dtype.kind not in "iu" or lab.shape != (len(b),):
            raise ValueError(f"labels: expected an integer ({len(b)},) array, got {lab.dtype} {lab.shape}")
        lab = lab.astype(np.int32, copy=False)
    if not 0.0 <= float(iou_threshold) <= 1.0:
        raise ValueError(f"iou_threshold: must be in [0, 1], got {iou_threshold}")
    if max_keep is None:
        max_keep = len(b)
    elif int(max_keep) < 0:
        raise ValueError(f"max_keep: must be >= 0, got {max_keep}")
    return nms_sorted_unchecked(b, s, lab, iou_threshold, int(max_keep), class_agnostic)


def warmup() -> None:
    """Compile the kernel now (a few seconds the first time, ~0.5 s from numba's cache) instead of on frame one."""
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11]], np.float32)
    nms_sorted_unchecked(boxes, np.array([0.9, 0.8], np.float32), np.zeros(2, np.int32), 0.5, 10, False)
