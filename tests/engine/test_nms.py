"""engine.detect.nms: greedy NMS against a plain-Python reference, class-aware/agnostic semantics, edge cases, bad inputs."""
import numpy as np
import pytest

from engine.detect.nms import nms_xyxy


def reference_nms(boxes, scores, labels, iou_threshold, max_keep=None, class_agnostic=False):
    """Textbook greedy NMS, one pair at a time, float64: the definition the kernel must reproduce."""
    order = sorted(range(len(boxes)), key=lambda i: (-float(scores[i]), i))
    kept = []
    for i in order:
        if max_keep is not None and len(kept) >= max_keep:
            break
        ok = True
        for k in kept:
            if not class_agnostic and labels[k] != labels[i]:
                continue
            a, b = np.asarray(boxes[i], np.float64), np.asarray(boxes[k], np.float64)
            iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
            ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
            inter = iw * ih
            union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
            if union > 0 and inter / union > iou_threshold:
                ok = False
                break
        if ok:
            kept.append(i)
    return np.array(kept, np.int64)


def random_boxes(rng, n, extent=200.0, max_size=60.0):
    xy = rng.uniform(0, extent, (n, 2))
    wh = rng.uniform(1, max_size, (n, 2))
    return np.concatenate([xy, xy + wh], axis=1).astype(np.float32)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("class_agnostic", [False, True])
@pytest.mark.parametrize("iou_threshold", [0.3, 0.5, 0.7])
def test_matches_reference_on_random_boxes(seed, class_agnostic, iou_threshold):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 250))
    boxes = random_boxes(rng, n)
    scores = rng.random(n).astype(np.float32)
    labels = rng.integers(0, 4, n).astype(np.int32)
    got = nms_xyxy(boxes, scores, labels, iou_threshold=iou_threshold, class_agnostic=class_agnostic)
    want = reference_nms(boxes, scores, labels, iou_threshold, class_agnostic=class_agnostic)
    np.testing.assert_array_equal(got, want)
    assert got.dtype == np.int64
    assert np.all(np.diff(scores[got]) <= 0), "kept boxes must come highest score first"


def test_matches_reference_with_max_keep_and_tied_scores():
    rng = np.random.default_rng(11)
    boxes = random_boxes(rng, 300, extent=100.0)
    scores = rng.integers(0, 5, 300).astype(np.float32) / 4  # many ties: order among them is by input index
    labels = rng.integers(0, 3, 300).astype(np.int32)
    for max_keep in (1, 7, 40, 1000):
        got = nms_xyxy(boxes, scores, labels, iou_threshold=0.4, max_keep=max_keep)
        np.testing.assert_array_equal(got, reference_nms(boxes, scores, labels, 0.4, max_keep))


def test_class_aware_keeps_overlapping_boxes_of_different_classes():
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [0, 1, 10, 11]], np.float32)  # pairwise IoU ~0.82
    scores = np.array([0.9, 0.8, 0.7], np.float32)
    labels = np.array([0, 1, 0], np.int32)
    np.testing.assert_array_equal(nms_xyxy(boxes, scores, labels, iou_threshold=0.5), [0, 1])
    np.testing.assert_array_equal(nms_xyxy(boxes, scores, labels, iou_threshold=0.5, class_agnostic=True), [0])
    np.testing.assert_array_equal(nms_xyxy(boxes, scores, None, iou_threshold=0.5), [0])


def test_threshold_is_strict():
    boxes = np.array([[0, 0, 2, 1], [0, 0, 1, 1]], np.float32)  # IoU exactly 0.5
    scores = np.array([0.9, 0.8], np.float32)
    np.testing.assert_array_equal(nms_xyxy(boxes, scores, iou_threshold=0.5), [0, 1])
    np.testing.assert_array_equal(nms_xyxy(boxes, scores, iou_threshold=0.49), [0])


def test_suppressed_box_does_not_suppress_others():
    # 1 is suppressed by 0; 2 overlaps only 1, so it must survive (greedy, not "any higher neighbour").
    boxes = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [10, 0, 20, 10]], np.float32)
    scores = np.array([0.9, 0.8, 0.7], np.float32)
    np.testing.assert_array_equal(nms_xyxy(boxes, scores, iou_threshold=0.3), [0, 2])


def test_empty_single_zero_area_and_max_keep_zero():
    assert nms_xyxy(np.zeros((0, 4)), np.zeros(0), iou_threshold=0.5).shape == (0,)
    np.testing.assert_array_equal(nms_xyxy([[1, 2, 3, 4]], [0.5], iou_threshold=0.5), [0])
    points = np.array([[5, 5, 5, 5], [5, 5, 5, 5]], np.float32)  # zero area: IoU 0, nothing suppressed
    np.testing.assert_array_equal(nms_xyxy(points, [0.2, 0.9], iou_threshold=0.0), [1, 0])
    assert nms_xyxy([[0, 0, 1, 1]], [0.5], iou_threshold=0.5, max_keep=0).shape == (0,)


@pytest.mark.parametrize("kwargs, field", [
    (dict(boxes_xyxy=np.zeros((3, 3))), "boxes_xyxy"),
    (dict(boxes_xyxy=np.array([[0, 0, np.nan, 1]] * 3)), "boxes_xyxy"),
    (dict(boxes_xyxy=np.array([[5, 0, 1, 1]] * 3)), "boxes_xyxy"),
    (dict(scores=np.zeros(2)), "scores"),
    (dict(scores=np.array([0.1, np.nan, 0.2])), "scores"),
    (dict(labels=np.zeros(3, np.float32)), "labels"),
    (dict(labels=np.zeros(4, np.int32)), "labels"),
    (dict(iou_threshold=1.5), "iou_threshold"),
    (dict(max_keep=-1), "max_keep"),
])
def test_bad_inputs_raise_naming_the_argument(kwargs, field):
    args = dict(boxes_xyxy=np.array([[0, 0, 1, 1]] * 3, np.float32), scores=np.ones(3, np.float32),
                labels=np.zeros(3, np.int32), iou_threshold=0.5)
    args.update(kwargs)
    with pytest.raises(ValueError, match=field):
        nms_xyxy(**args)
