"""DLL: the pattern maps, Map and mutual calibration on hand-computed cases, GRL, correlation matrix, transfer."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from engine.vocab import builtin  # noqa: E402
from offline_train.models import ModelConfig  # noqa: E402
from offline_train.models.dll import (DecoupledRelationHead, DllConfig, grad_reverse, load_pattern_map,  # noqa: E402
                                      mutual_calibration, set_training_progress, transfer_schedule,
                                      transfer_sources)
from tests.offline_train.paper_parity import (PREDICATES, assert_causal, export_parity, random_clip,  # noqa: E402
                                              small_model)

SMALL = dict(d_model=16, n_heads=2, d_ff=24, window=3, d_head=8, dropout=0.0)
COUNTS = [900, 400, 120, 60, 30, 9, 3, 1, 0]
# the test vocabulary's 9 predicates: walk_toward walk_away run_toward run_past taller watch bite behind front
TEST_MAP = ("predicate\taction\tspatial\n" + "".join(
    f"{p}\t{a}\t{s}\n" for p, a, s in (("walk_toward", "walk", "toward"), ("walk_away", "walk", "away"),
                                       ("run_toward", "run", "toward"), ("run_past", "run", "past"),
                                       ("taller", "-", "taller"), ("watch", "watch", "-"), ("bite", "bite", "-"),
                                       ("behind", "-", "behind"), ("front", "-", "front"))))


@pytest.fixture
def map_file(tmp_path):
    p = tmp_path / "test_patterns.txt"
    p.write_text("# a tiny map for the test vocabulary\n" + TEST_MAP)
    return str(p)


def tiny_map(tmp_path):
    """Patterns a0 a1 | s0 s1; predicates P0 = a0 + s0, P1 = a1, P2 = s1, P3 = a0 + s1."""
    p = tmp_path / "tiny.txt"
    p.write_text("predicate\taction\tspatial\nP0\ta0\ts0\nP1\ta1\t-\nP2\t-\ts1\nP3\ta0\ts1\n")
    return load_pattern_map(str(p))


def test_shipped_maps_cover_their_vocabularies():
    v = load_pattern_map("vidvrd")
    v.check(builtin("vidvrd_predicates").names)
    row = {p: (v.act[i], v.sp[i]) for i, p in enumerate(v.predicates)}
    name = {p: (v.actions[a] if a >= 0 else "-", v.spatials[s] if s >= 0 else "-") for p, (a, s) in row.items()}
    assert name["walk_toward"] == ("walk", "toward") and name["fall_off"] == ("fall", "off")
    assert name["taller"] == ("-", "taller") and name["watch"] == ("watch", "-") and name["bite"] == ("bite", "-")
    assert name["next_to"] == ("-", "next_to") and name["stand_next_to"] == ("stand", "next_to")
    m = load_pattern_map("meva")
    m.check(builtin("meva_predicates").names)
    assert all(a >= 0 and s >= 0 for a, s in zip(m.act, m.sp))           # every MEVA name is verb x target
    pick = [p for i, p in enumerate(m.predicates) if m.actions[m.act[i]] == "picks_up"]
    assert pick == ["person_picks_up_object", "vehicle_picks_up_person"]
    with pytest.raises(ValueError, match="patterns: the map's 19 predicates are not the model's 132"):
        m.check(builtin("vidvrd_predicates").names)


def test_bad_map_files(tmp_path):
    for body, msg in (("predicate\taction\tspatial\nx\ta\n", ":2: expected 'predicate<TAB>action<TAB>spatial'"),
                      ("predicate\taction\tspatial\nx\t-\t-\n", "neither an actional nor a spatial"),
                      ("predicate\taction\tspatial\nx\ta\ts\nx\ta\ts\n", "'x' listed twice"),
                      ("predicate\taction\tspatial\nx\ta\t-\n", "at least one predicate, one actional and one")):
        p = tmp_path / "bad.txt"
        p.write_text(body)
        with pytest.raises(ValueError, match=msg):
            load_pattern_map(str(p))
    with pytest.raises(ValueError, match="model.dll.patterns: no pattern map 'nope'"):
        load_pattern_map("nope")


def test_map_hand_case(tmp_path):
    pm = tiny_map(tmp_path)
    assert pm.actions == ("a0", "a1") and pm.spatials == ("s0", "s1")
    np.testing.assert_array_equal(pm.map_matrix(), [[.5, 0, .5, 0], [0, 1, 0, 0], [0, 0, 0, 1], [.5, 0, 0, .5]])
    np.testing.assert_array_equal(pm.inverse_matrix(), [[.5, 0, 0, .5], [0, 1, 0, 0], [1, 0, 0, 0], [0, 0, .5, .5]])
    z = torch.tensor([[2.0, -1.0, 4.0, 0.0]])                 # logits a0 a1 s0 s1
    np.testing.assert_allclose((z @ torch.from_numpy(pm.map_matrix()).T).numpy(), [[3.0, -1.0, 0.0, 1.0]])
    assert pm.share_mask()[0].tolist() == [True, False, False, True]   # P0 shares a0 with P3 only


def test_mutual_calibration_hand_case(tmp_path):
    pm = tiny_map(tmp_path)
    mm, inv = torch.from_numpy(pm.map_matrix()), torch.from_numpy(pm.inverse_matrix())
    q = torch.tensor([[0.8, 0.2, 0.4, 0.6]])
    # Map(q) = [0.6, 0.2, 0.6, 0.7]; Map^-1 = [(0.6+0.7)/2, 0.2, 0.6, (0.6+0.7)/2] = [0.65, 0.2, 0.6, 0.65]
    one = mutual_calibration(q, mm, inv, 0.5, 1)
    np.testing.assert_allclose(one.numpy(), [[0.725, 0.2, 0.5, 0.625]], atol=1e-6)
    # a second step from there: Map = [0.6125, 0.2, 0.625, 0.675]; Map^-1 = [0.64375, 0.2, 0.6125, 0.65]
    np.testing.assert_allclose(mutual_calibration(q, mm, inv, 0.5, 2).numpy(),
                               [[0.684375, 0.2, 0.55625, 0.6375]], atol=1e-6)
    np.testing.assert_array_equal(mutual_calibration(q, mm, inv, 0.5, 0).numpy(), q.numpy())
    np.testing.assert_array_equal(mutual_calibration(q, mm, inv, 1.0, 3).numpy(), q.numpy())


def test_head_uses_map_and_calibration(map_file):
    model = small_model(ModelConfig(**SMALL, dll=DllConfig(enabled=True, patterns=map_file, calibration_steps=0)))
    head = model.head
    h = torch.randn(3, 32)
    with torch.no_grad():
        z = head.pattern_logits(h)[2]
        want = z @ head.map_matrix.T + head.bias
        np.testing.assert_allclose(head(h).numpy(), want.numpy(), atol=1e-6)
        head.cfg = DllConfig(enabled=True, patterns=map_file, calibration_steps=2, eta=0.3)
        p = mutual_calibration(torch.sigmoid(z), head.map_matrix, head.inverse, 0.3, 2)
        np.testing.assert_allclose(head(h).numpy(), (torch.logit(p) @ head.map_matrix.T + head.bias).numpy(),
                                   atol=1e-4)


def test_grl_reverses_the_gradients_sign():
    x = torch.tensor([1.0, -2.0, 3.0], requires_grad=True)
    y = grad_reverse(x, 0.5)
    assert torch.equal(y, x)
    (y * torch.tensor([1.0, 2.0, 3.0])).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [-0.5, -1.0, -1.5])


def test_adversary_learns_while_the_decoupler_unlearns(map_file, monkeypatch):
    """Through the GRL the adversary's gradient is the same and the decoupler's is reversed, compared with no GRL."""
    import offline_train.models.dll as dll

    feats, subj, obj, present = random_clip()
    targets = torch.rand(*present.shape, 9) > 0.7
    cfg = ModelConfig(**SMALL, dll=DllConfig(enabled=True, patterns=map_file, adversarial=1.0))
    grads = {}
    for with_grl in (True, False):
        if not with_grl:
            monkeypatch.setattr(dll, "grad_reverse", lambda x, lam=1.0: x)
        model = small_model(cfg, counts=COUNTS).train()
        _, aux = model.forward_train(feats, subj, obj, present, targets)
        aux["loss_dll_adv"].backward()
        grads[with_grl] = (model.head.a2s.weight.grad.clone(), model.head.d_a[0].weight.grad.clone())
    np.testing.assert_allclose(grads[True][0].numpy(), grads[False][0].numpy(), atol=1e-6)
    np.testing.assert_allclose(grads[True][1].numpy(), -grads[False][1].numpy(), atol=1e-6)
    assert grads[True][1].abs().max() > 0


def test_correlation_update_loss_trains_only_m(map_file):
    cfg = ModelConfig(**SMALL, dll=DllConfig(enabled=True, patterns=map_file, correlation=1.0))
    model = small_model(cfg, counts=COUNTS).train()
    head = model.head
    assert torch.equal(head.correlation, torch.eye(9))
    feats, subj, obj, present = random_clip()
    targets = torch.rand(*present.shape, 9) > 0.7
    _, aux = model.forward_train(feats, subj, obj, present, targets)
    loss0 = aux["loss_dll_corr"]
    model.zero_grad()
    loss0.backward()
    assert head.correlation.grad.abs().sum() > 0
    assert model.head.d_a[0].weight.grad is None or model.head.d_a[0].weight.grad.abs().sum() == 0
    # masked: entries between predicates that share no pattern get no gradient
    assert (head.correlation.grad[~head.share] == 0).all()
    with torch.no_grad():
        head.correlation -= 5.0 * head.correlation.grad
        _, aux = model.forward_train(feats, subj, obj, present, targets)
    assert float(aux["loss_dll_corr"]) < float(loss0.detach())


def test_transfer_sources_and_schedule():
    share = np.array([[1, 0, 1, 1], [0, 1, 0, 1], [1, 0, 1, 0], [1, 1, 0, 1]], bool)
    # counts: P0 100, P1 50, P2 2, P3 1 -> tails (least frequent half) P3, P2
    src = transfer_sources([100, 50, 2, 1], share, 0.5)
    assert src.tolist() == [-1, -1, 0, 0]                      # P3 shares with P0 (100) and P1 (50): P0
    assert transfer_sources([100, 50, 2, 1], share, 0.25).tolist() == [-1, -1, -1, 0]
    cfg = DllConfig(alpha0=0.1, beta=0.01, transfer=0.5, transfer_warmup=0.2)
    assert transfer_schedule(0, 1000, cfg) == (0.1, 0.0)
    a, g = transfer_schedule(100, 1000, cfg)
    assert a == pytest.approx(1.0) and g == pytest.approx(0.25)   # alpha 0.1 + 1.0 capped at 1
    a, g = transfer_schedule(50, 1000, cfg)
    assert a == pytest.approx(0.6) and g == pytest.approx(0.125)
    assert transfer_schedule(900, 1000, cfg)[1] == pytest.approx(0.5)


def test_transfer_loss_follows_the_schedule(map_file):
    cfg = ModelConfig(**SMALL, dll=DllConfig(enabled=True, patterns=map_file, transfer=1.0, beta=0.01))
    model = small_model(cfg, counts=COUNTS).train()
    src = model.head.transfer_src.tolist()
    # tails = the 3 least frequent (bite, behind, front) are single patterns nobody shares: no source
    assert src == [-1] * 9
    counts = [1, 900, 400, 120, 60, 30, 9, 3, 0]               # walk_toward now the rarest: source walk_away
    model = small_model(cfg, counts=counts).train()
    assert model.head.transfer_src[0].item() == 1
    feats, subj, obj, present = random_clip()
    targets = torch.zeros(*present.shape, 9, dtype=torch.bool)
    targets[..., 1] = True                                     # walk_away holds everywhere
    set_training_progress(model, 0, 100)
    assert float(model.forward_train(feats, subj, obj, present, targets)[1]["loss_dll_transfer"].detach()) == 0.0
    set_training_progress(model, 50, 100)
    assert model.head.alpha == pytest.approx(0.5) and model.head.gamma == pytest.approx(1.0)
    assert float(model.forward_train(feats, subj, obj, present, targets)[1]["loss_dll_transfer"].detach()) > 0


def test_config_and_build_errors(map_file):
    for kw, field in ((dict(calibration_steps=-1), "calibration_steps"), (dict(eta=1.5), "eta"),
                      (dict(beta=-1.0), "beta"), (dict(transfer_warmup=0.0), "transfer_warmup"),
                      (dict(tail_fraction=1.0), "tail_fraction")):
        with pytest.raises(ValueError, match=f"model.dll.{field} must be"):
            DllConfig(**kw)
    with pytest.raises(ValueError, match="model.dll.patterns: the map has 132 predicates, the model 9"):
        small_model(ModelConfig(**SMALL, dll=DllConfig(enabled=True, patterns="vidvrd")))
    from offline_train.models.fremure import FremureConfig
    with pytest.raises(ValueError, match="model.dll.enabled and model.fremure: each replaces"):
        ModelConfig(dll=DllConfig(enabled=True), fremure=FremureConfig(head="bayes"))


def test_causal(map_file):
    model = small_model(ModelConfig(**SMALL, dll=DllConfig(enabled=True, patterns=map_file, calibration_steps=2)),
                        counts=COUNTS)
    assert isinstance(model.head, DecoupledRelationHead)
    assert_causal(model)


def test_onnx_parity(map_file, tmp_path):
    cfg = ModelConfig(**SMALL, dll=DllConfig(enabled=True, patterns=map_file, calibration_steps=2))
    model = small_model(cfg, counts=COUNTS)
    report, reloaded = export_parity(model, cfg, tmp_path)
    assert report.max_abs_diff <= 1e-4
    assert torch.equal(reloaded.head.transfer_src, model.head.transfer_src)
    assert PREDICATES[0] == "walk_toward"
