"""Checkpoint format read by export/ and `vsgg eval`: weights in safetensors, everything else in JSON. No pickle.

A checkpoint is a directory::

    model.safetensors      model weights (incl. the label/predicate embedding tables and feature statistics)
    optimizer.safetensors  optimizer tensors (resume only; absent in shipped models)
    checkpoint.json        {format, model_version, feature_version, config, objects, predicates, groups,
                            epoch, step, optimizer (non-tensor state), history, metrics}
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from engine.relate.features import FEATURE_VERSION, NUM_FEATURES
from engine.vocab import Vocabulary

FORMAT = "vsgg-relation-checkpoint"
FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint that is missing, truncated, or made for another version or vocabulary."""


@dataclass
class CheckpointMeta:
    config: dict                     # the full TrainConfig as a dict
    objects: tuple[str, ...]
    predicates: tuple[str, ...]
    groups: tuple                    # ((name, kind, (indices...)), ...)
    model_version: int
    feature_version: int = FEATURE_VERSION
    num_features: int = NUM_FEATURES
    epoch: int = 0
    step: int = 0
    optimizer: dict = field(default_factory=dict)
    history: list = field(default_factory=list)
    metrics: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"format": FORMAT, "format_version": FORMAT_VERSION, "model_version": self.model_version,
                "feature_version": self.feature_version, "num_features": self.num_features, "config": self.config,
                "objects": list(self.objects), "predicates": list(self.predicates),
                "groups": [[n, k, list(i)] for n, k, i in self.groups], "epoch": self.epoch, "step": self.step,
                "optimizer": self.optimizer, "history": self.history, "metrics": self.metrics}


def _split_optimizer(state: dict) -> tuple[dict[str, torch.Tensor], dict]:
    tensors, rest = {}, {"param_groups": state["param_groups"], "state": {}}
    for pid, s in state["state"].items():
        rest["state"][str(pid)] = {}
        for k, v in s.items():
            if torch.is_tensor(v):
                tensors[f"{pid}.{k}"] = v.contiguous()
            else:
                rest["state"][str(pid)][k] = v
    return tensors, rest


def _join_optimizer(tensors: dict[str, torch.Tensor], rest: dict) -> dict:
    state = {int(pid): dict(s) for pid, s in rest["state"].items()}
    for key, v in tensors.items():
        pid, k = key.split(".", 1)
        state.setdefault(int(pid), {})[k] = v
    return {"param_groups": rest["param_groups"], "state": state}


def _umask() -> int:
    """The process umask, read without changing it where /proc allows (os.umask can only set-and-return)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    old = os.umask(0o022)
    os.umask(old)
    return old


def _save_tensors(tensors: dict, target: Path) -> None:
    """safetensors file written atomically (an interrupted save never leaves a half-written file), with the
    permissions of any file this process creates: safetensors' writer makes its file 0600, which hides a shipped
    model from other users."""
    tmp = target.with_name(target.name + ".tmp")
    save_file(tensors, str(tmp))
    os.chmod(tmp, 0o666 & ~_umask())
    tmp.replace(target)


def save_checkpoint(path: str | Path, model: torch.nn.Module, meta: CheckpointMeta,
                    optimizer: torch.optim.Optimizer | None = None) -> Path:
    d = Path(path)
    d.mkdir(parents=True, exist_ok=True)
    sd = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    _save_tensors(sd, d / "model.safetensors")
    if optimizer is not None:
        tensors, rest = _split_optimizer(optimizer.state_dict())
        _save_tensors(tensors, d / "optimizer.safetensors")
        meta.optimizer = rest
    (d / "checkpoint.json.tmp").write_text(json.dumps(meta.to_json(), indent=1))
    (d / "checkpoint.json.tmp").replace(d / "checkpoint.json")
    return d


def read_meta(path: str | Path) -> CheckpointMeta:
    d = Path(path)
    f = d / "checkpoint.json"
    if not f.is_file():
        raise CheckpointError(f"not a vsgg checkpoint: {f} is missing")
    try:
        j = json.loads(f.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{f} is corrupt or truncated: {e}") from e
    if not isinstance(j, dict) or j.get("format") != FORMAT:
        raise CheckpointError(f"{f}: not a {FORMAT} file")
    if j.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{f}: checkpoint format version {j.get('format_version')}, this code reads "
                              f"{FORMAT_VERSION}")
    if j.get("feature_version") != FEATURE_VERSION or j.get("num_features") != NUM_FEATURES:
        raise CheckpointError(f"{f}: made for pair-feature version {j.get('feature_version')} "
                              f"({j.get('num_features')} features); this code computes version {FEATURE_VERSION} "
                              f"({NUM_FEATURES} features). Retrain or use a matching vsgg version.")
    try:
        return CheckpointMeta(config=j["config"], objects=tuple(j["objects"]), predicates=tuple(j["predicates"]),
                              groups=tuple((n, k, tuple(i)) for n, k, i in j["groups"]),
                              model_version=int(j["model_version"]), feature_version=j["feature_version"],
                              num_features=j["num_features"], epoch=int(j.get("epoch", 0)), step=int(j.get("step", 0)),
                              optimizer=j.get("optimizer", {}), history=j.get("history", []),
                              metrics=j.get("metrics", {}))
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{f}: missing or malformed field ({e})") from e


def load_weights(path: str | Path) -> dict[str, torch.Tensor]:
    f = Path(path) / "model.safetensors"
    if not f.is_file():
        raise CheckpointError(f"checkpoint weights missing: {f}")
    try:
        return load_file(str(f))
    except Exception as e:  # safetensors raises its own error types for truncated/corrupt headers
        raise CheckpointError(f"{f} is corrupt or truncated: {e}") from e


def load_optimizer_state(path: str | Path, meta: CheckpointMeta) -> dict | None:
    f = Path(path) / "optimizer.safetensors"
    if not f.is_file() or not meta.optimizer:
        return None
    try:
        return _join_optimizer(load_file(str(f)), meta.optimizer)
    except Exception as e:
        raise CheckpointError(f"{f} is corrupt or truncated: {e}") from e


def check_vocabulary(meta: CheckpointMeta, objects: Vocabulary, predicates: Vocabulary, where: str) -> None:
    """Refuse a checkpoint whose vocabularies differ from the ones the caller uses."""
    if tuple(objects.names) != meta.objects:
        raise CheckpointError(f"{where}: checkpoint object vocabulary ({len(meta.objects)} names) differs from "
                              f"'{objects.name}' ({len(objects)} names)")
    if tuple(predicates.names) != meta.predicates:
        raise CheckpointError(f"{where}: checkpoint predicate vocabulary ({len(meta.predicates)} names) differs "
                              f"from '{predicates.name}' ({len(predicates)} names)")
