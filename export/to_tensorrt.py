"""Build a TensorRT engine from an exported relation.onnx with TensorRT's Python API, plus the engine's side-car.

ONNX -> ``trt.OnnxParser`` -> one optimisation profile over the pair count (min / opt / max; every input shares
the 'pairs' dimension) -> optional FP16 -> ``build_serialized_network``, with a timing cache that is loaded from and
saved back to disk so rebuilds are fast. The side-car (``<engine>.json``) is the ONNX side-car plus a ``tensorrt``
section: TensorRT version, GPU name and compute capability, precision, profile and the engine's SHA-256; the
TensorRT backend refuses an engine whose version or GPU differ from the machine's.

torch2trt is not used: its only PyPI release (torch2trt-unofficial 0.0.3, 2020) targets the TensorRT 7 API that
TensorRT 8/10 removed. TensorRT itself cannot be installed on the project's CPU machines (no wheel of the libraries
on PyPI); everything TensorRT is imported lazily, after a CUDA device has been found.
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from engine.backends.cuda_driver import CudaDriver
from engine.backends.trt import import_tensorrt
from engine.relate.relation_io import INPUTS, PAIRS, ModelInfo, read_model_info, sha256_file, sidecar_path

log = logging.getLogger(__name__)


def profile_shapes(info: ModelInfo, pairs: int) -> dict[str, tuple[int, ...]]:
    """Every input's shape at ``pairs`` pairs (one entry of the optimisation profile)."""
    sizes = {**info.dims, PAIRS: pairs}
    return {s.name: s.shape(sizes) for s in INPUTS}


def build_tensorrt_engine(onnx_path: str | Path, engine_path: str | Path, *, fp16: bool = False,
                          min_pairs: int = 1, opt_pairs: int = 380, max_pairs: int = 0, workspace_mib: int = 1024,
                          timing_cache: str | Path | None = None, device: int = 0) -> ModelInfo:
    """Build ``engine_path`` (+ side-car) from a vsgg relation.onnx; return the engine's ModelInfo.

    min/opt/max_pairs: the optimisation profile (max 0 = the ONNX model's max_pairs); TensorRT tunes kernels for
    ``opt_pairs`` (the engine's default pairs.max_pairs, 20 entities). fp16: allow half-precision kernels.
    timing_cache: file to read (if present) and update. Raises BackendUnavailable without a GPU or TensorRT,
    ValueError for a bad profile, RuntimeError when parsing or building fails.
    """
    onnx_info = read_model_info(onnx_path)
    max_pairs = max_pairs or onnx_info.max_pairs
    if not 1 <= min_pairs <= opt_pairs <= max_pairs <= onnx_info.max_pairs:
        raise ValueError(f"profile: need 1 <= min_pairs <= opt_pairs <= max_pairs <= {onnx_info.max_pairs} (the ONNX "
                         f"model's max), got {min_pairs}, {opt_pairs}, {max_pairs}")
    out = Path(engine_path)
    trt = import_tensorrt()  # raises BackendUnavailable before any TensorRT object exists
    driver = CudaDriver(device)
    try:
        gpu, cc = driver.device_name(), driver.compute_capability()
        blob, cache_blob = _build(trt, onnx_info, fp16, (min_pairs, opt_pairs, max_pairs), workspace_mib,
                                  Path(timing_cache) if timing_cache else None)
    finally:
        driver.close()
    out.parent.mkdir(parents=True, exist_ok=True)
    _atomic_write(out, blob)
    if timing_cache:
        _atomic_write(Path(timing_cache), cache_blob)
    sidecar = dict(onnx_info.sidecar)
    sidecar["max_pairs"] = max_pairs
    sidecar["tensorrt"] = {"version": trt.__version__, "gpu_name": gpu, "compute_capability": cc, "fp16": fp16,
                           "profile": {"min": min_pairs, "opt": opt_pairs, "max": max_pairs},
                           "workspace_mib": workspace_mib, "source_onnx": onnx_info.path.name,
                           "engine_sha256": sha256_file(out)}
    _atomic_write(sidecar_path(out), json.dumps(sidecar, indent=1).encode())
    log.info("TensorRT %s engine %s for %s (fp16=%s, pairs %d/%d/%d)", trt.__version__, out, gpu, fp16,
             min_pairs, opt_pairs, max_pairs)
    return read_model_info(out)


def _build(trt, info: ModelInfo, fp16: bool, profile: tuple[int, int, int], workspace_mib: int,
           cache_file: Path | None) -> tuple[bytes, bytes]:
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    # TensorRT >= 10 networks are always explicit-batch; older versions need the flag.
    flags = 0 if int(trt.__version__.split(".")[0]) >= 10 else 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(info.path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f"{info.path}: TensorRT's ONNX parser failed: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_mib) << 20)
    if fp16:
        if not builder.platform_has_fast_fp16:
            log.warning("this GPU has no fast FP16; building with the FP16 flag anyway")
        config.set_flag(trt.BuilderFlag.FP16)
    opt_profile = builder.create_optimization_profile()
    lo, mid, hi = (profile_shapes(info, p) for p in profile)
    for name in lo:
        opt_profile.set_shape(name, lo[name], mid[name], hi[name])
    config.add_optimization_profile(opt_profile)
    cache = config.create_timing_cache(cache_file.read_bytes() if cache_file and cache_file.is_file() else b"")
    config.set_timing_cache(cache, ignore_mismatch=False)
    blob = builder.build_serialized_network(network, config)
    if blob is None:
        raise RuntimeError(f"{info.path}: TensorRT engine build failed (see the TensorRT log above)")
    return bytes(blob), bytes(config.get_timing_cache().serialize())


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
