"""Property tests of the incremental protocol: apply(g0, diff(g0, g1)) == g1, sequencing, tolerances."""
import math

import numpy as np
import pytest

from engine.graph.diff import SequenceError, apply, diff, empty_graph
from engine.graph.build import build_graph
from engine.types import Entity, GraphDelta, Relation, SceneGraph, Tracks
from engine.vocab import Vocabulary

PREDS = ("left", "right", "near", "holds")


def random_graph(rng, seq, epoch="e1", n_max=12):
    ids = rng.choice(30, size=rng.integers(0, n_max), replace=False)
    ents = {}
    for i in ids.tolist():
        x, y = rng.uniform(0, 600, 2)
        ents[i] = Entity(i, str(rng.choice(["person", "cup", "dog"])), float(rng.uniform()),
                         (x, y, x + rng.uniform(1, 50), y + rng.uniform(1, 50)), float(rng.integers(0, 3)))
    rels = {}
    keys = list(ents)
    for _ in range(rng.integers(0, 20) if len(keys) > 1 else 0):
        s, o = rng.choice(keys, 2, replace=False).tolist()
        u = math.nan if rng.uniform() < 0.5 else float(rng.uniform())
        r = Relation(s, str(rng.choice(PREDS)), o, float(rng.uniform()), u, float(rng.integers(0, 5)))
        rels[r.key] = r
    return SceneGraph(t=float(seq) / 10, entities=ents, relations=rels, epoch=epoch, seq=seq)


def test_apply_diff_equals_target_random():
    rng = np.random.default_rng(0)
    g = empty_graph("e1")
    for seq in range(1, 400):
        nxt = random_graph(rng, seq)
        d = diff(g, nxt)
        assert d.seq == seq
        out = apply(g, d)
        assert out == nxt
        g = nxt


def test_incremental_small_changes_only_send_changes():
    rng = np.random.default_rng(1)
    g0 = random_graph(rng, 5, n_max=10)
    ents = dict(g0.entities)
    some = next(iter(ents))
    e = ents[some]
    ents[some] = Entity(e.id, e.label, e.score, tuple(v + 3 for v in e.box_xyxy), e.first_seen)
    g1 = SceneGraph(g0.t + 0.1, ents, g0.relations, g0.epoch, 6)
    d = diff(g0, g1)
    assert [x.id for x in d.upsert_entities] == [some] and not d.upsert_relations
    assert not d.remove_entity_ids and not d.remove_relations
    assert apply(g0, d) == g1
    # within tolerance: nothing to send, and the published graph keeps the old box
    d_tol = diff(g0, g1, box_tolerance_px=5.0)
    assert d_tol.is_empty
    assert apply(g0, d_tol).entities[some] == e


def test_tolerance_does_not_accumulate():
    """Drift smaller than the tolerance each frame is still sent once it adds up, because diffs are taken
    against the published graph."""
    e = Entity(1, "cup", 0.5, (0.0, 0.0, 10.0, 10.0))
    pub = SceneGraph(0.0, {1: e}, {}, "e", 0)
    sent = 0
    for k in range(1, 21):
        cur = SceneGraph(k * 0.1, {1: Entity(1, "cup", 0.5, (k * 0.4, 0.0, 10.0 + k * 0.4, 10.0))}, {}, "e", k)
        d = diff(pub, cur, box_tolerance_px=1.0)
        sent += len(d.upsert_entities)
        pub = apply(pub, d)
        assert abs(pub.entities[1].box_xyxy[0] - cur.entities[1].box_xyxy[0]) <= 1.0
    assert 4 <= sent <= 10


def test_tolerance_is_per_field():
    """A box that moved beyond its tolerance is sent without the score jitter below its own (and vice versa); the
    published graph stays within both tolerances of the engine's."""
    e0 = Entity(1, "cup", 0.50, (0.0, 0.0, 10.0, 10.0), 0.0)
    r0 = Relation(1, "on", 2, 0.60, 0.10, 0.0)
    other = Entity(2, "table", 0.9, (0.0, 20.0, 50.0, 40.0), 0.0)
    g0 = SceneGraph(0.0, {1: e0, 2: other}, {r0.key: r0}, "e", 0)
    g1 = SceneGraph(0.1, {1: Entity(1, "cup", 0.52, (3.0, 0.0, 13.0, 10.0), 0.0), 2: other},
                    {r0.key: Relation(1, "on", 2, 0.70, 0.12, 0.0)}, "e", 1)
    d = diff(g0, g1, box_tolerance_px=2.0, score_tolerance=0.05)
    assert d.upsert_entities == (Entity(1, "cup", 0.50, (3.0, 0.0, 13.0, 10.0), 0.0),)
    assert d.upsert_relations == (Relation(1, "on", 2, 0.70, 0.10, 0.0),)
    g2 = SceneGraph(0.2, {1: Entity(1, "cup", 0.60, (3.5, 0.0, 13.5, 10.0), 0.0), 2: other}, g1.relations, "e", 2)
    d2 = diff(apply(g0, d), g2, box_tolerance_px=2.0, score_tolerance=0.05)
    assert d2.upsert_entities == (Entity(1, "cup", 0.60, (3.0, 0.0, 13.0, 10.0), 0.0),)
    assert diff(g0, g1).upsert_entities == (g1.entities[1],)  # no tolerance: whole new values


def test_removing_entity_removes_its_relations():
    a, b = Entity(1, "a", 1.0, (0, 0, 1, 1)), Entity(2, "b", 1.0, (0, 0, 1, 1))
    r = Relation(1, "near", 2, 0.9)
    g0 = SceneGraph(0.0, {1: a, 2: b}, {r.key: r}, "e", 3)
    g1 = SceneGraph(0.1, {1: a}, {}, "e", 4)
    d = diff(g0, g1)
    assert d.remove_entity_ids == (2,) and d.remove_relations == (r.key,)
    assert apply(g0, d) == g1


def test_apply_cascades_relation_removal_of_a_removed_entity():
    """A delta that removes an entity without listing its relations (a hand-built or older publisher's delta) still
    leaves no relation pointing at it: removing an entity removes its relations (GraphDelta's contract)."""
    a, b, c = (Entity(i, "x", 1.0, (0, 0, 1, 1)) for i in (1, 2, 3))
    rels = [Relation(1, "near", 2, 0.9), Relation(2, "near", 3, 0.8), Relation(1, "near", 3, 0.7),
            Relation(3, "holds", 2, 0.6)]
    g0 = SceneGraph(0.0, {1: a, 2: b, 3: c}, {r.key: r for r in rels}, "e", 7)
    g1 = apply(g0, GraphDelta("e", 8, 0.1, remove_entity_ids=(2,)))
    assert set(g1.entities) == {1, 3} and list(g1.relations) == [(1, "near", 3)]
    assert g1.relations[(1, "near", 3)] == rels[2] and len(g0.relations) == 4   # g0 untouched
    # an upsert of a relation to the removed entity in the same delta is refused, not silently dangling
    with pytest.raises(ValueError, match=r"delta seq 8: relation \(1, 'near', 2\) refers to a missing entity"):
        apply(g0, GraphDelta("e", 8, 0.1, remove_entity_ids=(2,), upsert_relations=(rels[0],)))


def test_seq_must_follow_and_epoch_must_match():
    g0 = SceneGraph(0.0, {}, {}, "e", 3)
    with pytest.raises(SequenceError, match=r"diff needs cur.seq == prev.seq \+ 1, got 3 -> 5"):
        diff(g0, SceneGraph(0.1, {}, {}, "e", 5))
    with pytest.raises(SequenceError, match="diff across epochs: 'e' -> 'f'"):
        diff(g0, SceneGraph(0.1, {}, {}, "f", 4))
    d = diff(g0, SceneGraph(0.1, {}, {}, "e", 4))
    g1 = apply(g0, d)
    with pytest.raises(SequenceError, match="delta seq 4 does not follow graph seq 4"):
        apply(g1, d)  # replay
    with pytest.raises(SequenceError, match="delta from epoch 'e' applied to a graph of epoch 'other'"):
        apply(SceneGraph(0.0, {}, {}, "other", 3), d)
    assert g1.seq == 4 and g0.seq == 3  # inputs untouched


def test_graph_rejects_dangling_relation():
    with pytest.raises(ValueError, match="refers to an entity"):
        SceneGraph(0.0, {}, {(1, "x", 2): Relation(1, "x", 2, 0.5)}, "e", 0)


def test_build_graph_drops_relations_of_absent_tracks():
    vocab = Vocabulary("o", ("person", "cup"))
    tr = Tracks(np.array([4, 7]), np.array([[0, 0, 10, 10], [5, 5, 9, 9]], np.float32), np.zeros((2, 4), np.float32),
                np.array([0.9, 0.8], np.float32), np.array([0, 1], np.int32), np.zeros(2, np.int32),
                np.zeros(2, np.int32))
    rels = [Relation(4, "holds", 7, 0.7), Relation(4, "holds", 99, 0.7)]
    g = build_graph(tr, vocab, rels, 1.5, epoch="e", seq=2, first_seen={4: 0.5})
    assert set(g.entities) == {4, 7} and list(g.relations) == [(4, "holds", 7)]
    assert g.entities[4].first_seen == 0.5 and g.entities[7].first_seen == 1.5
    assert g.entities[7].label == "cup"
