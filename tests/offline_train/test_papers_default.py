"""With every issue-14 switch at its default, the model is today's model: the committed default checkpoint gives
the outputs recorded before the switches existed.

papers_default_golden.npz holds seeded inputs and the forward_clip / forward_step outputs that the model code of
commit f469221 (before issue 14) computed on engine/models/default/checkpoint (model.safetensors SHA-256 below). If
the shipped checkpoint is ever replaced, regenerate the golden with that commit's offline_train/models code."""
import hashlib
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from engine.config import ConfigError, from_dict, to_dict  # noqa: E402
from engine.relate.relation_io import DEFAULT_MODEL_DIR  # noqa: E402
from offline_train.config import TrainConfig  # noqa: E402
from offline_train.models import ModelConfig  # noqa: E402
from offline_train.models.relation_head import RelationHead  # noqa: E402
from offline_train.models.temporal import ShortTermMessage, TemporalDecoder  # noqa: E402
from offline_train.train import load_model  # noqa: E402

GOLDEN = Path(__file__).with_name("papers_default_golden.npz")
GOLDEN_WEIGHTS_SHA256 = "177ee78103ba606be8a6acf0aee3c7f295e1a63dd91d7f544c98c81eeb9327f4"


@pytest.fixture(scope="module")
def default_model():
    model, meta = load_model(DEFAULT_MODEL_DIR / "checkpoint")   # strict load: the same tensor names and shapes
    return model, meta


def test_default_checkpoint_forward_is_unchanged(default_model):
    model, _ = default_model
    sha = hashlib.sha256((DEFAULT_MODEL_DIR / "checkpoint" / "model.safetensors").read_bytes()).hexdigest()
    assert sha == GOLDEN_WEIGHTS_SHA256, "the shipped checkpoint changed: regenerate the golden (module docstring)"
    g = np.load(GOLDEN)      # plain arrays, allow_pickle stays False
    t = {k: torch.from_numpy(g[k]) for k in g.files}
    with torch.no_grad():
        clip = model.forward_clip(t["feats"], t["subj"], t["obj"], t["present"])
        step = model.forward_step(t["feats"][0], t["subj"], t["obj"], t["window"], t["window_valid"], t["prev_out"])
    # float summation order varies with torch's thread count (1e-6 seen between runs): equal to float32 noise, far
    # below what any change of the model's function gives (the control below differs by orders of magnitude more)
    np.testing.assert_allclose(clip.numpy(), g["clip_logits"], rtol=1e-4, atol=1e-5)
    for got, key in zip(step, ("step_scores", "step_window", "step_valid", "step_prev")):
        np.testing.assert_allclose(got.numpy(), g[key], rtol=1e-4, atol=1e-5)
    # the golden is not trivially matched: another model's outputs differ from it
    with torch.no_grad():
        model.head.bias.add_(0.5)
        try:
            moved = model.forward_clip(t["feats"], t["subj"], t["obj"], t["present"])
        finally:
            model.head.bias.sub_(0.5)
    assert np.abs(moved.numpy() - g["clip_logits"]).max() > 0.4


def test_default_model_has_no_new_parts(default_model):
    model, meta = default_model
    assert "fremure" not in meta.config["model"]           # a checkpoint written before the switches
    assert type(model.head) is RelationHead and isinstance(model.temporal, TemporalDecoder)
    assert isinstance(model.message, ShortTermMessage) and not hasattr(model, "guidance")
    assert len(model.spatial.layers) == 1


def test_old_config_reads_with_defaults_and_round_trips(default_model):
    _, meta = default_model
    cfg = from_dict(TrainConfig, meta.config)
    assert cfg.model.fremure.active is False and cfg.model.tr2.guidance == 0.0
    assert from_dict(TrainConfig, to_dict(cfg)) == cfg
    assert ModelConfig().fremure == cfg.model.fremure
    with pytest.raises(ConfigError, match="model.fremure.head must be one of"):
        from_dict(TrainConfig, {"model": {"fremure": {"head": "nope"}}})
    with pytest.raises(ConfigError, match="unknown config key 'model.tr2.spatial_encoder'"):
        from_dict(TrainConfig, {"model": {"tr2": {"spatial_encoder": False}}})
