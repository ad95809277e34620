"""Engine: the causal per-frame pipeline detector -> tracker -> pairs -> features -> relation model -> filter -> graph -> diff.

``Engine.step`` must be called once per frame, in time order, also when nothing is detected. All state is bounded:
the tracker has a fixed number of slots, motion history is kept for at most ``pairs.max_entities`` entities, the
pair store for at most ``pairs.max_pair_states`` pairs (least recently seen evicted), and everything belonging to a
track is dropped when the tracker removes it.
"""
from __future__ import annotations

import math
import uuid
from dataclasses import dataclass

import numpy as np

from engine.config import EngineConfig
from engine.frame_time import check_frame_time
from engine.graph.build import entities_from_tracks, quantize_entity
from engine.graph.diff import apply, diff_entities, empty_graph
from engine.graph.published import PublishedRelations
from engine.relate.features import DEFAULT_FEATURE_LAG, BoxHistory, pair_features
from engine.relate.pairs import PairStore, select_pairs
from engine.relate.relation_filter import UPDATED, RelationFilter
from engine.stage_timer import StageTimer
from engine.track.tracker import Tracker
from engine.types import Detections, GraphDelta, Relation, SceneGraph, Tracks
from engine.vocab import Vocabulary

STAGES = ("detector", "tracker", "pairs", "features", "model", "filter", "graph")


@dataclass(frozen=True)
class RelationChange:
    """A relation lifecycle event at time t (s), with its start time (s) and score: kind 'started', 'updated' (a
    held relation's published score or uncertainty moved beyond the graph's score tolerance) or 'ended'.
    uncertainty: NaN when the model gives none."""

    kind: str
    subject_id: int
    predicate: str
    object_id: int
    t: float
    start_time: float
    score: float
    uncertainty: float = math.nan


@dataclass(frozen=True)
class StepResult:
    """What one ``Engine.step`` produced. ``delta`` takes the previous published graph to ``graph``."""

    delta: GraphDelta
    graph: SceneGraph
    changes: tuple[RelationChange, ...]
    timings_ms: dict
    num_pairs: int


class Engine:
    """Frames or detections in, incremental scene graph out.

    backend: a RelationBackend (engine.backends) or None for a tracker-only graph (entities, no relations).
    detector: an OnnxDetector (engine.detect.detector) or a MappedDetector, or None when the caller passes Detections.
    objects: the object vocabulary of detection labels. With a backend it must begin with the relation model's
    objects; labels past those (detector classes the model does not know, kept by ``--keep-unknown``) are tracked
    and published as entities but never paired.
    """

    def __init__(self, cfg: EngineConfig, objects: Vocabulary, backend=None, detector=None,
                 image_wh: tuple[int, int] = (640, 480)):
        self.cfg, self.objects, self.backend, self.detector = cfg, objects, backend, detector
        if not (image_wh[0] > 0 and image_wh[1] > 0):
            raise ValueError(f"image_wh: must be positive (width, height) in pixels, got {image_wh}")
        self.image_wh = (int(image_wh[0]), int(image_wh[1]))  # features normalise positions by the image size
        if backend is not None:
            info = backend.info
            if tuple(objects.names[:len(info.objects)]) != tuple(info.objects):
                raise ValueError(f"objects: the relation model was trained on {len(info.objects)} object labels "
                                 f"that differ from the engine's vocabulary '{objects.name}' ({len(objects)}); "
                                 "the vocabulary must begin with the model's labels")
            self.num_model_objects = len(info.objects)
            self.predicates = Vocabulary("predicates", tuple(info.predicates))
            self.lag, window, d_model = info.feature_lag, info.window, info.d_model
        else:
            self.predicates = Vocabulary("predicates", ())
            self.num_model_objects = len(objects)
            self.lag, window, d_model = DEFAULT_FEATURE_LAG, 2, 1  # tracker-only: no pair state is used
        p = cfg.pairs
        self._window, self._d_model = window, d_model
        self.tracker = Tracker(cfg.tracker)
        self.history = BoxHistory(p.max_entities, self.lag)
        self.store = PairStore(p.max_pair_states, window, d_model)
        self.filter = RelationFilter(cfg.filter, p.max_pair_states, max(len(self.predicates), 1))
        self._pub = PublishedRelations(p.max_pair_states, max(len(self.predicates), 1))
        self.reset()

    # ------------------------------------------------------------------------------------------ lifecycle
    def reset(self) -> None:
        """Forget every track, pair and relation and start a new epoch (subscribers resync)."""
        self.tracker.reset()
        self.history.clear(np.arange(self.history.capacity))
        self.store.release(np.arange(self.store.capacity))
        self.filter.reset_rows(np.arange(self.store.capacity))
        self.filter.toggles, self.filter.active_seconds = 0, 0.0
        self._pub.reset()
        self.epoch = uuid.uuid4().hex[:12]
        self.published = empty_graph(self.epoch)
        self._slot: dict[int, int] = {}          # track id -> BoxHistory slot
        self._free_slots = list(range(self.history.capacity - 1, -1, -1))
        self._first_seen: dict[int, float] = {}
        self._entity_rows: dict[int, tuple] = {}  # track id -> last (box, score, label) for held entities
        self._t: float | None = None

    def warmup(self) -> None:
        """Compile numba kernels and run the model once on dummy inputs, so the first real frame is not slow."""
        self.tracker.warmup()
        if self.detector is not None:
            self.detector.warmup()
        if self.backend is not None:
            self.backend.warmup()

    def snapshot(self) -> SceneGraph:
        """The graph as published so far (what every up-to-date subscriber holds)."""
        return self.published

    def state_sizes(self) -> dict[str, int]:
        return {"tracks": self.tracker.state_sizes()["live"], "history_slots": len(self._slot),
                "pair_states": len(self.store), "first_seen": len(self._first_seen),
                "held_entities": len(self._entity_rows), "entities": len(self.published.entities),
                "relations": len(self.published.relations)}

    # ------------------------------------------------------------------------------------------ step
    def step(self, frame, t: float) -> StepResult:
        """One frame at time ``t`` (s, strictly increasing): ``frame`` is Detections, or an (H, W, 3) uint8 image
        when a detector is configured. Returns the graph delta, lifecycle changes and per-stage timings (ms).

        Bad input (wrong type, a time that does not increase, a label outside the vocabulary) raises before any
        engine state changes, also before the detector runs."""
        timer = StageTimer(STAGES)
        t = self._check_time(t)
        image_wh = self.image_wh
        with timer.stage("detector"):
            if isinstance(frame, Detections):
                dets = frame
            elif isinstance(frame, np.ndarray) and self.detector is not None:
                dets = self.detector.detect(frame)
                image_wh = (frame.shape[1], frame.shape[0])
            else:
                raise TypeError("frame: expected engine.types.Detections"
                                + (" or an image array" if self.detector is not None else
                                   " (no detector is configured, so images cannot be used)"))
        if len(dets) and int(dets.labels.max()) >= len(self.objects):
            raise ValueError(f"labels: index {int(dets.labels.max())} is outside the object vocabulary "
                             f"'{self.objects.name}' ({len(self.objects)} labels)")
        with timer.stage("tracker"):
            tracks = self.tracker.step(dets, t)   # validates t again; raises before any engine state changes
        self._t, self.image_wh = t, image_wh

        changes = self._forget_dead_tracks(t)
        entities = self._entities(tracks, t)
        slots = self._slots_for(tracks.ids)
        self.history.push(slots, tracks.boxes_xyxy, t)
        observed, ch = self._relations(tracks, slots, t, timer)
        changes += ch

        with timer.stage("graph"):
            # on the wire's fixed-point grid, so that every subscriber holds exactly the graph published here
            ents = {i: quantize_entity(e) for i, e in entities_from_tracks(entities, self.objects, self._first_seen,
                                                                            t).items()}
            g = self.cfg.graph
            up_e, rm_e = diff_entities(self.published.entities, ents, g.box_tolerance_px, g.score_tolerance)
            up_r, rm_r = self._pub.delta(self.store.subject_ids, self.store.object_ids, self.filter.active,
                                         self.filter.smoothed, self.filter.start_time,
                                         np.fromiter(ents, np.int64, len(ents)), self.predicates.names,
                                         g.score_tolerance, observed_rows=observed,
                                         uncertainty=self.filter.uncertainty)
            delta = GraphDelta(self.epoch, self.published.seq + 1, float(t), up_e, rm_e, up_r, rm_r)
            held = self.published.relations
            changes += [RelationChange(UPDATED, r.subject_id, r.predicate, r.object_id, float(t), r.start_time,
                                       r.score, r.uncertainty) for r in up_r if r.key in held]
            self.published = apply(self.published, delta)
        return StepResult(delta, self.published, tuple(changes), timer.ms(), len(observed))

    def _check_time(self, t) -> float:
        return check_frame_time(t, self._t)

    # ------------------------------------------------------------------------------------------ internals
    def _forget_dead_tracks(self, t: float) -> list[RelationChange]:
        """Drop history, pair state and relations of tracks the tracker no longer holds."""
        live = set(self.tracker.confirmed_ids().tolist())
        dead = {i for i in self._first_seen if i not in live}  # every id the engine holds is in _first_seen
        if not dead:
            return []
        rows = self.store.rows_of_entities(dead)
        events = self.filter.end_rows(rows, t) if len(rows) else []
        changes = self._changes(events)
        self.store.release(rows)
        for i in dead:
            slot = self._slot.pop(i, None)
            if slot is not None:
                self.history.clear([slot])
                self._free_slots.append(slot)
            self._first_seen.pop(i, None)
            self._entity_rows.pop(i, None)
        return changes

    def _entities(self, tracks: Tracks, t: float) -> Tracks:
        """Matched tracks plus confirmed tracks missed in this frame (held at their last box): a missed detection
        is not a vanished object, and holding them keeps the graph and the deltas steady."""
        for k, i in enumerate(tracks.ids.tolist()):
            self._first_seen.setdefault(i, t)
            self._entity_rows.pop(i, None)  # re-insert: dict order is then least recently matched first
            self._entity_rows[i] = (tracks.boxes_xyxy[k], tracks.scores[k], tracks.labels[k])
        if len(self._entity_rows) > self.cfg.pairs.max_entities:  # bound: keep the most recently matched
            for i in list(self._entity_rows)[: len(self._entity_rows) - self.cfg.pairs.max_entities]:
                self._entity_rows.pop(i)
        ids = np.array(list(self._entity_rows), np.int64)
        if len(ids) == 0:
            return Tracks.empty()
        rows = list(self._entity_rows.values())
        z = np.zeros(len(ids), np.int32)
        return Tracks(ids, np.array([r[0] for r in rows], np.float32), np.zeros((len(ids), 4), np.float32),
                      np.array([r[1] for r in rows], np.float32), np.array([r[2] for r in rows], np.int32), z, z)

    def _slots_for(self, ids: np.ndarray) -> np.ndarray:
        out = np.zeros(len(ids), np.int64)
        for k, i in enumerate(ids.tolist()):
            s = self._slot.get(i)
            if s is None:
                if not self._free_slots:  # more live entities than max_entities: recycle the oldest slot
                    old = next(iter(self._slot))
                    self._free_slots.append(self._slot.pop(old))
                s = self._free_slots.pop()
                self.history.clear([s])
                self._slot[i] = s
            out[k] = s
        return out

    def _relations(self, tracks: Tracks, slots: np.ndarray, t: float, timer: StageTimer):
        """Score the pairs of tracks observed in this frame and update the filter; returns (their pair-store rows,
        lifecycle changes)."""
        if self.backend is None or len(tracks) < 2 or self.cfg.pairs.max_pairs == 0:
            return np.zeros(0, np.int64), []
        with timer.stage("pairs"):
            known = np.flatnonzero(tracks.labels < self.num_model_objects)  # the model has no embedding for others
            si, oi = select_pairs(tracks.boxes_xyxy[known], self.cfg.pairs.max_pairs)
            si, oi = known[si], known[oi]
            evicted = self.store.rows_to_evict(tracks.ids[si], tracks.ids[oi])
            changes = self._changes(self.filter.end_rows(evicted, t)) if len(evicted) else []
            self.store.release(evicted)
            rows = self.store.rows_for(tracks.ids[si], tracks.ids[oi], t)
        with timer.stage("features"):
            past, dt = self.history.past(slots, t)
            b = tracks.boxes_xyxy
            feats = pair_features(b[si], b[oi], past[si], past[oi], dt[si], dt[oi], self.image_wh)
        with timer.stage("model"):
            out = self.backend.step_outputs(
                (feats, tracks.labels[si].astype(np.int64), tracks.labels[oi].astype(np.int64)),
                self.store.state(rows))
            self.store.write(rows, *out.state)
        with timer.stage("filter"):
            # the uncertainty (None for models without one) rides along unsmoothed: published as of this frame
            changes += self._changes(self.filter.update(rows, out.scores, t, out.uncertainty))
        return rows, changes

    def current_relations(self) -> list[Relation]:
        """Every relation the filter holds active now (unquantised, including pairs whose entity is not in the
        published graph): what ``step`` publishes from, within the graph tolerances. For tests and tools;
        O(relations)."""
        out = []
        act = self.filter.active
        rows = np.flatnonzero(act.any(1))  # 15x cheaper than a 2-D nonzero over all (max_pair_states, C) cells
        for i, c in zip(*np.nonzero(act[rows])):
            r = int(rows[i])
            key = self.store.keys[r]
            if key is None:
                continue
            out.append(Relation(key[0], self.predicates.names[c], key[1], float(self.filter.smoothed[r, c]),
                                float(self.filter.uncertainty[r, c]), float(self.filter.start_time[r, c])))
        return out

    def _changes(self, events) -> list[RelationChange]:
        out = []
        for e in events:
            key = self.store.keys[e.row]
            if key is not None:
                out.append(RelationChange(e.kind, key[0], self.predicates.names[e.predicate], key[1], e.t,
                                          e.start_time, e.score, e.uncertainty))
        return out
