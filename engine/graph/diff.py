"""Incremental scene-graph protocol (the ZeroMQ guide's Clone pattern): diff two graphs, apply a delta.

A publisher keeps the graph its subscribers have (``published``) and sends ``diff(published, current)``; every
subscriber runs ``apply``. With non-zero tolerances the published graph lags the engine's by at most the tolerance,
field by field (an entity's box and score, a relation's score and uncertainty are each re-sent only when they moved
beyond it), and because the next diff is taken against the *published* graph, errors never accumulate.
"""
from __future__ import annotations

import math
from typing import Mapping

from engine.types import Entity, GraphDelta, Relation, SceneGraph


class SequenceError(ValueError):
    """A delta that does not follow the graph: other epoch, or seq != graph.seq + 1 (a gap or a replay)."""


def _entity_changed(a: Entity, b: Entity, box_tol: float, score_tol: float) -> bool:
    if a.label != b.label or a.first_seen != b.first_seen:
        return True
    if box_tol <= 0 and score_tol <= 0:
        return a != b
    return (max(abs(p - q) for p, q in zip(a.box_xyxy, b.box_xyxy)) > box_tol
            or abs(a.score - b.score) > score_tol)


def _relation_changed(a: Relation, b: Relation, score_tol: float) -> bool:
    if a.start_time != b.start_time or math.isnan(a.uncertainty) != math.isnan(b.uncertainty):
        return True
    if score_tol <= 0:
        return a != b
    du = 0.0 if math.isnan(a.uncertainty) else abs(a.uncertainty - b.uncertainty)
    return abs(a.score - b.score) > score_tol or du > score_tol


def _entity_update(a: Entity, b: Entity, box_tol: float, score_tol: float) -> Entity:
    """What to publish for ``b`` over the published ``a``: per field, ``b``'s value where it moved beyond its
    tolerance and ``a``'s elsewhere (a moving box does not drag a score jitter along; fewer bytes on the wire)."""
    if (box_tol <= 0 and score_tol <= 0) or a.label != b.label or a.first_seen != b.first_seen:
        return b
    box_moved = max(abs(p - q) for p, q in zip(a.box_xyxy, b.box_xyxy)) > box_tol
    score_moved = abs(a.score - b.score) > score_tol
    return Entity(b.id, b.label, b.score if score_moved else a.score, b.box_xyxy if box_moved else a.box_xyxy,
                  b.first_seen)


def _relation_update(a: Relation, b: Relation, score_tol: float) -> Relation:
    """As _entity_update, for a relation's score and uncertainty."""
    if score_tol <= 0 or a.start_time != b.start_time or math.isnan(a.uncertainty) != math.isnan(b.uncertainty):
        return b
    score = b.score if abs(a.score - b.score) > score_tol else a.score
    unc = b.uncertainty if math.isnan(b.uncertainty) or abs(a.uncertainty - b.uncertainty) > score_tol \
        else a.uncertainty
    return Relation(b.subject_id, b.predicate, b.object_id, score, unc, b.start_time)


def diff_entities(prev: Mapping[int, Entity], cur: Mapping[int, Entity], box_tolerance_px: float = 0.0,
                  score_tolerance: float = 0.0) -> tuple[tuple[Entity, ...], tuple[int, ...]]:
    """The entity part of ``diff``: (entities to upsert, ids to remove), both sorted by id."""
    up = tuple(cur[i] if i not in prev else _entity_update(prev[i], cur[i], box_tolerance_px, score_tolerance)
               for i in sorted(cur) if i not in prev or _entity_changed(prev[i], cur[i], box_tolerance_px,
                                                                         score_tolerance))
    return up, tuple(sorted(i for i in prev if i not in cur))


def diff(prev: SceneGraph, cur: SceneGraph, box_tolerance_px: float = 0.0, score_tolerance: float = 0.0) -> GraphDelta:
    """The delta taking ``prev`` to ``cur`` (exactly, when both tolerances are 0).

    ``cur.seq`` must be ``prev.seq + 1`` and both must share an epoch. Items are listed in sorted key order so the
    same pair of graphs always gives byte-identical wire messages.
    """
    if cur.epoch != prev.epoch:
        raise SequenceError(f"diff across epochs: {prev.epoch!r} -> {cur.epoch!r}")
    if cur.seq != prev.seq + 1:
        raise SequenceError(f"diff needs cur.seq == prev.seq + 1, got {prev.seq} -> {cur.seq}")
    up_e, rm_e = diff_entities(prev.entities, cur.entities, box_tolerance_px, score_tolerance)
    pr, cr = prev.relations, cur.relations
    up_r = tuple(cr[k] if k not in pr else _relation_update(pr[k], cr[k], score_tolerance)
                 for k in sorted(cr) if k not in pr or _relation_changed(pr[k], cr[k], score_tolerance))
    rm_r = tuple(sorted(k for k in pr if k not in cr))
    return GraphDelta(cur.epoch, cur.seq, cur.t, up_e, rm_e, up_r, rm_r)


def apply(graph: SceneGraph, delta: GraphDelta) -> SceneGraph:
    """The graph after ``delta`` (pure: ``graph`` is not modified). Raises SequenceError on a gap, replay or epoch
    change, and ValueError when the delta would leave a relation pointing at a missing entity."""
    if delta.epoch != graph.epoch:
        raise SequenceError(f"delta from epoch {delta.epoch!r} applied to a graph of epoch {graph.epoch!r}")
    if delta.seq != graph.seq + 1:
        raise SequenceError(f"delta seq {delta.seq} does not follow graph seq {graph.seq}")
    ents = dict(graph.entities)
    for i in delta.remove_entity_ids:
        ents.pop(i, None)
    for e in delta.upsert_entities:
        ents[e.id] = e
    rels = (dict(graph.relations) if not delta.remove_entity_ids else
            {k: r for k, r in graph.relations.items() if k[0] in ents and k[2] in ents})
    for k in delta.remove_relations:
        rels.pop(tuple(k), None)
    for r in delta.upsert_relations:
        if r.subject_id not in ents or r.object_id not in ents:
            raise ValueError(f"delta seq {delta.seq}: relation {r.key} refers to a missing entity")
        rels[r.key] = r
    return SceneGraph(t=delta.t, entities=ents, relations=rels, epoch=delta.epoch, seq=delta.seq)


def empty_graph(epoch: str) -> SceneGraph:
    """The graph every epoch starts from (seq 0)."""
    return SceneGraph(t=0.0, epoch=epoch, seq=0)
