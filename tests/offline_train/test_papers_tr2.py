"""TR²: the guidance loss, triplet sentences, and the spatial / temporal / message ablation switches."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from offline_train.models import ModelConfig  # noqa: E402
from offline_train.models.tr2_guidance import (RelationGuidance, Tr2Config, sentence_table,  # noqa: E402
                                               training_triplets, triplet_keys, triplet_sentence)
from offline_train.clips import VideoClip  # noqa: E402
from tests.offline_train.paper_parity import (OBJECTS, PREDICATES, assert_causal, export_parity,  # noqa: E402
                                              random_clip, small_model)

SMALL = dict(d_model=16, n_heads=2, d_ff=24, window=3, d_head=8, dropout=0.0)


def cfg(**tr2):
    return ModelConfig(**SMALL, tr2=Tr2Config(**tr2))


def test_sentences():
    assert triplet_sentence("person", "walk_toward", "dog") == "a photo of a person walk toward dog"
    assert triplet_sentence("person", "person_opens_trunk", "vehicle") == "a photo of a person opens trunk vehicle"
    assert triplet_sentence("cup/glass/bottle", "hold", "person") == "a photo of a cup or glass or bottle hold person"


def test_sentence_table_embeds_whole_phrases():
    keys, emb = sentence_table(OBJECTS, PREDICATES, np.array([[1, 0, 0], [0, 0, 1], [0, 1, 1]]))
    assert keys.tolist() == sorted(keys.tolist())
    assert keys.tolist() == [int(triplet_keys(torch.tensor(s), torch.tensor(p), torch.tensor(o), 9, 5))
                             for s, p, o in ((0, 0, 1), (0, 1, 1), (1, 0, 0))]
    assert emb.shape == (3, 384)
    np.testing.assert_allclose(emb.norm(dim=1).numpy(), 1.0, atol=1e-5)
    # the whole sentence is embedded: swapping subject and object changes the embedding, but not much
    cos = float(emb[0] @ emb[2])
    assert 0.5 < cos < 0.999


def small_guidance(weight=1.0, e=4):
    g = RelationGuidance(3, 5, 9, weight, embed_dim=e)
    with torch.no_grad():
        g.proj.weight.copy_(torch.tensor([[1.0, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0]]))
        g.proj.bias.fill_(0.5)
    return g


def test_guidance_loss_is_zero_for_identical_differences():
    g = small_guidance()
    h = torch.randn(5, 2, 3)
    s = g.proj(h).detach() + torch.randn(1, 2, 4)          # same temporal differences, another offset per pair
    ok = torch.ones(5, 2, dtype=torch.bool)
    assert float(g.loss(h, s, ok).detach()) == pytest.approx(0.0, abs=1e-10)


def test_guidance_loss_hand_case():
    g = small_guidance(weight=2.0)
    h = torch.zeros(3, 1, 3)
    h[1, 0] = torch.tensor([1.0, 0, 0])                    # r: [.5,.5,.5,.5] -> [1.5,.5,.5,1.5] -> back
    s = torch.zeros(3, 1, 4)
    ok = torch.tensor([[True], [True], [False]])           # only the (0, 1) step counts
    # d = (r1 - r0) - 0 = [1, 0, 0, 1]: mean of squares 0.5, weight 2
    assert float(g.loss(h, s, ok).detach()) == pytest.approx(1.0)
    assert float(g.loss(h, s, torch.tensor([[True], [False], [True]])).detach()) == 0.0   # no adjacent pair


def test_guidance_targets_average_the_holding_predicates_with_sentences():
    g = RelationGuidance(3, 5, 9, 1.0, embed_dim=4)
    keys = triplet_keys(torch.tensor([0, 0]), torch.tensor([2, 5]), torch.tensor([1, 1]), 9, 5)
    g.set_sentences(keys, torch.tensor([[1.0, 0, 0, 0], [0, 1.0, 0, 0]]))
    labels = torch.zeros(2, 2, 9, dtype=torch.bool)
    labels[0, 0, [2, 5, 7]] = True                        # 7 has no sentence: ignored
    labels[1, 0, 7] = True
    labels[1, 1, 2] = True                                # pair 1 is (2, 3): no sentence for it
    s, known = g.targets(torch.tensor([0, 2]), torch.tensor([1, 3]), labels)
    np.testing.assert_allclose(s[0, 0].numpy(), [0.5, 0.5, 0, 0])
    assert known.tolist() == [[True, False], [False, False]]
    with pytest.raises(ValueError, match="keys: must be strictly increasing"):
        g.set_sentences(keys.flip(0), torch.zeros(2, 4))
    with pytest.raises(ValueError, match=r"sentences: expected keys \(N,\) and sentences \(N, 4\)"):
        g.set_sentences(keys, torch.zeros(2, 3))
    assert torch.equal(g.keys, keys)                      # refused tables leave the accepted one


def test_training_triplets_from_clips():
    present = np.array([[True, False], [True, True]])
    targets = np.zeros((2, 2, 9), bool)
    targets[0, 0, 3] = targets[1, 1, 4] = True
    targets[0, 1, 5] = True                                 # not present: not a triplet
    clip = VideoClip("v", np.zeros((2, 2, 29), np.float32), present, np.array([0, 1]), np.array([1, 0]),
                     np.array([0, 2]), np.array([2, 0]), targets)
    assert training_triplets([clip]).tolist() == [[0, 3, 2], [2, 4, 0]]


def test_forward_train_guidance_reaches_the_model():
    model = small_model(cfg(guidance=0.5)).train()
    feats, subj, obj, present = random_clip()
    targets = torch.zeros(*present.shape, 9, dtype=torch.bool)
    targets[..., 0] = True
    trip = np.stack([subj.numpy(), np.zeros(4, np.int64), obj.numpy()], 1)
    model.guidance.set_sentences(*sentence_table(OBJECTS, PREDICATES, np.unique(trip, axis=0)))
    assert "guidance.keys" not in model.state_dict()        # training data, not weights
    _, aux = model.forward_train(feats, subj, obj, present, targets)
    assert set(aux) == {"loss_guidance"} and float(aux["loss_guidance"].detach()) > 0
    aux["loss_guidance"].backward()
    assert model.guidance.proj.weight.grad.abs().sum() > 0
    assert model.temporal.att.q.weight.grad.abs().sum() > 0


def test_switches_change_the_graph():
    feats, subj, obj, present = random_clip(t_len=1, p=3)
    full = small_model(cfg())
    n_full = sum(p.numel() for p in full.parameters())
    state = full.initial_state(3)
    g = torch.Generator().manual_seed(5)
    other_state = (torch.randn(3, 2, 16, generator=g), torch.ones(3, 2), torch.randn(3, 16, generator=g))
    with torch.no_grad():
        base = full.forward_step(feats[0], subj, obj, *state)[0]
        # spatial encoder off: fewer weights, and a pair's score no longer depends on the other pairs
        m = small_model(cfg(spatial=False))
        assert len(m.spatial.layers) == 0 and sum(p.numel() for p in m.parameters()) < n_full
        a = m.forward_step(feats[0], subj, obj, *state)[0]
        b = m.forward_step(feats[0, :1], subj[:1], obj[:1], *(s[:1] for s in state))[0]
        np.testing.assert_allclose(a[:1].numpy(), b.numpy(), atol=1e-6)
        alone = full.forward_step(feats[0, :1], subj[:1], obj[:1], *(s[:1] for s in state))[0]
        assert (alone - base[:1]).abs().max() > 1e-4
        # temporal decoder off: the window no longer changes the scores
        m = small_model(cfg(temporal=False))
        a = m.forward_step(feats[0], subj, obj, *state)[0]
        b = m.forward_step(feats[0], subj, obj, other_state[0], other_state[1], state[2])[0]
        np.testing.assert_array_equal(a.numpy(), b.numpy())
        moved = full.forward_step(feats[0], subj, obj, other_state[0], other_state[1], state[2])[0]
        assert (moved - base).abs().max() > 1e-4
        # message token off: prev_out no longer changes the scores
        m = small_model(cfg(message=False))
        assert m.head.pair_proj[0].in_features == 16
        a = m.forward_step(feats[0], subj, obj, *state)[0]
        b = m.forward_step(feats[0], subj, obj, state[0], state[1], other_state[2])[0]
        np.testing.assert_array_equal(a.numpy(), b.numpy())
        assert (full.forward_step(feats[0], subj, obj, state[0], state[1], other_state[2])[0] - base).abs().max() > 1e-4


def test_bad_weight():
    with pytest.raises(ValueError, match="model.tr2.guidance must be >= 0"):
        Tr2Config(guidance=-1.0)


@pytest.mark.parametrize("tr2", [dict(spatial=False), dict(temporal=False), dict(message=False, guidance=1.0)])
def test_causal(tr2):
    assert_causal(small_model(cfg(**tr2)))


@pytest.mark.parametrize("tr2", [dict(spatial=False, message=False, guidance=1.0), dict(temporal=False)])
def test_onnx_parity(tr2, tmp_path):
    model = small_model(cfg(**tr2))
    report, reloaded = export_parity(model, cfg(**tr2), tmp_path)
    assert report.max_abs_diff <= 1e-4
