"""forward_step run frame by frame equals forward_clip, and the future never changes the past."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from offline_train.models import ModelConfig, build_model  # noqa: E402


def make_model(window=4, groups=None, n_pred=6):
    torch.manual_seed(0)
    cfg = ModelConfig(d_model=32, n_heads=4, d_ff=48, window=window, d_head=16, dropout=0.0)
    groups = groups or (("all", "sigmoid", tuple(range(n_pred))),)
    return build_model(cfg, 7, torch.randn(5, 12), torch.randn(n_pred, 12), groups).eval()


def random_clip(t_len=12, p=5, seed=1):
    g = torch.Generator().manual_seed(seed)
    feats = torch.randn(t_len, p, 7, generator=g)
    present = torch.rand(t_len, p, generator=g) > 0.3
    subj = torch.randint(0, 5, (p,), generator=g)
    obj = torch.randint(0, 5, (p,), generator=g)
    return feats, subj, obj, present


def run_steps(model, feats, subj, obj, present):
    """Stream the clip through forward_step with a per-pair state store, as the engine does."""
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


@pytest.mark.parametrize("window", [2, 4, 9])
def test_step_equals_clip(window):
    model = make_model(window)
    clip = random_clip()
    with torch.no_grad():
        a = model.forward_clip(*clip)
        b = run_steps(model, *clip)
    m = clip[3]
    assert torch.isfinite(a[m]).all()
    np.testing.assert_allclose(a[m].numpy(), b[m].numpy(), atol=1e-5)


def test_future_does_not_change_past():
    model = make_model(4)
    feats, subj, obj, present = random_clip(t_len=10)
    with torch.no_grad():
        a = model.forward_clip(feats, subj, obj, present)
        f2, p2 = feats.clone(), present.clone()
        f2[6:] = torch.randn_like(f2[6:]) * 5
        p2[6:] = ~p2[6:]
        b = model.forward_clip(f2, subj, obj, p2)
    m = present[:6]
    np.testing.assert_array_equal(a[:6][m].numpy(), b[:6][m].numpy())
    # control: the same perturbation does reach the outputs at and after frame 6 (so the equality above is not
    # the trivial equality of a model that ignores its input)
    with torch.no_grad():
        c = model.forward_clip(f2, subj, obj, present)           # future features changed, same presence
    m_future = present[6:]
    assert m_future.sum() >= 5
    diff_future = (a[6:][m_future] - c[6:][m_future]).abs().amax(-1)
    assert (diff_future > 1e-3).all(), diff_future
    np.testing.assert_array_equal(a[:6][m].numpy(), c[:6][m].numpy())


def test_past_reaches_later_outputs_through_the_window():
    """Control for the window: changing one pair's features at frame 3 changes nothing before frame 3 and that
    pair's outputs at frames 3..6 (whose window of 4 observations holds frame 3). Other pairs of the same frames
    may change too: the spatial encoder lets the pairs of one frame attend to each other."""
    model = make_model(4)
    feats, subj, obj, _ = random_clip(t_len=8, p=3)
    present = torch.ones(8, 3, dtype=torch.bool)
    f2 = feats.clone()
    f2[3, 1] = torch.randn(7) * 5
    with torch.no_grad():
        a = model.forward_clip(feats, subj, obj, present)
        b = model.forward_clip(f2, subj, obj, present)
    d = (a - b).abs().amax(-1)                                # (T, P)
    assert (d[:3] == 0).all()
    assert (d[3:7, 1] > 1e-4).all(), d[:, 1]                 # frames 3..6 hold frame 3 in their window of 4


def test_grouped_softmax_scores_sum_to_one():
    groups = (("attention", "softmax", (0, 1, 2)), ("spatial", "sigmoid", (3, 4, 5)))
    model = make_model(3, groups=groups)
    feats, subj, obj, _ = random_clip(t_len=1, p=4)
    win, val, prev = model.initial_state(4)
    with torch.no_grad():
        scores, *_ = model.forward_step(feats[0], subj, obj, win, val, prev)
    np.testing.assert_allclose(scores[:, :3].sum(-1).numpy(), 1.0, atol=1e-6)
    assert ((scores >= 0) & (scores <= 1)).all()


def test_bad_groups():
    with pytest.raises(ValueError, match="cover every predicate"):
        make_model(3, groups=(("a", "sigmoid", (0, 1)),), n_pred=3)
