"""Export the relation model's ``forward_step`` to ONNX with a dynamic pair count, plus its side-car.

Uses torch's default (dynamo) exporter with ``dynamic_shapes``: the legacy TorchScript exporter bakes the batch
size into attention reshapes (ENVIRONMENT.md section 2). Tensor names, ranks and dtypes come from
``engine.relate.relation_io`` (INPUTS / OUTPUTS), the one spec the engine's backends check the file against.

Output: ``relation.onnx`` with the side-car JSON in its ``metadata_props`` (key ``relation_io.METADATA_KEY``) and
``relation.json`` next to it (the same JSON plus the file's SHA-256). Both are written atomically (temp + rename),
the ONNX file first, so an interrupted export leaves a pair the engine refuses rather than a silent mismatch.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import warnings
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import onnx
import torch
from torch import nn

from engine.relate.relation_io import (INPUT_NAMES, INPUTS, IO_VERSION, METADATA_KEY, OUTPUT_NAMES, PAIR_VECTOR, PAIRS,
                                       SIDECAR_FORMAT, SIDECAR_VERSION, UNCERTAINTY, ModelInfo, encode_array,
                                       metadata_json, read_model_info, sha256_file, sidecar_path)
from offline_train.checkpoint import CheckpointMeta
from offline_train.embeddings import MODEL_NAME as EMBEDDING_MODEL
from offline_train.models.uasan import OpenVocabHead

log = logging.getLogger(__name__)

DEFAULT_MAX_PAIRS = 2048
EXPORTER = "torch.onnx.export(dynamo=True, dynamic_shapes)"


class StepGraph(nn.Module):
    """forward_step with the spec's argument names (torch.export keys dynamic_shapes by them), plus the optional
    outputs of ``model_outputs``: ``relation_io.UNCERTAINTY`` for a Bayesian head (``model.has_uncertainty``),
    ``relation_io.PAIR_VECTOR`` for an open-vocabulary head."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, feats, subj_label, obj_label, window, window_valid, prev_out):
        return step_outputs(self.model, feats, subj_label, obj_label, window, window_valid, prev_out)


def step_outputs(model: nn.Module, *args) -> tuple:
    """``model``'s exported outputs for forward_step's six inputs, in the order of ``model_outputs(model)``."""
    names = model_outputs(model)
    if names == OUTPUT_NAMES:
        return model.forward_step(*args)
    h, new_window, new_valid, e_t = model.step_features(*args)
    extra = {UNCERTAINTY.name: lambda: model.head.published_uncertainty(h),
             PAIR_VECTOR.name: lambda: model.head.pair_vectors(h)}
    return (model.head.scores(model.head(h)), new_window, new_valid, e_t,
            *(extra[n]() for n in names[len(OUTPUT_NAMES):]))


def model_outputs(model: nn.Module) -> tuple[str, ...]:
    """The graph outputs ``model`` exports: the spec's four, plus 'uncertainty' for a Bayesian head and
    'pair_vector' for an open-vocabulary head (UASAN's ``OpenVocabHead``)."""
    return OUTPUT_NAMES + ((UNCERTAINTY.name,) if getattr(model, "has_uncertainty", False) else ()) + (
        (PAIR_VECTOR.name,) if isinstance(model.head, OpenVocabHead) else ())


def open_vocab_sidecar(head: OpenVocabHead) -> dict:
    """The side-car's 'open_vocab' section (relation_io.OPEN_VOCAB_KEYS): what the engine needs to score any
    predicate text table from the ``pair_vector`` output in numpy (engine.relate.open_vocab)."""
    e = int(head.predicate_table.shape[1])
    ctx = head.context.detach() if hasattr(head, "context") else torch.zeros(e)  # no prompt context: add zeros
    return {"d_head": int(head.pred_proj.out_features), "embedding_model": EMBEDDING_MODEL, "embedding_dim": e,
            "pred_proj_weight": encode_array(head.pred_proj.weight.detach().cpu().numpy()),   # (d_head, E)
            "pred_proj_bias": encode_array(head.pred_proj.bias.detach().cpu().numpy()),       # (d_head,)
            "context": encode_array(ctx.cpu().numpy()),                                       # (E,)
            "log_scale": float(head.log_scale.detach()), "bias": float(head.bias.detach())}


def _version(pkg: str) -> str:
    try:
        return version(pkg)
    except PackageNotFoundError:
        return "unknown"


def build_sidecar(model: nn.Module, meta: CheckpointMeta, max_pairs: int) -> dict:
    """The side-car mapping of ``model`` (a StreamingRelationModel) and its checkpoint meta, without file hashes."""
    return json.loads(json.dumps({
        "format": SIDECAR_FORMAT, "format_version": SIDECAR_VERSION, "io_version": IO_VERSION,
        "outputs": list(model_outputs(model)),
        "model_version": int(meta.model_version), "feature_version": int(meta.feature_version),
        "num_features": int(meta.num_features), "feature_lag": int(meta.config["feature_lag"]),
        "window": int(model.window), "d_model": int(model.d_model), "max_pairs": int(max_pairs),
        "objects": list(meta.objects), "predicates": list(meta.predicates),
        "groups": [[n, k, list(i)] for n, k, i in meta.groups],
        "embedding_tables": {
            "model": EMBEDDING_MODEL,
            "objects": encode_array(model.tokenizer.label_table.detach().cpu().numpy()),
            "predicates": encode_array(model.head.predicate_table.detach().cpu().numpy()),
        },
        **({"open_vocab": open_vocab_sidecar(model.head)} if isinstance(model.head, OpenVocabHead) else {}),
        "train_config": meta.config,
        "checkpoint": {"epoch": meta.epoch, "step": meta.step, "metrics": meta.metrics},
        "exporter": {"method": EXPORTER, "torch": torch.__version__, "onnx": onnx.__version__,
                     "onnxscript": _version("onnxscript"), "vsgg": _version("vsgg")},
    }))


def example_inputs(model: nn.Module, num_features: int, num_objects: int, pairs: int, seed: int = 0):
    """Random (feats, subj_label, obj_label, window, window_valid, prev_out) torch tensors for ``pairs`` pairs."""
    g = torch.Generator().manual_seed(seed)
    h, d = model.window - 1, model.d_model
    return (torch.randn(pairs, num_features, generator=g), torch.randint(0, num_objects, (pairs,), generator=g),
            torch.randint(0, num_objects, (pairs,), generator=g), torch.randn(pairs, h, d, generator=g),
            (torch.rand(pairs, h, generator=g) > 0.3).float(), torch.randn(pairs, d, generator=g))


def _example_pairs(model: nn.Module, num_features: int, n_obj: int, n_pred: int) -> int:
    # torch.export ties a dynamic dim to any static dim of the same example size; pick a size no other dim has.
    taken = {0, 1, num_features, model.window, model.window - 1, model.d_model, n_obj, n_pred}
    return next(p for p in (5, 11, 13, 17, 19, 23, 37, 41) if p not in taken)


@contextlib.contextmanager
def _quiet_exporter():
    """Silence the exporter's known-harmless chatter (torchvision ops it skips, per-rewrite INFO logs, the note that
    all inputs share the 'pairs' axis) for the duration of one export; restores logger levels afterwards."""
    names = ("torch.onnx", "onnx_ir", "onnxscript")
    levels = {n: logging.getLogger(n).level for n in names}
    try:
        for n in names:
            logging.getLogger(n).setLevel(logging.ERROR)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*axis name.*will not be used.*")
            warnings.filterwarnings("ignore", message=".*LeafSpec.*", category=FutureWarning)
            yield
    finally:
        for n, lvl in levels.items():
            logging.getLogger(n).setLevel(lvl)


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def export_onnx(model: nn.Module, meta: CheckpointMeta, out_path: str | Path,
                max_pairs: int = DEFAULT_MAX_PAIRS) -> ModelInfo:
    """Write ``out_path`` (.onnx) and its side-car for ``model`` with checkpoint ``meta``; return the ModelInfo.

    max_pairs: the largest pair count the file is declared for (backends refuse more; TensorRT's profile max).
    The model is exported in eval mode (dropout off) and its training flag restored afterwards.
    """
    out = Path(out_path)
    if out.suffix != ".onnx":
        raise ValueError(f"out_path: expected a .onnx file name, got {out}")
    if not isinstance(max_pairs, int) or max_pairs < 1:
        raise ValueError(f"max_pairs: must be an integer >= 1, got {max_pairs!r}")
    n_obj, n_pred = len(meta.objects), len(meta.predicates)
    if model.tokenizer.label_table.shape[0] != n_obj or model.head.predicate_table.shape[0] != n_pred:
        raise ValueError(f"meta: {n_obj} objects / {n_pred} predicates do not match the model's embedding tables "
                         f"{tuple(model.tokenizer.label_table.shape)} / {tuple(model.head.predicate_table.shape)}")
    out.parent.mkdir(parents=True, exist_ok=True)
    sidecar = build_sidecar(model, meta, max_pairs)
    was_training = model.training
    graph = StepGraph(model).eval()
    try:
        p = _example_pairs(model, meta.num_features, n_obj, n_pred)
        args = example_inputs(model, meta.num_features, n_obj, p)
        pairs = torch.export.Dim(PAIRS, min=0, max=max_pairs)
        with torch.no_grad(), _quiet_exporter():
            program = torch.onnx.export(graph, args, dynamo=True, input_names=list(INPUT_NAMES),
                                        output_names=list(model_outputs(model)),
                                        dynamic_shapes={s.name: {0: pairs} for s in INPUTS}, verbose=False)
    finally:
        model.train(was_training)
    proto = program.model_proto
    sidecar["exporter"]["opset"] = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)
    onnx.helper.set_model_props(proto, {METADATA_KEY: metadata_json(sidecar)})
    onnx.checker.check_model(proto)
    _atomic_write(out, proto.SerializeToString())
    sidecar["onnx_sha256"] = sha256_file(out)
    _atomic_write(sidecar_path(out), json.dumps(sidecar, indent=1).encode())
    log.info("exported %s (%d bytes, max %d pairs) + %s", out, out.stat().st_size, max_pairs, sidecar_path(out).name)
    return read_model_info(out)


def export_checkpoint(checkpoint: str | Path, out_path: str | Path, max_pairs: int = DEFAULT_MAX_PAIRS):
    """Load a checkpoint directory (offline_train.checkpoint format) and export it. Returns (ModelInfo, model)."""
    from offline_train.train import load_model

    model, meta = load_model(checkpoint)
    return export_onnx(model, meta, out_path, max_pairs), model

