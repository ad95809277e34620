"""Clone-pattern keys of graph items and subtree views: the part of a SceneGraph a prefix-subscriber holds.

Every item of a graph has a key, as in the ZeroMQ guide's Clone pattern:

* entity:   ``e/<id>``                                   e.g. ``e/12``
* relation: ``r/<subject_id>/<predicate>/<object_id>``   e.g. ``r/12/holding/7``

A subtree is a key prefix; "" selects everything. Unlike a key-value store, a graph needs both ends of a relation,
so the view of a graph for prefix ``P`` is

* the relations whose key starts with ``P``, and
* the entities whose key starts with ``P`` plus every entity those relations refer to.

It is always a valid SceneGraph (same epoch, seq and t). ``apply_to_view`` keeps a view up to date from the full
delta stream; when a delta makes the view need an entity it does not hold (a relation starts towards an entity
outside ``P`` that did not change in that delta), it raises ``MissingEntityError`` and the subscriber resyncs.
Note that ``e/1`` is also a prefix of ``e/10``: end a prefix with ``/`` (``r/12/``) to stop at a separator.
"""
from __future__ import annotations

from engine.graph.diff import SequenceError, apply
from engine.types import Entity, GraphDelta, Relation, RelationKey, SceneGraph


class MissingEntityError(ValueError):
    """The view needs an entity that is neither in the view nor in the delta: resync from a snapshot."""


def entity_key(entity_id: int) -> str:
    return f"e/{entity_id}"


def relation_key(key: RelationKey) -> str:
    s, p, o = key
    return f"r/{s}/{p}/{o}"


def select(relations: dict[RelationKey, Relation], prefix: str,
           candidates: dict[int, Entity]) -> tuple[dict[int, Entity], dict[RelationKey, Relation]]:
    """Items of the view for ``prefix``: the relations whose key matches, the ``candidates`` entities whose key
    matches, and the ends of those relations (taken from ``candidates``; MissingEntityError when absent)."""
    rels = {k: r for k, r in relations.items() if relation_key(k).startswith(prefix)}
    ents = {i: e for i, e in candidates.items() if entity_key(i).startswith(prefix)}
    for (s, _, o) in rels:
        for i in (s, o):
            if i not in ents:
                if i not in candidates:
                    raise MissingEntityError(f"the view for subtree {prefix!r} needs entity {i}, which it does "
                                             "not hold")
                ents[i] = candidates[i]
    return ents, rels


def view(graph: SceneGraph, prefix: str) -> SceneGraph:
    """The subtree view of ``graph`` (``graph`` itself for prefix "")."""
    if not prefix:
        return graph
    ents, rels = select(dict(graph.relations), prefix, dict(graph.entities))
    return SceneGraph(t=graph.t, entities=ents, relations=rels, epoch=graph.epoch, seq=graph.seq)


def apply_to_view(current: SceneGraph, delta: GraphDelta, prefix: str) -> SceneGraph:
    """``view(apply(full, delta), prefix)`` computed from ``current = view(full, prefix)`` alone.

    Raises SequenceError on an epoch change, gap or replay (as engine.graph.diff.apply), MissingEntityError when the
    view needs an entity it does not hold, and ValueError when a relation refers to an entity absent from the graph.
    """
    if not prefix:
        return apply(current, delta)
    if delta.epoch != current.epoch:
        raise SequenceError(f"delta from epoch {delta.epoch!r} applied to a graph of epoch {current.epoch!r}")
    if delta.seq != current.seq + 1:
        raise SequenceError(f"delta seq {delta.seq} does not follow graph seq {current.seq}")
    upserted = {e.id: e for e in delta.upsert_entities}
    gone = set(delta.remove_entity_ids) - set(upserted)
    # Values this view can know after the delta: what it holds (minus removals) and what the delta carries.
    candidates = {i: e for i, e in current.entities.items() if i not in gone}
    candidates.update(upserted)
    rels = {k: r for k, r in current.relations.items() if k[0] not in gone and k[2] not in gone}
    for k in delta.remove_relations:
        rels.pop(tuple(k), None)
    for r in delta.upsert_relations:
        if r.subject_id in gone or r.object_id in gone:
            raise ValueError(f"delta seq {delta.seq}: relation {r.key} refers to a removed entity")
        rels[r.key] = r
    # Entities outside the prefix stay only as relation ends, so testing the prefix over all candidates is exact.
    ents, rels = select(rels, prefix, candidates)
    return SceneGraph(t=delta.t, entities=ents, relations=rels, epoch=delta.epoch, seq=delta.seq)
