"""TensorRT: no GPU -> a clear BackendUnavailable and no crash; engine side-car checks; real builds where possible."""
import dataclasses
import importlib.util
import json
import sys

import pytest

pytest.importorskip("onnxruntime")

from engine.backends.base import BackendUnavailable  # noqa: E402
from engine.backends.cuda_driver import CudaDriver, cuda_device_count  # noqa: E402
from engine.backends.trt import EngineMismatchError, TrtRelationBackend, check_engine_sidecar, import_tensorrt  # noqa
from engine.relate.relation_io import INPUTS, ModelFileError, sha256_file, sidecar_path  # noqa: E402
from export.to_tensorrt import build_tensorrt_engine, profile_shapes  # noqa: E402

HAS_GPU = cuda_device_count() > 0


def require_tensorrt():
    """Skip (with the reason) unless this machine has a CUDA device and the tensorrt package; checked at run time
    so that nothing TensorRT is imported on a machine without a GPU."""
    if not HAS_GPU:
        pytest.skip("TensorRT needs an NVIDIA GPU (no CUDA device on this machine) and the tensorrt package")
    if importlib.util.find_spec("tensorrt") is None:
        pytest.skip("TensorRT is not installed (pip cannot install its libraries here; see ENVIRONMENT.md §3)")


def require_no_gpu():
    if HAS_GPU:
        pytest.skip("checks the behaviour without a CUDA device; this machine has one")


def engine_info(exported, **tensorrt):
    meta = {"version": "10.3.0", "gpu_name": "NVIDIA H200", "compute_capability": "9.0", "fp16": False,
            "profile": {"min": 1, "opt": 380, "max": 400}, **tensorrt}
    return dataclasses.replace(exported.info, sidecar={**exported.info.sidecar, "tensorrt": meta})


def test_engine_sidecar_that_fits(exported):
    meta = check_engine_sidecar(engine_info(exported), exported.info, "10.3.0", "NVIDIA H200")
    assert meta["compute_capability"] == "9.0"
    check_engine_sidecar(engine_info(exported), None, "10.3.0", "NVIDIA H200")  # no ONNX to compare with


def test_engine_for_another_tensorrt_version(exported):
    with pytest.raises(EngineMismatchError, match="built with TensorRT 10.3.0, this machine has 10.4.1; rebuild"):
        check_engine_sidecar(engine_info(exported), exported.info, "10.4.1", "NVIDIA H200")


def test_engine_for_another_gpu(exported):
    with pytest.raises(EngineMismatchError, match="built for GPU 'NVIDIA H200', this machine has 'NVIDIA A100"):
        check_engine_sidecar(engine_info(exported), exported.info, "10.3.0", "NVIDIA A100-SXM4-80GB")


def test_engine_from_another_onnx(exported):
    other = dataclasses.replace(exported.info, sidecar={**exported.info.sidecar, "onnx_sha256": "f" * 64})
    with pytest.raises(EngineMismatchError, match=r"built from another ONNX model .*\(stale engine\)"):
        check_engine_sidecar(engine_info(exported), other, "10.3.0", "NVIDIA H200")


def test_engine_sidecar_without_tensorrt_section(exported):
    with pytest.raises(ModelFileError, match="side-car has no 'tensorrt' section"):
        check_engine_sidecar(exported.info, None, "10.3.0", "NVIDIA H200")
    assert issubclass(EngineMismatchError, ModelFileError)


def test_profile_shapes(exported):
    got = profile_shapes(exported.info, 7)
    want = exported.info.shapes(7)
    assert got == {s.name: want[s.name] for s in INPUTS}
    assert got["window"] == (7, exported.info.window - 1, exported.info.d_model)


def test_build_without_gpu_is_backend_unavailable(exported, tmp_path):
    require_no_gpu()
    out = tmp_path / "relation.engine"
    with pytest.raises(BackendUnavailable, match="no CUDA device"):
        build_tensorrt_engine(exported.onnx, out)
    assert not out.exists() and not sidecar_path(out).exists()
    assert "tensorrt" not in sys.modules  # refused before anything TensorRT was imported or constructed


@pytest.mark.parametrize("kw, message", [({"min_pairs": 0}, "got 0, 380, 400"),
                                         ({"opt_pairs": 500}, "got 1, 500, 400"),
                                         ({"max_pairs": 401, "opt_pairs": 10}, r"<= 400 \(the ONNX model's max\)")])
def test_build_with_a_bad_profile(exported, tmp_path, kw, message):
    with pytest.raises(ValueError, match=message):
        build_tensorrt_engine(exported.onnx, tmp_path / "relation.engine", **kw)


def test_build_from_a_bad_onnx(tmp_path):
    with pytest.raises(ModelFileError, match="relation model not found"):
        build_tensorrt_engine(tmp_path / "missing.onnx", tmp_path / "relation.engine")


def test_no_gpu_refusals(exported, tmp_path):
    require_no_gpu()
    with pytest.raises(BackendUnavailable, match="no CUDA device"):
        import_tensorrt()
    with pytest.raises(RuntimeError, match="no CUDA device 0"):
        CudaDriver(0)
    eng = tmp_path / "relation.engine"
    eng.write_bytes(b"plan")
    sidecar_path(eng).write_text(json.dumps({**exported.info.sidecar, "tensorrt": {"engine_sha256":
                                                                                   sha256_file(eng)}}))
    with pytest.raises(BackendUnavailable, match="no CUDA device"):
        TrtRelationBackend(eng, exported.info)
    assert "tensorrt" not in sys.modules


def test_engine_backend_checks_the_file_before_the_gpu(tmp_path):
    with pytest.raises(ModelFileError, match="relation model not found"):
        TrtRelationBackend(tmp_path / "relation.engine")


# ------------------------------------------------------------------------------------------ real TensorRT


@pytest.fixture(scope="module")
def trt_engine(exported, tmp_path_factory):
    require_tensorrt()
    out = tmp_path_factory.mktemp("trt") / "relation.engine"
    return build_tensorrt_engine(exported.onnx, out, opt_pairs=64, timing_cache=out.with_name("timing.cache"))


def test_real_engine_sidecar_and_parity(exported, trt_engine):
    from export.verify import check_parity

    meta = trt_engine.sidecar["tensorrt"]
    assert meta["profile"] == {"min": 1, "opt": 64, "max": 400} and meta["engine_sha256"] == sha256_file(
        trt_engine.path)
    backend = TrtRelationBackend(trt_engine.path, exported.info)
    try:
        check_parity(exported.model, backend, atol=1e-3)  # TF32 on Ampere+ keeps ~1e-4..1e-3
    finally:
        backend.close()


def test_real_engine_refuses_another_gpu_name(exported, trt_engine):
    sc = sidecar_path(trt_engine.path)
    j = json.loads(sc.read_text())
    j["tensorrt"]["gpu_name"] = "Some Other GPU"
    sc.write_text(json.dumps(j))
    try:
        with pytest.raises(EngineMismatchError, match="built for GPU 'Some Other GPU'"):
            TrtRelationBackend(trt_engine.path, exported.info)
    finally:
        sc.write_text(json.dumps(trt_engine.sidecar, indent=1))
