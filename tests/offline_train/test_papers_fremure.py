"""FReMuRe components: frequency gate, dual-branch embedding, Bayesian and GMM-Plus heads; causal and exportable."""
import dataclasses
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from offline_train.losses import relation_loss  # noqa: E402
from offline_train.models import ModelConfig  # noqa: E402
from offline_train.models.fremure import (BayesianRelationHead, FremureConfig, FrequencyGate,  # noqa: E402
                                          GMMRelationHead, log_inverse_frequency, set_predicate_frequency)
from tests.offline_train.paper_parity import assert_causal, export_parity, random_clip, small_model  # noqa: E402

COUNTS = [900, 400, 120, 60, 30, 9, 3, 1, 0]  # 9 predicates, most to least frequent (one never seen)
SMALL = dict(d_model=16, n_heads=2, d_ff=24, window=3, d_head=8, dropout=0.0)


def cfg(**fremure):
    return ModelConfig(**SMALL, fremure=FremureConfig(**fremure))


def test_gate_grows_as_frequency_falls():
    gate = FrequencyGate(len(COUNTS))
    gate.log_inv_freq.copy_(log_inverse_frequency(COUNTS, 1e-3))
    for w in (-6.0, 0.0, 3.0):                     # W = softplus(w_raw) > 0 for any learned value
        with torch.no_grad():
            gate.w_raw.fill_(w)
        g = gate.gate().detach().numpy()
        assert (np.diff(g) >= 0).all(), g          # float32 saturates near 1 for a steep W
        if w <= 0:
            assert (np.diff(g) > 0).all(), g
    # hand-computed at w_raw = 3: f = 900/1523, W = softplus(3) = 3.04859, b = -3
    f = 900 / sum(COUNTS)
    assert g[0] == pytest.approx(1 / (1 + math.exp(-(math.log1p(math.exp(3.0)) * math.log(1 / f + 1e-3) - 3.0))),
                                 rel=1e-5)


def test_gate_mixes_parameter_free_layernorm_with_the_feature():
    gate = FrequencyGate(2)
    with torch.no_grad():
        gate.log_inv_freq.copy_(torch.tensor([0.0, 1.0]))
        gate.w_raw.fill_(math.log(math.e - 1))    # W = 1
        gate.b.fill_(0.0)                         # g = sigmoid([0, 1]) = [0.5, 0.7311]
    x = torch.tensor([[1.0, 2.0, 3.0], [2.0, 2.0, 8.0]])
    ln0 = np.array([-1.224745, 0.0, 1.224745])                      # (x - 2) / sqrt(2/3 + 1e-5)
    ln1 = np.array([-0.707107, -0.707107, 1.414214])                 # (x - 4) / sqrt(8 + 1e-5)
    g1 = 1 / (1 + math.exp(-1))
    want = np.stack([0.5 * ln0 + 0.5 * x[0].numpy(), g1 * ln1 + (1 - g1) * x[1].numpy()])
    np.testing.assert_allclose(gate(x).detach().numpy(), want, atol=1e-5)
    assert not any(isinstance(m, torch.nn.LayerNorm) for m in gate.modules())  # parameter-free


def test_log_inverse_frequency_and_bad_counts():
    v = log_inverse_frequency([3, 1], 0.0)
    np.testing.assert_allclose(v.numpy(), [math.log(4 / 3), math.log(4)], rtol=1e-6)
    with pytest.raises(ValueError, match="counts: at least one"):
        log_inverse_frequency([0, 0], 1e-3)
    with pytest.raises(ValueError, match="counts: must be finite"):
        log_inverse_frequency([1, -1], 1e-3)
    with pytest.raises(ValueError, match="counts: expected a non-empty"):
        log_inverse_frequency([], 1e-3)
    model = small_model(cfg(gate=True))
    before = model.head.pred_proj.gate.log_inv_freq.clone()
    with pytest.raises(ValueError, match="counts: 3 predicates, the model has 9"):
        set_predicate_frequency(model, [1, 2, 3], 1e-3)
    assert torch.equal(model.head.pred_proj.gate.log_inv_freq, before)   # nothing half-written


def test_config_errors_name_the_field():
    for kw, field in ((dict(head="svm"), "model.fremure.head"), (dict(freq_eps=0.0), "model.fremure.freq_eps"),
                      (dict(bayes_samples=0), "model.fremure.bayes_samples"),
                      (dict(gmm_components=0), "model.fremure.gmm_components"),
                      (dict(gmm_var_floor=0.0), "model.fremure.gmm_var_floor"),
                      (dict(gmm_var_floor=30.0), "model.fremure.gmm_var_floor"),
                      (dict(gmm_reg=-1.0), "model.fremure.gmm_reg")):
        with pytest.raises(ValueError, match=field.replace(".", r"\.")):
            FremureConfig(**kw)


def test_dual_branch_uses_more_tail_branch_for_rare_predicates():
    model = small_model(cfg(dual_branch=True), counts=COUNTS)
    emb = model.head.pred_proj
    g = emb.fuse.gate().detach()
    assert (g[1:] > g[:-1]).all()
    t = model.head.predicate_table
    want = (1 - g[:, None]) * emb.head_branch(t) + g[:, None] * emb.tail_branch(t)
    np.testing.assert_allclose(emb(t).detach().numpy(), want.detach().numpy(), atol=1e-6)


def test_gmm_variance_floor_holds():
    head = small_model(cfg(head="gmm", gmm_var_floor=0.05, gmm_var_max=20.0), counts=COUNTS).head
    assert isinstance(head, GMMRelationHead)
    with torch.no_grad():
        head.rho[0].fill_(-1e4)        # softplus underflows to 0: the floor alone remains
        head.rho[1].fill_(1e4)
        head.rho[2].fill_(-3.0)
    s = head.variances()
    assert torch.equal(s[0], torch.full_like(s[0], 0.05))
    assert torch.equal(s[1], torch.full_like(s[1], 20.0))
    np.testing.assert_allclose(s[2].detach().numpy(), math.log1p(math.exp(-3.0)) + 0.05, rtol=1e-6)
    assert (s >= 0.05).all()
    s.sum().backward()
    assert torch.isfinite(head.rho.grad).all()


def test_gmm_logits_equal_the_direct_mixture_density():
    head = small_model(cfg(head="gmm", gmm_components=2), counts=COUNTS).head
    with torch.no_grad():
        head.rho.normal_()
        head.mix.normal_()
    h = torch.randn(5, 32)
    u = head.pair_proj(h)                                                  # (N, D)
    mu = head.pred_proj(head.predicate_table)[:, None] + head.offset       # (C, K, D)
    s = head.variances()
    ll = -0.5 * (((u[:, None, None] - mu[None]) ** 2 / s[None]).sum(-1) + torch.log(s).sum(-1)[None])
    want = head.scale * torch.logsumexp(ll + torch.log_softmax(head.mix, -1)[None], -1) / u.shape[1] + head.bias
    np.testing.assert_allclose(head(h).detach().numpy(), want.detach().numpy(), rtol=1e-4, atol=1e-4)


def test_gmm_regulariser_is_frequency_aware():
    head = small_model(cfg(head="gmm", gmm_reg=1.0), counts=COUNTS).head
    with torch.no_grad():
        head.rho.fill_(10.0)                                               # every variance >= 1: no penalty
    assert float(head.aux_losses(None, None, None)["loss_gmm_reg"].detach()) == 0.0
    losses = []
    for c in (0, 8):                                                       # shrink the most / least frequent
        with torch.no_grad():
            head.rho.fill_(10.0)
            head.rho[c].fill_(-10.0)
        losses.append(float(head.aux_losses(None, None, None)["loss_gmm_reg"].detach()))
    assert 0 < losses[0] < losses[1]


def test_bayesian_uncertainty_grows_with_its_variance():
    model = small_model(cfg(head="bayes"), counts=COUNTS)
    head = model.head
    assert isinstance(head, BayesianRelationHead)
    h = torch.randn(3, 32)
    with torch.no_grad():
        u = []
        means = []
        for vb in (-6.0, -2.0, 0.0, 2.0):
            head.var_bias.fill_(vb)
            u.append(head.uncertainty(h))
            means.append(torch.sigmoid(head(h)))
    u = torch.stack(u)
    assert (u[1:] > u[:-1]).all()
    mu = head.moments(h)[0]
    # the mean probability moves towards 0.5 as the variance grows (probit approximation)
    dist = torch.stack([(m - 0.5).abs() for m in means])
    assert (dist[1:] <= dist[:-1] + 1e-7).all() and (dist[-1] < dist[0]).all()
    # hand case: sigma^2 -> 0 gives sigmoid(mu)
    with torch.no_grad():
        head.var_bias.fill_(-30.0)
        np.testing.assert_allclose(torch.sigmoid(head(h)).numpy(), torch.sigmoid(mu).numpy(), atol=1e-5)


def test_bayesian_training_samples_average_to_the_inference_mean():
    model = small_model(dataclasses.replace(cfg(head="bayes", bayes_samples=4000)), counts=COUNTS)
    head = model.head
    h = torch.randn(4, 32)
    with torch.no_grad():
        head.var_bias.fill_(0.5)
        head.eval()
        p_eval = torch.sigmoid(head(h))
        head.train()
        torch.manual_seed(3)
        p_mc = torch.sigmoid(head(h))                  # logit of the Monte-Carlo mean probability
    np.testing.assert_allclose(p_mc.numpy(), p_eval.numpy(), atol=0.02)   # probit approximation error < 0.02


def test_bayesian_softmax_group_gives_log_mean_probabilities():
    groups = (("attention", "softmax", (0, 1, 2)), ("rest", "sigmoid", tuple(range(3, 9))))
    model = small_model(cfg(head="bayes", bayes_samples=3), counts=COUNTS, groups=groups)
    model.train()
    out = model.head(torch.randn(5, 32))
    np.testing.assert_allclose(out[:, :3].exp().sum(-1).detach().numpy(), 1.0, atol=1e-5)


def test_step_uncertainty():
    model = small_model(cfg(head="bayes"), counts=COUNTS)
    feats, subj, obj, _ = random_clip(t_len=1, p=3)
    u = model.step_uncertainty(feats[0], subj, obj, *model.initial_state(3))
    assert u.shape == (3, 9) and (u > 0).all()
    with pytest.raises(TypeError, match="no uncertainty output"):
        small_model(ModelConfig(**SMALL)).step_uncertainty(feats[0], subj, obj, *model.initial_state(3))


def test_gmm_aux_loss_joins_the_relation_loss():
    model = small_model(cfg(head="gmm"), counts=COUNTS).train()
    feats, subj, obj, present = random_clip()
    targets = torch.rand(*present.shape, 9) > 0.8
    groups = model.head.groups
    logits, aux = model.forward_train(feats, subj, obj, present, targets)
    assert set(aux) == {"loss_gmm_reg"}
    base = relation_loss(logits, targets, present, groups)
    both = relation_loss(logits, targets, present, groups, aux=aux)
    want = float(base["loss"].detach() + aux["loss_gmm_reg"].detach())
    assert float(both["loss"].detach()) == pytest.approx(want, rel=1e-6)
    assert "loss_gmm_reg" in both
    with pytest.raises(ValueError, match="aux: loss names must start with 'loss_'"):
        relation_loss(logits, targets, present, groups, aux={"reg": aux["loss_gmm_reg"]})
    with pytest.raises(ValueError, match="aux: .*'loss_all'"):
        relation_loss(logits, targets, present, groups, aux={"loss_all": aux["loss_gmm_reg"]})
    both["loss"].backward()
    assert model.head.rho.grad is not None


@pytest.mark.parametrize("fremure", [dict(gate=True, dual_branch=True, head="bayes"), dict(head="gmm"),
                                     dict(gate=True)])
def test_causal(fremure):
    assert_causal(small_model(cfg(**fremure), counts=COUNTS))


@pytest.mark.parametrize("fremure", [dict(gate=True, dual_branch=True, head="bayes"), dict(head="gmm")])
def test_onnx_parity(fremure, tmp_path):
    model = small_model(cfg(**fremure), counts=COUNTS)
    report, reloaded = export_parity(model, cfg(**fremure), tmp_path)
    assert report.max_abs_diff <= 1e-4
    sd, sd2 = model.state_dict(), reloaded.state_dict()
    assert set(sd) == set(sd2) and all(torch.equal(sd[k], sd2[k]) for k in sd)  # frequencies travel with it
