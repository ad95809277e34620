"""A relation model as a causal per-frame stepper for evaluation: a torch checkpoint, or an exported model through
engine.backends (offline_train.eval_backend). ``load_stepper`` picks by what the path holds."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from engine.relate.relation_io import DEFAULT_MODEL_DIR
from engine.vocab import Vocabulary



@dataclass
class LoadedModel:
    """What evaluation needs of a model. step(feats (P, F) float32, subj labels (P,), obj labels (P,), state) ->
    (scores (P, C_pred) float32 in [0, 1], new state); init_state(P) -> the empty state for P pairs; lag: motion
    feature lag in observations (engine.relate.features.BoxHistory)."""

    name: str
    step: Callable
    init_state: Callable[[int], tuple]
    objects: Vocabulary
    predicates: Vocabulary
    lag: int
    prior: np.ndarray | None      # (C_obj, C_obj, C_pred) frequency prior from the training data, if shipped
    train_config: dict = field(default_factory=dict)  # the TrainConfig it was trained with, as a dict


def read_prior(path: Path, n_obj: int, n_pred: int) -> np.ndarray | None:
    """The (n_obj, n_obj, n_pred) frequency prior ``prior.npy`` in folder ``path``, or None when there is none."""
    f = path / "prior.npy"
    if not f.is_file():
        return None
    prior = np.load(f, allow_pickle=False)
    if prior.shape != (n_obj, n_obj, n_pred):
        raise ValueError(f"{f}: shape {prior.shape} does not match the model vocabularies")
    return prior


def load_torch_stepper(path: str | Path) -> LoadedModel:
    import torch

    from offline_train.train import load_model
    # one step is a few small matmuls: extra threads only add synchronisation (and fight other processes)
    torch.set_num_threads(1)
    model, meta = load_model(path)

    def step(feats, sl, ol, state):
        with torch.no_grad():
            scores, *new = model.forward_step(torch.from_numpy(feats), torch.from_numpy(sl).long(),
                                              torch.from_numpy(ol).long(), *(torch.from_numpy(s) for s in state))
        return scores.numpy(), tuple(n.numpy() for n in new)

    def init(p):
        return tuple(s.numpy() for s in model.initial_state(p))

    objects, predicates = Vocabulary("objects", meta.objects), Vocabulary("predicates", meta.predicates)
    return LoadedModel(f"torch:{path}", step, init, objects, predicates, int(meta.config["feature_lag"]),
                       read_prior(Path(path), len(objects), len(predicates)), dict(meta.config))


def load_stepper(path: str | Path | None) -> LoadedModel:
    """A checkpoint directory (checkpoint.json) runs in torch; anything else goes through engine.backends."""
    p = Path(path) if path is not None else DEFAULT_MODEL_DIR / "checkpoint"
    if (p / "checkpoint.json").is_file():
        return load_torch_stepper(p)
    if not p.exists():
        raise FileNotFoundError(f"model not found: {p}")
    from offline_train.eval_backend import load_backend_stepper
    return load_backend_stepper(p)
