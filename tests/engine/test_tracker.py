"""engine.track.tracker: lifecycle, id stability, bad input (state unchanged), bounded state over long streams."""
import numpy as np
import pytest

from engine.bench.tracker import NumpyTracker, synthetic_scene
from engine.config import TrackerConfig
from engine.track.tracker import Tracker
from engine.types import Detections, Tracks


@pytest.fixture(scope="module", autouse=True)
def _compiled():
    Tracker().warmup()


def dets(boxes, scores=None, labels=None):
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    n = len(boxes)
    scores = np.full(n, 0.9, np.float32) if scores is None else scores
    labels = np.zeros(n, np.int32) if labels is None else labels
    return Detections(boxes, scores, labels)


def moving_scene(n_frames=60):
    """Three boxes moving at constant velocity; box 1 is occluded (not detected) in frames 20..27."""
    start = np.array([[10, 10, 50, 110], [200, 50, 240, 150], [400, 300, 460, 380]], np.float64)
    vel = np.array([[3, 1], [-2, 0.5], [0, -2]], np.float64)
    frames = []
    for f in range(n_frames):
        b = start + np.tile(vel * f, 2)
        keep = [0, 2] if 20 <= f < 28 else [0, 1, 2]
        frames.append((b[keep], keep))
    return frames


def snapshot(tr: Tracker):
    return [a.copy() for a in tr._arrays()] + [tr._t]


def same_state(a, b):
    return all((x == y) if not isinstance(x, np.ndarray) else np.array_equal(x, y) for x, y in zip(a, b))


# ---------------------------------------------------------------------------------------------- lifecycle


def test_ids_are_stable_through_motion_and_occlusion():
    tr = Tracker(TrackerConfig())
    seen = {}
    for f, (boxes, keep) in enumerate(moving_scene()):
        out = tr.step(dets(boxes), f / 30)
        assert isinstance(out, Tracks)
        assert (np.diff(out.ids) > 0).all()  # sorted by id
        for tid, box in zip(out.ids, out.boxes_xyxy):  # the object is the one with the nearest box
            obj = keep[int(np.argmin(np.abs(boxes - box).sum(1)))]
            seen.setdefault(obj, set()).add(int(tid))
    assert seen == {0: {0}, 1: {1}, 2: {2}}  # one id per object, also for the one occluded for 8 frames


def test_output_only_confirmed_matched_tracks():
    tr = Tracker(TrackerConfig(min_hits=3, confirm_first_frame=False, max_age=2))
    b = np.array([[0, 0, 10, 20]], np.float32)
    assert len(tr.step(dets(b), 0.0)) == 0       # tentative
    assert len(tr.step(dets(b + 1), 0.1)) == 0   # tentative, 2 hits
    out = tr.step(dets(b + 2), 0.2)              # confirmed at the 3rd hit
    assert out.ids.tolist() == [0] and out.misses.tolist() == [0] and out.ages.tolist() == [2]
    np.testing.assert_allclose(out.boxes_xyxy, b + 2, atol=1.5)
    assert out.velocities.shape == (1, 4) and out.velocities.dtype == np.float32
    assert len(tr.step(Detections.empty(), 0.3)) == 0   # lost: not reported ...
    assert tr.confirmed_ids().tolist() == [0]           # ... but still held
    assert tr.state_sizes()["lost"] == 1
    tr.step(Detections.empty(), 0.4)
    tr.step(Detections.empty(), 0.5)                    # misses 3 > max_age 2: removed
    assert tr.state_sizes()["live"] == 0 and len(tr.confirmed_ids()) == 0


def test_lost_track_is_refound_with_same_id():
    tr = Tracker(TrackerConfig(max_age=10))
    b = np.array([[100, 100, 140, 200]], np.float32)
    for f in range(5):
        tr.step(dets(b + 4 * f), f)
    for f in range(5, 10):
        assert len(tr.step(Detections.empty(), f)) == 0
    out = tr.step(dets(b + 4 * 10), 10)
    assert out.ids.tolist() == [0] and out.ages.tolist() == [10]


def test_tentative_track_dies_at_first_miss_and_ids_are_not_reused():
    tr = Tracker(TrackerConfig(min_hits=3, confirm_first_frame=False))
    b = np.array([[0, 0, 10, 20]], np.float32)
    tr.step(dets(b), 0)
    tr.step(Detections.empty(), 1)
    assert tr.state_sizes()["live"] == 0
    tr.step(dets(b), 2)
    assert tr.state_sizes()["next_id"] == 2  # a new id, 0 is never reused


def test_first_frame_confirmation_and_min_hits_one():
    b = np.array([[0, 0, 10, 20], [50, 0, 60, 20]], np.float32)
    assert len(Tracker(TrackerConfig(min_hits=3)).step(dets(b), 0)) == 2
    assert len(Tracker(TrackerConfig(min_hits=3, confirm_first_frame=False)).step(dets(b), 0)) == 0
    assert len(Tracker(TrackerConfig(min_hits=1, confirm_first_frame=False)).step(dets(b), 0)) == 2


def test_low_score_detections_only_continue_tracked_tracks():
    cfg = TrackerConfig(high_score=0.5, low_score=0.1, new_track_score=0.6)
    tr = Tracker(cfg)
    b = np.array([[0, 0, 20, 40]], np.float32)
    low = np.array([0.3], np.float32)
    assert len(tr.step(dets(b, low), 0)) == 0                 # low score never starts a track
    assert tr.state_sizes()["live"] == 0
    tr.step(dets(b), 1)                                       # tentative (first frame had no track)
    tr.step(dets(b), 2)
    tr.step(dets(b), 3)
    out = tr.step(dets(b + 1, low), 4)                        # stage 2 keeps the track alive
    assert out.ids.tolist() == [0] and out.scores.tolist() == pytest.approx([0.3])
    tr.step(dets(b + 100, low), 5)                            # far away low det: no match, no birth
    assert tr.state_sizes()["lost"] == 1 and tr.state_sizes()["tentative"] == 0
    tr.step(dets(b, np.array([0.05], np.float32)), 6)         # below low_score: ignored entirely
    assert tr.state_sizes()["tentative"] == 0


def test_class_gating():
    b = np.array([[0, 0, 20, 40]], np.float32)
    for gating, n_ids in ((True, 2), (False, 1)):
        tr = Tracker(TrackerConfig(class_gating=gating, min_hits=1))
        tr.step(dets(b, labels=np.array([3], np.int32)), 0)
        out = tr.step(dets(b, labels=np.array([5], np.int32)), 1)
        assert tr.state_sizes()["next_id"] == n_ids
        assert out.labels.tolist() == [5]


def test_empty_frames_and_empty_stream():
    tr = Tracker()
    for f in range(100):
        out = tr.step(Detections.empty(), f * 0.1)
        assert len(out) == 0 and out.ids.dtype == np.int64 and out.boxes_xyxy.shape == (0, 4)
    assert tr.state_sizes()["live"] == 0


def test_reset_drops_tracks_keeps_counting_ids():
    tr = Tracker()
    b = np.array([[0, 0, 10, 20]], np.float32)
    tr.step(dets(b), 5.0)
    tr.reset()
    assert tr.state_sizes()["live"] == 0
    out = tr.step(dets(b), 0.0)  # time may restart after reset
    assert out.ids.tolist() == [1]


def test_capacity_is_a_hard_bound():
    tr = Tracker(TrackerConfig(max_tracks=4, min_hits=1))
    boxes = np.array([[30 * i, 0, 30 * i + 20, 40] for i in range(7)], np.float32)
    out = tr.step(dets(boxes), 0)
    assert len(out) == 4 and tr.state_sizes()["dropped_births"] == 3 and tr.state_sizes()["live"] == 4
    # lost tracks make room for new ones
    out = tr.step(dets(boxes[4:] + 200), 1)
    assert tr.state_sizes()["live"] == 4


def test_warmup_leaves_state_alone():
    tr = Tracker()
    tr.step(dets(np.array([[0, 0, 10, 20]], np.float32)), 0)
    before = snapshot(tr)
    tr.warmup()
    assert same_state(before, snapshot(tr))


def test_matches_numpy_reference_tracker():
    """The bench's numpy + scipy baseline is the same algorithm: identical ids and boxes on a busy scene."""
    for cfg in (TrackerConfig(), TrackerConfig(max_tracks=30, max_age=5)):
        a, b = Tracker(cfg), NumpyTracker(cfg)
        for i, d in enumerate(synthetic_scene(60, 150, seed=3)):
            x, y = a.step(d, i), b.step(d, i)
            assert np.array_equal(x.ids, y.ids), i
            np.testing.assert_allclose(x.boxes_xyxy, y.boxes_xyxy, atol=1e-3)
            assert np.array_equal(x.ages, y.ages) and np.array_equal(x.labels, y.labels)


# ---------------------------------------------------------------------------------------------- bad input


def _busy_tracker():
    tr = Tracker(TrackerConfig(min_hits=2))
    for f, (boxes, _) in enumerate(moving_scene(10)):
        tr.step(dets(boxes), f * 0.1)
    return tr


GOOD = np.array([[0, 0, 10, 20]], np.float32)
BAD_DETECTIONS = [
    ("boxes_xyxy", dict(boxes_xyxy=[[0, 0, np.nan, 20]])),
    ("boxes_xyxy", dict(boxes_xyxy=[[0, 0, np.inf, 20]])),
    ("boxes_xyxy", dict(boxes_xyxy=[[10, 0, 0, 20]])),               # negative width
    ("boxes_xyxy", dict(boxes_xyxy=[[0, 30, 10, 20]])),              # negative height
    ("boxes_xyxy", dict(boxes_xyxy=[["a", "b", "c", "d"]])),         # wrong dtype
    ("boxes_xyxy", dict(boxes_xyxy=[[0, 0, 10]])),                   # wrong shape
    ("scores", dict(scores=[1.5])),
    ("scores", dict(scores=[-0.1])),
    ("scores", dict(scores=[np.nan])),
    ("labels", dict(labels=[0.5])),                                  # float labels
    ("labels", dict(labels=[-1])),
    ("different lengths", dict(scores=[0.9, 0.8])),
    ("different lengths", dict(labels=[0, 1])),
]


@pytest.mark.parametrize("field,change", BAD_DETECTIONS)
def test_bad_detections_are_rejected_and_state_is_unchanged(field, change):
    tr = _busy_tracker()
    before = snapshot(tr)
    kw = dict(boxes_xyxy=GOOD, scores=[0.9], labels=[0])
    kw.update(change)
    with pytest.raises(ValueError, match=field):
        tr.step(Detections(np.asarray(kw["boxes_xyxy"]), np.asarray(kw["scores"]), np.asarray(kw["labels"])), 99.0)
    assert same_state(before, snapshot(tr))


def test_absurd_coordinates_are_rejected():
    tr = _busy_tracker()
    before = snapshot(tr)
    with pytest.raises(ValueError, match="boxes_xyxy"):
        tr.step(dets([[0, 0, 1e30, 1e30]]), 99.0)
    assert same_state(before, snapshot(tr))


@pytest.mark.parametrize("value", [{"boxes": GOOD}, (GOOD, [0.9], [0]), GOOD, None])
def test_non_detections_raise_type_error(value):
    tr = _busy_tracker()
    before = snapshot(tr)
    with pytest.raises(TypeError, match="dets"):
        tr.step(value, 99.0)
    assert same_state(before, snapshot(tr))


@pytest.mark.parametrize("t,exc", [(0.5, ValueError), (0.9, ValueError), (float("nan"), ValueError),
                                   (float("inf"), ValueError), ("1.0", TypeError), (True, TypeError),
                                   (None, TypeError)])
def test_bad_time_is_rejected_and_state_is_unchanged(t, exc):
    tr = _busy_tracker()  # last t = 0.9
    before = snapshot(tr)
    twin = _busy_tracker()
    with pytest.raises(exc, match=r"^t: "):
        tr.step(dets(GOOD), t)
    assert same_state(before, snapshot(tr))
    # and the stream continues exactly as if the bad call never happened
    a, b = tr.step(dets(GOOD), 1.0), twin.step(dets(GOOD), 1.0)
    assert np.array_equal(a.ids, b.ids) and np.array_equal(a.boxes_xyxy, b.boxes_xyxy)


def test_bad_config_type():
    with pytest.raises(TypeError, match=r"^cfg: expected a TrackerConfig"):
        Tracker({"max_age": 3})


# ---------------------------------------------------------------------------------------------- boundedness


def test_state_stays_bounded_over_10000_random_frames():
    rng = np.random.default_rng(0)
    cfg = TrackerConfig(max_tracks=64, max_age=20)
    tr = Tracker(cfg)
    nbytes = tr.state_sizes()["state_bytes"]
    max_live = 0
    for f in range(10_000):
        n = int(rng.integers(0, 40))
        xy = rng.uniform(0, 1000, (n, 2))
        wh = rng.uniform(5, 80, (n, 2))
        d = Detections(np.concatenate([xy, xy + wh], 1).astype(np.float32), rng.random(n).astype(np.float32),
                       rng.integers(0, 3, n).astype(np.int32))
        out = tr.step(d, f / 30)
        sizes = tr.state_sizes()
        assert sizes["live"] <= cfg.max_tracks and len(out) <= sizes["tracked"]
        assert sizes["state_bytes"] == nbytes
        assert np.isfinite(out.boxes_xyxy).all() and np.isfinite(out.velocities).all()
        max_live = max(max_live, sizes["live"])
    assert max_live > 10  # the stream really exercised the tracker
    for f in range(cfg.max_age + 1):
        tr.step(Detections.empty(), 10_000 / 30 + f)
    assert tr.state_sizes()["live"] == 0  # every track dies once detections stop
