"""Box-format conversions and pairwise IoU as numba kernels; the box format is in every function name.

Formats (all in pixels, image frame, origin top-left, x right, y down):

* ``xyxy``   = (x1, y1, x2, y2), corners; the engine-wide format (see ``engine.types``).
* ``cxcywh`` = (cx, cy, w, h), centre and size; the Kalman filter's measurement space.
* ``ltwh``   = (left, top, width, height); the MOTChallenge text format.

Every kernel is a plain module-level ``@njit(cache=True)`` function over (N, 4) arrays and returns a new array of the
input's dtype (``iou_xyxy`` always returns float64). They compile lazily on first call per dtype; ``Tracker.warmup``
compiles the signatures the tracker uses.
"""
from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def iou_xyxy(a, b):
    """Pairwise intersection-over-union of (N, 4) and (M, 4) xyxy boxes -> (N, M) float64 in [0, 1].

    Pairs whose union has zero area (two degenerate boxes) get IoU 0.
    """
    n, m = a.shape[0], b.shape[0]
    out = np.zeros((n, m), np.float64)  # computed in float64 whatever the input dtype
    for j in range(m):
        bx1, by1, bx2, by2 = np.float64(b[j, 0]), np.float64(b[j, 1]), np.float64(b[j, 2]), np.float64(b[j, 3])
        area_b = (bx2 - bx1) * (by2 - by1)
        for i in range(n):
            ax1, ay1, ax2, ay2 = np.float64(a[i, 0]), np.float64(a[i, 1]), np.float64(a[i, 2]), np.float64(a[i, 3])
            iw = min(ax2, bx2) - max(ax1, bx1)
            ih = min(ay2, by2) - max(ay1, by1)
            if iw <= 0.0 or ih <= 0.0:
                continue
            inter = iw * ih
            union = (ax2 - ax1) * (ay2 - ay1) + area_b - inter
            if union > 0.0:
                out[i, j] = inter / union
    return out


@njit(cache=True)
def xyxy_to_cxcywh(boxes):
    """(N, 4) xyxy -> (N, 4) cxcywh, same dtype."""
    out = np.empty_like(boxes)
    for i in range(boxes.shape[0]):
        x1, y1, x2, y2 = boxes[i, 0], boxes[i, 1], boxes[i, 2], boxes[i, 3]
        out[i, 0] = (x1 + x2) / 2
        out[i, 1] = (y1 + y2) / 2
        out[i, 2] = x2 - x1
        out[i, 3] = y2 - y1
    return out


@njit(cache=True)
def cxcywh_to_xyxy(boxes):
    """(N, 4) cxcywh -> (N, 4) xyxy, same dtype."""
    out = np.empty_like(boxes)
    for i in range(boxes.shape[0]):
        cx, cy, hw, hh = boxes[i, 0], boxes[i, 1], boxes[i, 2] / 2, boxes[i, 3] / 2
        out[i, 0] = cx - hw
        out[i, 1] = cy - hh
        out[i, 2] = cx + hw
        out[i, 3] = cy + hh
    return out


@njit(cache=True)
def ltwh_to_xyxy(boxes):
    """(N, 4) ltwh (MOTChallenge) -> (N, 4) xyxy, same dtype."""
    out = np.empty_like(boxes)
    for i in range(boxes.shape[0]):
        out[i, 0] = boxes[i, 0]
        out[i, 1] = boxes[i, 1]
        out[i, 2] = boxes[i, 0] + boxes[i, 2]
        out[i, 3] = boxes[i, 1] + boxes[i, 3]
    return out


@njit(cache=True)
def xyxy_to_ltwh(boxes):
    """(N, 4) xyxy -> (N, 4) ltwh (MOTChallenge), same dtype."""
    out = np.empty_like(boxes)
    for i in range(boxes.shape[0]):
        out[i, 0] = boxes[i, 0]
        out[i, 1] = boxes[i, 1]
        out[i, 2] = boxes[i, 2] - boxes[i, 0]
        out[i, 3] = boxes[i, 3] - boxes[i, 1]
    return out
