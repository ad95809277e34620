"""Engine: the causal per-frame pipeline detector -> tracker -> pairs -> features -> relation model -> filter -> graph -> diff.

``Engine.step`` must be called once per frame, in time order, also when nothing is detected. All state is bounded:
the tracker has a fixed number of slots, motion history is kept for at most ``pairs.max_entities`` entities, the
pair store for at most ``pairs.max_pair_states`` pairs (least recently seen evicted), and everything belonging to a
track is dropped when the tracker removes it.

``Engine.set_predicates`` switches an open-vocabulary model to another predicate list between frames (see there).
"""
from __future__ import annotations

import uuid

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
from engine.types import Detections, GraphDelta, Relation, RelationChange, SceneGraph, StepResult, Tracks
from engine.vocab import Vocabulary

STAGES = ("detector", "tracker", "pairs", "features", "model", "filter", "graph")


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
        self._scorer = None  # a PredicateScorer once set_predicates switched the list; None: the model's own scores
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
        self._switched: tuple[set, list] = (set(), [])  # relation keys to remove and 'ended' changes to report
        # in the next step, after a set_predicates (at most the published relations: bounded)

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

    def set_predicates(self, names, table=None, *, embedding_model: str | None = None) -> tuple[RelationChange, ...]:
        """Score relations against another predicate list from the next frame on, without retraining.

        Needs an open-vocabulary model (an exported UASAN head: the ``pair_vector`` output). names: 1 to
        ``engine.relate.open_vocab.MAX_PREDICATES`` (1,024) distinct printable names. table: their (C', E) float32
        text embeddings (``vsgg embed-names``; E = the model's embedding dimension), or None to take names the
        model was trained on from its side-car. embedding_model: the table's embedding model, checked where given.
        Scores then come from the model's pair vectors in numpy (``engine.relate.open_vocab``) and relations are
        published under the new names (graph, wire, JSON). Every error (ValueError/TypeError) leaves the engine
        as it was.

        At the switch every held relation ends: the returned 'ended' changes (time = the last frame's) are also
        the first changes of the next ``step``, whose delta removes those relations; the relation filter starts
        afresh (a kept name must cross ``filter.enter`` again). Tracks, entities and the per-pair model state stay.
        """
        from engine.relate.open_vocab import NOT_OPEN_VOCAB, predicate_scorer  # numpy only; loaded when used

        if self.backend is None:
            raise ValueError(f"set_predicates: the engine runs without a relation model; {NOT_OPEN_VOCAB}")
        scorer = predicate_scorer(self.backend.info, names, table, embedding_model)
        rows = np.arange(self.store.capacity)
        ended = self._changes(self.filter.end_rows(rows, self._t)) if self._t is not None else []
        cap, old = self.store.capacity, self.filter
        self.filter = RelationFilter(self.cfg.filter, cap, len(scorer.names))
        self.filter.toggles, self.filter.active_seconds = old.toggles, old.active_seconds  # flicker stays cumulative
        self._pub = PublishedRelations(cap, len(scorer.names))
        self._switched[0].update(self.published.relations)
        self._switched[1].extend(ended)
        self.predicates, self._scorer = Vocabulary("predicates", scorer.names), scorer
        return tuple(ended)

    def state_sizes(self) -> dict[str, int]:
        return {"tracks": self.tracker.state_sizes()["live"], "history_slots": len(self._slot),
                "pair_states": len(self.store), "first_seen": len(self._first_seen),
                "held_entities": len(self._entity_rows), "entities": len(self.published.entities),
                "relations": len(self.published.relations), "predicates": len(self.predicates)}

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

        switched_keys, changes = self._switched  # relations ended by set_predicates come first
        self._switched = (set(), [])
        changes += self._forget_dead_tracks(t)
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
            held = self.published.relations
            if switched_keys:  # held under the old list: removed, unless a relation of the new list has the key
                rm_r = tuple(sorted(set(rm_r) | (switched_keys - {r.key for r in up_r})))
                held = {k: r for k, r in held.items() if k not in switched_keys}
            delta = GraphDelta(self.epoch, self.published.seq + 1, float(t), up_e, rm_e, up_r, rm_r)
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
            scores, unc = out.scores, out.uncertainty
            if self._scorer is not None:  # switched list: its columns from the pair vectors (no uncertainty)
                scores, unc = self._scorer.scores(out.pair_vector), None
        with timer.stage("filter"):
            # the uncertainty (None for models without one) rides along unsmoothed: published as of this frame
            changes += self._changes(self.filter.update(rows, scores, t, unc))
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
