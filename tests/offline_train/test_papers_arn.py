"""ARN at the pair-token level: branches, hierarchical attention, text-initialised classifier, max over queries,
focal loss; causal and exportable."""
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from offline_train.losses import relation_loss  # noqa: E402
from offline_train.models import ModelConfig  # noqa: E402
from offline_train.models.arn import ArnConfig, AssociationHead, branch_of  # noqa: E402
from tests.offline_train.paper_parity import assert_causal, export_parity, random_clip, small_model  # noqa: E402

SMALL = dict(d_model=16, n_heads=2, d_ff=24, window=3, d_head=8, dropout=0.0)
GROUPS = (("attention", "softmax", (0, 1, 2)), ("spatial", "sigmoid", (3, 4, 5)), ("contact", "sigmoid", (6, 7, 8)))


def cfg(**kw):
    return ModelConfig(**SMALL, arn=ArnConfig(enabled=True, **kw))


def test_branches():
    names, index = branch_of(ArnConfig(), GROUPS, 9)
    assert names == ("attention", "spatial", "contact") and index == (0, 0, 0, 1, 1, 1, 2, 2, 2)
    names, index = branch_of(ArnConfig(branches="patterns:vidvrd"), (("all", "sigmoid", tuple(range(132))),), 132)
    assert names == ("action", "spatial", "dual")
    from engine.vocab import builtin
    preds = builtin("vidvrd_predicates").names
    assert names[index[preds.index("watch")]] == "action" and names[index[preds.index("taller")]] == "spatial"
    assert names[index[preds.index("walk_toward")]] == "dual"
    with pytest.raises(ValueError, match="model.arn.branches: the map has 132 predicates, the model 9"):
        branch_of(ArnConfig(branches="patterns:vidvrd"), GROUPS, 9)


def test_max_over_queries_and_branch_routing():
    model = small_model(cfg(queries=3), groups=GROUPS)
    head = model.head
    assert isinstance(head, AssociationHead) and len(head.inputs) == 9
    h = torch.randn(4, 32)
    with torch.no_grad():
        ql = head.query_logits(h)                                     # (N, Q, C)
        np.testing.assert_allclose(head(h).numpy(), (ql.max(1).values + head.bias).numpy(), atol=1e-6)
        assert (ql.max(1).values > ql.min(1).values + 1e-6).any()  # the queries do disagree
        # hand check of the routing: predicate 4 (spatial, branch 1) reads branch 1's query tokens
        n, b, q, d = 4, 3, 3, 8
        x = torch.stack([m(h) for m in head.inputs], 1).reshape(n, b, q, d) + head.branch_embed[None] \
            + head.query_embed[None]
        xf = head.n1(x.reshape(n * b, q, d) + head.within(x.reshape(n * b, q, d), x.reshape(n * b, q, d)))
        x = xf.reshape(n, b, q, d)
        s = head.n2(x.mean(2) + head.across(x.mean(2), x.mean(2)))
        want = (x + s[:, :, None])[:, 1] @ head.weight[4]
        np.testing.assert_allclose(ql[:, :, 4].numpy(), want.numpy(), atol=1e-5)


def test_branches_attend_to_each_other():
    """Level-2 attention: changing one branch's input tokens moves the other branches' logits."""
    head = small_model(cfg(), groups=GROUPS).head
    h = torch.randn(3, 32)
    with torch.no_grad():
        a = head(h)
        head.inputs[0][2].bias.add_(1.0)                             # branch 0 (attention), query 0 only
        b = head(h)
    assert (a[:, 3:] - b[:, 3:]).abs().max() > 1e-4


def test_classifier_is_text_initialised():
    model = small_model(cfg(), groups=GROUPS)
    t = model.head.predicate_table
    w = model.head.weight.detach()
    np.testing.assert_allclose(w.norm(dim=1).numpy(), 1.0, atol=1e-5)
    proj = torch.randn(384, 8, generator=torch.Generator().manual_seed(0))
    want = t @ proj
    np.testing.assert_allclose(w.numpy(), (want / want.norm(dim=1, keepdim=True)).numpy(), atol=1e-5)


def test_focal_loss_hand_case():
    groups = (("all", "sigmoid", (0, 1)),)
    logits = torch.tensor([[[math.log(9.0), 0.0]]])                # p = 0.9, 0.5
    targets = torch.tensor([[[True, False]]])
    present = torch.ones(1, 1, dtype=torch.bool)
    bce = relation_loss(logits, targets, present, groups)["loss"]
    assert float(bce) == pytest.approx(-math.log(0.9) - math.log(0.5), rel=1e-6)
    focal = relation_loss(logits, targets, present, groups, focal_gamma=2.0)["loss"]
    assert float(focal) == pytest.approx(-(0.1 ** 2) * math.log(0.9) - (0.5 ** 2) * math.log(0.5), rel=1e-5)
    sm = (("att", "softmax", (0, 1)),)
    focal_sm = relation_loss(logits, targets, present, sm, focal_gamma=1.0)["loss"]
    assert float(focal_sm) == pytest.approx(-(1 - 0.9) * math.log(0.9), rel=1e-5)
    assert float(relation_loss(logits, targets, present, sm, focal_gamma=0.0)["loss"]) == \
        pytest.approx(-math.log(0.9), rel=1e-6)
    with pytest.raises(ValueError, match="focal_gamma: must be >= 0"):
        relation_loss(logits, targets, present, groups, focal_gamma=-1.0)


def test_config_errors():
    with pytest.raises(ValueError, match="model.arn.branches must be"):
        ArnConfig(branches="verbs")
    with pytest.raises(ValueError, match="model.arn.queries must be >= 1"):
        ArnConfig(queries=0)
    with pytest.raises(ValueError, match="model.arn.focal_gamma must be >= 0"):
        ArnConfig(focal_gamma=-0.5)
    with pytest.raises(ValueError, match="model.d_head must be divisible by model.n_heads"):
        ModelConfig(d_head=9, n_heads=2, d_model=16, arn=ArnConfig(enabled=True))


def test_causal():
    assert_causal(small_model(cfg(queries=2), groups=GROUPS))


def test_onnx_parity(tmp_path):
    model = small_model(cfg(queries=3), groups=GROUPS)
    report, _ = export_parity(model, cfg(queries=3), tmp_path)
    assert report.max_abs_diff <= 1e-4
