"""OrtRelationBackend: runs an exported relation.onnx with onnxruntime, on CPU or with the CUDA provider.

Session settings (measured with ``vsgg bench model`` and onnxruntime's profiler on a 2-core x86 machine, d_model 64,
380 pairs): all graph optimisations except ``SkipLayerNormFusion`` (its fused CPU kernel was ~10 % slower than
Add + LayerNormalization at these shapes); the projections of the constant label/predicate embedding tables are
folded at session start. One intra-op thread is the default: on a machine whose cores are shared with the rest of
the pipeline, a second thread that spins for work made a step 2x slower, so extra threads are created with spinning
off.
"""
from __future__ import annotations

import logging

import numpy as np

from engine.backends.base import BackendUnavailable, RelationBackend
from engine.relate.relation_io import ModelFileError, ModelInfo, check_io_signature, check_metadata

log = logging.getLogger(__name__)

_ORT_TYPES = {"tensor(float)": np.float32, "tensor(int64)": np.int64, "tensor(int32)": np.int32,
              "tensor(float16)": np.float16, "tensor(double)": np.float64}
_PROVIDERS = {"ort-cpu": ["CPUExecutionProvider"], "ort-cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"]}


def ort_cuda_available() -> bool:
    """True when this onnxruntime build has the CUDA execution provider (onnxruntime-gpu)."""
    import onnxruntime as ort
    return "CUDAExecutionProvider" in ort.get_available_providers()


class OrtRelationBackend(RelationBackend):
    """The relation model in an onnxruntime InferenceSession.

    info: the validated ModelInfo of the file (engine.relate.relation_io.read_model_info).
    device: "ort-cpu" or "ort-cuda". threads: CPU intra-op threads (0 = onnxruntime's default, one per core).
    max_pairs: largest P accepted (<= info.max_pairs; 0 = info.max_pairs).
    Raises ModelFileError when onnxruntime cannot load the file or its graph does not match the I/O spec and
    side-car, and BackendUnavailable when "ort-cuda" is asked for but the session did not get the CUDA provider.
    """

    def __init__(self, info: ModelInfo, device: str = "ort-cpu", threads: int = 1, max_pairs: int = 0):
        if device not in _PROVIDERS:
            raise ValueError(f"device: expected 'ort-cpu' or 'ort-cuda', got {device!r}")
        if threads < 0:
            raise ValueError(f"threads: must be >= 0, got {threads}")
        if max_pairs < 0 or max_pairs > info.max_pairs:
            raise ValueError(f"max_pairs: must be in [0, {info.max_pairs}] (the model file's maximum), got {max_pairs}")
        import onnxruntime as ort  # lazy: engine users without a relation model never load it

        self.info, self.name = info, device
        self.max_pairs = max_pairs or info.max_pairs
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.inter_op_num_threads = 1
        opts.intra_op_num_threads = threads
        if threads != 1:
            opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        disabled = ["SkipLayerNormFusion"] if device == "ort-cpu" else []
        try:
            self._session = ort.InferenceSession(str(info.path), sess_options=opts, providers=_PROVIDERS[device],
                                                 disabled_optimizers=disabled)
        except Exception as e:  # onnxruntime raises its own exception types for unreadable or invalid models
            raise ModelFileError(f"{info.path}: onnxruntime cannot load the model: {e}") from e
        if device == "ort-cuda" and self._session.get_providers()[0] != "CUDAExecutionProvider":
            raise BackendUnavailable(f"onnxruntime did not start the CUDA provider (got {self._session.get_providers()})")
        check_metadata(info, self._session.get_modelmeta().custom_metadata_map)
        sig = {}
        for kind, args in (("in", self._session.get_inputs()), ("out", self._session.get_outputs())):
            sig[kind] = {a.name: (tuple(d if isinstance(d, int) else None for d in a.shape),
                                  _ORT_TYPES.get(a.type, np.void)) for a in args}
        check_io_signature(sig["in"], sig["out"], info, str(info.path))
        self._output_names = list(info.outputs)  # optional outputs after the four where the side-car lists them

    @property
    def providers(self) -> tuple[str, ...]:
        return tuple(self._session.get_providers())

    def _run(self, feed):
        out = self._session.run(self._output_names, feed)
        return tuple(out)

    def close(self) -> None:
        self._session = None
