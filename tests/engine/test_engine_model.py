"""Engine with a real (random-weight, exported) relation model on onnxruntime: relations, replay, bounded state."""
import numpy as np
import pytest

from engine.backends import load_relation_backend
from engine.config import (EngineConfig, FilterConfig, GraphConfig, PairsConfig, RelationBackendConfig,
                           TrackerConfig)
from engine.graph.diff import apply, diff, empty_graph
from engine.graph.build import quantize_relation
from engine.graph.graph_json import graph_to_dict
from engine.runtime import Engine
from engine.types import Detections, Relation, SceneGraph
from engine.vocab import Vocabulary, builtin


@pytest.fixture(scope="module")
def backend(random_model_dir):
    return load_relation_backend(RelationBackendConfig(model_path=str(random_model_dir), backend="ort-cpu"))


@pytest.fixture(scope="module")
def objects(backend):
    return Vocabulary("model_objects", tuple(backend.info.objects))


def walkers(n_frames, n=4, leave_at=None, seed=0, num_labels=35):
    """n boxes walking across a 640x480 image; box 0 is not detected from frame ``leave_at`` on."""
    rng = np.random.default_rng(seed)
    start = rng.uniform([20, 50], [400, 300], (n, 2))
    vel = rng.normal(0, 2, (n, 2))
    size = rng.uniform([30, 60], [80, 160], (n, 2))
    labels = rng.integers(0, num_labels, n).astype(np.int32)
    for f in range(n_frames):
        keep = np.ones(n, bool)
        if leave_at is not None and f >= leave_at:
            keep[0] = False
        xy = start + vel * f
        boxes = np.hstack([xy, xy + size])[keep].astype(np.float32)
        yield f, f / 25.0, Detections(boxes, np.full(keep.sum(), 0.9, np.float32), labels[keep])


def churn(n_frames, max_live=5, seed=0, num_labels=35):
    """Objects appearing (10 % chance per frame), moving for 10-80 frames and vanishing; at most ``max_live``."""
    rng = np.random.default_rng(seed)
    live = []  # [xy (2,), velocity (2,), size (2,), label, frames left]
    for f in range(n_frames):
        live = [o for o in live if o[4] > 0]
        if len(live) < max_live and rng.random() < 0.1:
            live.append([rng.uniform(50, 500, 2), rng.normal(0, 2, 2), rng.uniform(30, 80, 2),
                         int(rng.integers(0, num_labels)), int(rng.integers(10, 80))])
        for o in live:
            o[0], o[4] = o[0] + o[1], o[4] - 1
        boxes = np.array([np.concatenate([o[0], o[0] + o[2]]) for o in live], np.float32).reshape(-1, 4)
        yield f, f / 30.0, Detections(boxes, np.full(len(live), 0.9, np.float32),
                                      np.array([o[3] for o in live], np.int32))


@pytest.fixture(scope="module")
def score_quantiles(backend, objects):
    return observed_score_quantiles(backend, objects)


def observed_score_quantiles(backend, objects) -> dict[int, float]:
    """Quantiles of the model's scores on the walker scene: the random model's scores sit in a narrow band, so
    filter thresholds that make relations come and go are taken from what it actually outputs."""
    eng = Engine(EngineConfig(filter=FilterConfig(tau_s=0.0, enter=1.0, exit=1.0, min_duration_s=0.0)), objects,
                 backend)
    seen = []
    for _, t, d in walkers(40):
        eng.step(d, t)
        rows = np.array(sorted(eng.store.index.values()), np.int64)
        if len(rows):
            seen.append(eng.filter.smoothed[rows].ravel())
    s = np.concatenate(seen)
    assert s.std() > 0, "the model gives the same score everywhere; nothing can be tested"
    return {q: float(np.quantile(s, q / 100)) for q in (50, 70, 75, 90, 99)}


def filtered_cfg(q, **kw):
    return EngineConfig(filter=FilterConfig(tau_s=0.1, enter=q[75], exit=q[70], min_duration_s=0.0), **kw)


def test_relations_flow_and_deltas_replay_to_the_engine_graph(backend, objects, score_quantiles):
    eng = Engine(filtered_cfg(score_quantiles, tracker=TrackerConfig(max_age=5)), objects, backend)
    eng.warmup()
    g = empty_graph(eng.epoch)
    kinds, n_rel, leaver_rel_before = [], [], 0
    for f, t, d in walkers(70, n=4, leave_at=35):
        res = eng.step(d, t)
        g = apply(g, res.delta)
        assert g == res.graph == eng.snapshot(), f"frame {f}: replayed graph differs from the engine's"
        if f < 35:
            assert res.num_pairs == 12  # every ordered pair of the 4 observed entities is scored
        assert all(r.predicate in backend.info.predicates for r in g.relations.values())
        kinds += [(c.kind, c.subject_id, c.object_id) for c in res.changes]
        n_rel.append(len(g.relations))
        if f == 34:
            leaver_rel_before = sum(0 in (r.subject_id, r.object_id) for r in g.relations.values())
    assert max(n_rel) > 0 and any(k == "started" for k, _, _ in kinds)
    # entity 0 vanished at frame 35 and was dropped after max_age: its relations ended with it
    assert 0 not in g.entities and all(0 not in (r.subject_id, r.object_id) for r in g.relations.values())
    assert leaver_rel_before > 0
    assert sum(k == "ended" and 0 in (s, o) for k, s, o in kinds) >= leaver_rel_before


def test_same_input_same_graph(backend, objects, score_quantiles):
    out = []
    for _ in range(2):
        eng = Engine(filtered_cfg(score_quantiles), objects, backend)
        for _, t, d in walkers(30, seed=3):
            eng.step(d, t)
        gd = graph_to_dict(eng.snapshot())
        gd.pop("epoch")
        out.append(gd)
    assert out[0] == out[1] and out[0]["relations"]


def test_model_vocabulary_must_match(backend):
    with pytest.raises(ValueError, match="objects"):
        Engine(EngineConfig(), builtin("ag_objects"), backend)


def test_bad_label_with_model_leaves_state_unchanged(backend, objects, score_quantiles):
    eng = Engine(filtered_cfg(score_quantiles), objects, backend)
    for _, t, d in walkers(10):
        eng.step(d, t)
    before = (eng.snapshot(), eng.state_sizes(), eng.filter.active.copy(), eng.store.window.copy())
    bad = Detections(np.array([[0, 0, 10, 10]], np.float32), np.array([0.9], np.float32),
                     np.array([len(objects)], np.int32))
    with pytest.raises(ValueError, match="labels"):
        eng.step(bad, 1.0)
    after = (eng.snapshot(), eng.state_sizes(), eng.filter.active, eng.store.window)
    assert before[:2] == after[:2] and (before[2] == after[2]).all() and (before[3] == after[3]).all()


def _check_bounded(eng: Engine, cfg: EngineConfig) -> dict:
    s = eng.state_sizes()
    p, tr = cfg.pairs, cfg.tracker
    assert s["tracks"] <= tr.max_tracks and s["first_seen"] <= tr.max_tracks
    assert s["history_slots"] <= p.max_entities and s["held_entities"] <= p.max_entities
    assert s["entities"] <= p.max_entities and s["pair_states"] <= p.max_pair_states
    assert s["relations"] <= p.max_pair_states * max(len(eng.predicates), 1)
    st = eng.store
    assert len(st.free) + len(st.index) == st.capacity == p.max_pair_states  # no row lost or duplicated
    free = np.array(st.free, np.int64)
    assert not eng.filter.active[free].any(), "a released pair row still holds an active relation"
    return s


def _state_bytes(eng: Engine) -> int:
    arrays = (eng.store.window, eng.store.window_valid, eng.store.prev_out, eng.filter.smoothed, eng.filter.active,
              eng.filter.pending_since, eng.filter.start_time, eng.filter.last_t, eng.filter.uncertainty,
              eng.store.subject_ids, eng.store.object_ids, eng._pub.score, eng._pub.unc, eng._pub.start,
              eng._pub.subject_ids, eng._pub.object_ids)
    return sum(a.nbytes for a in arrays) + eng.tracker.state_sizes()["state_bytes"]


BOUNDED = EngineConfig(tracker=TrackerConfig(max_tracks=16, max_age=5),
                       pairs=PairsConfig(max_entities=8, max_pair_states=16, max_pairs=12))


def test_100k_frame_stream_without_model_keeps_state_bounded(objects):
    """100,000 frames of churn (tracks born and dying all the time) through the tracker + graph engine."""
    eng = Engine(BOUNDED, objects)
    bytes0 = _state_bytes(eng)
    peak = {}
    for f, t, d in churn(100_000):
        eng.step(d, t)
        if f % 100 == 0:
            for k, v in _check_bounded(eng, BOUNDED).items():
                peak[k] = max(peak.get(k, 0), v)
    assert _state_bytes(eng) == bytes0
    assert eng.tracker.state_sizes()["next_id"] > 5_000  # thousands of tracks lived and died
    assert peak["entities"] >= 4


def test_100k_frame_stream_with_model_keeps_pair_and_filter_state_bounded(backend, objects, score_quantiles):
    """100,000 frames with the relation model (~1.5 ms a frame here, the slowest test of the suite): pair rows
    are evicted (LRU) and released with their tracks, relations start and end, state stays at its caps."""
    cfg = EngineConfig(tracker=BOUNDED.tracker, pairs=BOUNDED.pairs,
                       filter=FilterConfig(tau_s=0.1, enter=score_quantiles[90], exit=score_quantiles[75],
                                           min_duration_s=0.0))
    eng = Engine(cfg, objects, backend)
    bytes0 = _state_bytes(eng)
    balance, peak = 0, {}
    for f, t, d in churn(100_000, seed=1):
        res = eng.step(d, t)
        balance += sum(c.kind == "started" for c in res.changes) - sum(c.kind == "ended" for c in res.changes)
        if f % 200 == 0:
            for k, v in _check_bounded(eng, cfg).items():
                peak[k] = max(peak.get(k, 0), v)
            # every relation that started and has not ended is still active in the filter: no silent drops
            assert balance == int(eng.filter.active.sum())
            assert len(eng._pub) == len(eng.published.relations)  # published state tracks the graph exactly
    assert _state_bytes(eng) == bytes0
    assert peak["pair_states"] == cfg.pairs.max_pair_states  # the store filled up and had to evict
    assert peak["relations"] > 0 and eng.tracker.state_sizes()["next_id"] > 5_000


@pytest.mark.parametrize("box_tol, score_tol", [(0.0, 0.0), (2.0, 0.05)])
def test_published_relations_equal_the_reference_diff(backend, objects, score_quantiles, box_tol, score_tol):
    """The engine publishes relations from arrays (engine.graph.published); every frame its relation delta must be
    what diff() gives for the full graph built from the filter's active relations, evictions and churn included."""
    cfg = filtered_cfg(score_quantiles, tracker=TrackerConfig(max_age=3),
                       pairs=PairsConfig(max_pairs=12, max_pair_states=16, max_entities=6),
                       graph=GraphConfig(box_tolerance_px=box_tol, score_tolerance=score_tol))
    eng = Engine(cfg, objects, backend)
    n_rel, n_upd = check_published_against_reference_diff(eng, churn(600, max_live=7, seed=3), box_tol, score_tol)
    assert n_rel > 100, "too few relations to test anything"
    assert n_upd > 10 or score_tol > 0, "no updates"  # the random model's scores rarely move by 0.05


def check_published_against_reference_diff(eng: Engine, frames, box_tol: float, score_tol: float) -> tuple[int, int]:
    """Step ``eng`` through ``frames`` ((f, t, Detections) items); every frame its relation delta must equal what
    diff() gives for the full graph of the filter's active relations (score and uncertainty), and its 'updated'
    changes must be the re-sent held relations. Returns (relations summed over frames, updates)."""
    n_rel = n_upd = 0
    for _, t, d in frames:
        prev = eng.published
        res = eng.step(d, t)
        ents = res.graph.entities
        rels = {r.key: quantize_relation(r) for r in eng.current_relations()
                if r.subject_id in ents and r.object_id in ents}
        ref = diff(prev, SceneGraph(t, ents, rels, eng.epoch, prev.seq + 1), box_tol, score_tol)
        assert res.delta.upsert_relations == ref.upsert_relations  # Relation equality: NaN uncertainty == NaN
        assert res.delta.remove_relations == ref.remove_relations
        assert set(res.graph.relations) == set(rels)
        updated = {(c.subject_id, c.predicate, c.object_id): Relation(c.subject_id, c.predicate, c.object_id,
                                                                       c.score, c.uncertainty, c.start_time)
                   for c in res.changes if c.kind == "updated"}
        assert updated == {r.key: r for r in res.delta.upsert_relations if r.key in prev.relations}
        n_upd += len(updated)
        n_rel += len(res.graph.relations)
    assert len(eng._pub) == len(eng.published.relations)
    return n_rel, n_upd
