"""engine.track.tracker lifecycle boundaries, pinned to the frame: confirmation, loss, removal, eviction, gates.

Semantics under test (TrackerConfig docstrings and the tracker's module docstring):
* a tentative track is confirmed at its ``min_hits``-th consecutive matched frame and removed at its first miss;
* a confirmed track becomes lost at its first miss, is held (same id, re-findable) through exactly ``max_age``
  consecutive misses and removed at miss ``max_age + 1``;
* score thresholds are inclusive (``>=``), IoU gates are strict (IoU must be ``>`` the threshold);
* a birth with no free slot evicts the lost track with the most misses.
A stationary box keeps the Kalman prediction exactly on the detection, so every boundary is exact.
"""
import numpy as np
import pytest

from engine.config import TrackerConfig
from engine.track.track_state import TrackParams, TrackState
from engine.track.tracker import MAX_COORD_PX, Tracker
from engine.types import Detections

BOX = np.array([[100, 100, 130, 140]], np.float32)  # 30 x 40 px, xyxy
EMPTY = Detections.empty()


@pytest.fixture(scope="module", autouse=True)
def _compiled():
    Tracker().warmup()


def dets(boxes, score=0.9, label=0):
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    n = len(boxes)
    return Detections(boxes, np.full(n, score, np.float32), np.full(n, label, np.int32))


def held(tr):
    """(confirmed ids still held, number of lost tracks, number of live slots)."""
    s = tr.state_sizes()
    return tr.confirmed_ids().tolist(), s["lost"], s["live"]


# ---------------------------------------------------------------------------------------------- confirmation


@pytest.mark.parametrize("min_hits", [1, 2, 3, 5])
def test_tentative_track_is_confirmed_at_exactly_min_hits(min_hits):
    tr = Tracker(TrackerConfig(min_hits=min_hits, confirm_first_frame=False))
    for f in range(min_hits - 1):
        assert len(tr.step(dets(BOX), f)) == 0, f
        assert tr.state_sizes()["tentative"] == 1 and len(tr.confirmed_ids()) == 0, f
    out = tr.step(dets(BOX), min_hits - 1)
    assert out.ids.tolist() == [0] and out.ages.tolist() == [min_hits - 1]
    assert tr.state_sizes()["tentative"] == 0 and tr.confirmed_ids().tolist() == [0]


def test_tentative_track_dies_at_first_miss_even_one_hit_short():
    tr = Tracker(TrackerConfig(min_hits=3, confirm_first_frame=False))
    tr.step(dets(BOX), 0)
    tr.step(dets(BOX), 1)                       # 2 of 3 hits
    tr.step(EMPTY, 2)
    assert held(tr) == ([], 0, 0)
    for f in (3, 4):                            # a new track must collect all min_hits again
        assert len(tr.step(dets(BOX), f)) == 0
    assert tr.step(dets(BOX), 5).ids.tolist() == [1]


def test_first_frame_confirmation_only_on_the_first_frame_of_a_stream():
    tr = Tracker(TrackerConfig(min_hits=3, confirm_first_frame=True))
    assert tr.step(dets(BOX), 0).ids.tolist() == [0]
    far = BOX + 500
    assert tr.step(dets(np.concatenate([BOX, far])), 1).ids.tolist() == [0]  # the second birth is tentative
    assert tr.state_sizes()["tentative"] == 1
    tr.reset()
    assert tr.step(dets(far), 0).ids.tolist() == [2]                     # confirmed at once again after reset


# ---------------------------------------------------------------------------------------------- loss and removal


def test_confirmed_track_is_lost_after_one_miss_and_refound_at_once():
    tr = Tracker(TrackerConfig(min_hits=3, max_age=5))
    tr.step(dets(BOX), 0)
    out = tr.step(EMPTY, 1)
    assert len(out) == 0 and held(tr) == ([0], 1, 1)
    out = tr.step(dets(BOX), 2)                 # no min_hits wait for a lost track
    assert out.ids.tolist() == [0] and out.misses.tolist() == [0] and out.ages.tolist() == [2]
    assert held(tr) == ([0], 0, 1)


@pytest.mark.parametrize("max_age", [0, 1, 2, 5, 30])
def test_lost_track_is_held_through_exactly_max_age_misses(max_age):
    tr = Tracker(TrackerConfig(max_age=max_age))
    tr.step(dets(BOX), 0)
    for f in range(1, max_age + 1):
        assert len(tr.step(EMPTY, f)) == 0
        assert held(tr) == ([0], 1, 1), f"removed after {f} misses, max_age={max_age}"
    tr.step(EMPTY, max_age + 1)
    assert held(tr) == ([], 0, 0), f"still held after {max_age + 1} misses, max_age={max_age}"


@pytest.mark.parametrize("max_age", [1, 2, 5, 30])
def test_refound_after_max_age_misses_keeps_its_id_one_more_gets_a_new_one(max_age):
    for gap, want_id in ((max_age, 0), (max_age + 1, 1)):
        tr = Tracker(TrackerConfig(max_age=max_age, min_hits=1))  # min_hits=1: a new track is reported at once
        tr.step(dets(BOX), 0)
        tr.step(dets(BOX), 1)
        for f in range(2, 2 + gap):
            tr.step(EMPTY, f)
        out = tr.step(dets(BOX), 2 + gap)
        assert out.ids.tolist() == [want_id], (gap, max_age)
        assert tr.state_sizes()["next_id"] == want_id + 1


def test_misses_count_consecutive_frames_only():
    """A match in between resets the miss count: two gaps of max_age frames each never remove the track."""
    tr = Tracker(TrackerConfig(max_age=3))
    f = 0
    tr.step(dets(BOX), f)
    for _ in range(3):
        for _ in range(3):
            f += 1
            tr.step(EMPTY, f)
        f += 1
        assert tr.step(dets(BOX), f).ids.tolist() == [0]


# ---------------------------------------------------------------------------------------------- capacity


def test_full_tracker_evicts_the_lost_track_with_most_misses():
    tr = Tracker(TrackerConfig(max_tracks=2, max_age=10, min_hits=1))
    a, b, c = BOX, BOX + 200, BOX + 400
    tr.step(dets(np.concatenate([a, b])), 0)    # ids 0 (a) and 1 (b)
    tr.step(dets(b), 1)                          # a: 1 miss
    tr.step(EMPTY, 2)                            # a: 2 misses, b: 1 miss
    tr.step(dets(c), 3)                          # a: 3, b: 2 -> c replaces a
    assert tr.confirmed_ids().tolist() == [1, 2]
    assert tr.state_sizes()["dropped_births"] == 0


# ---------------------------------------------------------------------------------------------- thresholds


def test_new_track_score_is_inclusive():
    cfg = TrackerConfig(high_score=0.5, new_track_score=0.75)
    assert len(Tracker(cfg).step(dets(BOX, score=0.75), 0)) == 1
    tr = Tracker(cfg)
    assert len(tr.step(dets(BOX, score=np.nextafter(np.float32(0.75), np.float32(0))), 0)) == 0
    assert tr.state_sizes()["live"] == 0


def test_high_score_is_inclusive_only_stage_one_refinds_lost_tracks():
    cfg = TrackerConfig(high_score=0.5, low_score=0.25, new_track_score=0.75)
    for score, refound in ((0.5, True), (float(np.nextafter(np.float32(0.5), np.float32(0))), False)):
        tr = Tracker(cfg)
        tr.step(dets(BOX), 0)
        tr.step(EMPTY, 1)                                    # lost: only stage 1 (score >= high_score) reaches it
        assert len(tr.step(dets(BOX, score=score), 2)) == int(refound), score


def test_low_score_is_inclusive_for_stage_two():
    cfg = TrackerConfig(high_score=0.5, low_score=0.25, new_track_score=0.75)
    for score, kept in ((0.25, True), (float(np.nextafter(np.float32(0.25), np.float32(0))), False)):
        tr = Tracker(cfg)
        tr.step(dets(BOX), 0)
        out = tr.step(dets(BOX, score=score), 1)             # stage 2 continues a tracked track
        assert out.ids.tolist() == ([0] if kept else []), score
        assert held(tr)[1] == (0 if kept else 1), score


@pytest.mark.parametrize("dx,matched", [(10.0, False), (9.9, True)])
def test_iou_gate_is_strict(dx, matched):
    """IoU of BOX with BOX shifted 10 px right is 800 / 1600 = 0.5 exactly: not above a 0.5 gate."""
    tr = Tracker(TrackerConfig(match_iou_high=0.5))
    tr.step(dets(BOX), 0)
    out = tr.step(dets(BOX + np.array([dx, 0, dx, 0], np.float32)), 1)
    if matched:
        assert out.ids.tolist() == [0] and held(tr) == ([0], 0, 1)
    else:  # the old track goes lost and the detection starts a new (tentative) track
        assert len(out) == 0 and held(tr) == ([0], 1, 2) and tr.state_sizes()["tentative"] == 1


def test_coordinate_limit_is_inclusive_and_symmetric():
    tr = Tracker()
    tr.step(dets([[-MAX_COORD_PX, 0, MAX_COORD_PX, 10]]), 0)
    assert tr.state_sizes()["live"] == 1
    beyond = float(np.nextafter(np.float32(MAX_COORD_PX), np.float32(np.inf)))
    for box in ([0, 0, beyond, 10], [-beyond, 0, 0, 10]):
        with pytest.raises(ValueError, match="boxes_xyxy"):
            tr.step(dets([box]), 1)
    assert tr.state_sizes()["live"] == 1 and tr.state_sizes()["lost"] == 0  # the failed calls changed nothing


# ---------------------------------------------------------------------------------------------- named state


def test_track_state_layout_and_bad_capacity():
    st = TrackState.zeros(7)
    assert st.mean.shape == (7, 8) and st.cov.shape == (7, 8, 8) and st.status.dtype == np.int8
    assert st.counters.tolist() == [0, 0] and not st.status.any()
    with pytest.raises(ValueError, match="capacity"):
        TrackState.zeros(0)
    for bad in (2.0, True, "3"):
        with pytest.raises(TypeError, match="capacity"):
            TrackState.zeros(bad)


def test_track_params_from_config():
    p = TrackParams.from_config(TrackerConfig(min_hits=4, max_age=9, size_noise_ratio=0.5,
                                              std_weight_position=0.1))
    assert (p.min_hits, p.max_age) == (4, 9) and type(p.min_hits) is int and type(p.class_gating) is bool
    np.testing.assert_allclose(p.std_pos, [0.1, 0.1, 0.05, 0.05])
