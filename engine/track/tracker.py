"""Online multi-object tracker: ByteTrack-style two-stage IoU association with a constant-velocity Kalman filter.

Per frame (one ``Tracker.step`` call), one numba kernel ``_track_step`` runs these steps over the fixed-capacity
struct-of-arrays ``TrackState`` with the ``TrackParams`` of the config (both in ``engine.track.track_state``); each
step is its own kernel (``_predict``, ``_associate``, ``_update``, ``_lifecycle``, ``_birth``, ``_output``):

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

import numpy as np
from numba import njit

from engine.boxes import cxcywh_to_xyxy, iou_xyxy, ltwh_to_xyxy, xyxy_to_cxcywh, xyxy_to_ltwh
from engine.config import TrackerConfig
from engine.frame_time import check_frame_time
from engine.track.assign import assign_gated
from engine.track.kalman import kalman_initiate, kalman_predict, kalman_update
from engine.track.track_state import FREE, LOST, TENTATIVE, TRACKED, TrackParams, TrackState
from engine.types import Detections, Tracks

#: Box coordinates beyond this (pixels) are rejected: squared in the Kalman filter they would overflow float64.
MAX_COORD_PX = 1e7


@njit(cache=True)
def _slots_where(status, want_a, want_b, matched_det):
    """(K,) int64 slots, in slot order, whose status (C,) int8 is want_a or want_b and matched_det (C,) int64 is -1."""
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
    """(K,) int64 detections, in input order, with lo <= scores (N,) float32 < hi and det_used (N,) bool False."""
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
    """One association stage: optimal assignment of ``slots`` (K,) int64 to ``dets`` (L,) int64 on cost 1 - IoU.

    trk_boxes (C, 4) float64 and det_boxes (N, 4) float32 are xyxy pixels, trk_labels (C,) and det_labels (N,) int32.
    A pair needs IoU > min_iou (and equal labels with class_gating). Writes matched_det[slot] = det and
    det_used[det] = True for each match.
    """
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
def _predict(state, params):
    """Predict every live slot one frame ahead (Kalman, in place), age it by one frame; returns its predicted box.

    Returns (C, 4) float64 xyxy pixels, one row per slot (rows of free slots are 0). A predicted width or height
    below 1 px is held at 1 px (and its shrink rate at 0) so the box never inverts.
    """
    mean, age = state.mean, state.age
    live = np.flatnonzero(state.status != FREE)
    kalman_predict(mean, state.cov, live, 1.0, params.std_pos, params.std_vel)
    trk_boxes = np.zeros((state.status.shape[0], 4))
    for s in live:
        age[s] += 1
        for q in (2, 3):
            if mean[s, q] < 1.0:
                mean[s, q] = 1.0
                if mean[s, q + 4] < 0.0:
                    mean[s, q + 4] = 0.0
        trk_boxes[s, 0] = mean[s, 0] - mean[s, 2] / 2
        trk_boxes[s, 1] = mean[s, 1] - mean[s, 3] / 2
        trk_boxes[s, 2] = mean[s, 0] + mean[s, 2] / 2
        trk_boxes[s, 3] = mean[s, 1] + mean[s, 3] / 2
    return trk_boxes


@njit(cache=True)
def _associate(state, params, trk_boxes, det_boxes, det_scores, det_labels):
    """The three association stages (module docstring) of this frame's detections to the track slots.

    trk_boxes: (C, 4) float64 xyxy pixels from ``_predict``; det_boxes (N, 4) float32 xyxy pixels, det_scores (N,)
    float32, det_labels (N,) int32. Returns ``(matched_det, det_used)``: (C,) int64 detection index per slot (-1 =
    unmatched) and (N,) bool, True for the detections a track claimed. The state is only read.
    """
    status, label = state.status, state.label
    cap = status.shape[0]
    matched_det = np.full(cap, -1, np.int64)
    det_used = np.zeros(det_boxes.shape[0], np.bool_)
    inf = np.inf
    # stage 1: confident detections vs every confirmed track (tracked or lost)
    _match_stage(_slots_where(status, TRACKED, LOST, matched_det),
                 _dets_where(det_scores, params.high_score, inf, det_used),
                 trk_boxes, label, det_boxes, det_labels, params.class_gating, params.iou_high, matched_det, det_used)
    # stage 2: weak detections only continue tracks that were tracked last frame
    _match_stage(_slots_where(status, TRACKED, TRACKED, matched_det),
                 _dets_where(det_scores, params.low_score, params.high_score, det_used),
                 trk_boxes, label, det_boxes, det_labels, params.class_gating, params.iou_low, matched_det, det_used)
    # stage 3: leftover confident detections vs tentative tracks
    _match_stage(_slots_where(status, TENTATIVE, TENTATIVE, matched_det),
                 _dets_where(det_scores, params.high_score, inf, det_used),
                 trk_boxes, label, det_boxes, det_labels, params.class_gating, params.iou_tentative, matched_det,
                 det_used)
    return matched_det, det_used


@njit(cache=True)
def _update(state, params, matched_det, det_cxcywh):
    """Kalman-correct every matched slot with its detection, in place.

    matched_det: (C,) int64 from ``_associate``; det_cxcywh: (N, 4) cxcywh pixels of this frame's detections.
    """
    cap = matched_det.shape[0]
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
    kalman_update(state.mean, state.cov, upd, det_cxcywh[upd_det], params.std_meas)


@njit(cache=True)
def _lifecycle(state, params, matched_det, det_scores, det_labels):
    """Status transitions of every live slot after association, in place (units: frames).

    A matched slot takes its detection's score (det_scores (N,) float32) and label (det_labels (N,) int32), resets
    ``misses`` and counts a hit; a lost one becomes tracked again, a tentative one is confirmed at ``min_hits`` hits.
    An unmatched tentative slot is freed; an unmatched confirmed one becomes lost, and is freed once its
    consecutive misses exceed ``max_age`` (so it is held through exactly ``max_age`` unmatched frames).
    """
    status, hits, misses = state.status, state.hits, state.misses
    for s in range(status.shape[0]):
        st = status[s]
        if st == FREE:
            continue
        d = matched_det[s]
        if d >= 0:
            hits[s] += 1
            misses[s] = 0
            state.score[s] = det_scores[d]
            state.label[s] = det_labels[d]
            if st == LOST or (st == TENTATIVE and hits[s] >= params.min_hits):
                status[s] = TRACKED
        elif st == TENTATIVE:
            status[s] = FREE
        else:
            misses[s] += 1
            status[s] = LOST
            if misses[s] > params.max_age:
                status[s] = FREE


@njit(cache=True)
def _birth(state, params, det_used, det_cxcywh, det_scores, det_labels, confirm_now):
    """Start tracks from the detections nobody claimed with ``score >= new_track_score``, in detection order.

    det_used: (N,) bool from ``_associate``; det_cxcywh (N, 4) cxcywh pixels, det_scores (N,) float32, det_labels
    (N,) int32. A new track takes the lowest free slot, else the lost slot with the most misses; with neither it is
    dropped (``counters[1]`` counts it). It is born tracked when ``min_hits <= 1`` or ``confirm_now``, else
    tentative, and gets the next id from ``counters[0]``.
    """
    status, misses, mean, counters = state.status, state.misses, state.mean, state.counters
    cap = status.shape[0]
    births = _dets_where(det_scores, params.new_track_score, np.inf, det_used)
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
        status[slot] = TRACKED if (params.min_hits <= 1 or confirm_now) else TENTATIVE
        state.ids[slot] = counters[0]
        counters[0] += 1
        state.hits[slot] = 1
        state.age[slot] = 0
        misses[slot] = 0
        state.label[slot] = det_labels[d]
        state.score[slot] = det_scores[d]
        mean[slot, :4] = det_cxcywh[d]
    kalman_initiate(mean, state.cov, new_slots[:n_new], mean[new_slots[:n_new], :4], params.std_pos, params.std_vel)


@njit(cache=True)
def _output(state):
    """The columns of ``Tracks``: the tracked slots matched this frame, sorted by id.

    Returns ids (K,) int64, boxes (K, 4) float32 xyxy pixels (Kalman-filtered), velocities (K, 4) float32
    [vcx, vcy, vw, vh] pixels/frame, scores (K,) float32, labels (K,) int32, ages (K,) int32 frames, misses (K,) int32.
    """
    status, misses, ids = state.status, state.misses, state.ids
    cap = status.shape[0]
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
    boxes = cxcywh_to_xyxy(state.mean[out, :4]).astype(np.float32)
    vel = state.mean[out, 4:].astype(np.float32)
    return ids[out], boxes, vel, state.score[out], state.label[out], state.age[out], misses[out]


@njit(cache=True)
def _coords_in_range(det_boxes, limit):
    """True when every coordinate of det_boxes (N, 4) xyxy pixels lies within +-limit pixels."""
    for i in range(det_boxes.shape[0]):
        for j in range(4):
            if abs(det_boxes[i, j]) > limit:
                return False
    return True


@njit(cache=True)
def _track_step(state, params, det_boxes, det_scores, det_labels, confirm_now):
    """Advance the whole tracker ``state`` (TrackState) by one frame, in place; returns ``(ok, _output columns)``.

    det_boxes (N, 4) float32 xyxy pixels, det_scores (N,) float32, det_labels (N,) int32; params: TrackParams;
    confirm_now: bool, True on the first frame of a stream with ``confirm_first_frame``.
    ``ok`` is False, and nothing is changed, when a coordinate lies beyond ``MAX_COORD_PX`` (checked here rather
    than in numpy because it is the kernel's own overflow guard and costs nothing in the loop). Otherwise never
    raises on valid input, so a failed call cannot leave half-updated state.
    """
    if not _coords_in_range(det_boxes, MAX_COORD_PX):
        return False, _output(state)
    trk_boxes = _predict(state, params)
    matched_det, det_used = _associate(state, params, trk_boxes, det_boxes, det_scores, det_labels)
    det_cxcywh = xyxy_to_cxcywh(det_boxes)
    _update(state, params, matched_det, det_cxcywh)
    _lifecycle(state, params, matched_det, det_scores, det_labels)
    _birth(state, params, det_used, det_cxcywh, det_scores, det_labels, confirm_now)
    return True, _output(state)


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
        self._params = TrackParams.from_config(cfg)
        self._state = TrackState.zeros(cfg.max_tracks)
        self._t: float | None = None

    def _arrays(self) -> TrackState:
        """The live state arrays (not copies); tests snapshot them to check that a failed step changed nothing."""
        return self._state

    def step(self, dets: Detections, t: float) -> Tracks:
        """Track one frame: ``dets`` of this frame (may be empty), ``t`` its time in seconds.

        ``t`` must be finite and strictly greater than the previous call's ``t`` (ValueError naming ``t``
        otherwise); it orders frames, the motion model itself advances one frame per call.
        Returns the confirmed tracks matched in this frame (see module docstring). On any error the tracker
        state is unchanged.
        """
        if not isinstance(dets, Detections):
            raise TypeError(f"dets: expected engine.types.Detections, got {type(dets).__name__}")
        t = check_frame_time(t, self._t)
        confirm_now = self.cfg.confirm_first_frame and self._t is None
        ok, out = _track_step(self._state, self._params, dets.boxes_xyxy, dets.scores, dets.labels, confirm_now)
        if not ok:
            raise ValueError(f"boxes_xyxy: coordinates beyond +-{MAX_COORD_PX:g} pixels")
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
        self._state.status[:] = FREE
        self._t = None

    def confirmed_ids(self) -> np.ndarray:
        """(K,) int64 sorted ids of the confirmed tracks still held (tracked or lost); removed ids are gone."""
        st = self._state.status
        return np.sort(self._state.ids[(st == TRACKED) | (st == LOST)])

    def state_sizes(self) -> dict[str, int]:
        """Sizes of the tracker state, for boundedness checks and monitoring."""
        st = self._state.status
        return {
            "capacity": int(st.shape[0]),
            "live": int(np.count_nonzero(st)),
            "tentative": int(np.count_nonzero(st == TENTATIVE)),
            "tracked": int(np.count_nonzero(st == TRACKED)),
            "lost": int(np.count_nonzero(st == LOST)),
            "state_bytes": int(sum(a.nbytes for a in self._state)),
            "next_id": int(self._state.counters[0]),
            "dropped_births": int(self._state.counters[1]),
        }
