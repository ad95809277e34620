"""engine.boxes: IoU against a plain numpy reference, format conversions, empty and degenerate inputs."""
import numpy as np
import pytest

from engine.boxes import cxcywh_to_xyxy, iou_xyxy, ltwh_to_xyxy, xyxy_to_cxcywh, xyxy_to_ltwh


def _random_xyxy(rng, n, dtype=np.float32):
    xy = rng.uniform(0, 100, (n, 2))
    wh = rng.uniform(0, 40, (n, 2))
    wh[rng.random(n) < 0.1] = 0.0  # some degenerate boxes
    return np.concatenate([xy, xy + wh], 1).astype(dtype)


def _iou_reference(a, b):
    out = np.zeros((len(a), len(b)))
    for i, p in enumerate(a.astype(np.float64)):
        for j, q in enumerate(b.astype(np.float64)):
            iw = max(0.0, min(p[2], q[2]) - max(p[0], q[0]))
            ih = max(0.0, min(p[3], q[3]) - max(p[1], q[1]))
            union = (p[2] - p[0]) * (p[3] - p[1]) + (q[2] - q[0]) * (q[3] - q[1]) - iw * ih
            out[i, j] = iw * ih / union if union > 0 else 0.0
    return out


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_iou_matches_reference(dtype):
    rng = np.random.default_rng(0)
    a, b = _random_xyxy(rng, 17, dtype), _random_xyxy(rng, 11, dtype)
    got = iou_xyxy(a, b)
    assert got.shape == (17, 11) and got.dtype == np.float64
    np.testing.assert_allclose(got, _iou_reference(a, b), atol=1e-12)
    assert (got >= 0).all() and (got <= 1).all()
    np.testing.assert_allclose(iou_xyxy(b, a), got.T, atol=1e-12)


def test_iou_known_values():
    a = np.array([[0, 0, 10, 10]], np.float32)
    b = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [10, 0, 20, 10], [2, 2, 4, 4], [3, 3, 3, 3]], np.float32)
    np.testing.assert_allclose(iou_xyxy(a, b)[0], [1.0, 50 / 150, 0.0, 4 / 100, 0.0])
    z = np.array([[3, 3, 3, 3]], np.float32)
    assert iou_xyxy(z, z)[0, 0] == 0.0  # zero union: defined as 0, not NaN


def test_iou_empty_shapes():
    e = np.zeros((0, 4), np.float32)
    b = np.ones((3, 4), np.float32)
    assert iou_xyxy(e, b).shape == (0, 3)
    assert iou_xyxy(b, e).shape == (3, 0)
    assert iou_xyxy(e, e).shape == (0, 0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_conversions_round_trip(dtype):
    rng = np.random.default_rng(1)
    b = _random_xyxy(rng, 50, dtype)
    c = xyxy_to_cxcywh(b)
    assert c.dtype == dtype
    np.testing.assert_allclose(c[:, 0], (b[:, 0] + b[:, 2]) / 2, rtol=1e-6)
    np.testing.assert_allclose(c[:, 3], b[:, 3] - b[:, 1], rtol=1e-6)
    np.testing.assert_allclose(cxcywh_to_xyxy(c), b, atol=1e-4)
    lt = xyxy_to_ltwh(b)
    np.testing.assert_allclose(lt[:, :2], b[:, :2])
    np.testing.assert_allclose(lt[:, 2:], b[:, 2:] - b[:, :2], rtol=1e-6)
    np.testing.assert_allclose(ltwh_to_xyxy(lt), b, atol=1e-4)
    for f in (xyxy_to_cxcywh, cxcywh_to_xyxy, ltwh_to_xyxy, xyxy_to_ltwh):
        assert f(np.zeros((0, 4), dtype)).shape == (0, 4)


def test_conversions_do_not_modify_input():
    b = np.array([[1, 2, 5, 9]], np.float64)
    keep = b.copy()
    xyxy_to_cxcywh(b), cxcywh_to_xyxy(b), ltwh_to_xyxy(b), xyxy_to_ltwh(b)
    np.testing.assert_array_equal(b, keep)
    np.testing.assert_array_equal(ltwh_to_xyxy(np.array([[1.0, 2, 4, 7]])), [[1, 2, 5, 9]])
