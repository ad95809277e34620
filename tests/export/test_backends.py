"""Backend choice (TensorRT -> ORT-CUDA -> ORT-CPU fallback, one log line), step input validation, no torch import."""
import json
import logging
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("onnxruntime")

from engine.backends import CHAIN, load_relation_backend, make_backend  # noqa: E402
from engine.backends.base import RelationInputs, RelationState  # noqa: E402
from engine.backends.cuda_driver import cuda_device_count  # noqa: E402
from engine.backends.ort import ort_cuda_available  # noqa: E402
from engine.config import ConfigError, RelationBackendConfig  # noqa: E402
from engine.relate.relation_io import sha256_file, sidecar_path  # noqa: E402

CPU_ONLY = cuda_device_count() == 0 and not ort_cuda_available()
needs_cpu_only = pytest.mark.skipif(not CPU_ONLY, reason="expects a machine without CUDA (this one has a GPU or "
                                                        "onnxruntime-gpu, so another runtime may win)")


def backend_records(caplog):
    return [r for r in caplog.records if r.name == "engine.backends"]


@needs_cpu_only
def test_auto_falls_back_to_ort_cpu_with_one_log_line(exported, caplog):
    caplog.set_level(logging.INFO, logger="engine.backends")
    b = load_relation_backend(RelationBackendConfig(model_path=str(exported.onnx)))
    assert b.name == "ort-cpu" and b.providers == ("CPUExecutionProvider",)
    recs = backend_records(caplog)
    assert len(recs) == 1 and recs[0].levelno == logging.INFO
    msg = recs[0].getMessage()
    assert "runs on ort-cpu (asked for auto, 1 thread(s))" in msg and str(exported.onnx) in msg
    assert "skipped tensorrt: no TensorRT engine at" in msg and "relation.engine" in msg
    assert "ort-cuda: this onnxruntime has no CUDAExecutionProvider" in msg


@needs_cpu_only
@pytest.mark.parametrize("asked, skipped", [("tensorrt", ("tensorrt", "ort-cuda")), ("ort-cuda", ("ort-cuda",))])
def test_named_runtime_that_cannot_run_falls_back_with_a_warning(exported, caplog, asked, skipped):
    caplog.set_level(logging.INFO, logger="engine.backends")
    b = load_relation_backend(RelationBackendConfig(model_path=str(exported.onnx), backend=asked))
    assert b.name == "ort-cpu"
    (rec,) = backend_records(caplog)
    assert rec.levelno == logging.WARNING
    msg = rec.getMessage()
    assert f"asked for {asked}" in msg
    for name in CHAIN[:-1]:
        assert (f"{name}: " in msg) == (name in skipped), (name, msg)


def test_ort_cpu_asked_for_runs_without_skipping(exported, caplog):
    caplog.set_level(logging.INFO, logger="engine.backends")
    b = load_relation_backend(RelationBackendConfig(model_path=str(exported.onnx), backend="ort-cpu", threads=2))
    (rec,) = backend_records(caplog)
    assert b.name == "ort-cpu" and rec.levelno == logging.INFO
    assert "2 thread(s)" in rec.getMessage() and "skipped" not in rec.getMessage()


def _fake_engine(exported, tmp_path, with_sidecar=True):
    """An engine file + a well-formed engine side-car (the ONNX side-car plus a 'tensorrt' section)."""
    eng = tmp_path / "relation.engine"
    eng.write_bytes(b"not really a TensorRT plan")
    if with_sidecar:
        sc = dict(exported.info.sidecar)
        sc["tensorrt"] = {"version": "10.0.0", "gpu_name": "Some GPU", "compute_capability": "8.6", "fp16": False,
                          "profile": {"min": 1, "opt": 380, "max": 400}, "engine_sha256": sha256_file(eng)}
        sidecar_path(eng).write_text(json.dumps(sc))
    return eng


@needs_cpu_only
@pytest.mark.parametrize("with_sidecar, reason", [(True, "no CUDA device"), (False, "side-car relation.engine.json "
                                                                                   "is missing")])
def test_present_engine_that_cannot_run_here_falls_back(exported, tmp_path, caplog, with_sidecar, reason):
    eng = _fake_engine(exported, tmp_path, with_sidecar)
    caplog.set_level(logging.INFO, logger="engine.backends")
    b = load_relation_backend(RelationBackendConfig(model_path=str(exported.onnx), backend="tensorrt",
                                                    tensorrt_engine=str(eng)))
    assert b.name == "ort-cpu"
    (rec,) = backend_records(caplog)
    skipped = rec.getMessage().split("skipped ", 1)[1].split(" | ")
    assert rec.levelno == logging.WARNING and skipped[0].startswith("tensorrt: ") and reason in skipped[0]
    assert "tensorrt" not in sys.modules  # the CUDA check came first


def test_unknown_backend_name(exported):
    with pytest.raises(ConfigError, match="relation.backend must be auto, tensorrt, ort-cuda or ort-cpu, got 'onnx'"):
        RelationBackendConfig(backend="onnx")
    assert issubclass(ConfigError, ValueError)
    with pytest.raises(ValueError, match="unknown runtime 'onnx'"):
        make_backend("onnx", RelationBackendConfig(), exported.info)
    with pytest.raises(TypeError, match="expected RelationBackendConfig"):
        load_relation_backend({"backend": "auto"})


def test_ort_backend_bad_arguments(exported):
    from engine.backends.ort import OrtRelationBackend

    with pytest.raises(ValueError, match="device: expected 'ort-cpu' or 'ort-cuda'"):
        OrtRelationBackend(exported.info, "cuda")
    with pytest.raises(ValueError, match="threads: must be >= 0"):
        OrtRelationBackend(exported.info, "ort-cpu", threads=-1)


def test_engine_backends_never_import_torch_or_tensorrt(exported):
    code = f"""
import sys
import numpy as np
import engine.backends, engine.backends.base, engine.backends.ort, engine.backends.trt, engine.backends.cuda_driver
import engine.relate.relation_io
from engine.backends import load_relation_backend
from engine.config import RelationBackendConfig
b = load_relation_backend(RelationBackendConfig(model_path={str(exported.onnx)!r}, backend="auto"))
rng = np.random.default_rng(0)
x = (rng.standard_normal((5, b.info.num_features)).astype(np.float32), np.zeros(5, np.int64), np.ones(5, np.int64))
scores, state = b.step(x, b.initial_state(5))
assert scores.shape == (5, len(b.info.predicates))
bad = [m for m in ("torch", "tensorrt", "offline_train", "export") if m in sys.modules]
print("loaded", b.name, "bad", bad)
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "bad []" in r.stdout, r.stdout


# ------------------------------------------------------------------------------------------ step()


@pytest.fixture(scope="module")
def backend(exported):
    return load_relation_backend(RelationBackendConfig(model_path=str(exported.onnx), backend="ort-cpu"))


def good(backend, p=6, seed=0):
    rng = np.random.default_rng(seed)
    info = backend.info
    x = RelationInputs(rng.standard_normal((p, info.num_features)).astype(np.float32),
                       rng.integers(0, len(info.objects), p), rng.integers(0, len(info.objects), p))
    return x, backend.initial_state(p)


def test_step_outputs(backend):
    x, s = good(backend)
    scores, new = backend.step(x, s)
    assert isinstance(new, RelationState)
    assert scores.shape == (6, len(backend.info.predicates)) and scores.dtype == np.float32
    assert 0.0 <= scores.min() and scores.max() <= 1.0
    assert [a.shape for a in new] == [a.shape for a in s] and all(a.dtype == np.float32 for a in new)
    assert (new.window_valid[:, -1] == 1).all()  # this step's token entered the window
    empty, empty_state = backend.step(*good(backend, 0))
    assert empty.shape == (0, len(backend.info.predicates)) and empty_state.window.shape[0] == 0
    backend.warmup(32)


def _bad(kind):
    def mutate(x, s):
        x, s = list(x), list(s)
        if kind == "feats shape":
            x[0] = x[0][:, :-1]
        elif kind == "feats bool":
            x[0] = x[0] > 0
        elif kind == "feats nan":
            x[0] = x[0].copy()
            x[0][2, 3] = np.nan
        elif kind == "feats scalar":
            x[0] = np.float32(1.0)
        elif kind == "label float":
            x[1] = x[1].astype(np.float32)
        elif kind == "label range":
            x[2] = x[2].copy()
            x[2][0] = 35
        elif kind == "label negative":
            x[1] = x[1].copy()
            x[1][4] = -1
        elif kind == "rows differ":
            x[1] = x[1][:-1]
        elif kind == "window shape":
            s[0] = s[0][:, :-1]
        elif kind == "prev_out shape":
            s[2] = s[2][:-1]
        elif kind == "inputs arity":
            x = x[:2]
        elif kind == "state arity":
            s = s[:2]
        return x, s
    return mutate


BAD_STEPS = [("feats shape", ValueError, r"feats: expected shape \(6, "), ("feats bool", TypeError, "feats: expected"),
             ("feats nan", ValueError, "feats: contains NaN"), ("feats scalar", ValueError, "feats: expected shape"),
             ("label float", TypeError, "subj_label: expected int64"),
             ("label range", ValueError, "obj_label: label index 35 outside the model's 35 object labels"),
             ("label negative", ValueError, "subj_label: label index -1"),
             ("rows differ", ValueError, r"subj_label: expected shape \(6,\)"),
             ("window shape", ValueError, "window: expected shape"), ("prev_out shape", ValueError, "prev_out: expected"),
             ("inputs arity", TypeError, "inputs: expected"), ("state arity", TypeError, "state: expected")]


@pytest.mark.parametrize("kind, exc, message", BAD_STEPS, ids=[b[0] for b in BAD_STEPS])
def test_step_refuses_bad_inputs_and_leaves_them_alone(backend, kind, exc, message):
    x, s = _bad(kind)(*good(backend))
    before = [np.array(a, copy=True) for a in (*x, *s)]
    with pytest.raises(exc, match=message):
        backend.step(x, s)
    for a, b in zip(before, (*x, *s)):
        np.testing.assert_array_equal(a, np.asarray(b))
    scores, _ = backend.step(*good(backend))  # still usable afterwards
    assert scores.shape[0] == 6
