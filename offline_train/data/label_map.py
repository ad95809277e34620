"""Mapping a dataset's category / predicate names onto a target vocabulary, and applying it to a VideoAnnotation.

A map file is YAML or JSON (chosen by suffix: ``.json`` is read as JSON, anything else as YAML), one mapping
``{source_name: target_name}``; a ``null`` target drops that name explicitly::

    adult: person        # VidOR category -> VidVRD category
    in_front_of: front   # VidOR predicate -> VidVRD predicate
    stingray: null       # no fish class in VidVRD: drop the object and its relations

Lookup order for a source name: the map, then the target vocabulary itself (a name already in the target vocabulary
maps to itself, so an empty map is the identity), then the ``unknown`` policy: ``'error'`` raises a ValueError that
names the label, the annotation it came from and the map file; ``'drop'`` discards it. Dropping a category removes
that object (its box column and every relation that uses it); dropping a predicate removes its relation instances.

Relation instances keep the annotation's order and spans: ground truth is scored as annotated, as the official
VidVRD-helper scorer does (two touching, overlapping or even identical instances of one triplet stay two instances).
The only merge: when the predicate map collapses two **distinct** source predicates into one target name, instances
of the same (subject, object) pair that came from different source names and overlap or touch (end exclusive, so
``[0, 5)`` and ``[5, 9)``) are one relation annotated twice under two names, and become one instance over the union
of their spans (transitively, through any chain of such instances); see ``collapse_renamed``. Renaming categories
never merges anything: instances are keyed by track id, and two tracks are two objects whatever their names.
"""
from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Mapping

import numpy as np
import yaml

from engine.io.vidvrd import RelationInstance, VideoAnnotation
from engine.vocab import Vocabulary

UNKNOWN_POLICIES = ("error", "drop")


@dataclass(frozen=True)
class LabelMap:
    """Source name -> name in ``target`` (or None = drop), plus the policy for names the map does not cover.

    source: where the mapping came from (a file path), used in error messages.
    """

    target: Vocabulary
    mapping: Mapping[str, str | None] = field(default_factory=dict)
    unknown: str = "error"
    source: str = "<no map file>"

    def __post_init__(self):
        if self.unknown not in UNKNOWN_POLICIES:
            raise ValueError(f"unknown-label policy must be one of {UNKNOWN_POLICIES}, got {self.unknown!r}")
        m = dict(self.mapping)
        for k, v in m.items():
            if not isinstance(k, str) or not (v is None or isinstance(v, str)):
                raise ValueError(f"{self.source}: entries must be 'name: name' or 'name: null', got {k!r}: {v!r}")
            if v is not None and v not in self.target:
                raise ValueError(f"{self.source}: '{k}' maps to '{v}', which is not in vocabulary "
                                 f"'{self.target.name}'")
        object.__setattr__(self, "mapping", MappingProxyType(m))

    @classmethod
    def from_file(cls, path: str | Path, target: Vocabulary, unknown: str = "error") -> "LabelMap":
        """Read a YAML/JSON map file (see module docstring); a malformed file raises ValueError naming it."""
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"label map file not found: {p}")
        try:
            data = json.loads(p.read_text()) if p.suffix.lower() == ".json" else yaml.safe_load(p.read_text())
        except (json.JSONDecodeError, yaml.YAMLError, UnicodeDecodeError) as e:
            raise ValueError(f"{p}: label map is not valid {'JSON' if p.suffix == '.json' else 'YAML'} ({e})") from e
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ValueError(f"{p}: label map must be a mapping {{source_name: target_name}}, "
                             f"got {type(data).__name__}")
        return cls(target, data, unknown, str(p))

    def map(self, name: str, where: str) -> str | None:
        """Target name for ``name`` (None = drop). ``where`` names the annotation for the error message."""
        if name in self.mapping:
            return self.mapping[name]
        if name in self.target:
            return name
        if self.unknown == "drop":
            return None
        raise ValueError(f"{where}: label '{name}' is not in vocabulary '{self.target.name}' and not mapped by "
                         f"{self.source} (add it to the map, map it to null, or use the 'drop' policy)")


def merge_spans(relations) -> tuple[RelationInstance, ...]:
    """Union of the frame spans of equal (subject, predicate, object) triplets; overlapping or touching spans
    (end exclusive, so [0, 5) and [5, 9)) become one instance. Output sorted by (subject, predicate, object, begin).

    For building spans out of per-keyframe labels (Action Genome's one-frame instances); never applied to an
    annotation's own instances, which are scored as annotated (see ``collapse_renamed``)."""
    spans = defaultdict(list)
    for r in relations:
        spans[(r.subject_tid, r.predicate, r.object_tid)].append((r.begin_fid, r.end_fid))
    out = []
    for (s, p, o) in sorted(spans):
        cur_b, cur_e = None, None
        for b, e in sorted(spans[(s, p, o)]):
            if cur_e is not None and b <= cur_e:
                cur_e = max(cur_e, e)
                continue
            if cur_e is not None:
                out.append(RelationInstance(s, p, o, cur_b, cur_e))
            cur_b, cur_e = b, e
        if cur_e is not None:
            out.append(RelationInstance(s, p, o, cur_b, cur_e))
    return tuple(out)


def collapse_renamed(renamed: list[tuple[RelationInstance, str]]) -> tuple[RelationInstance, ...]:
    """Merge the instances a predicate map made equal; keep every other instance exactly as annotated.

    renamed: (instance with its target predicate, source predicate name) pairs, in annotation order. Within one
    (subject_tid, target predicate, object_tid), two instances are joined when their source names differ and their
    frame spans overlap or touch (``b_j <= e_i and b_i <= e_j``, ends exclusive); joined groups (connected
    components, so a chain a-b-a joins all three) become one instance over ``[min begin, max end)``, which is
    contiguous because every join needs overlap or contact. Instances with the same source name are never joined
    directly. Output keeps the annotation order; a merged instance takes the place of its first member.
    """
    groups: dict[tuple[int, str, int], list[int]] = defaultdict(list)
    for i, (r, _) in enumerate(renamed):
        groups[(r.subject_tid, r.predicate, r.object_tid)].append(i)
    parent = list(range(len(renamed)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for members in groups.values():
        if len({renamed[i][1] for i in members}) < 2:
            continue  # one source name: nothing was collapsed here
        for a_pos, a in enumerate(members):
            ra, sa = renamed[a]
            for b in members[a_pos + 1:]:
                rb, sb = renamed[b]
                if sa != sb and rb.begin_fid <= ra.end_fid and ra.begin_fid <= rb.end_fid:
                    parent[root(b)] = root(a)
    span: dict[int, list[int]] = {}
    first: dict[int, int] = {}
    for i, (r, _) in enumerate(renamed):
        k = root(i)
        if k not in span:
            span[k], first[k] = [r.begin_fid, r.end_fid], i
        else:
            span[k] = [min(span[k][0], r.begin_fid), max(span[k][1], r.end_fid)]
    out = []
    for k, i in sorted(first.items(), key=lambda kv: kv[1]):
        r = renamed[i][0]
        out.append(RelationInstance(r.subject_tid, r.predicate, r.object_tid, span[k][0], span[k][1]))
    return tuple(out)


def remap_annotation(ann: VideoAnnotation, categories: LabelMap, predicates: LabelMap,
                     where: str = "") -> VideoAnnotation:
    """A new VideoAnnotation with categories and predicates renamed into the target vocabularies.

    Dropped categories lose their box column and relations; dropped predicates lose their instances. Every other
    instance is kept as annotated (order and span), except instances of two distinct source predicates that the map
    collapses into one name and that overlap or touch: those are merged by ``collapse_renamed`` (module docstring).
    ``where`` names the annotation (e.g. its file) in error messages; ``ann`` itself is never modified.
    """
    where = where or f"video {ann.video_id!r}"
    new_cats = [categories.map(c, where) for c in ann.categories]
    keep = np.array([c is not None for c in new_cats], dtype=bool)
    kept_tids = set(ann.tids[keep].tolist())
    renamed = []
    for r in ann.relations:
        if r.subject_tid not in kept_tids or r.object_tid not in kept_tids:
            continue
        p = predicates.map(r.predicate, where)
        if p is None:
            continue
        renamed.append((RelationInstance(r.subject_tid, p, r.object_tid, r.begin_fid, r.end_fid), r.predicate))
    return VideoAnnotation(ann.video_id, ann.fps, ann.width, ann.height, ann.tids[keep],
                           tuple(c for c in new_cats if c is not None), ann.boxes[:, keep], collapse_renamed(renamed))
