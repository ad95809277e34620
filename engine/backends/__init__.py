"""load_relation_backend(cfg): picks the runtime for the relation model, falling back TensorRT -> ORT-CUDA -> ORT-CPU.

The ONNX model and its side-car are validated first (engine.relate.relation_io.read_model_info); a bad model file is an
error, never a reason to fall back. Then the chain is tried from ``cfg.backend`` ("auto" = from the top); a step
that cannot run on this machine (no GPU, no TensorRT, no CUDA provider, an engine built for another TensorRT/GPU
or from another ONNX file) is skipped, and one log line says which runtime runs and why the others were skipped.
ORT on CPU always runs. Runtime libraries are imported only when their step is tried.
"""
from __future__ import annotations

import logging
from pathlib import Path

from engine.backends.base import BackendUnavailable, RelationBackend, RelationInputs, RelationOutputs, RelationState
from engine.config import RelationBackendConfig
from engine.relate.relation_io import ModelFileError, ModelInfo, read_model_info

__all__ = ["BackendUnavailable", "RelationBackend", "RelationInputs", "RelationOutputs", "RelationState", "CHAIN",
           "load_relation_backend", "make_backend", "default_engine_path"]

log = logging.getLogger(__name__)

CHAIN = ("tensorrt", "ort-cuda", "ort-cpu")


def default_engine_path(onnx_path: str | Path) -> Path:
    """relation.onnx -> relation.engine next to it."""
    return Path(onnx_path).with_suffix(".engine")


def make_backend(name: str, cfg: RelationBackendConfig, info: ModelInfo, objects=None,
                 predicates=None) -> RelationBackend:
    """One runtime of the chain, no fallback. Raises BackendUnavailable where it cannot run here."""
    if name == "ort-cpu":
        from engine.backends.ort import OrtRelationBackend
        return OrtRelationBackend(info, "ort-cpu", cfg.threads, cfg.max_pairs)
    if name == "ort-cuda":
        from engine.backends.cuda_driver import cuda_device_count
        from engine.backends.ort import OrtRelationBackend, ort_cuda_available
        if not ort_cuda_available():
            raise BackendUnavailable("this onnxruntime has no CUDAExecutionProvider (install onnxruntime-gpu)")
        if cuda_device_count() == 0:
            raise BackendUnavailable("no CUDA device")
        return OrtRelationBackend(info, "ort-cuda", cfg.threads, cfg.max_pairs)
    if name == "tensorrt":
        engine = Path(cfg.tensorrt_engine) if cfg.tensorrt_engine else default_engine_path(info.path)
        if not engine.is_file():
            raise BackendUnavailable(f"no TensorRT engine at {engine} (build one with vsgg export --tensorrt)")
        from engine.backends.trt import TrtRelationBackend
        return TrtRelationBackend(engine, info, objects=objects, predicates=predicates, max_pairs=cfg.max_pairs)
    raise ValueError(f"backend: unknown runtime {name!r} (known: {', '.join(CHAIN)})")


def load_relation_backend(cfg: RelationBackendConfig | None = None, *, objects=None,
                          predicates=None) -> RelationBackend:
    """The first runtime of the chain that runs here, starting at ``cfg.backend``.

    objects / predicates: the caller's vocabularies (engine.vocab.Vocabulary); a model trained for others is
    refused with ModelFileError. Raises ModelFileError for a missing/corrupt/mismatched ONNX model or side-car,
    ValueError for a max_pairs above the model's.
    """
    cfg = RelationBackendConfig() if cfg is None else cfg
    if not isinstance(cfg, RelationBackendConfig):
        raise TypeError(f"cfg: expected RelationBackendConfig, got {type(cfg).__name__}")
    info = read_model_info(cfg.model_path or None, objects=objects, predicates=predicates)
    if cfg.max_pairs > info.max_pairs:
        raise ValueError(f"relation.max_pairs {cfg.max_pairs} exceeds the model file's maximum {info.max_pairs} "
                         f"({info.path}); re-export with a larger --max-pairs")
    start = 0 if cfg.backend == "auto" else CHAIN.index(cfg.backend)
    skipped = []
    for name in CHAIN[start:]:
        try:
            backend = make_backend(name, cfg, info, objects, predicates)
        except (BackendUnavailable, ModelFileError, RuntimeError, OSError) as e:
            if name == "ort-cpu":
                raise
            skipped.append(f"{name}: {e}")
            continue
        detail = f", {cfg.threads or 'default'} thread(s)" if name == "ort-cpu" else ""
        why = f"; skipped {' | '.join(skipped)}" if skipped else ""
        # Falling back from a runtime the config asked for by name deserves a warning; from "auto" it is routine.
        level = logging.WARNING if skipped and cfg.backend != "auto" else logging.INFO
        log.log(level, "relation model %s runs on %s (asked for %s%s)%s", info.path, name, cfg.backend, detail, why)
        return backend
    raise AssertionError("unreachable: ort-cpu either runs or raises")
