"""Engine without a relation model: empty frames, bad input leaves state untouched, bounded state, graph protocol."""
import numpy as np
import pytest

from engine.config import EngineConfig, PairsConfig, TrackerConfig
from engine.graph.diff import apply, empty_graph
from engine.runtime import Engine
from engine.types import Detections
from engine.vocab import builtin

OBJECTS = builtin("vidvrd_objects")
PERSON = OBJECTS.index("person")


def dets(boxes, scores=None, labels=None):
    b = np.asarray(boxes, np.float32).reshape(-1, 4)
    s = np.full(len(b), 0.9, np.float32) if scores is None else np.asarray(scores, np.float32)
    lab = np.full(len(b), PERSON, np.int32) if labels is None else np.asarray(labels, np.int32)
    return Detections(b, s, lab)


def moving_scene(n_frames, n_objects=3):
    for f in range(n_frames):
        boxes = [[10 + 60 * k + 2 * f, 50, 50 + 60 * k + 2 * f, 150] for k in range(n_objects)]
        yield f, f / 25.0, dets(boxes)


def test_entities_and_deltas_replay_to_the_same_graph():
    eng = Engine(EngineConfig(), OBJECTS)
    g = empty_graph(eng.epoch)
    for _, t, d in moving_scene(20):
        res = eng.step(d, t)
        g = apply(g, res.delta)
        assert g == res.graph == eng.snapshot()
    assert len(g.entities) == 3 and not g.relations
    assert all(e.label == "person" for e in g.entities.values())


def test_moving_entities_are_republished_within_the_box_tolerance():
    """Independent expectation: the published boxes follow the objects' true boxes (the detections we fed), within
    the graph's box tolerance plus the Kalman filter's lag, and moved entities are re-sent in the deltas."""
    tol = EngineConfig().graph.box_tolerance_px
    eng = Engine(EngineConfig(), OBJECTS)
    republished = 0
    for f, t, d in moving_scene(60):             # every box moves 2 px per frame to the right: 118 px in all
        res = eng.step(d, t)
        republished += sum(e.id in eng.snapshot().entities for e in res.delta.upsert_entities) if f > 5 else 0
        if f >= 10:
            truth = d.boxes_xyxy[np.argsort(d.boxes_xyxy[:, 0])]
            pub = np.array(sorted(e.box_xyxy for e in res.graph.entities.values()), np.float32)
            assert pub.shape == truth.shape
            np.testing.assert_allclose(pub, truth, atol=tol + 2.0)   # lag of a constant-velocity Kalman: < 2 px
    assert republished >= 3 * 20                 # 3 entities, re-sent at least every other frame of the 54 moving


def test_empty_frames_and_held_entities():
    eng = Engine(EngineConfig(), OBJECTS)
    for _, t, d in moving_scene(5):
        eng.step(d, t)
    ids = set(eng.snapshot().entities)
    res = eng.step(Detections.empty(), 0.5)          # a missed frame does not remove entities
    assert set(res.graph.entities) == ids and res.delta.is_empty
    for k in range(1, 40):                            # ...until the tracker drops the tracks (max_age 30)
        res = eng.step(Detections.empty(), 0.5 + k / 25)
    assert not res.graph.entities


@pytest.mark.parametrize("bad, match", [
    (lambda: (dets([[0, 0, 10, 10]]), 0.0), r"t: must increase strictly, got 0\.0 after 0\.36"),  # time backwards
    (lambda: (dets([[0, 0, 10, 10]], labels=[999]), 9.0),
     r"labels: index 999 is outside the object vocabulary 'vidvrd_objects' \(35 labels\)"),
    (lambda: ("not detections", 9.0), r"frame: expected engine.types.Detections \(no detector is configured"),
])
def test_bad_input_leaves_state_unchanged(bad, match):
    eng = Engine(EngineConfig(), OBJECTS)
    for _, t, d in moving_scene(10):
        eng.step(d, t)
    before = (eng.snapshot(), eng.state_sizes(), eng.tracker.state_sizes())
    frame, t = bad()
    with pytest.raises((ValueError, TypeError), match=match):
        eng.step(frame, t)
    assert (eng.snapshot(), eng.state_sizes(), eng.tracker.state_sizes()) == before
    eng.step(dets([[30, 50, 70, 150]]), 10.0)  # and it keeps working


def test_bounded_state_on_long_random_stream():
    cfg = EngineConfig(tracker=TrackerConfig(max_tracks=64, max_age=5),
                       pairs=PairsConfig(max_entities=32, max_pair_states=64, max_pairs=20))
    eng = Engine(cfg, OBJECTS)
    rng = np.random.default_rng(0)
    peak = {}
    for f in range(10_000):
        n = int(rng.integers(0, 12))
        xy = rng.uniform(0, 600, (n, 2))
        wh = rng.uniform(10, 80, (n, 2))
        eng.step(dets(np.hstack([xy, xy + wh]), rng.uniform(0.5, 1.0, n)), f / 30)
        for k, v in eng.state_sizes().items():
            peak[k] = max(peak.get(k, 0), v)
    assert peak["tracks"] <= 64 and peak["history_slots"] <= 32 and peak["held_entities"] <= 32
    assert peak["first_seen"] <= 64 and peak["pair_states"] <= 64
    assert eng.tracker.state_sizes()["next_id"] > 1000  # many tracks lived and died


def test_reset_starts_new_epoch():
    eng = Engine(EngineConfig(), OBJECTS)
    for _, t, d in moving_scene(5):
        eng.step(d, t)
    old = eng.epoch
    eng.reset()
    assert eng.epoch != old and eng.snapshot() == empty_graph(eng.epoch)
    eng.step(dets([[0, 0, 10, 10]]), 0.0)  # time may start over after a reset
