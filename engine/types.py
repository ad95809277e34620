"""Data contracts shared by every vsgg layer: detections, tracks, entities, relations, scene graphs, deltas.

Conventions used everywhere in vsgg:

* Boxes are ``xyxy`` = (x1, y1, x2, y2) in **pixels** of the input image, image frame with the origin at the
  top-left corner, x to the right, y down; ``x2 >= x1`` and ``y2 >= y1``.
* Time ``t`` is in **seconds** on the caller's clock (ROS stamp, video PTS or frame_index / fps). It must not go
  backwards within one stream; the engine only uses differences of ``t``.
* Track / entity ids are non-negative integers unique within one engine epoch (never reused).
* Scores are probabilities in [0, 1].

Hot-path containers (``Detections``, ``Tracks``) are structs of arrays; graph-level containers (``Entity``,
``Relation``, ``SceneGraph``, ``GraphDelta``, and ``Engine.step``'s ``RelationChange`` / ``StepResult``) are small
frozen Python objects that compare by value, which is
what the incremental protocol (``engine.graph.diff``) needs.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping

import numpy as np

RelationKey = tuple[int, str, int]  # (subject_id, predicate, object_id)


def _readonly(a: np.ndarray) -> np.ndarray:
    a.flags.writeable = False
    return a


def _as_float_array(name: str, value, ndim: int, width: int | None = None) -> np.ndarray:
    """Return ``value`` as a fresh C-contiguous float32 array, or raise a ValueError naming ``name``."""
    a = np.asarray(value)
    if a.dtype.kind not in "fiu" or a.dtype == np.bool_:
        raise ValueError(f"{name}: expected a real numeric array, got dtype {a.dtype}")
    if a.ndim != ndim or (width is not None and a.shape[-1] != width):
        want = f"(N, {width})" if width is not None else ("(N,)" if ndim == 1 else f"{ndim}-D")
        raise ValueError(f"{name}: expected shape {want}, got {a.shape}")
    a = np.array(a, dtype=np.float32, order="C", copy=True)
    if not np.isfinite(a).all():
        raise ValueError(f"{name}: contains NaN or inf")
    return a


def validate_boxes_xyxy(name: str, boxes) -> np.ndarray:
    """Check an (N, 4) xyxy box array: finite, non-negative width and height. Returns float32 copy."""
    b = _as_float_array(name, boxes, 2, 4)
    bad = (b[:, 2] < b[:, 0]) | (b[:, 3] < b[:, 1])
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{name}: box {i} has negative width or height ({b[i].tolist()}); expected x1<=x2, y1<=y2")
    return b


def _validate_scores(name: str, scores) -> np.ndarray:
    s = _as_float_array(name, scores, 1)
    if ((s < 0) | (s > 1)).any():
        i = int(np.flatnonzero((s < 0) | (s > 1))[0])
        raise ValueError(f"{name}: score {i} = {float(s[i])} is outside [0, 1]")
    return s


def _validate_labels(name: str, labels) -> np.ndarray:
    a = np.asarray(labels)
    if a.dtype.kind not in "iu":
        raise ValueError(f"{name}: expected an integer array, got dtype {a.dtype}")
    if a.ndim != 1:
        raise ValueError(f"{name}: expected shape (N,), got {a.shape}")
    if (a < 0).any():
        raise ValueError(f"{name}: negative label index {int(a[a < 0][0])}")
    return np.array(a, dtype=np.int32, copy=True)


@dataclass(frozen=True, eq=False)
class Detections:
    """Detections of one frame, struct of arrays. Validated and made read-only on construction.

    boxes_xyxy: (N, 4) float32, pixels, image frame (see module docstring).
    scores:     (N,) float32 in [0, 1].
    labels:     (N,) int32, index into the engine's object vocabulary.
    features:   optional (N, D) float32 per-box appearance/embedding vectors.
    """

    boxes_xyxy: np.ndarray
    scores: np.ndarray
    labels: np.ndarray
    features: np.ndarray | None = None

    def __post_init__(self):
        boxes = validate_boxes_xyxy("boxes_xyxy", self.boxes_xyxy)
        scores = _validate_scores("scores", self.scores)
        labels = _validate_labels("labels", self.labels)
        n = len(boxes)
        if len(scores) != n or len(labels) != n:
            raise ValueError(
                f"Detections: arrays of different lengths: boxes_xyxy {n}, scores {len(scores)}, labels {len(labels)}"
            )
        feats = None
        if self.features is not None:
            feats = _as_float_array("features", self.features, 2)
            if len(feats) != n:
                raise ValueError(f"features: expected {n} rows (one per box), got {len(feats)}")
            feats = _readonly(feats)
        object.__setattr__(self, "boxes_xyxy", _readonly(boxes))
        object.__setattr__(self, "scores", _readonly(scores))
        object.__setattr__(self, "labels", _readonly(labels))
        object.__setattr__(self, "features", feats)

    def __len__(self) -> int:
        return len(self.boxes_xyxy)

    @classmethod
    def empty(cls, feature_dim: int | None = None) -> "Detections":
        feats = None if feature_dim is None else np.zeros((0, feature_dim), np.float32)
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int32), feats)


@dataclass(frozen=True, eq=False)
class Tracks:
    """Confirmed tracks output by the tracker for one frame, struct of arrays (M rows).

    ids:          (M,) int64 track ids, stable over time, never reused within a tracker's life.
    boxes_xyxy:   (M, 4) float32 pixels, the Kalman-filtered box at this frame.
    velocities:   (M, 4) float32 d(cx, cy, w, h)/dt in pixels per frame (Kalman estimate).
    scores:       (M,) float32 detection score of the last matched detection.
    labels:       (M,) int32 object vocabulary index.
    ages:         (M,) int32 frames since the track was born.
    misses:       (M,) int32 frames since the track was last matched (0 = matched in this frame).
    """

    ids: np.ndarray
    boxes_xyxy: np.ndarray
    velocities: np.ndarray
    scores: np.ndarray
    labels: np.ndarray
    ages: np.ndarray
    misses: np.ndarray

    def __len__(self) -> int:
        return len(self.ids)

    @classmethod
    def empty(cls) -> "Tracks":
        z = np.zeros(0, np.int32)
        return cls(np.zeros(0, np.int64), np.zeros((0, 4), np.float32), np.zeros((0, 4), np.float32),
                   np.zeros(0, np.float32), z, z.copy(), z.copy())


@dataclass(frozen=True)
class Entity:
    """One tracked object in the scene graph.

    id: track id. label: object category name. score: detection confidence in [0, 1].
    box_xyxy: 4 floats, pixels (see module docstring). first_seen: time (s) the track was first confirmed.
    """

    id: int
    label: str
    score: float
    box_xyxy: tuple[float, float, float, float]
    first_seen: float = 0.0


@dataclass(frozen=True)
class Relation:
    """A directed relation ``subject --predicate--> object`` between two entities.

    score: confidence in [0, 1]. uncertainty: the model's own uncertainty of the score, dimensionless in [0, 1]
    (``engine.relate.relation_io.UNCERTAINTY``), as of the frame the relation was last published; NaN when the
    model gives none.
    start_time: time (s) the relation started to hold (per the relation filter).
    """

    subject_id: int
    predicate: str
    object_id: int
    score: float
    uncertainty: float = math.nan
    start_time: float = 0.0

    @property
    def key(self) -> RelationKey:
        return (self.subject_id, self.predicate, self.object_id)

    def __eq__(self, other):  # NaN uncertainty must compare equal to NaN, or apply(diff) == cur breaks
        if not isinstance(other, Relation):
            return NotImplemented
        same_u = (self.uncertainty == other.uncertainty) or (
            math.isnan(self.uncertainty) and math.isnan(other.uncertainty))
        return (self.key == other.key and self.score == other.score and same_u
                and self.start_time == other.start_time)

    def __hash__(self):
        return hash(self.key)


def _frozen_map(d) -> Mapping:
    return MappingProxyType(dict(d))


@dataclass(frozen=True, eq=False)
class SceneGraph:
    """The full graph at time ``t``: entities by id and relations by (subject_id, predicate, object_id).

    epoch: id of the engine run that produced it (a new one at every engine start).
    seq:   sequence number of the last delta applied; 0 for the empty graph at the start of an epoch.
    Relations always refer to entities present in ``entities``.
    """

    t: float = 0.0
    entities: Mapping[int, Entity] = field(default_factory=dict)
    relations: Mapping[RelationKey, Relation] = field(default_factory=dict)
    epoch: str = ""
    seq: int = 0

    def __post_init__(self):
        object.__setattr__(self, "entities", _frozen_map(self.entities))
        object.__setattr__(self, "relations", _frozen_map(self.relations))
        for (s, _, o) in self.relations:
            if s not in self.entities or o not in self.entities:
                raise ValueError(f"SceneGraph: relation {(s, o)} refers to an entity that is not in the graph")

    def __eq__(self, other):
        if not isinstance(other, SceneGraph):
            return NotImplemented
        return (self.t == other.t and self.epoch == other.epoch and self.seq == other.seq
                and dict(self.entities) == dict(other.entities) and dict(self.relations) == dict(other.relations))


@dataclass(frozen=True)
class GraphDelta:
    """Change from the graph at ``seq - 1`` to the graph at ``seq`` within one ``epoch`` (Clone pattern).

    seq increases by exactly one per delta; a consumer that sees a gap or a new epoch must resync from a snapshot.
    t: time (s) of the frame that produced the delta. Upserts carry whole new values; removals carry keys.
    Removing an entity implicitly removes its relations, and the delta lists those removals explicitly too.
    """

    epoch: str
    seq: int
    t: float
    upsert_entities: tuple[Entity, ...] = ()
    remove_entity_ids: tuple[int, ...] = ()
    upsert_relations: tuple[Relation, ...] = ()
    remove_relations: tuple[RelationKey, ...] = ()

    @property
    def is_empty(self) -> bool:
        return not (self.upsert_entities or self.remove_entity_ids or self.upsert_relations or self.remove_relations)


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
