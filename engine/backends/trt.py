"""TrtRelationBackend: runs a serialized TensorRT engine built by ``export/to_tensorrt.py`` from relation.onnx.

An engine is specific to the TensorRT version and the GPU it was built on. Its side-car (``relation.engine.json``)
records both, plus the SHA-256 of the ONNX model it came from; this backend refuses an engine built for another
TensorRT version or GPU, or from another ONNX file, before TensorRT deserializes anything.

TensorRT is imported lazily and only after ``cuda_device_count() > 0``: TensorRT objects made without a working CUDA
device crash the process when destroyed. Buffers for ``max_pairs`` pairs are allocated once; a step copies the
inputs in, runs ``execute_async_v3`` on one stream and copies the outputs back (synchronous for the caller).
P = 0 returns empty outputs without running the engine (the optimisation profile starts at 1 pair).
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from engine.backends.base import BackendUnavailable, RelationBackend
from engine.backends.cuda_driver import CudaDriver, cuda_device_count
from engine.relate.relation_io import (INPUTS, PAIRS, ModelFileError, ModelInfo, check_io_signature,
                                read_model_info)

log = logging.getLogger(__name__)


class EngineMismatchError(ModelFileError):
    """A TensorRT engine built for another TensorRT version, GPU, or ONNX model than the one at hand."""


def import_tensorrt():
    """The tensorrt module, only when a CUDA device exists; BackendUnavailable with the reason otherwise."""
    if cuda_device_count() == 0:
        raise BackendUnavailable("no CUDA device (NVIDIA driver or GPU missing)")
    try:
        import tensorrt
    except ImportError as e:
        raise BackendUnavailable(f"TensorRT is not installed ({e})") from None
    return tensorrt


def check_engine_sidecar(info: ModelInfo, onnx_info: ModelInfo | None, trt_version: str, gpu_name: str) -> dict:
    """Refuse an engine whose side-car names another TensorRT version, GPU, or source ONNX. Returns its 'tensorrt'."""
    meta = info.sidecar.get("tensorrt")
    if not isinstance(meta, dict):
        raise ModelFileError(f"{info.path}: side-car has no 'tensorrt' section; not an engine written by vsgg export")
    if meta.get("version") != trt_version:
        raise EngineMismatchError(f"{info.path}: built with TensorRT {meta.get('version')}, this machine has "
                                  f"{trt_version}; rebuild it here (vsgg export --tensorrt)")
    if meta.get("gpu_name") != gpu_name:
        raise EngineMismatchError(f"{info.path}: built for GPU '{meta.get('gpu_name')}', this machine has "
                                  f"'{gpu_name}'; rebuild it here (vsgg export --tensorrt)")
    if onnx_info is not None and info.sidecar.get("onnx_sha256") != onnx_info.sidecar.get("onnx_sha256"):
        raise EngineMismatchError(f"{info.path}: built from another ONNX model than {onnx_info.path} (stale engine); "
                                  "rebuild it (vsgg export --tensorrt)")
    return meta


class TrtRelationBackend(RelationBackend):
    """The relation model as a TensorRT engine on CUDA device ``device``.

    engine_path: the engine file (side-car next to it). onnx_info: the ONNX model's ModelInfo the engine must come
    from (None = not checked). objects/predicates: optional vocabularies to check. max_pairs: 0 = the profile's max.
    Raises BackendUnavailable (no GPU / no TensorRT), EngineMismatchError or ModelFileError (wrong or bad engine).
    """

    _skip_empty = True

    def __init__(self, engine_path: str | Path, onnx_info: ModelInfo | None = None, *, objects=None,
                 predicates=None, max_pairs: int = 0, device: int = 0):
        self._driver = None
        info = read_model_info(engine_path, objects=objects, predicates=predicates)
        trt = import_tensorrt()
        driver = CudaDriver(device)
        try:
            meta = check_engine_sidecar(info, onnx_info, trt.__version__, driver.device_name())
            if max_pairs < 0 or max_pairs > info.max_pairs:
                raise ValueError(f"max_pairs: must be in [0, {info.max_pairs}] (the engine's profile max), got "
                                 f"{max_pairs}")
            self._logger = trt.Logger(trt.Logger.WARNING)
            self._runtime = trt.Runtime(self._logger)
            self._engine = self._runtime.deserialize_cuda_engine(Path(info.path).read_bytes())
            if self._engine is None:
                raise ModelFileError(f"{info.path}: TensorRT could not deserialize the engine (see its log above)")
            self._context = self._engine.create_execution_context()
            self._driver = driver
        except BaseException:
            self._context = self._engine = self._runtime = None  # TensorRT objects go before the context
            driver.close()
            raise
        self.info, self.name = info, "tensorrt"
        self.max_pairs = max_pairs or info.max_pairs
        self.fp16 = bool(meta.get("fp16"))
        self._dtypes = self._check_io(trt)
        sizes = {**info.dims, PAIRS: self.max_pairs}
        self._buffers = {}
        for spec in INPUTS + info.output_specs:  # optional outputs too where the side-car lists them
            n = int(np.prod(spec.shape(sizes))) * np.dtype(self._dtypes[spec.name]).itemsize
            self._buffers[spec.name] = self._driver.alloc(n)
            self._context.set_tensor_address(spec.name, self._buffers[spec.name])
        log.info("TensorRT engine %s on %s (TensorRT %s, fp16=%s, max %d pairs)", info.path,
                 meta.get("gpu_name"), trt.__version__, self.fp16, self.max_pairs)

    def _check_io(self, trt) -> dict[str, np.dtype]:
        """Engine I/O against the spec; labels may have become int32 inside TensorRT. Returns each tensor's dtype."""
        got_in, got_out, dtypes = {}, {}, {}
        for i in range(self._engine.num_io_tensors):
            name = self._engine.get_tensor_name(i)
            dt = np.dtype(trt.nptype(self._engine.get_tensor_dtype(name)))
            dtypes[name] = dt
            shape = tuple(d if d >= 0 else None for d in self._engine.get_tensor_shape(name))
            is_in = self._engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT
            (got_in if is_in else got_out)[name] = (shape, np.int64 if dt == np.int32 else dt)
            if is_in:
                hi = self._engine.get_tensor_profile_shape(name, 0)[2][0]
                if hi < self.max_pairs:
                    raise ModelFileError(f"{self.info.path}: profile max {hi} pairs < max_pairs {self.max_pairs}")
        check_io_signature(got_in, got_out, self.info, str(self.info.path))
        return dtypes

    def _run(self, feed):
        p = len(feed["feats"])
        keep = []
        for spec in INPUTS:
            a = np.ascontiguousarray(feed[spec.name], dtype=self._dtypes[spec.name])
            keep.append(a)
            self._context.set_input_shape(spec.name, a.shape)
            self._driver.to_device(self._buffers[spec.name], a)
        if not self._context.execute_async_v3(self._driver.stream):
            raise RuntimeError("TensorRT execute_async_v3 failed (see the TensorRT log)")
        shapes = self.info.shapes(p)
        specs = self.info.output_specs  # the order of info.outputs, as RelationBackend._run returns them
        out = [np.empty(shapes[s.name], self._dtypes[s.name]) for s in specs]
        for spec, host in zip(specs, out):
            self._driver.to_host(host, self._buffers[spec.name])
        self._driver.sync()
        return tuple(o.astype(np.float32, copy=False) for o in out)

    def close(self) -> None:
        """Destroy TensorRT objects before the CUDA context goes away, then free device memory."""
        if self._driver is None:
            return
        self._context = self._engine = self._runtime = None
        self._driver.close()
        self._driver = None

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass
