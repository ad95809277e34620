"""Pair features: relative geometry and causal motion of (subject, object) boxes, identical at training and run time.

Both ``offline_train`` (building training tensors from annotations) and the runtime (from live tracks) call the
same two pieces, so a model never sees features computed two ways:

* ``BoxHistory``: a bounded per-slot ring of the last ``lag + 1`` observed boxes and their times. Only frames where
  the object was observed are pushed, so "the past box" is the box ``lag`` observations ago (or the oldest one
  held), with its time gap ``dt`` in seconds.
* ``pair_features``: vectorised over P pairs, from current boxes, past boxes, time gaps and the image size.

Boxes are xyxy float pixels in the image frame. Speeds are expressed in subject/object box heights per second, so
they do not depend on resolution or distance to the camera.
"""
from __future__ import annotations

import numpy as np

# Observations back for the motion features when a model does not say otherwise; training's feature_lag default.
DEFAULT_FEATURE_LAG = 5

FEATURE_NAMES = (
    # absolute layout of both boxes, normalised by the image size
    "s_cx", "s_cy", "s_w", "s_h", "o_cx", "o_cy", "o_w", "o_h",
    # relative geometry in units of the subject box
    "dx", "dy", "log_w_ratio", "log_h_ratio", "iou", "inter_over_s", "inter_over_o", "bottom_dy", "log_dist",
    # causal motion over the history window (box heights per second)
    "s_vx", "s_vy", "s_vscale", "o_vx", "o_vy", "o_vscale", "dist_rate", "approach_rate", "rel_speed",
    "s_speed", "o_speed", "motion_valid",
)
NUM_FEATURES = len(FEATURE_NAMES)
FEATURE_VERSION = 1  # bump whenever FEATURE_NAMES or their definition changes; models record it

_EPS = 1e-3


def _cxcywh(b: np.ndarray):
    w = np.maximum(b[..., 2] - b[..., 0], 1.0)
    h = np.maximum(b[..., 3] - b[..., 1], 1.0)
    return (b[..., 0] + b[..., 2]) * 0.5, (b[..., 1] + b[..., 3]) * 0.5, w, h


def pair_features(box_s: np.ndarray, box_o: np.ndarray, past_s: np.ndarray, past_o: np.ndarray,
                  dt_s: np.ndarray, dt_o: np.ndarray, image_wh: tuple[float, float]) -> np.ndarray:
    """Feature matrix for P ordered pairs.

    box_s, box_o:   (P, 4) current subject / object boxes, xyxy pixels.
    past_s, past_o: (P, 4) their boxes ``dt`` seconds earlier (any value where dt == 0).
    dt_s, dt_o:     (P,) seconds between past and current box; 0 = no history yet (motion features are 0).
    image_wh:       (width, height) of the image in pixels.
    Returns (P, NUM_FEATURES) float32, columns named by FEATURE_NAMES.
    """
    W, H = float(image_wh[0]), float(image_wh[1])
    if not (W > 0 and H > 0):
        raise ValueError(f"image_wh must be positive, got {image_wh}")
    bs, bo = np.asarray(box_s, np.float64), np.asarray(box_o, np.float64)
    ps, po = np.asarray(past_s, np.float64), np.asarray(past_o, np.float64)
    dts, dto = np.asarray(dt_s, np.float64), np.asarray(dt_o, np.float64)
    p = len(bs)
    out = np.zeros((p, NUM_FEATURES), np.float32)
    if p == 0:
        return out
    scx, scy, sw, sh = _cxcywh(bs)
    ocx, ocy, ow, oh = _cxcywh(bo)
    ix = np.clip(np.minimum(bs[:, 2], bo[:, 2]) - np.maximum(bs[:, 0], bo[:, 0]), 0, None)
    iy = np.clip(np.minimum(bs[:, 3], bo[:, 3]) - np.maximum(bs[:, 1], bo[:, 1]), 0, None)
    inter = ix * iy
    area_s, area_o = sw * sh, ow * oh
    scale = np.sqrt(sw * sh)
    dist = np.hypot(ocx - scx, ocy - scy)

    # Motion: a velocity over dt; pairs without history get zeros and motion_valid = 0.
    ok = (dts > 0) & (dto > 0)
    safe_s, safe_o = np.where(dts > 0, dts, 1.0), np.where(dto > 0, dto, 1.0)
    pcx_s, pcy_s, _, ph_s = _cxcywh(ps)
    pcx_o, pcy_o, _, ph_o = _cxcywh(po)
    svx = np.where(dts > 0, (scx - pcx_s) / (sh * safe_s), 0.0)
    svy = np.where(dts > 0, (scy - pcy_s) / (sh * safe_s), 0.0)
    svs = np.where(dts > 0, np.log(sh / ph_s) / safe_s, 0.0)
    ovx = np.where(dto > 0, (ocx - pcx_o) / (oh * safe_o), 0.0)
    ovy = np.where(dto > 0, (ocy - pcy_o) / (oh * safe_o), 0.0)
    ovs = np.where(dto > 0, np.log(oh / ph_o) / safe_o, 0.0)
    past_dist = np.hypot(pcx_o - pcx_s, pcy_o - pcy_s)
    dt_pair = np.maximum(safe_s, safe_o)
    dist_rate = np.where(ok, (dist - past_dist) / (scale * dt_pair), 0.0)
    # approach rate: subject velocity projected on the unit vector towards the object (box heights / s)
    ux, uy = (ocx - scx) / np.maximum(dist, _EPS), (ocy - scy) / np.maximum(dist, _EPS)
    approach = np.where(ok, svx * ux + svy * uy, 0.0)
    s_speed, o_speed = np.hypot(svx, svy), np.hypot(ovx, ovy)
    rel_speed = np.where(ok, np.hypot(svx * sh - ovx * oh, svy * sh - ovy * oh) / scale, 0.0)

    cols = (
        scx / W, scy / H, sw / W, sh / H, ocx / W, ocy / H, ow / W, oh / H,
        (ocx - scx) / sw, (ocy - scy) / sh, np.log(ow / sw), np.log(oh / sh),
        inter / (area_s + area_o - inter), inter / area_s, inter / area_o, (bo[:, 3] - bs[:, 3]) / H,
        np.log1p(dist / scale),
        svx, svy, svs, ovx, ovy, ovs, dist_rate, approach, rel_speed, s_speed, o_speed, ok.astype(np.float64),
    )
    for i, c in enumerate(cols):
        out[:, i] = c
    # Keep extreme but legal inputs (a 1-px box next to a huge one) in a range the model has seen.
    np.clip(out, -20.0, 20.0, out=out)
    return out


class BoxHistory:
    """Bounded ring of the last ``lag + 1`` observed boxes per slot (slot = track row or annotation column).

    boxes: (capacity, lag + 1, 4) float64 xyxy pixels; times: (capacity, lag + 1) seconds; count: (capacity,) held.
    """

    def __init__(self, capacity: int, lag: int):
        if capacity < 1 or lag < 1:
            raise ValueError(f"BoxHistory needs capacity >= 1 and lag >= 1, got {capacity}, {lag}")
        self.capacity, self.lag = capacity, lag
        self.boxes = np.zeros((capacity, lag + 1, 4))
        self.times = np.zeros((capacity, lag + 1))
        self.count = np.zeros(capacity, np.int64)
        self.head = np.zeros(capacity, np.int64)  # index of the next write

    def clear(self, slots) -> None:
        self.count[slots] = 0
        self.head[slots] = 0

    def push(self, slots: np.ndarray, boxes: np.ndarray, t: float) -> None:
        """Record ``boxes`` (N, 4) observed at time ``t`` (s) for ``slots`` (N,)."""
        slots = np.asarray(slots, np.int64)
        if len(slots) == 0:
            return
        h = self.head[slots]
        self.boxes[slots, h] = boxes
        self.times[slots, h] = t
        self.head[slots] = (h + 1) % (self.lag + 1)
        self.count[slots] = np.minimum(self.count[slots] + 1, self.lag + 1)

    def past(self, slots: np.ndarray, t: float) -> tuple[np.ndarray, np.ndarray]:
        """Oldest held box of each slot and its age ``t - t_past`` (s); age 0 when the slot has < 2 boxes.

        Call after pushing the current frame's boxes."""
        slots = np.asarray(slots, np.int64)
        n = self.count[slots]
        oldest = np.where(n > self.lag, self.head[slots], 0)  # full ring: the next write position is the oldest
        boxes = self.boxes[slots, oldest]
        dt = np.where(n >= 2, t - self.times[slots, oldest], 0.0)
        return boxes, dt


def ordered_pairs(n: int) -> tuple[np.ndarray, np.ndarray]:
    """All ordered pairs (i, j), i != j, of n items, row-major: (P,), (P,) int64 with P = n * (n - 1)."""
    i, j = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    keep = i != j
    return i[keep].astype(np.int64), j[keep].astype(np.int64)


def video_pair_features(boxes: np.ndarray, times: np.ndarray, image_wh: tuple[float, float], lag: int):
    """Features for every frame and ordered pair of one annotated video, causally, exactly as the runtime does.

    boxes: (T, K, 4) xyxy pixels with NaN rows where absent; times: (T,) seconds.
    Returns feats (T, P, F) float32, present (T, P) bool, subj (P,), obj (P,) column indices.
    """
    t_len, k = boxes.shape[:2]
    subj, obj = ordered_pairs(k)
    feats = np.zeros((t_len, len(subj), NUM_FEATURES), np.float32)
    seen = ~np.isnan(boxes).any(-1)
    present = seen[:, subj] & seen[:, obj]
    hist = BoxHistory(max(k, 1), lag)
    for t in range(t_len):
        cols = np.flatnonzero(seen[t])
        hist.push(cols, boxes[t, cols], float(times[t]))
        m = present[t]
        if not m.any():
            continue
        cur = np.nan_to_num(boxes[t])
        past, dt = hist.past(np.arange(k), float(times[t]))
        s, o = subj[m], obj[m]
        feats[t, m] = pair_features(cur[s], cur[o], past[s], past[o], dt[s], dt[o], image_wh)
    return feats, present, subj, obj
