"""PublishedRelations (the engine's array-based relation publisher) against diff() on random filter states whose
scores and uncertainties jump below and above the tolerance, appear and vanish (NaN), and restart."""
import math

import numpy as np
import pytest

from engine.graph.build import quantize_relation
from engine.graph.diff import apply, diff
from engine.graph.published import PublishedRelations
from engine.types import Entity, GraphDelta, Relation, SceneGraph

PREDICATES = ("near", "on", "holding")
PAIRS = [(1, 2), (2, 1), (1, 3), (3, 4), (4, 2), (2, 3)]   # row -> (subject, object)
ENTITIES = {i: Entity(i, "person", 0.9, (0.0, 0.0, 10.0, 10.0), 0.0) for i in range(1, 5)}


def jump(rng, x, tol, p_nan=0.0):
    """x moved per cell by nothing, a step inside the tolerance, or one beyond it; NaN with probability p_nan."""
    kind = rng.integers(0, 3, x.shape)
    step = np.where(kind == 0, 0.0, np.where(kind == 1, tol * 0.5, tol * 3)) * rng.choice([-1, 1], x.shape)
    base = np.where(np.isnan(x), rng.random(x.shape), x)
    out = np.clip(base + step, 0, 1)
    return np.where(rng.random(x.shape) < p_nan, np.nan, out)


@pytest.mark.parametrize("tol", [0.0, 0.05])
@pytest.mark.parametrize("with_uncertainty", [True, False])
def test_delta_equals_diff_field_by_field(tol, with_uncertainty):
    rng = np.random.default_rng(7)
    n, c = len(PAIRS), len(PREDICATES)
    subj = np.array([s for s, _ in PAIRS], np.int64)
    obj = np.array([o for _, o in PAIRS], np.int64)
    pub, g = PublishedRelations(n, c), SceneGraph(0.0, dict(ENTITIES), {}, "e", 0)
    score, unc, start = rng.random((n, c)), rng.random((n, c)), np.zeros((n, c))
    seen = {"score only": 0, "uncertainty only": 0, "appeared or vanished": 0}
    for k in range(1, 300):
        active = rng.random((n, c)) < 0.8
        score = jump(rng, score, max(tol, 0.01)).astype(np.float32)
        unc = jump(rng, unc, max(tol, 0.01), p_nan=0.1).astype(np.float32)
        restart = rng.random((n, c)) < 0.03
        start = np.where(restart, k / 25.0, start)
        up, rm = pub.delta(subj, obj, active, score, start, np.arange(1, 5), PREDICATES, tol,
                           uncertainty=unc if with_uncertainty else None)
        cur = {}
        for r, p in zip(*np.nonzero(active)):
            u = float(unc[r, p]) if with_uncertainty else math.nan
            rel = quantize_relation(Relation(PAIRS[r][0], PREDICATES[p], PAIRS[r][1], float(score[r, p]), u,
                                             float(start[r, p])))
            cur[rel.key] = rel
        ref = diff(g, SceneGraph(k / 25.0, dict(ENTITIES), cur, "e", k), 0.0, tol)
        assert up == ref.upsert_relations and rm == ref.remove_relations, f"step {k}"
        for r in up:
            old = g.relations.get(r.key)
            if old is not None and old.start_time == r.start_time:
                same_u = old.uncertainty == r.uncertainty or (math.isnan(old.uncertainty) and math.isnan(
                    r.uncertainty))
                seen["score only"] += same_u and old.score != r.score
                seen["uncertainty only"] += not same_u and old.score == r.score
                seen["appeared or vanished"] += math.isnan(old.uncertainty) != math.isnan(r.uncertainty)
        g = apply(g, GraphDelta("e", k, k / 25.0, (), (), up, rm))
        assert len(pub) == len(g.relations)
    assert seen["score only"] > 20
    if with_uncertainty:
        assert seen["uncertainty only"] > 20 and seen["appeared or vanished"] > 20
    else:
        assert all(math.isnan(r.uncertainty) for r in g.relations.values())


def test_reset_forgets_published_uncertainty():
    pub = PublishedRelations(1, 1)
    args = (np.array([1]), np.array([2]), np.ones((1, 1), bool), np.full((1, 1), 0.5, np.float32), np.zeros((1, 1)),
            np.array([1, 2]), ("near",), 0.05)
    up, _ = pub.delta(*args, uncertainty=np.full((1, 1), 0.25, np.float32))
    assert up[0].uncertainty == 0.25
    pub.reset()
    assert np.isnan(pub.unc).all()
    up, _ = pub.delta(*args)   # after a reset the relation is new again: sent whole, now without uncertainty
    assert len(up) == 1 and math.isnan(up[0].uncertainty)
