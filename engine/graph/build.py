"""Build a SceneGraph from one frame's tracks and relations (pure function)."""
from __future__ import annotations

import math
from typing import Iterable, Mapping

from engine.types import Entity, Relation, SceneGraph, Tracks
from engine.vocab import Vocabulary


def entities_from_tracks(tracks: Tracks, labels: Vocabulary, first_seen: Mapping[int, float], t: float) -> dict[int, Entity]:
    """One Entity per track row; ``first_seen`` maps track id -> time (s) first confirmed (default: ``t``)."""
    out = {}
    for i in range(len(tracks)):
        tid = int(tracks.ids[i])
        x1, y1, x2, y2 = (float(v) for v in tracks.boxes_xyxy[i])
        out[tid] = Entity(tid, labels.label(int(tracks.labels[i])), float(tracks.scores[i]), (x1, y1, x2, y2),
                          float(first_seen.get(tid, t)))
    return out


def build_graph(tracks: Tracks, labels: Vocabulary, relations: Iterable[Relation], t: float, *,
                epoch: str, seq: int, first_seen: Mapping[int, float] | None = None) -> SceneGraph:
    """The scene graph at time ``t`` (s). Relations whose subject or object is not among ``tracks`` are dropped,
    so the graph never refers to an entity it does not contain."""
    ents = entities_from_tracks(tracks, labels, first_seen or {}, t)
    rels = {r.key: r for r in relations if r.subject_id in ents and r.object_id in ents}
    return SceneGraph(t=float(t), entities=ents, relations=rels, epoch=epoch, seq=seq)


# Published precision. Graph items travel on the wire as fixed-point integers (engine.transport.wire): boxes in
# steps of 1/BOX_STEPS_PER_PX px, scores and uncertainties in steps of 1/SCORE_STEPS. A graph whose values already
# sit on that grid (``quantize_graph``) reaches every subscriber bit-exactly; 0.1 px and 1e-4 are far below detector
# noise. Times stay float64.
BOX_STEPS_PER_PX = 10
SCORE_STEPS = 10_000


def box_steps(v: float) -> int:
    """A box coordinate (px) in grid steps (round half to even)."""
    return round(v * BOX_STEPS_PER_PX)


def score_steps(v: float) -> int:
    """A score or uncertainty in grid steps."""
    return round(v * SCORE_STEPS)


def quantize_entity(e: Entity) -> Entity:
    """``e`` with its box on the 1/BOX_STEPS_PER_PX px grid and its score on the 1/SCORE_STEPS grid."""
    box = tuple(box_steps(v) / BOX_STEPS_PER_PX for v in e.box_xyxy)
    return Entity(e.id, e.label, score_steps(e.score) / SCORE_STEPS, box, e.first_seen)


def quantize_relation(r: Relation) -> Relation:
    """``r`` with its score (and uncertainty, unless NaN) on the 1/SCORE_STEPS grid."""
    unc = r.uncertainty if math.isnan(r.uncertainty) else score_steps(r.uncertainty) / SCORE_STEPS
    return Relation(r.subject_id, r.predicate, r.object_id, score_steps(r.score) / SCORE_STEPS, unc, r.start_time)


def quantize_graph(g: SceneGraph) -> SceneGraph:
    """``g`` with every item on the published grid (idempotent)."""
    return SceneGraph(t=g.t, entities={i: quantize_entity(e) for i, e in g.entities.items()},
                      relations={k: quantize_relation(r) for k, r in g.relations.items()}, epoch=g.epoch, seq=g.seq)
