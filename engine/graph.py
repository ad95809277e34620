"""Build a SceneGraph from one frame's tracks and relations (pure function)."""
from __future__ import annotations

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
