"""TemporalDecoder's age embedding pinned by a case computed by hand: the current token carries age 0, the oldest
age L-1. (Clip/step parity cannot catch a reversed embedding, since both paths share the decoder.)"""
import math

import pytest

torch = pytest.importorskip("torch")

from offline_train.models.temporal import TemporalDecoder  # noqa: E402


def layer_norm(v, eps=1e-5):
    m = sum(v) / len(v)
    var = sum((x - m) ** 2 for x in v) / len(v)
    return [(x - m) / math.sqrt(var + eps) for x in v]


def identity_decoder():
    """d=2, one head, window 2; q/k/v/out projections = identity, no biases, feed-forward = 0, LayerNorms plain."""
    dec = TemporalDecoder(d_model=2, n_heads=1, d_ff=4, window=2).eval()
    with torch.no_grad():
        for lin in (dec.att.q, dec.att.k, dec.att.v, dec.att.out):
            lin.weight.copy_(torch.eye(2))
            lin.bias.zero_()
        for p in dec.ff.parameters():
            p.zero_()
        dec.age.copy_(torch.tensor([[2.0, 0.0],     # age 0: the current token
                                    [0.0, 0.0]]))   # age 1: the previous token
    return dec


def test_age_embedding_hand_computed():
    dec = identity_decoder()
    window = torch.tensor([[[0.0, 4.0],     # oldest (previous) token
                            [0.0, 0.0]]])   # current token
    with torch.no_grad():
        out = dec(window, torch.ones(1, 2))[0].tolist()
    # query = current + age0 = (2, 0); keys: previous + age1 = (0, 4), current + age0 = (2, 0).
    # scores / sqrt(2): 0 and 4 / sqrt(2); values = keys (identity projections).
    p_cur = 1 / (1 + math.exp(-4 / math.sqrt(2)))
    y = [2 * p_cur, 4 * (1 - p_cur)]                          # = (1.888, 0.224)
    x = layer_norm([0.0 + y[0], 0.0 + y[1]])                 # residual: the current token itself, (0, 0)
    expected = layer_norm(x)                                  # feed-forward adds 0
    assert out == pytest.approx(expected, abs=1e-5)
    assert expected[0] > 0.99 and expected[1] < -0.99         # a reversed age embedding would give (-1, +1)


def test_masked_previous_token_leaves_only_the_current_one():
    dec = identity_decoder()
    window = torch.tensor([[[0.0, 4.0], [0.0, 1.0]]])
    with torch.no_grad():
        out = dec(window, torch.tensor([[0.0, 1.0]]))[0].tolist()
    # only the current key (0, 1) + age0 = (2, 1) remains: y = (2, 1), x = LN((0, 1) + (2, 1)) = LN(2, 2) = (0, 0)
    assert out == pytest.approx([0.0, 0.0], abs=1e-5)
