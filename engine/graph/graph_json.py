"""Plain-JSON views of graphs and deltas (for --jsonl logs and printing); the wire format is engine.transport."""
from __future__ import annotations

import math

from engine.types import Entity, GraphDelta, Relation, SceneGraph


def entity_to_dict(e: Entity) -> dict:
    return {"id": e.id, "label": e.label, "score": round(e.score, 4), "box_xyxy": [round(v, 2) for v in e.box_xyxy],
            "first_seen": e.first_seen}


def relation_to_dict(r: Relation) -> dict:
    d = {"subject_id": r.subject_id, "predicate": r.predicate, "object_id": r.object_id, "score": round(r.score, 4),
         "start_time": r.start_time}
    if not math.isnan(r.uncertainty):
        d["uncertainty"] = r.uncertainty
    return d


def delta_to_dict(d: GraphDelta) -> dict:
    return {"epoch": d.epoch, "seq": d.seq, "t": d.t,
            "upsert_entities": [entity_to_dict(e) for e in d.upsert_entities],
            "remove_entity_ids": list(d.remove_entity_ids),
            "upsert_relations": [relation_to_dict(r) for r in d.upsert_relations],
            "remove_relations": [list(k) for k in d.remove_relations]}


def graph_to_dict(g: SceneGraph) -> dict:
    return {"epoch": g.epoch, "seq": g.seq, "t": g.t,
            "entities": [entity_to_dict(g.entities[i]) for i in sorted(g.entities)],
            "relations": [relation_to_dict(g.relations[k]) for k in sorted(g.relations)]}


def describe(g: SceneGraph, max_relations: int = 40) -> str:
    """Human-readable summary: one line per entity, then relations by descending score."""
    lines = [f"scene graph at t={g.t:.2f}s (epoch {g.epoch}, seq {g.seq}): {len(g.entities)} entities, "
             f"{len(g.relations)} relations"]
    for i in sorted(g.entities):
        e = g.entities[i]
        x1, y1, x2, y2 = e.box_xyxy
        lines.append(f"  [{e.id}] {e.label:10s} score {e.score:.2f}  box ({x1:.0f},{y1:.0f})-({x2:.0f},{y2:.0f})")
    rels = sorted(g.relations.values(), key=lambda r: -r.score)
    for r in rels[:max_relations]:
        lines.append(f"  {g.entities[r.subject_id].label}[{r.subject_id}] --{r.predicate}--> "
                     f"{g.entities[r.object_id].label}[{r.object_id}]  {r.score:.2f} since {r.start_time:.2f}s")
    if len(rels) > max_relations:
        lines.append(f"  ... {len(rels) - max_relations} more relations")
    return "\n".join(lines)
