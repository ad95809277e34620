"""Online multi-object tracker: ByteTrack-style two-stage IoU association with a constant-velocity Kalman filter.

Per frame (one ``Tracker.step`` call), all inside one numba kernel over fixed-capacity struct-of-arrays state:

1. predict every live track one frame ahead (``engine.track.kalman``, state ``[cx, cy, w, h, vcx, vcy, vw, vh]``);
2. stage 1: detections with ``score >= high_score`` against confirmed tracks (tracked and lost), IoU > match_iou_high;
3. stage 2: detections with ``low_score <= score < high_score`` against the confirmed tracks that were tracked in
   the previous frame and are still unmatched, IoU > match_iou_low (recovers occluded, low-confidence objects);
4. stage 3: the still unmatched high detections against tentative tracks, IoU > match_iou_tentative;
5. Kalman update of matched tracks; lifecycle, see below;
6. unmatched high detections with ``score >= new_track_score`` start tentative tracks.

Each stage is an optimal gated assignment on cost ``1 - IoU`` (``engine.track.assign.assign_gated``; a pair needs IoU
strictly above the stage's threshold). With ``class_gating`` a detection only matches a track of the same label.

Lifecycle: tentative --(min_hits consecutive matched frames)--> confirmed (tracked) --(miss)--> lost
--(match)--> tracked; a tentative track is removed at its first miss, a lost one after more than ``max_age``
unmatched frames. With ``confirm_first_frame`` the tracks born in the first frame of a stream (after construction
or ``reset``) are confirmed at once, since there is nothing yet they could duplicate (as ByteTrack does).
Removed tracks free their slot at once; nothing accumulates. If all ``max_tracks`` slots are taken, a new track
replaces the lost track with the most misses, or is dropped when no track is lost (counted in
``state_sizes()["dropped_births"]``).

Output (``Tracks``): the confirmed tracks matched in this frame, sorted by id, with the Kalman-filtered box.
Lost tracks are **not** reported (their box would be a pure prediction); they keep their id while they wait to
be re-found. This is also what MOTChallenge scoring expects.
"""
from __future__ import annotations

import math
import numbers

import numpy as np
from numba import njit

from engine.track.assign import assign_gated
from engine.boxes import cxcywh_to_xyxy, iou_xyxy, ltwh_to_xyxy, xyxy_to_cxcywh, xyxy_to_ltwh
from engine.config import TrackerConfig
from engine.track.kalman import kalman_initiate, kalman_predict, kalman_update
from engine.types import Detections, Tracks

FREE, TENTATIVE, TRACKED, LOST = 0, 1, 2, 3
#: Box coordinates beyond this (pixels) are rejected: squared in the Kalman filter they would overflow float64.
MAX_COORD_PX = 1e7


@njit(cache=True)
def _slots_where(status, want_a, want_b, matched_det):
    """Slots whose status is want_a or want_b and that have no detection yet, in slot order."""
    k = 0
    for s in range(status.shape[0]):
        if (status[s] == want_a or status[s] == want_b) and matched_det[s] < 0:
            k += 1
    out = np.empty(k, np.int64)
    k = 0
    for s in range(status.shape[0]):
        if (status[s] == want_a or status[s] == want_b) and matched_det[s] < 0:
            out[k] = s
            k += 1
    return out


@njit(cache=True)
def _dets_where(scores, lo, hi, det_used):
    """Unused detections with lo <= score < hi, in input order."""
    k = 0
    for d in range(scores.shape[0]):
        if lo <= scores[d] < hi and not det_used[d]:
            k += 1
    out = np.empty(k, np.int64)
    k = 0
    for d in range(scores.shape[0]):
        if lo <= scores[d] < hi and not det_used[d]:
            out[k] = d
            k += 1
    return out


@njit(cache=True)
def _match_stage(slots, dets, trk_boxes, trk_labels, det_boxes, det_labels, class_gating, min_iou,
                 matched_det, det_used):
    """One association stage: gated optimal assignment on 1 - IoU; writes matched_det[slot] and det_used[det]."""
    if slots.shape[0] == 0 or dets.shape[0] == 0:
        return
    iou = iou_xyxy(trk_boxes[slots], det_boxes[dets])
    cost = 1.0 - iou
    if class_gating:
        for a in range(slots.shape[0]):
            for b in range(dets.shape[0]):
                if trk_labels[slots[a]] != det_labels[dets[b]]:
                    cost[a, b] = np.inf
    matches, _, _ = assign_gated(cost, 1.0 - min_iou)
    for k in range(matches.shape[0]):
        s = slots[matches[k, 0]]
        d = dets[matches[k, 1]]
        matched_det[s] = d
        det_used[d] = True


@njit(cache=True)
def _track_step(mean, cov, ids, status, hits, age, misses, label, score, counters,
                det_boxes, det_scores, det_labels,
                high_score, low_score, new_track_score, iou_high, iou_low, iou_tentative,
                min_hits, max_age, class_gating, std_pos, std_vel, std_meas, confirm_now):
    """Advance the whole tracker state by one frame, in place; returns the output columns of ``Tracks``.

    State (C = capacity): mean (C, 8) f8, cov (C, 8, 8) f8, ids (C,) i8, status (C,) i1, hits/age/misses/label (C,) i4,
    score (C,) f4, counters (2,) i8 = [next_id, dropped_births]. Detections: boxes (N, 4) f4 xyxy, scores (N,) f4,
    labels (N,) i4. Never raises on valid input, so a failed call cannot leave half-updated state.
    """
    cap = status.shape[0]
    n = det_boxes.shape[0]
    live = np.flatnonzero(status != FREE)
    kalman_predict(mean, cov, live, 1.0, std_pos, std_vel)
    trk_boxes = np.zeros((cap, 4))
    for s in live:
        age[s] += 1
        # a shrinking box must not invert: stop the size at 1 px instead of letting it go negative
        for q in (2, 3):
            if mean[s, q] < 1.0:
                mean[s, q] = 1.0
                if mean[s, q + 4] < 0.0:
                    mean[s, q + 4] = 0.0
        trk_boxes[s, 0] = mean[s, 0] - mean[s, 2] / 2
        trk_boxes[s, 1] = mean[s, 1] - mean[s, 3] / 2
        trk_boxes[s, 2] = mean[s, 0] + mean[s, 2] / 2
        trk_boxes[s, 3] = mean[s, 1] + mean[s, 3] / 2

    matched_det = np.full(cap, -1, np.int64)
    det_used = np.zeros(n, np.bool_)
    inf = np.inf
    # stage 1: confident detections vs every confirmed track (tracked or lost)
    _match_stage(_slots_where(status, TRACKED, LOST, matched_det), _dets_where(det_scores, high_score, inf, det_used),
                 trk_boxes, label, det_boxes, det_labels, class_gating, iou_high, matched_det, det_used)
    # stage 2: weak detections only continue tracks that were tracked last frame
    _match_stage(_slots_where(status, TRACKED, TRACKED, matched_det),
                 _dets_where(det_scores, low_score, high_score, det_used),
                 trk_boxes, label, det_boxes, det_labels, class_gating, iou_low, matched_det, det_used)
    # stage 3: leftover confident detections vs tentative tracks
    _match_stage(_slots_where(status, TENTATIVE, TENTATIVE, matched_det),
                 _dets_where(det_scores, high_score, inf, det_used),
                 trk_boxes, label, det_boxes, det_labels, class_gating, iou_tentative, matched_det, det_used)

    n_upd = 0
    for s in range(cap):
        if matched_det[s] >= 0:
            n_upd += 1
    upd = np.empty(n_upd, np.int64)
    upd_det = np.empty(n_upd, np.int64)
    k = 0
    for s in range(cap):
        if matched_det[s] >= 0:
            upd[k] = s
            upd_det[k] = matched_det[s]
            k += 1
    det_cxcywh = xyxy_to_cxcywh(det_boxes)
    kalman_update(mean, cov, upd, det_cxcywh[upd_det], std_meas)

    for s in range(cap):
        st = status[s]
        if st == FREE:
            continue
        d = matched_det[s]
        if d >= 0:
            hits[s] += 1
            misses[s] = 0
            score[s] = det_scores[d]
            label[s] = det_labels[d]
            if st == LOST or (st == TENTATIVE and hits[s] >= min_hits):
                status[s] = TRACKED
        elif st == TENTATIVE:
            status[s] = FREE
        else:
            misses[s] += 1
            status[s] = LOST
            if misses[s] > max_age:
                status[s] = FREE

    # births: confident detections nobody claimed; fill free slots in order, else evict the stalest lost track
    births = _dets_where(det_scores, new_track_score, inf, det_used)
    free_ptr = 0
    new_slots = np.empty(births.shape[0], np.int64)
    n_new = 0
    for b in range(births.shape[0]):
        while free_ptr < cap and status[free_ptr] != FREE:
            free_ptr += 1
        slot = free_ptr
        if slot >= cap:
            slot = -1
            worst = -1
            for s in range(cap):
                if status[s] == LOST and misses[s] > worst:
                    worst = misses[s]
                    slot = s
            if slot < 0:
                counters[1] += 1
                continue
        d = births[b]
        new_slots[n_new] = slot
        n_new += 1
        status[slot] = TRACKED if (min_hits <= 1 or confirm_now) else TENTATIVE
        ids[slot] = counters[0]
        counters[0] += 1
        hits[slot] = 1
        age[slot] = 0
        misses[slot] = 0
        label[slot] = det_labels[d]
        score[slot] = det_scores[d]
        mean[slot, :4] = det_cxcywh[d]
    kalman_initiate(mean, cov, new_slots[:n_new], mean[new_slots[:n_new], :4], std_pos, std_vel)

    n_out = 0
    for s in range(cap):
        if status[s] == TRACKED and misses[s] == 0:
            n_out += 1
    out = np.empty(n_out, np.int64)
    k = 0
    for s in range(cap):
        if status[s] == TRACKED and misses[s] == 0:
            out[k] = s
            k += 1
    out = out[np.argsort(ids[out])]
    boxes = cxcywh_to_xyxy(mean[out, :4]).astype(np.float32)
    vel = mean[out, 4:].astype(np.float32)
    return ids[out], boxes, vel, score[out], label[out], age[out], misses[out]


class Tracker:
    """Multi-object tracker over per-frame ``Detections``; one instance per camera stream.

    ``step`` must be called once for every frame, in time order, **also for frames with no detections**
    (pass ``Detections.empty()``): each call advances the motion model by one frame and ages unmatched tracks.

    State is a fixed-capacity struct of arrays (``cfg.max_tracks`` slots), so memory is bounded by construction.
    The id counter belongs to the instance: ids start at 0, increase by one per new track and are never reused
    during the tracker's life (``reset()`` does not rewind them). Detection ``features`` are ignored.
    """

    def __init__(self, cfg: TrackerConfig | None = None):
        cfg = TrackerConfig() if cfg is None else cfg
        if not isinstance(cfg, TrackerConfig):
            raise TypeError(f"cfg: expected a TrackerConfig, got {type(cfg).__name__}")
        self.cfg = cfg
        size = cfg.size_noise_ratio
        self._params = (float(cfg.high_score), float(cfg.low_score), float(cfg.new_track_score),
                        float(cfg.match_iou_high), float(cfg.match_iou_low), float(cfg.match_iou_tentative),
                        int(cfg.min_hits), int(cfg.max_age), bool(cfg.class_gating),
                        cfg.std_weight_position * np.array([1.0, 1.0, size, size]),   # (cx, cy, w, h)
                        cfg.std_weight_velocity * np.array([1.0, 1.0, size, size]),
                        cfg.std_weight_measurement * np.ones(4))
        cap = cfg.max_tracks
        self._mean = np.zeros((cap, 8))                 # [cx, cy, w, h, vcx, vcy, vw, vh], px and px/frame
        self._cov = np.zeros((cap, 8, 8))
        self._ids = np.zeros(cap, np.int64)
        self._status = np.zeros(cap, np.int8)           # FREE / TENTATIVE / TRACKED / LOST
        self._hits = np.zeros(cap, np.int32)            # matched frames since birth (consecutive while tentative)
        self._age = np.zeros(cap, np.int32)             # frames since birth
        self._misses = np.zeros(cap, np.int32)          # frames since last match
        self._label = np.zeros(cap, np.int32)
        self._score = np.zeros(cap, np.float32)         # score of the last matched detection
        self._counters = np.zeros(2, np.int64)          # [next_id, dropped_births]
        self._t: float | None = None

    def _arrays(self):
        return (self._mean, self._cov, self._ids, self._status, self._hits, self._age, self._misses,
                self._label, self._score, self._counters)

    def step(self, dets: Detections, t: float) -> Tracks:
        """Track one frame: ``dets`` of this frame (may be empty), ``t`` its time in seconds.

        ``t`` must be finite and strictly greater than the previous call's ``t`` (ValueError naming ``t``
        otherwise); it orders frames, the motion model itself advances one frame per call.
        Returns the confirmed tracks matched in this frame (see module docstring). On any error the tracker
        state is unchanged.
        """
        if not isinstance(dets, Detections):
            raise TypeError(f"dets: expected engine.types.Detections, got {type(dets).__name__}")
        if isinstance(t, bool) or not isinstance(t, numbers.Real):
            raise TypeError(f"t: expected a real number (seconds), got {type(t).__name__}")
        t = float(t)
        if not math.isfinite(t):
            raise ValueError(f"t: must be finite, got {t}")
        if self._t is not None and t <= self._t:
            raise ValueError(f"t: must increase strictly, got {t} after {self._t}")
        if len(dets) and np.abs(dets.boxes_xyxy).max() > MAX_COORD_PX:
            raise ValueError(f"boxes_xyxy: coordinates beyond +-{MAX_COORD_PX:g} pixels")
        confirm_now = self.cfg.confirm_first_frame and self._t is None
        out = _track_step(*self._arrays(), dets.boxes_xyxy, dets.scores, dets.labels, *self._params, confirm_now)
        self._t = t
        return Tracks(*out)

    def warmup(self) -> None:
        """Compile (or load from numba's cache) every kernel the tracker uses, plus the MOT box-format conversions,
        on dummy arrays; the tracker's own state is untouched. Call once before the first real frame."""
        dummy = Tracker(TrackerConfig(max_tracks=4, min_hits=2))
        boxes = np.array([[10, 10, 50, 90], [60, 10, 100, 90]], np.float32)
        for i in range(3):
            dummy.step(Detections(boxes + 2 * i, np.array([0.9, 0.3], np.float32), np.zeros(2, np.int32)), float(i))
        dummy.step(Detections.empty(), 3.0)
        iou_xyxy(boxes, boxes)
        cxcywh_to_xyxy(xyxy_to_cxcywh(boxes))
        ltwh_to_xyxy(boxes.astype(np.float64))  # engine.io.sources reads MOT files as float64
        xyxy_to_ltwh(boxes)

    def reset(self) -> None:
        """Drop every track and forget the last time, so a new stream can start. Ids keep counting up."""
        self._status[:] = FREE
        self._t = None

    def confirmed_ids(self) -> np.ndarray:
        """(K,) int64 sorted ids of the confirmed tracks still held (tracked or lost); removed ids are gone."""
        st = self._status
        return np.sort(self._ids[(st == TRACKED) | (st == LOST)])

    def state_sizes(self) -> dict[str, int]:
        """Sizes of the tracker state, for boundedness checks and monitoring."""
        st = self._status
        return {
            "capacity": int(st.shape[0]),
            "live": int(np.count_nonzero(st)),
            "tentative": int(np.count_nonzero(st == TENTATIVE)),
            "tracked": int(np.count_nonzero(st == TRACKED)),
            "lost": int(np.count_nonzero(st == LOST)),
            "state_bytes": int(sum(a.nbytes for a in self._arrays())),
            "next_id": int(self._counters[0]),
            "dropped_births": int(self._counters[1]),
        }
