"""Each switched-on component trains on real generated data: synthetic videos -> clips -> attach_training_data ->
forward_train + relation_loss(aux=...) optimizer steps lower the loss, every aux term finite and decreasing overall."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from engine.vocab import builtin  # noqa: E402
from offline_train.clips import make_clip  # noqa: E402
from offline_train.losses import relation_loss  # noqa: E402
from offline_train.models import ModelConfig, build_model  # noqa: E402
from offline_train.models.dll import DllConfig, set_training_progress  # noqa: E402
from offline_train.models.fremure import FremureConfig  # noqa: E402
from offline_train.models.tr2_guidance import Tr2Config  # noqa: E402
from offline_train.models.uasan import UasanConfig  # noqa: E402
from offline_train.models.arn import ArnConfig  # noqa: E402
from offline_train.models.training_data import attach_training_data, predicate_counts  # noqa: E402
from offline_train.synthetic.generate import SynthConfig, generate_video  # noqa: E402

SMALL = dict(d_model=16, n_heads=2, d_ff=32, window=4, d_head=16, dropout=0.0)
OBJ, PRED = builtin("vidvrd_objects"), builtin("vidvrd_predicates")


@pytest.fixture(scope="module")
def clips():
    cfg = SynthConfig(frames=24, min_agents=2, max_agents=3)
    out = [make_clip(generate_video(cfg, 0, i), OBJ, PRED, 5) for i in range(8)]
    out = [c for c in out if c.present.any() and c.targets[c.present].any()][:2]   # as the loop, skip pair-less
    assert len(out) == 2 and sum(c.present.sum() for c in out) > 20
    return out


def tables():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(len(OBJ), 384, generator=g), torch.randn(len(PRED), 384, generator=g)
    return a / a.norm(dim=1, keepdim=True), b / b.norm(dim=1, keepdim=True)


@pytest.mark.parametrize("model_cfg", [
    ModelConfig(**SMALL, fremure=FremureConfig(gate=True, dual_branch=True, head="bayes")),
    ModelConfig(**SMALL, fremure=FremureConfig(head="gmm")),
    ModelConfig(**SMALL, tr2=Tr2Config(guidance=1.0)),
    ModelConfig(**SMALL, dll=DllConfig(enabled=True, patterns="vidvrd", transfer=1.0, beta=0.05)),
    ModelConfig(**SMALL, uasan=UasanConfig(enabled=True, prompt_context=True)),
    ModelConfig(**SMALL, arn=ArnConfig(enabled=True, branches="patterns:vidvrd")),
], ids=["fremure_bayes", "fremure_gmm", "tr2_guidance", "dll", "uasan", "arn"])
def test_component_trains(clips, model_cfg):
    torch.manual_seed(0)
    model = build_model(model_cfg, clips[0].feats.shape[-1], *tables(), (("all", "sigmoid", tuple(range(len(PRED)))),))
    attached = attach_training_data(model, model_cfg, clips, OBJ.names, PRED.names)
    if model_cfg.tr2.guidance:
        assert attached["sentences"] > 0
    elif model_cfg.fremure.active or model_cfg.dll.enabled:
        assert attached["frequency_parts"] >= 1
    focal = model_cfg.arn.focal_gamma if model_cfg.arn.enabled else 0.0
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    groups = model.head.groups
    history, steps = [], 12
    model.train()
    for step in range(steps):
        set_training_progress(model, step, steps)
        opt.zero_grad()
        total = 0.0
        for c in clips:
            t = [torch.from_numpy(x) for x in (c.feats, c.subj_label, c.obj_label, c.present, c.targets)]
            logits, aux = model.forward_train(*t[:4], t[4])
            losses = relation_loss(logits, t[4], t[3], groups, aux=aux, focal_gamma=focal)
            assert set(aux) <= set(losses) and all(torch.isfinite(v) for v in losses.values())
            losses["loss"].backward()
            total += float(losses["loss"].detach())
        opt.step()
        history.append(total)
    assert np.mean(history[-3:]) < 0.7 * np.mean(history[:3]), history


def test_attach_refuses_a_map_of_another_vocabulary(clips):
    cfg = ModelConfig(**SMALL, dll=DllConfig(enabled=True, patterns="meva"))
    with pytest.raises(ValueError, match="patterns: the map's 19 predicates are not the model's 132"):
        attach_training_data(None, cfg, clips, OBJ.names, PRED.names)


def test_predicate_counts(clips):
    counts = predicate_counts(clips, len(PRED))
    assert counts.sum() == sum(c.targets[c.present].sum() for c in clips)
    with pytest.raises(ValueError, match="clips: .* has 132 predicates, expected 5"):
        predicate_counts(clips, 5)


def test_default_model_is_left_untouched(clips):
    model = build_model(ModelConfig(**SMALL), clips[0].feats.shape[-1], *tables(),
                        (("all", "sigmoid", tuple(range(len(PRED)))),))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert attach_training_data(model, ModelConfig(**SMALL), clips, OBJ.names, PRED.names) == \
        {"frequency_parts": 0, "sentences": 0}
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
