"""Engine.step's stage timer and input checks: every stage reports a time, and a bad time is refused before the
detector runs or any engine state (image size included) changes."""
import time

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from engine.config import DetectorConfig, EngineConfig
from engine.detect.detector import OnnxDetector
from engine.runtime import STAGES, Engine
from engine.stage_timer import StageTimer
from engine.types import Detections
from engine.vocab import builtin

OBJECTS = builtin("vidvrd_objects")
PERSON = OBJECTS.index("person")


def constant_yolo(path, nc, box=(160.0, 160.0, 40.0, 80.0), cls=0, score=0.9, n=8, input_hw=(320, 320)):
    """A real ONNX model: images -> output0 (1, 4 + nc, n), a constant table holding one box (+ 0 * mean(images))."""
    table = np.zeros((1, 4 + nc, n), np.float32)
    table[0, :4, 0] = box
    table[0, 4 + cls, 0] = score
    nodes = [helper.make_node("ReduceMean", ["images"], ["m"], keepdims=0),
             helper.make_node("Mul", ["m", "zero"], ["z"]),
             helper.make_node("Add", ["table", "z"], ["output0"])]
    graph = helper.make_graph(nodes, "const", [helper.make_tensor_value_info("images", TensorProto.FLOAT,
                                                                             [1, 3, *input_hw])],
                              [helper.make_tensor_value_info("output0", TensorProto.FLOAT, list(table.shape))],
                              initializer=[numpy_helper.from_array(table, "table"),
                                           numpy_helper.from_array(np.float32(0), "zero")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return str(path)


@pytest.fixture
def image_engine(tmp_path):
    classes = tmp_path / "classes.txt"
    classes.write_text("\n".join(OBJECTS.names) + "\n")
    model = constant_yolo(tmp_path / "m.onnx", len(OBJECTS), cls=PERSON)
    det = OnnxDetector(DetectorConfig(model_path=model, classes_file=str(classes)))
    return Engine(EngineConfig(), OBJECTS, detector=det, image_wh=(640, 480))


def test_every_stage_and_the_total_are_reported(image_engine):
    res = image_engine.step(np.zeros((240, 320, 3), np.uint8), 0.0)
    assert set(res.timings_ms) == set(STAGES) | {"total"}
    assert res.timings_ms["detector"] > 0 and res.timings_ms["tracker"] > 0
    assert res.timings_ms["total"] >= sum(res.timings_ms[s] for s in STAGES) - 1e-6


def test_image_size_follows_the_frames(image_engine):
    image_engine.step(np.zeros((240, 320, 3), np.uint8), 0.0)
    assert image_engine.image_wh == (320, 240)


@pytest.mark.parametrize("bad_t, error", [(0.0, ValueError), (-1.0, ValueError), (float("nan"), ValueError),
                                          ("1.0", TypeError), (True, TypeError)])
def test_bad_time_changes_nothing_not_even_the_image_size(image_engine, bad_t, error):
    image_engine.step(np.zeros((240, 320, 3), np.uint8), 0.0)
    before = (image_engine.image_wh, image_engine.snapshot(), image_engine.state_sizes())
    with pytest.raises(error, match=r"^t: "):
        image_engine.step(np.zeros((100, 200, 3), np.uint8), bad_t)
    assert (image_engine.image_wh, image_engine.snapshot(), image_engine.state_sizes()) == before
    image_engine.step(np.zeros((100, 200, 3), np.uint8), 0.04)  # still usable, and the size now moves
    assert image_engine.image_wh == (200, 100)


def test_bad_time_is_refused_before_the_detector_runs(image_engine):
    calls = []
    real = image_engine.detector.detect
    image_engine.detector.detect = lambda im: calls.append(1) or real(im)
    image_engine.step(np.zeros((240, 320, 3), np.uint8), 1.0)
    with pytest.raises(ValueError, match=r"^t: must increase strictly"):
        image_engine.step(np.zeros((240, 320, 3), np.uint8), 0.5)
    assert calls == [1]


def test_timer_adds_up_repeated_stages_and_rejects_unknown_names():
    timer = StageTimer(("a", "b"))
    for _ in range(2):
        with timer.stage("a"):
            time.sleep(0.002)
    ms = timer.ms()
    assert ms["a"] >= 4.0 and ms["b"] == 0.0 and ms["total"] >= ms["a"]
    with pytest.raises(KeyError, match="unknown stage 'c'"):
        with timer.stage("c"):
            pass


def test_timer_counts_a_stage_that_raises():
    timer = StageTimer(("a",))
    with pytest.raises(RuntimeError):
        with timer.stage("a"):
            time.sleep(0.002)
            raise RuntimeError("boom")
    assert timer.ms()["a"] >= 2.0


def test_detections_input_reports_a_zero_detector_stage_on_tracker_only_engines():
    eng = Engine(EngineConfig(), OBJECTS)
    d = Detections(np.array([[0, 0, 10, 10]], np.float32), np.array([0.9], np.float32), np.array([PERSON], np.int32))
    res = eng.step(d, 0.0)
    assert res.timings_ms["pairs"] == res.timings_ms["model"] == 0.0
