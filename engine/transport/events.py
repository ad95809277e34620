"""What a GraphSubscriber reports: GraphEvent (one per applied delta, snapshot or stream end) and GraphChanges."""
from __future__ import annotations

from dataclasses import dataclass

from engine.types import Entity, GraphDelta, Relation, RelationKey, SceneGraph


@dataclass(frozen=True)
class GraphChanges:
    """Item-level difference from one graph to another, in sorted key order.

    Entities: added / removed / updated (any field changed). Relations: started / ended / updated.
    """

    added: tuple[Entity, ...] = ()
    removed: tuple[Entity, ...] = ()
    updated: tuple[Entity, ...] = ()
    started: tuple[Relation, ...] = ()
    ended: tuple[Relation, ...] = ()
    relations_updated: tuple[Relation, ...] = ()

    @property
    def is_empty(self) -> bool:
        return not (self.added or self.removed or self.updated or self.started or self.ended
                    or self.relations_updated)


def graph_changes(previous: SceneGraph, current: SceneGraph) -> GraphChanges:
    """Changes taking ``previous`` to ``current``; works across epochs (unlike engine.graph.diff.diff)."""
    pe, ce = previous.entities, current.entities
    pr, cr = previous.relations, current.relations
    rk: list[RelationKey] = sorted(set(pr) | set(cr))
    return GraphChanges(
        added=tuple(ce[i] for i in sorted(ce) if i not in pe),
        removed=tuple(pe[i] for i in sorted(pe) if i not in ce),
        updated=tuple(ce[i] for i in sorted(ce) if i in pe and pe[i] != ce[i]),
        started=tuple(cr[k] for k in rk if k in cr and k not in pr),
        ended=tuple(pr[k] for k in rk if k in pr and k not in cr),
        relations_updated=tuple(cr[k] for k in rk if k in cr and k in pr and pr[k] != cr[k]),
    )


@dataclass(frozen=True)
class GraphEvent:
    """One change of a subscriber's graph, passed to its ``on_change`` callbacks.

    kind:     "delta" (one delta applied), "snapshot" (the graph was replaced by a snapshot, after the first
              sync, a gap, an epoch change or a reconnect; ``previous`` may then be of another epoch) or "end" (the
              service announced the end of its stream and ``graph`` is its final graph; ``previous`` is ``graph``).
    graph:    the subscriber's graph after the event (its subtree view).
    previous: the graph before the event.
    delta:    the delta as received (not filtered to the subtree) for kind "delta", else None.
    """

    kind: str
    graph: SceneGraph
    previous: SceneGraph
    delta: GraphDelta | None = None

    def changes(self) -> GraphChanges:
        return graph_changes(self.previous, self.graph)
