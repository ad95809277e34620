"""UASAN-style open vocabulary: context tokenizer, scaled-cosine head, set_predicates / set_objects, base/novel split."""
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from engine.relate.features import FEATURE_NAMES  # noqa: E402
from engine.vocab import builtin  # noqa: E402
from offline_train.models import ModelConfig  # noqa: E402
from offline_train.models.uasan import (TOKEN_FEATURES, ContextTokenizer, OpenVocabHead, UasanConfig,  # noqa: E402
                                        set_objects, set_predicates, split_vocabulary)
from tests.offline_train.paper_parity import assert_causal, export_parity, random_clip, small_model  # noqa: E402

SMALL = dict(d_model=16, n_heads=2, d_ff=24, window=3, d_head=8, dropout=0.0)


def cfg(**kw):
    return ModelConfig(**SMALL, uasan=UasanConfig(enabled=True, **kw))


def unit(n, seed):
    t = torch.randn(n, 384, generator=torch.Generator().manual_seed(seed))
    return t / t.norm(dim=1, keepdim=True)


def test_tokens_cover_every_feature_once():
    cols = [c for group in TOKEN_FEATURES.values() for c in group]
    assert sorted(cols) == sorted(FEATURE_NAMES) and len(cols) == len(set(cols))


def test_tokenizer_groups_route_features():
    model = small_model(cfg())
    tok = model.tokenizer
    assert isinstance(tok, ContextTokenizer) and isinstance(model.head, OpenVocabHead)
    feats, subj, obj, _ = random_clip(t_len=1, p=3)
    with torch.no_grad():
        base = tok(feats[0], subj, obj)
        for group in TOKEN_FEATURES.values():       # every group reaches the pair token
            f2 = feats[0].clone()
            f2[:, FEATURE_NAMES.index(group[0])] += 3.0
            assert (tok(f2, subj, obj) - base).abs().max() > 1e-4
        other = (subj + 1) % 5
        assert (tok(feats[0], other, obj) - base).abs().max() > 1e-4
    with pytest.raises(ValueError, match="num_features: the context tokenizer needs the 29"):
        small_model(cfg(), num_features=7)


def test_scaled_cosine_hand_case():
    head = OpenVocabHead(2, torch.tensor([[1.0, 0.0], [1.0, 1.0]]), 2, (("all", "sigmoid", (0, 1)),), False, 5.0)
    with torch.no_grad():
        head.pair_proj = torch.nn.Identity()
        head.pred_proj.weight.copy_(torch.eye(2))
        head.pred_proj.bias.zero_()
        head.bias.fill_(-1.0)
    h = torch.tensor([[3.0, 0.0], [0.0, -2.0]])
    # cos([1,0],[1,0]) = 1, cos([1,0],[1,1]) = 0.7071; cos([0,-1],[1,0]) = 0, cos([0,-1],[1,1]) = -0.7071
    want = 5.0 * np.array([[1.0, math.sqrt(0.5)], [0.0, -math.sqrt(0.5)]]) - 1.0
    np.testing.assert_allclose(head(h).detach().numpy(), want, atol=1e-5)


def test_set_predicates_scores_new_names_without_retraining():
    model = small_model(cfg(prompt_context=True))
    feats, subj, obj, _ = random_clip(t_len=1, p=4)
    state = model.initial_state(4)
    full = unit(12, 7)
    base_idx = [0, 2, 3, 5, 8, 9, 10, 11, 1]
    set_predicates(model, full[base_idx])
    with torch.no_grad():
        base = model.forward_step(feats[0], subj, obj, *state)[0]
        set_predicates(model, full)                              # 'all': base plus 3 novel names
        every = model.forward_step(feats[0], subj, obj, *state)[0]
    assert every.shape == (4, 12)
    # a predicate's score does not depend on the other names in the table: base scores are unchanged
    np.testing.assert_allclose(every[:, base_idx].numpy(), base.numpy(), atol=1e-6)
    assert (every[:, [4, 6, 7]] - every[:, [0, 2, 3]]).abs().max() > 1e-4


def test_set_predicates_and_objects_refuse_bad_tables():
    model = small_model(cfg())
    before = model.head.predicate_table.clone()
    with pytest.raises(ValueError, match=r"table: expected \(C, 384\)"):
        set_predicates(model, torch.zeros(3, 10))
    with pytest.raises(ValueError, match="groups: predicate groups must cover"):
        set_predicates(model, unit(3, 1), (("all", "sigmoid", (0, 1)),))
    with pytest.raises(ValueError, match="groups: group 'x' kind must be"):
        set_predicates(model, unit(2, 1), (("x", "relu", (0, 1)),))
    assert torch.equal(model.head.predicate_table, before)
    with pytest.raises(TypeError, match="is not open-vocabulary"):
        set_predicates(small_model(ModelConfig(**SMALL)), unit(3, 1))
    with pytest.raises(ValueError, match=r"table: expected \(C, 384\)"):
        set_objects(model, torch.zeros(0, 384))
    set_objects(model, unit(6, 2))                               # one unseen category more
    feats, subj, obj, _ = random_clip(t_len=1, p=2)
    out = model.forward_step(feats[0], torch.tensor([5, 0]), obj[:2], *model.initial_state(2))[0]
    assert out.shape == (2, 9) and torch.isfinite(out).all()


def test_split_vocabulary():
    names = builtin("meva_predicates").names
    base, novel = split_vocabulary(names, 1 / 3, 0)
    assert len(novel) == 6 and len(base) == 13 and sorted(base + novel) == list(range(19))
    assert split_vocabulary(names, 1 / 3, 0) == (base, novel) and split_vocabulary(names, 1 / 3, 1) != (base, novel)
    objs = builtin("meva_objects").names
    b, n = split_vocabulary(objs, 0.0, 0, novel=("bicycle",))
    assert [objs[i] for i in n] == ["bicycle"] and len(b) == len(objs) - 1
    with pytest.raises(ValueError, match="novel: \\['unicycle'\\] not in"):
        split_vocabulary(objs, 0.0, 0, novel=("unicycle",))
    with pytest.raises(ValueError, match="fraction: must be in"):
        split_vocabulary(names, 1.0, 0)
    with pytest.raises(ValueError, match="split: 0 base"):
        split_vocabulary(("a", "b"), 0.0, 0, novel=("a", "b"))


def test_config_errors():
    with pytest.raises(ValueError, match="model.uasan.context_layers must be >= 0"):
        UasanConfig(context_layers=-1)
    with pytest.raises(ValueError, match="model.uasan.logit_scale must be > 0"):
        UasanConfig(logit_scale=0.0)
    from offline_train.models.dll import DllConfig
    with pytest.raises(ValueError, match="model.dll.enabled and model.uasan.enabled: each replaces"):
        ModelConfig(uasan=UasanConfig(enabled=True), dll=DllConfig(enabled=True))


def test_causal():
    assert_causal(small_model(cfg(prompt_context=True, context_layers=2)))


def test_onnx_parity(tmp_path):
    model = small_model(cfg(prompt_context=True))
    with torch.no_grad():
        model.head.context.normal_()                            # a learned context reaches the exported graph
    report, _ = export_parity(model, cfg(prompt_context=True), tmp_path)
    assert report.max_abs_diff <= 1e-4
