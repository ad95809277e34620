"""engine.detect.detector: YOLO-layout ONNX models built here with onnx.helper, so every decoded box is known exactly."""
import logging

import numpy as np
import pytest

from engine.config import ConfigError, DetectorConfig, from_dict
from engine.detect.detector import Letterbox, OnnxDetector, decode_yolo, letterbox_into, resolve_layout

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

NAMES = ("person", "car", "dog")


def yolov8_output(rows, nc=len(NAMES), n=20):
    """(1, 4 + nc, n) output: rows are (cx, cy, w, h, class, score) in model pixels; the other candidates score 0."""
    out = np.zeros((1, 4 + nc, n), np.float32)
    out[0, :4, :] = [[10.0], [10.0], [4.0], [4.0]]
    for i, (cx, cy, w, h, c, s) in enumerate(rows):
        out[0, :4, i] = (cx, cy, w, h)
        out[0, 4 + c, i] = s
    return out


def save_model(path, output, input_hw=(320, 320), dynamic_hw=False, dynamic_n=False, fp16=False):
    """A graph images -> output0 = constant + 0 * mean(images): a real model whose output is known exactly."""
    """dynamic_n: the candidate axis is sliced to [:input width], so onnxruntime cannot know N before a run (the
    table must have at most that many candidates); it implies dynamic_hw."""
    output = np.asarray(output, np.float32)
    h, w = ("h", "w") if dynamic_hw or dynamic_n else input_hw
    itype = TensorProto.FLOAT16 if fp16 else TensorProto.FLOAT
    out_shape = list(output.shape)
    n_axis = 2 if output.shape[1] < output.shape[2] else 1
    nodes = [helper.make_node("Cast", ["images"], ["x"], to=TensorProto.FLOAT),
             helper.make_node("ReduceMean", ["x"], ["m"], keepdims=0),
             helper.make_node("Mul", ["m", "zero"], ["z"])]
    extra = [numpy_helper.from_array(np.float32(0), "zero")]
    if dynamic_n:
        out_shape[n_axis] = "n"
        nodes += [helper.make_node("Shape", ["images"], ["shape"], start=3, end=4),
                  helper.make_node("Slice", ["table", "start", "shape", "axis"], ["sliced"]),
                  helper.make_node("Add", ["sliced", "z"], ["output0"])]
        extra += [numpy_helper.from_array(np.array([0], np.int64), "start"),
                  numpy_helper.from_array(np.array([n_axis], np.int64), "axis")]
    else:
        nodes.append(helper.make_node("Add", ["table", "z"], ["output0"]))
    graph = helper.make_graph(
        nodes, "const_yolo", [helper.make_tensor_value_info("images", itype, [1, 3, h, w])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, out_shape)],
        initializer=[numpy_helper.from_array(output, "table"), *extra])
    _save(graph, path)
    return str(path)


def save_probe_model(path, input_hw=(320, 320)):
    """Output (1, 7, 1): one fixed box whose 3 class scores are the mean of the input's R, G and B planes."""
    box = numpy_helper.from_array(np.array([[[160.0], [160.0], [100.0], [60.0]]], np.float32), "box")
    shape = numpy_helper.from_array(np.array([1, 3, 1], np.int64), "shape")
    nodes = [helper.make_node("ReduceMean", ["images"], ["m"], axes=[2, 3], keepdims=1),
             helper.make_node("Reshape", ["m", "shape"], ["m3"]),
             helper.make_node("Concat", ["box", "m3"], ["output0"], axis=1)]
    graph = helper.make_graph(
        nodes, "probe", [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, *input_hw])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, 7, 1])], initializer=[box, shape])
    _save(graph, path)
    return str(path)


def _save(graph, path):
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


@pytest.fixture
def classes(tmp_path):
    p = tmp_path / "classes.txt"
    p.write_text("\n".join(NAMES) + "\n")
    return str(p)


def detector(tmp_path, classes, output, **cfg):
    model_kw = {k: cfg.pop(k) for k in ("dynamic_hw", "dynamic_n", "fp16", "input_hw") if k in cfg}
    path = save_model(tmp_path / "m.onnx", output, **model_kw)
    return OnnxDetector(DetectorConfig(model_path=path, classes_file=classes, **cfg))


def gray(h, w):
    return np.full((h, w, 3), 90, np.uint8)


# ---------------------------------------------------------------------------------------------- letterbox


@pytest.mark.parametrize("hw", [(480, 640), (1080, 1920), (100, 37), (320, 320), (7, 5), (300, 1000)])
def test_letterbox_matches_opencv_resize_and_pad(hw):
    cv2 = pytest.importorskip("cv2")
    img = np.random.default_rng(0).integers(0, 256, (*hw, 3), dtype=np.uint8)
    box = Letterbox.fit(hw, (320, 256))
    out = np.empty((3, 320, 256), np.float32)
    letterbox_into(img, out, box, bgr=True)
    resized = cv2.resize(img, (box.resized_w, box.resized_h), interpolation=cv2.INTER_LINEAR)
    ref = np.full((320, 256, 3), 114, np.uint8)
    ref[box.top:box.top + box.resized_h, box.left:box.left + box.resized_w] = resized
    ref = ref[..., ::-1].transpose(2, 0, 1) / 255.0  # BGR -> RGB planes in [0, 1]
    assert np.abs(out - ref).max() <= 1.0 / 255  # OpenCV rounds to uint8; we keep the float
    assert box.top == (320 - box.resized_h) // 2 and box.left == (256 - box.resized_w) // 2


def test_letterbox_geometry_maps_the_resized_region_onto_the_whole_image():
    for hw in [(7, 5), (480, 640), (1000, 500), (333, 777)]:
        box = Letterbox.fit(hw, (320, 320))
        assert max(box.resized_h, box.resized_w) == 320
        region = np.array([[box.left, box.top, box.left + box.resized_w, box.top + box.resized_h]], np.float32)
        np.testing.assert_allclose(box.to_image_xyxy(region), [[0, 0, hw[1], hw[0]]], rtol=1e-6)


# ---------------------------------------------------------------------------------------------- full detector


@pytest.mark.parametrize("image_hw, input_hw, expected", [
    ((240, 320), (320, 320), [110, 90, 210, 150]),           # scale 1, 40 px bars top and bottom
    ((120, 160), (320, 320), [55, 45, 105, 75]),             # scale 2
    ((1000, 500), (320, 320), [93.75, 406.25, 406.25, 593.75]),  # scale 0.32, 80 px bars left and right
    ((480, 640), (256, 320), [220, 180, 420, 300]),          # non-square model input, scale 0.5, 8 px bars
])
def test_boxes_are_mapped_back_to_original_pixels(tmp_path, classes, image_hw, input_hw, expected):
    # model box (cx, cy, w, h) = (160, 128 or 160, 100, 60) -> xyxy (110, cy - 30, 210, cy + 30) in the input
    cy = input_hw[0] / 2
    det = detector(tmp_path, classes, yolov8_output([(160, cy, 100, 60, 1, 0.9)]), input_hw=input_hw)
    d = det.detect(gray(*image_hw))
    np.testing.assert_allclose(d.boxes_xyxy, [expected], rtol=1e-5)
    np.testing.assert_allclose(d.scores, [0.9])
    assert d.labels.tolist() == [1] and d.labels.dtype == np.int32 and det.classes.label(1) == "car"


def test_boxes_are_clipped_to_the_image(tmp_path, classes):
    det = detector(tmp_path, classes, yolov8_output([(10, 300, 60, 100, 0, 0.8)]))
    d = det.detect(gray(240, 320))  # top bar 40 px: model y 250..350 -> image 210..310, clipped to 240
    np.testing.assert_allclose(d.boxes_xyxy, [[0, 210, 40, 240]], rtol=1e-6)


def test_score_threshold_is_strict(tmp_path, classes):
    rows = [(50, 50, 20, 20, 0, 0.3), (150, 150, 20, 20, 0, 0.25), (250, 250, 20, 20, 2, 0.2)]
    d = detector(tmp_path, classes, yolov8_output(rows), score_threshold=0.25).detect(gray(320, 320))
    np.testing.assert_allclose(d.scores, [0.3])
    d = detector(tmp_path, classes, yolov8_output(rows), score_threshold=0.1).detect(gray(320, 320))
    np.testing.assert_allclose(d.scores, [0.3, 0.25, 0.2])


def test_nms_is_class_aware_unless_asked(tmp_path, classes):
    rows = [(100, 100, 80, 80, 0, 0.9), (104, 100, 80, 80, 0, 0.8),   # same class, IoU 0.9 -> one suppressed
            (100, 104, 80, 80, 1, 0.7),                               # other class, same place -> survives
            (250, 250, 40, 40, 0, 0.6)]                               # far away -> survives
    d = detector(tmp_path, classes, yolov8_output(rows), iou_threshold=0.5).detect(gray(320, 320))
    np.testing.assert_allclose(d.scores, [0.9, 0.7, 0.6])
    assert d.labels.tolist() == [0, 1, 0]
    d = detector(tmp_path, classes, yolov8_output(rows), iou_threshold=0.5, class_agnostic=True).detect(
        gray(320, 320))
    np.testing.assert_allclose(d.scores, [0.9, 0.6])


def test_max_detections_keeps_the_highest_scores(tmp_path, classes):
    rows = [(20 + 30 * i, 160, 20, 20, i % 3, 0.3 + 0.05 * i) for i in range(10)]
    d = detector(tmp_path, classes, yolov8_output(rows), max_detections=3).detect(gray(320, 320))
    np.testing.assert_allclose(d.scores, [0.75, 0.7, 0.65])


def test_best_class_is_the_label(tmp_path, classes):
    out = yolov8_output([(100, 100, 40, 40, 0, 0.4)])
    out[0, 4 + 2, 0] = 0.6  # the same candidate scores higher for "dog"
    d = detector(tmp_path, classes, out).detect(gray(320, 320))
    assert d.labels.tolist() == [2] and np.allclose(d.scores, [0.6])


def test_transposed_and_dynamic_layouts_decode_identically(tmp_path, classes):
    rows = [(100, 100, 80, 80, 0, 0.9), (104, 100, 80, 80, 0, 0.8), (200, 60, 30, 50, 2, 0.5)]
    out = yolov8_output(rows)
    want = detector(tmp_path, classes, out, iou_threshold=0.5).detect(gray(200, 300))
    assert len(want) == 2
    for kw in (dict(), dict(dynamic_n=True, input_size=(320, 320))):
        for arr in (out, out.transpose(0, 2, 1)):
            got = detector(tmp_path, classes, arr, iou_threshold=0.5, **kw).detect(gray(200, 300))
            np.testing.assert_array_equal(got.boxes_xyxy, want.boxes_xyxy)
            np.testing.assert_array_equal(got.scores, want.scores)
            np.testing.assert_array_equal(got.labels, want.labels)


def test_yolov5_layout_multiplies_objectness(tmp_path, classes):
    out = np.zeros((1, 20, 5 + 3), np.float32)
    out[0, :, :4] = (10, 10, 4, 4)
    out[0, 0] = (100, 100, 40, 40, 0.5, 0.9, 0.1, 0.0)   # score 0.45, class 0
    out[0, 1] = (200, 200, 40, 40, 0.9, 0.0, 0.2, 0.8)   # score 0.72, class 2
    out[0, 2] = (300, 50, 40, 40, 0.2, 1.0, 0.0, 0.0)    # score 0.2 < threshold, despite class score 1
    d = detector(tmp_path, classes, out).detect(gray(320, 320))
    np.testing.assert_allclose(d.scores, [0.72, 0.45], rtol=1e-6)
    assert d.labels.tolist() == [2, 0]


def test_probe_model_sees_rgb_in_unit_range_with_gray_padding(tmp_path, classes):
    path = save_probe_model(tmp_path / "probe.onnx")
    red_bgr = np.zeros((320, 320, 3), np.uint8)
    red_bgr[..., 2] = 255
    d = OnnxDetector(DetectorConfig(model_path=path, classes_file=classes)).detect(red_bgr)
    assert d.labels.tolist() == [0] and np.allclose(d.scores, [1.0])  # R plane = 1: BGR was swapped to RGB
    d = OnnxDetector(DetectorConfig(model_path=path, classes_file=classes, input_order="rgb")).detect(red_bgr)
    assert d.labels.tolist() == [2] and np.allclose(d.scores, [1.0])  # taken as RGB, the 255 plane is blue
    d = OnnxDetector(DetectorConfig(model_path=path, classes_file=classes, input_order="rgb")).detect(
        red_bgr[..., ::-1])  # a non-contiguous RGB view of the same image
    assert d.labels.tolist() == [0] and np.allclose(d.scores, [1.0])
    black_wide = np.zeros((160, 320, 3), np.uint8)  # fills half the input; the rest is gray 114
    d = OnnxDetector(DetectorConfig(model_path=path, classes_file=classes, score_threshold=0.1)).detect(black_wide)
    np.testing.assert_allclose(d.scores, [0.5 * 114 / 255], rtol=1e-4)  # float32 mean of 1e5 px


def test_dynamic_input_needs_input_size_and_uses_it(tmp_path, classes):
    out = yolov8_output([(160, 160, 100, 60, 1, 0.9)])
    with pytest.raises(ValueError, match="input_size"):
        detector(tmp_path, classes, out, dynamic_hw=True)
    d = detector(tmp_path, classes, out, dynamic_hw=True, input_size=(320, 320)).detect(gray(240, 320))
    np.testing.assert_allclose(d.boxes_xyxy, [[110, 90, 210, 150]], rtol=1e-5)


def test_float16_input_model(tmp_path, classes):
    d = detector(tmp_path, classes, yolov8_output([(160, 160, 100, 60, 1, 0.9)]), fp16=True).detect(gray(320, 320))
    np.testing.assert_allclose(d.boxes_xyxy, [[110, 130, 210, 190]], rtol=1e-5)


def test_nothing_above_threshold_gives_empty_detections(tmp_path, classes):
    det = detector(tmp_path, classes, yolov8_output([(100, 100, 40, 40, 0, 0.1)]))
    det.warmup()
    d = det.detect(gray(50, 70))
    assert len(d) == 0 and d.boxes_xyxy.shape == (0, 4)


# ---------------------------------------------------------------------------------------------- bad inputs


@pytest.mark.parametrize("image, exc", [
    (np.zeros((32, 32, 3), np.float32), ValueError),
    (np.zeros((32, 32), np.uint8), ValueError),
    (np.zeros((32, 32, 4), np.uint8), ValueError),
    (np.zeros((0, 32, 3), np.uint8), ValueError),
    (np.zeros((1, 32, 32, 3), np.uint8), ValueError),
    ([[[0, 0, 0]]], TypeError),
])
def test_bad_images_raise_and_leave_the_detector_usable(tmp_path, classes, image, exc):
    det = detector(tmp_path, classes, yolov8_output([(160, 160, 100, 60, 1, 0.9)]))
    with pytest.raises(exc, match="image"):
        det.detect(image)
    assert len(det.detect(gray(320, 320))) == 1


def test_class_list_that_does_not_match_the_model_is_rejected_at_load(tmp_path, classes):
    wrong = tmp_path / "four.txt"
    wrong.write_text("a\nb\nc\nd\n")
    with pytest.raises(ValueError, match="four.txt"):
        detector(tmp_path, str(wrong), yolov8_output([]))
    # dynamic N: the shape is only known at run time, so the first detect() raises instead
    det = detector(tmp_path, str(wrong), yolov8_output([]), dynamic_n=True, input_size=(320, 320))
    assert not all(isinstance(d, int) for d in det._session.get_outputs()[0].shape)
    with pytest.raises(ValueError, match="fits no accepted YOLO layout"):
        det.detect(gray(32, 32))


def test_layout_resolution_rules():
    assert resolve_layout((1, 84, 8400), 80) == "yolov8"
    assert resolve_layout((1, 8400, 84), 80) == "yolov8_transposed"
    assert resolve_layout((1, 25200, 85), 80) == "yolov5"
    for shape in [(1, 300, 6), (2, 84, 8400), (84, 8400), (1, 85, 8400)]:
        with pytest.raises(ValueError, match="fits no accepted"):
            resolve_layout(shape, 80)
    with pytest.raises(ValueError, match="ambiguous"):
        resolve_layout((1, 84, 84), 80)
    assert resolve_layout((1, 84, 84), 80, "yolov8_transposed") == "yolov8_transposed"
    with pytest.raises(ValueError, match="output_layout"):
        resolve_layout((1, 84, 8400), 80, "yolov5")


def test_logit_scores_are_rejected():
    out = yolov8_output([(100, 100, 40, 40, 0, 3.5)])
    with pytest.raises(ValueError, match="sigmoid"):
        decode_yolo(out, 3)


def test_max_candidates_keeps_the_best_before_nms():
    rows = [(20 + 30 * i, 160, 20, 20, 0, 0.3 + 0.05 * i) for i in range(10)]
    boxes, scores, labels = decode_yolo(yolov8_output(rows), 3, max_candidates=4)
    np.testing.assert_allclose(scores, [0.75, 0.7, 0.65, 0.6])


def test_degenerate_candidate_boxes_are_dropped():
    boxes, scores, _ = decode_yolo(yolov8_output([(50, 50, 0, 10, 0, 0.9), (90, 90, -4, 10, 0, 0.8),
                                                  (150, 150, 10, 10, 0, 0.7)]), 3)
    np.testing.assert_allclose(scores, [0.7])


@pytest.mark.parametrize("cfg, field", [
    (dict(model_path=""), "model_path"),
    (dict(model_path="/nonexistent/m.onnx"), "model_path"),
    (dict(classes_file="/nonexistent/c.txt"), "classes_file"),
    (dict(input_size=(256, 320)), "input_size"),
])
def test_bad_detector_config_raises_naming_the_field(tmp_path, classes, cfg, field):
    path = save_model(tmp_path / "m.onnx", yolov8_output([]))
    args = dict(model_path=path, classes_file=classes)
    args.update(cfg)
    with pytest.raises(ValueError, match=field):
        OnnxDetector(DetectorConfig(**args))


def test_unloadable_model_file_raises_value_error(tmp_path, classes):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a protobuf")
    with pytest.raises(ValueError, match="model_path"):
        OnnxDetector(DetectorConfig(model_path=str(bad), classes_file=classes))


@pytest.mark.parametrize("data, key", [
    ({"score_threshold": 1.5}, "score_threshold"),
    ({"iou_threshold": -0.1}, "iou_threshold"),
    ({"max_detections": 0}, "max_detections"),
    ({"providers": ["gpu"]}, "providers"),
    ({"providers": []}, "providers"),
    ({"input_order": "bgra"}, "input_order"),
    ({"output_layout": "yolox"}, "output_layout"),
    ({"input_size": [640, 0]}, "input_size"),
    ({"nms": 0.5}, "nms"),
])
def test_detector_config_validation(data, key):
    with pytest.raises(ConfigError, match=key):
        from_dict(DetectorConfig, data, prefix="detector")


def test_config_from_yaml_style_dict():
    cfg = from_dict(DetectorConfig, {"input_size": [480, 640], "providers": ["cuda", "cpu"], "class_agnostic": True})
    assert cfg.input_size == (480, 640) and cfg.providers == ("cuda", "cpu") and cfg.class_agnostic


def test_missing_provider_falls_back_to_cpu_with_a_log_line(tmp_path, classes, caplog):
    ort = pytest.importorskip("onnxruntime")
    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("CUDA is available here; the fallback path is not reachable")
    with caplog.at_level(logging.INFO, logger="engine.detect.detector"):
        det = detector(tmp_path, classes, yolov8_output([]), providers=("cuda",))
    assert det.providers[0] == "CPUExecutionProvider"
    assert "CUDAExecutionProvider is not available" in caplog.text
    assert "runs on CPUExecutionProvider" in caplog.text
