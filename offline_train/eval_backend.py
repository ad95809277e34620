"""An exported relation model (ONNX, or a TensorRT engine) as a `vsgg eval` stepper, through engine.backends.

`vsgg eval --model relation.onnx` (or a model directory) must score exactly what the engine would run, so the
stepper goes through ``engine.backends.load_relation_backend`` (the same validation, side-car checks and
TensorRT -> ORT-CUDA -> ORT-CPU fallback as ``vsgg run``). The frequency-prior baseline uses ``prior.npy`` next to
the model file, or in the ``checkpoint/`` folder beside it (the layout `vsgg release` writes).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from engine.backends import load_relation_backend
from engine.backends.base import RelationInputs, RelationState
from engine.config import RelationBackendConfig
from engine.vocab import Vocabulary
from offline_train.stepper import LoadedModel, read_prior


def load_backend_stepper(path: str | Path, backend: str = "auto"):
    """LoadedModel (offline_train.stepper) for a .onnx / .engine file or a directory holding relation.onnx.

    Pair counts above the backend's max_pairs are scored in chunks, so long videos with many entities still run.
    Raises engine.relate.relation_io.ModelFileError for a missing or mismatched model file or side-car.
    """
    rb = load_relation_backend(RelationBackendConfig(model_path=str(path), backend=backend))
    info = rb.info
    chunk = rb.max_pairs

    def step(feats, sl, ol, state):
        p = len(feats)
        if p <= chunk:
            scores, new = rb.step(RelationInputs(feats, sl.astype(np.int64), ol.astype(np.int64)),
                                  RelationState(*state))
            return scores, tuple(new)
        parts = [step(feats[i:i + chunk], sl[i:i + chunk], ol[i:i + chunk], tuple(s[i:i + chunk] for s in state))
                 for i in range(0, p, chunk)]
        return (np.concatenate([s for s, _ in parts]),
                tuple(np.concatenate([n[k] for _, n in parts]) for k in range(3)))

    def init(p):
        return tuple(info.initial_state(p))

    objects, predicates = Vocabulary("objects", info.objects), Vocabulary("predicates", info.predicates)
    here = info.path.parent
    prior_dir = here if (here / "prior.npy").is_file() else here / "checkpoint"
    return LoadedModel(f"{rb.name}:{info.path}", step, init, objects, predicates, info.feature_lag,
                       read_prior(prior_dir, len(objects), len(predicates)), dict(info.train_config))
