"""A relation model's uncertainty output through the engine: filter, published graph, snapshot, JSON and the wire.

Two real exported models: FReMuRe's Bayesian head (``bayes_model``, I/O version 2 with the 'uncertainty' output)
and the shipped default model (I/O version 1, no uncertainty: every relation carries NaN).
"""
import math

import numpy as np
import pytest

from engine.backends import load_relation_backend
from engine.config import EngineConfig, FilterConfig, GraphConfig, PairsConfig, RelationBackendConfig, TrackerConfig
from engine.graph.build import SCORE_STEPS
from engine.graph.diff import apply, empty_graph
from engine.graph.graph_json import graph_to_dict
from engine.relate.relation_io import DEFAULT_MODEL_DIR
from engine.runtime import Engine
from engine.transport import wire
from engine.vocab import Vocabulary
from test_engine_model import check_published_against_reference_diff, churn, observed_score_quantiles, walkers

MAX_ITEMS = 10_000
EVERY_CHANGE = GraphConfig(box_tolerance_px=0.0, score_tolerance=0.0)
ALL_ACTIVE = FilterConfig(tau_s=0.1, enter=0.0, exit=0.0, min_duration_s=0.0)  # every (pair, predicate) held


@pytest.fixture(scope="module")
def bayes_backend(bayes_model):
    return load_relation_backend(RelationBackendConfig(model_path=str(bayes_model.onnx), backend="ort-cpu"))


@pytest.fixture(scope="module")
def default_backend():
    """The shipped engine/models/default (I/O version 1: no uncertainty output)."""
    return load_relation_backend(RelationBackendConfig(model_path=str(DEFAULT_MODEL_DIR), backend="ort-cpu"))


def objects_of(backend) -> Vocabulary:
    return Vocabulary("model_objects", tuple(backend.info.objects))


def run_over_the_wire(eng: Engine, frames):
    """Step ``eng`` through ``frames``; each delta goes through the wire (short forms against the graph the
    receiver holds) and is applied to a replica. Returns the per-frame StepResults; checks the replica each frame."""
    replica, results = empty_graph(eng.epoch), []
    for _, t, d in frames:
        res = eng.step(d, t)
        got = wire.decode_pub(wire.encode_delta(res.delta, MAX_ITEMS, base=replica), 1 << 24, MAX_ITEMS)
        replica = apply(replica, got.resolve(replica))
        assert replica == res.graph == eng.snapshot()
        results.append(res)
    return results


def test_bayesian_head_publishes_the_frames_uncertainty_per_relation(bayes_backend):
    """Every published relation carries a finite uncertainty in [0, 1], the one the model gave its predicate in
    the frame the relation was last published (tolerance 0: every frame), bit-exact through deltas, the wire,
    the snapshot reply and the graph JSON; the values move between frames while scores are smoothed."""
    eng = Engine(EngineConfig(filter=ALL_ACTIVE, graph=EVERY_CHANGE), objects_of(bayes_backend), bayes_backend)
    results = run_over_the_wire(eng, walkers(8, n=3))
    g = eng.snapshot()
    assert len(g.relations) == 6 * len(eng.predicates)  # 3 entities: 6 ordered pairs, every predicate held
    unc = np.array([r.uncertainty for r in g.relations.values()])
    assert np.isfinite(unc).all() and (unc >= 0).all() and (unc <= 1).all() and unc.std() > 0.05
    names = eng.predicates.names
    for key, r in g.relations.items():
        row = eng.store.index[(r.subject_id, r.object_id)]
        want = eng.filter.uncertainty[row, names.index(r.predicate)]
        assert r.uncertainty == round(float(want) * SCORE_STEPS) / SCORE_STEPS
    # uncertainty-only moves are re-sent as updates; started events carry the starting frame's uncertainty
    started = [c for c in results[0].changes if c.kind == "started"]
    assert started and all(0 <= c.uncertainty <= 1 for c in started)
    moved = {r.key for res in results[1:] for r in res.delta.upsert_relations}
    assert len(moved) > len(g.relations) // 2
    # snapshot reply (what a late joiner gets) and JSON keep it
    items = wire.decode_reply(wire.encode_items(g.epoch, g.seq, 1, list(g.entities.values()),
                                                list(g.relations.values()), MAX_ITEMS), 1 << 24, MAX_ITEMS)
    assert {r.key: r for r in items.relations} == g.relations
    rels = graph_to_dict(g)["relations"]
    assert all(0 <= d["uncertainty"] <= 1 for d in rels)


def test_model_without_uncertainty_publishes_nan(default_backend):
    """The shipped default model (I/O version 1) has no uncertainty output: NaN in the graph, nil on the wire,
    absent from the JSON."""
    assert not default_backend.info.has_uncertainty and default_backend.info.io_version == 1
    eng = Engine(EngineConfig(filter=ALL_ACTIVE, graph=EVERY_CHANGE), objects_of(default_backend), default_backend)
    run_over_the_wire(eng, walkers(4, n=3))
    g = eng.snapshot()
    assert g.relations and all(math.isnan(r.uncertainty) for r in g.relations.values())
    assert all("uncertainty" not in d for d in graph_to_dict(g)["relations"])
    assert np.isnan(eng.filter.uncertainty).all()


@pytest.mark.parametrize("box_tol, score_tol", [(0.0, 0.0), (2.0, 0.05)])
def test_published_relations_with_uncertainty_equal_the_reference_diff(bayes_backend, box_tol, score_tol):
    """As the default model's test in test_engine_model: the array-based publisher against diff(), now with an
    uncertainty that moves every frame (re-sent beyond the tolerance, field by field), relations coming and going."""
    objects = objects_of(bayes_backend)
    q = observed_score_quantiles(bayes_backend, objects)
    cfg = EngineConfig(filter=FilterConfig(tau_s=0.1, enter=q[75], exit=q[70], min_duration_s=0.0),
                       tracker=TrackerConfig(max_age=3), pairs=PairsConfig(max_pairs=12, max_pair_states=16,
                                                                           max_entities=6),
                       graph=GraphConfig(box_tolerance_px=box_tol, score_tolerance=score_tol))
    eng = Engine(cfg, objects, bayes_backend)
    n_rel, n_upd = check_published_against_reference_diff(eng, churn(300, max_live=7, seed=3), box_tol, score_tol)
    assert n_rel > 100 and n_upd > 10
