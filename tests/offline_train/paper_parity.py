"""Shared by the test_papers_* files: causality checks and ONNX export parity of a switched-on model config."""
from __future__ import annotations

import numpy as np
import torch

from engine.config import to_dict
from engine.relate.features import FEATURE_VERSION, NUM_FEATURES
from offline_train.models import MODEL_VERSION, ModelConfig, build_model

OBJECTS = ("person", "dog", "car", "ball", "bicycle")
PREDICATES = ("walk_toward", "walk_away", "run_toward", "run_past", "taller", "watch", "bite", "behind", "front")


def small_model(cfg: ModelConfig, seed: int = 0, counts=None, num_features: int = NUM_FEATURES, groups=None):
    """A tiny model of ``cfg`` with random unit-norm text tables (5 objects, 9 predicates); eval mode."""
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)

    def table(n):
        t = torch.randn(n, 384, generator=g)
        return t / t.norm(dim=1, keepdim=True)

    groups = groups or (("all", "sigmoid", tuple(range(len(PREDICATES)))),)
    model = build_model(cfg, num_features, table(len(OBJECTS)), table(len(PREDICATES)), groups)
    if counts is not None:
        from offline_train.models.fremure import set_predicate_frequency
        set_predicate_frequency(model, counts, cfg.fremure.freq_eps)
    with torch.no_grad():
        model.tokenizer.feat_mean.copy_(torch.randn(num_features, generator=g) * 0.1)
        model.tokenizer.feat_std.copy_(torch.rand(num_features, generator=g) + 0.5)
    return model.eval()


def random_clip(t_len=10, p=4, num_features=NUM_FEATURES, seed=1):
    g = torch.Generator().manual_seed(seed)
    feats = torch.randn(t_len, p, num_features, generator=g)
    present = torch.rand(t_len, p, generator=g) > 0.3
    subj = torch.randint(0, len(OBJECTS), (p,), generator=g)
    obj = torch.randint(0, len(OBJECTS), (p,), generator=g)
    return feats, subj, obj, present


def run_steps(model, feats, subj, obj, present):
    """forward_step logits frame by frame with a per-pair state store (as the engine streams)."""
    t_len, p, _ = feats.shape
    win, val, prev = model.initial_state(p)
    out = torch.full((t_len, p, model.head.predicate_table.shape[0]), float("nan"))
    for t in range(t_len):
        ix = torch.nonzero(present[t]).flatten()
        if len(ix) == 0:
            continue
        logits, nw, nv, ne = model.step_logits(feats[t, ix], subj[ix], obj[ix], win[ix], val[ix], prev[ix])
        out[t, ix] = logits
        win[ix], val[ix], prev[ix] = nw, nv, ne
    return out


def assert_causal(model):
    """forward_step streamed equals forward_clip, and changing frames >= 6 leaves frames < 6 bit-identical."""
    feats, subj, obj, present = random_clip()
    with torch.no_grad():
        a = model.forward_clip(feats, subj, obj, present)
        b = run_steps(model, feats, subj, obj, present)
        f2, p2 = feats.clone(), present.clone()
        f2[6:] = torch.randn_like(f2[6:]) * 5
        p2[6:] = ~p2[6:]
        c = model.forward_clip(f2, subj, obj, p2)
    assert torch.isfinite(a[present]).all()
    np.testing.assert_allclose(a[present].numpy(), b[present].numpy(), atol=1e-5)
    m = present[:6]
    np.testing.assert_array_equal(a[:6][m].numpy(), c[:6][m].numpy())
    later = present[6:] & p2[6:]
    if later.any():
        assert (a[6:][later] - c[6:][later]).abs().max() > 1e-4  # the perturbation does reach the future


def export_parity(model, cfg: ModelConfig, tmp_path, pairs=(0, 1, 7), steps=3):
    """Save ``model`` (built from ``cfg`` by ``small_model``) as a checkpoint, export it with the project's exporter
    (export_checkpoint: reload from the config, then ONNX) and check torch vs ONNX Runtime parity with carried
    state. Returns (ParityReport, the reloaded torch model)."""
    from engine.backends.ort import OrtRelationBackend
    from export.to_onnx import export_checkpoint
    from export.verify import check_parity
    from offline_train.checkpoint import CheckpointMeta, save_checkpoint
    from offline_train.config import TrainConfig

    meta = CheckpointMeta(config=to_dict(TrainConfig(model=cfg, feature_lag=5)), objects=OBJECTS,
                          predicates=PREDICATES, groups=tuple(model.head.groups), model_version=MODEL_VERSION,
                          feature_version=FEATURE_VERSION, num_features=NUM_FEATURES)
    ckpt = save_checkpoint(tmp_path / "checkpoint", model, meta)
    info, reloaded = export_checkpoint(ckpt, tmp_path / "model" / "relation.onnx", max_pairs=16)
    backend = OrtRelationBackend(info, "ort-cpu")
    return check_parity(reloaded, backend, pair_counts=pairs, steps=steps), reloaded
