"""engine.relate.features (pair features shared by training and runtime) and engine.relate.pairs.select_pairs."""
import numpy as np
import pytest

from engine.relate.features import FEATURE_NAMES, BoxHistory, ordered_pairs, pair_features, video_pair_features
from engine.relate.pairs import select_pairs

F = {n: k for k, n in enumerate(FEATURE_NAMES)}


def one(box_s, box_o, past_s=None, past_o=None, dt=0.0, wh=(100, 50)):
    ps = box_s if past_s is None else past_s
    po = box_o if past_o is None else past_o
    a = [np.array([b], np.float64) for b in (box_s, box_o, ps, po)]
    return pair_features(*a, np.array([dt]), np.array([dt]), wh)[0]


def test_geometry_by_hand():
    f = one((0, 0, 10, 10), (20, 0, 40, 20))
    assert f[F["s_cx"]] == pytest.approx(0.05) and f[F["s_cy"]] == pytest.approx(0.1)
    assert f[F["dx"]] == pytest.approx(2.5) and f[F["dy"]] == pytest.approx(0.5)  # (30-5)/10, (10-5)/10
    assert f[F["log_w_ratio"]] == pytest.approx(np.log(2)) and f[F["iou"]] == 0
    assert f[F["bottom_dy"]] == pytest.approx(10 / 50)
    assert f[F["motion_valid"]] == 0 and f[F["s_vx"]] == 0
    g = one((0, 0, 10, 10), (5, 0, 15, 10))
    assert g[F["iou"]] == pytest.approx(50 / 150) and g[F["inter_over_s"]] == pytest.approx(0.5)


def test_motion_by_hand():
    # subject moved 10 px right in 0.5 s with a 10 px box height: 2 box heights per second, towards the object
    f = one((10, 0, 20, 10), (40, 0, 50, 10), past_s=(0, 0, 10, 10), past_o=(40, 0, 50, 10), dt=0.5)
    assert f[F["motion_valid"]] == 1
    assert f[F["s_vx"]] == pytest.approx(2.0) and f[F["s_vy"]] == 0 and f[F["o_vx"]] == 0
    assert f[F["approach_rate"]] == pytest.approx(2.0)
    assert f[F["dist_rate"]] == pytest.approx(-2.0)  # the gap shrank by 10 px = 1 box scale in 0.5 s


def test_features_do_not_depend_on_resolution():
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 300, (6, 2))
    boxes = np.hstack([xy, xy + rng.uniform(20, 80, (6, 2))])
    args = (boxes[:3], boxes[3:], boxes[:3] - 4, boxes[3:] + 3, np.full(3, 0.2), np.full(3, 0.4))
    a = pair_features(*args, (640, 480))
    b = pair_features(*(x * 2 if x.ndim == 2 else x for x in args), (1280, 960))
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_training_path_equals_runtime_path_with_misses_and_any_slot_order():
    """video_pair_features (training) against the runtime's way: a BoxHistory with arbitrary slots, pushed only
    for observed objects, features for the pairs observed in the frame."""
    rng = np.random.default_rng(1)
    t_len, k, lag = 40, 4, 5
    xy = rng.uniform(50, 400, (k, 2)) + np.cumsum(rng.normal(0, 3, (t_len, k, 2)), 0)
    boxes = np.concatenate([xy, xy + 60], -1)
    boxes[rng.random((t_len, k)) < 0.2] = np.nan  # missed detections
    times = np.cumsum(rng.uniform(0.03, 0.07, t_len))
    feats, present, subj, obj = video_pair_features(boxes, times, (640, 480), lag)
    slot = rng.permutation(16)[:k]  # the runtime's slots are whatever was free
    hist = BoxHistory(16, lag)
    for t in range(t_len):
        seen = np.flatnonzero(~np.isnan(boxes[t]).any(-1))
        hist.push(slot[seen], boxes[t, seen], times[t])
        past, dt = hist.past(slot[seen], times[t])
        si, oi = ordered_pairs(len(seen))
        got = pair_features(boxes[t, seen][si], boxes[t, seen][oi], past[si], past[oi], dt[si], dt[oi], (640, 480))
        for n, (a, b) in enumerate(zip(seen[si], seen[oi])):
            p = np.flatnonzero((subj == a) & (obj == b))[0]
            assert present[t, p]
            np.testing.assert_array_equal(feats[t, p], got[n])
    assert present.sum() > 100 and feats[..., F["motion_valid"]].any()


def test_future_frames_never_change_past_features():
    rng = np.random.default_rng(2)
    xy = rng.uniform(50, 400, (30, 3, 2))
    boxes = np.concatenate([xy, xy + 50], -1)
    times = np.arange(30) / 10
    a, *_ = video_pair_features(boxes, times, (640, 480), 5)
    boxes[20:] += 37.0
    b, *_ = video_pair_features(boxes, times, (640, 480), 5)
    np.testing.assert_array_equal(a[:20], b[:20])
    assert not np.array_equal(a[20:], b[20:])


def test_bad_image_size():
    with pytest.raises(ValueError, match="image_wh"):
        one((0, 0, 1, 1), (0, 0, 1, 1), wh=(0, 10))


def test_select_pairs_keeps_all_pairs_under_the_cap_and_the_nearest_over_it():
    boxes = np.array([[0, 0, 10, 10], [12, 0, 22, 10],            # a close pair
                      [500, 500, 600, 600], [610, 500, 710, 600],  # a close pair of big boxes
                      [250, 250, 260, 260]], np.float32)           # alone
    i, j = select_pairs(boxes, 100)
    assert len(i) == 20
    i, j = select_pairs(boxes, 4)
    assert sorted(zip(i.tolist(), j.tolist())) == [(0, 1), (1, 0), (2, 3), (3, 2)]
    i, j = select_pairs(boxes, 5)  # an odd cap still keeps both directions of each pair
    assert len(i) == 4
    i, j = select_pairs(boxes, 0)
    assert len(i) == 0
