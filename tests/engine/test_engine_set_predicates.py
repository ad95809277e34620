"""Engine.set_predicates: an open-vocabulary model (UASAN head exported with 'pair_vector') scored against another
predicate list at run time, through the filter, the published graph, the wire and JSON; every refusal."""
import math

import numpy as np
import pytest

from engine.backends import load_relation_backend
from engine.config import EngineConfig, FilterConfig, GraphConfig, RelationBackendConfig
from engine.graph.build import SCORE_STEPS
from engine.graph.graph_json import graph_to_dict
from engine.relate.open_vocab import MAX_PREDICATES
from engine.relate.relation_io import DEFAULT_MODEL_DIR
from engine.runtime import Engine
from engine.vocab import Vocabulary
from test_engine_model import check_published_against_reference_diff, walkers
from test_engine_uncertainty import run_over_the_wire

EVERY_CHANGE = GraphConfig(box_tolerance_px=0.0, score_tolerance=0.0)
RAW = FilterConfig(tau_s=0.0, enter=0.0, exit=0.0, min_duration_s=0.0)  # smoothed = this frame's score, all held
E = 384


@pytest.fixture(scope="module")
def backend(uasan_model):
    return load_relation_backend(RelationBackendConfig(model_path=str(uasan_model.onnx), backend="ort-cpu"))


def engine(backend, filter_cfg=RAW) -> Engine:
    return Engine(EngineConfig(filter=filter_cfg, graph=EVERY_CHANGE),
                  Vocabulary("model_objects", tuple(backend.info.objects)), backend)


def unit_table(n, seed=0):
    t = np.random.default_rng(seed).standard_normal((n, E)).astype(np.float32)
    return t / np.linalg.norm(t, axis=1, keepdims=True)


def smoothed_by_pair(eng: Engine) -> dict:
    """{(subject, object): the filter's (C,) scores of the pair} for every pair the store holds."""
    return {k: eng.filter.smoothed[r].copy() for k, r in eng.store.index.items()}


def test_subset_of_trained_names_keeps_their_scores(backend):
    """Names the model was trained on, without a table (rows from the side-car): from the switch on, each kept
    name's column equals that name's column of an engine that never switched, pair by pair and frame by frame
    (the per-pair model state carries over), and the graph holds exactly the kept names."""
    names = backend.info.predicates
    keep = (names[7], names[0], names[40], names[131])
    ref, eng = engine(backend), engine(backend)
    for f, t, d in walkers(20, n=4):
        if f == 8:
            eng.set_predicates(keep)
        ref.step(d, t)
        eng.step(d, t)
        if f >= 8:
            a, b = smoothed_by_pair(ref), smoothed_by_pair(eng)
            assert a.keys() == b.keys() and len(a) == 12
            for k in a:
                np.testing.assert_allclose(b[k][:len(keep)], a[k][[names.index(n) for n in keep]], atol=1e-5,
                                           rtol=0)
    assert eng.predicates.names == keep and eng.filter.smoothed.shape[1] == len(keep)
    rels = eng.snapshot().relations.values()
    assert {r.predicate for r in rels} == set(keep) and len(rels) == 12 * len(keep)
    held = ref.snapshot().relations
    assert all(abs(held[r.key].score - r.score) <= 1.0 / SCORE_STEPS for r in rels)


def test_new_names_are_published_through_the_wire_and_json(backend):
    """An arbitrary table of never-trained names: scores in [0, 1] that differ between pairs and names, published
    under the new names in deltas, the wire replica, the snapshot and the graph JSON; uncertainty NaN."""
    names = ("hands over", "waves at", "leans on", "queues behind", "\u00e9coute")
    eng = engine(backend)
    eng.set_predicates(names, unit_table(len(names), seed=1))
    run_over_the_wire(eng, walkers(10, n=3))
    g = eng.snapshot()
    assert len(g.relations) == 6 * len(names) and {r.predicate for r in g.relations.values()} == set(names)
    scores = np.array([r.score for r in g.relations.values()])
    assert (scores >= 0).all() and (scores <= 1).all() and scores.std() > 0.01
    assert all(math.isnan(r.uncertainty) for r in g.relations.values())
    assert {d["predicate"] for d in graph_to_dict(g)["relations"]} == set(names)
    assert eng.state_sizes()["predicates"] == len(names)


def test_switch_mid_stream_ends_held_relations_and_resets_the_filter(backend):
    """Documented rule: at the switch every held relation ends ('ended' changes at the last frame's time,
    returned and listed first in the next step), the next delta removes them (a kept name's relation is
    re-upserted as 'started', not 'updated'), the filter restarts (toggles stay cumulative), tracks stay."""
    eng = engine(backend, FilterConfig(tau_s=0.2, enter=0.3, exit=0.25, min_duration_s=0.0))
    frames = list(walkers(30, n=4))
    for _, t, d in frames[:12]:
        eng.step(d, t)
    before, t_last, toggles = eng.snapshot(), frames[11][1], eng.filter.toggles
    tracks = set(before.entities)
    assert len(before.relations) > 5
    kept = eng.predicates.names[:20]
    ended = eng.set_predicates(kept)
    assert {(c.subject_id, c.predicate, c.object_id) for c in ended} == set(before.relations)
    assert all(c.kind == "ended" and c.t == t_last for c in ended)
    assert eng.snapshot() == before  # nothing is published before the next step
    assert not eng.filter.active.any() and eng.filter.toggles == toggles + len(ended)

    _, t, d = frames[12]
    res = eng.step(d, t)
    assert res.changes[:len(ended)] == ended
    again = {r.key for r in res.delta.upsert_relations}
    assert set(res.delta.remove_relations) == set(before.relations) - again
    assert {r.predicate for r in res.graph.relations.values()} <= set(kept)
    assert not any(c.kind == "updated" for c in res.changes)
    started = {(c.subject_id, c.predicate, c.object_id) for c in res.changes if c.kind == "started"}
    assert again == started and again & set(before.relations)   # some kept relations restarted at once
    assert set(res.graph.entities) == tracks
    # afterwards the incremental path equals a full diff again
    check_published_against_reference_diff(eng, frames[13:], 0.0, 0.0)


def test_switching_twice_and_reset_stay_bounded(backend):
    """Two switches before a step: the second ends nothing more; the step removes every old relation once.
    reset() keeps the list and drops what was pending; a list of MAX_PREDICATES names sizes the filter to it."""
    eng = engine(backend)
    frames = list(walkers(6, n=3))
    for _, t, d in frames[:5]:
        eng.step(d, t)
    held = set(eng.snapshot().relations)
    assert len(held) == 6 * len(backend.info.predicates)
    assert len(eng.set_predicates(("a", "b"), unit_table(2))) == len(held)
    assert eng.set_predicates(("c",), unit_table(1, seed=2)) == ()
    res = eng.step(frames[5][2], frames[5][1])
    assert {r.predicate for r in res.graph.relations.values()} == {"c"} and len(res.graph.relations) == 6
    assert set(res.delta.remove_relations) == held and sum(c.kind == "ended" for c in res.changes) == len(held)
    eng.set_predicates(("d",), unit_table(1, seed=3))
    eng.reset()
    assert eng.predicates.names == ("d",) and eng._switched == (set(), []) and not eng.snapshot().relations
    eng.set_predicates([f"n{i}" for i in range(MAX_PREDICATES)], unit_table(MAX_PREDICATES))
    assert eng.filter.smoothed.shape == (eng.store.capacity, MAX_PREDICATES)


BAD = [
    (lambda i: ([], None), ValueError, "1 to 1024 names, got 0"),
    (lambda i: ([f"n{k}" for k in range(MAX_PREDICATES + 1)], unit_table(MAX_PREDICATES + 1)), ValueError,
     "1 to 1024 names, got 1025"),
    (lambda i: (["ride", "ride"], unit_table(2)), ValueError, "duplicate entries: \\['ride'\\]"),
    (lambda i: (["ride", ""], unit_table(2)), ValueError, "empty name"),
    (lambda i: (["ride", "x\x1b[31m"], unit_table(2)), ValueError, "non-printable character U\\+001B"),
    (lambda i: (["ride", "over\u202e"], unit_table(2)), ValueError, "non-printable character U\\+202E"),
    (lambda i: ([" ride"], unit_table(1)), ValueError, "leading or trailing whitespace"),
    (lambda i: (["ride", 3], unit_table(2)), TypeError, "expected a string, got int"),
    (lambda i: ("ride", unit_table(1)), TypeError, "expected a sequence of predicate names"),
    (lambda i: (["x" * 129], unit_table(1)), ValueError, "has 129 characters; the wire carries at most 128"),
    (lambda i: (["a", "b", "c"], unit_table(2)), ValueError, "2 rows for 3 names"),
    (lambda i: (["a", "b"], unit_table(2)[:, :100]), ValueError, "expected \\(2, 384\\) text embeddings"),
    (lambda i: (["a", "b"], unit_table(2)[0]), ValueError, "expected \\(2, 384\\) text embeddings"),
    (lambda i: (["a", "b"], np.where(np.arange(E) == 5, np.nan, unit_table(2))), ValueError, "row 0 holds NaN"),
    (lambda i: (["a", "b"], np.vstack([unit_table(1), np.full((1, E), np.inf)])), ValueError, "row 1 holds NaN or inf"),
    (lambda i: (["a", "b"], np.zeros((2, E), bool)), ValueError, "dtype bool"),
    (lambda i: ([i.predicates[0], "flies over"], None), ValueError,
     "\\['flies over'\\] are not among the model's 132 trained predicates.*vsgg embed-names"),
]


@pytest.mark.parametrize("case", range(len(BAD)))
def test_bad_lists_are_refused_and_change_nothing(backend, case):
    make, err, msg = BAD[case]
    eng = engine(backend)
    for _, t, d in walkers(4, n=3):
        eng.step(d, t)
    before = (eng.snapshot(), eng.predicates, eng.filter, eng._pub, eng.state_sizes())
    names, table = make(backend.info)
    with pytest.raises(err, match=msg):
        eng.set_predicates(names, table)
    assert (eng.snapshot(), eng.predicates, eng.filter, eng._pub, eng.state_sizes()) == before
    assert eng._scorer is None and eng._switched == (set(), [])


def test_table_of_another_embedding_model_is_refused(backend):
    with pytest.raises(ValueError, match="made with the text embedding model 'clip'; .* was trained with"):
        engine(backend).set_predicates(["a"], unit_table(1), embedding_model="clip")


def test_models_that_are_not_open_vocabulary_are_refused(backend):
    default = load_relation_backend(RelationBackendConfig(model_path=str(DEFAULT_MODEL_DIR), backend="ort-cpu"))
    eng = Engine(EngineConfig(), Vocabulary("o", tuple(default.info.objects)), default)
    with pytest.raises(ValueError, match="not an open-vocabulary model .*train with model.uasan.enabled=true"):
        eng.set_predicates(default.info.predicates[:2])
    assert eng.predicates.names == default.info.predicates
    with pytest.raises(ValueError, match="without a relation model; not an open-vocabulary model"):
        Engine(EngineConfig(), Vocabulary("o", ("person",))).set_predicates(["a"], unit_table(1))
