"""MEVA clips -> relation annotations (``VideoAnnotation``) at a chosen model frame rate, with date-based splits.

Data: the MEVA KPF annotations (Kitware / IARPA, CC BY 4.0), ``<set>/<date>/<hour>/<clip>.{geom,types,activities}.yml
[.xz]``; parsing and caching are ``meva_kpf`` and ``meva_cache``. Frames in the files are at 30 fps.

Relations from activities. An activity with two or more distinct actors becomes relation instances
``subject --<activity name>--> object``; the name is kept verbatim as the predicate (``person_enters_vehicle``).

* Subject by the activity's name, never by actor order (which carries no meaning in MEVA): the name's first word
  gives the subject category (``person_...`` -> person, ``vehicle_...`` -> vehicle, ``hand_...`` -> person, the
  hand's owner). Every actor of that category is a subject; every actor of another category is an object of each
  subject, so a 3-actor ``person_loads_vehicle`` (person, bag, vehicle) gives person->bag and person->vehicle.
* Person-person activities have no direction in the data: for ``MUTUAL_PREDICATES`` (talks_to_person,
  embraces_person, hand_interacts_with_person, transfers_object) every ordered pair of distinct subject-category
  actors is a relation, i.e. **both directions** are emitted. A canonical order (say, by track id) would be a label a
  model could not learn from boxes, and scoring both directions rewards predicting the symmetric fact either way.
  Subject-category actors of other activities are not related to each other (two people carrying one object: each
  person -> the object, no person -> person relation).
* Spans: a relation holds on the activity span intersected with both actors' own spans (KPF ``tsr0``, inclusive),
  converted to the model frame rate with an exclusive end. Spans are kept as annotated (never merged).
* Skipped and counted in ``RelationStats``: single-actor activities (``person_sits_down``, ``vehicle_turns_left``,
  ``empty_37``...), activities without a subject-category actor or without another actor, pairs whose spans do not
  overlap, and spans that fall between two sampled frames at a low model rate.

Model frame rate. ``fps`` must divide 30: model frame ``t`` is annotation frame ``frame_offset + t * frame_stride``
(``frame_stride = 30 / fps``); ``MevaClip.annotation_frame`` / ``model_frame`` map between them, since evaluation
writes predictions at the annotation's 30 fps indices. Boxes are taken from exactly those frames (no
interpolation); frames where a track has no box stay NaN (MEVA has annotation gaps inside activity spans).

Boxes: xyxy float32 pixels, corners sorted (a few boxes are drawn from the opposite corner), clipped to the frame
(a few hundred are negative or past the edge); a box with no area left inside the frame is absent (NaN).
Frame size: from the camera id (``CAMERA_FRAME_SIZES``, derived from this data's boxes: the smallest of
``STANDARD_SIZES`` holding 99.9 % of each camera's box corners); an unknown camera gets that rule on its own clip's
boxes; a clip with neither gets ``STANDARD_SIZES[0]`` and ``size_source='default'``.

Splits are by recording date (clips of one day share scenes and people): ``DEFAULT_SPLITS``.
"""
from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
from tqdm import tqdm

from engine.io.vidvrd import RelationInstance, VideoAnnotation
from offline_train.data.meva_cache import (DEFAULT_CACHE_DIR, MevaSource, ParsedClip, find_meva_sources,
                                           load_parsed_clips)
from offline_train.data.meva_kpf import KpfActivity, parse_activities, parse_types, read_kpf_lines

NATIVE_FPS = 30
SUBJECT_CATEGORY = {"person": "person", "vehicle": "vehicle", "hand": "person"}
MUTUAL_PREDICATES = frozenset({"person_talks_to_person", "person_embraces_person", "hand_interacts_with_person",
                               "person_transfers_object"})
STANDARD_SIZES = ((1920, 1080), (2048, 1536), (2560, 1920))
CAMERA_FRAME_SIZES = {**{f"G{n}": (1920, 1080) for n in (
    299, 300, 301, 326, 328, 329, 330, 331, 336, 339, 340, 341, 419, 420, 421, 423, 424, 436, 505, 506, 508, 509,
    638)}, "G639": (2560, 1920)}
# Held-out days (see the module docstring); every other date is 'train'.
DEFAULT_SPLITS = {"val": ("2018-03-12",), "test": ("2018-03-05", "2018-03-13")}
SPLITS = ("train", "val", "test")
_CLIP_NAME = re.compile(r"(\d{4}-\d\d-\d\d)\.(\d\d)-(\d\d)-(\d\d)\.(\d\d)-(\d\d)-(\d\d)\.([^.]+)\.([^.]+)")


@dataclass
class RelationStats:
    """Counts of what became relations and what was skipped (see module docstring)."""

    activities: int = 0
    single_actor: int = 0
    no_subject: int = 0
    no_object: int = 0
    excluded_status: int = 0
    no_overlap: int = 0
    too_short: int = 0
    relations: int = 0
    swapped_boxes: int = 0
    boxes_outside: int = 0

    def add(self, other: "RelationStats") -> None:
        for k in self.__dataclass_fields__:
            setattr(self, k, getattr(self, k) + getattr(other, k))


@dataclass(frozen=True)
class ClipName:
    """Fields of a MEVA clip name ``<date>.<start>.<end>.<site>.<camera>``; times ``HH-MM-SS``."""

    date: str
    site: str
    camera: str
    seconds: int  # nominal duration from the start and end times

    @classmethod
    def parse(cls, name: str) -> "ClipName":
        m = _CLIP_NAME.fullmatch(name)
        if not m:
            raise ValueError(f"not a MEVA clip name (<date>.<HH-MM-SS>.<HH-MM-SS>.<site>.<camera>): {name!r}")
        g = m.groups()
        t0 = int(g[1]) * 3600 + int(g[2]) * 60 + int(g[3])
        t1 = int(g[4]) * 3600 + int(g[5]) * 60 + int(g[6])
        return cls(g[0], g[7], g[8], (t1 - t0) % 86400)


@dataclass(frozen=True, eq=False)
class MevaClip:
    """One MEVA clip at the model frame rate.

    annotation:   VideoAnnotation, frame axis = model frames (``annotation.fps = 30 / frame_stride``), boxes (T, K, 4)
                  xyxy float32 pixels with NaN where absent, tids = MEVA track ids, relation ends exclusive.
    frame_stride, frame_offset: model frame t is annotation (30 fps) frame ``frame_offset + t * frame_stride``.
    native_frames: length of the clip in 30 fps frames.
    size_source:  'camera' | 'boxes' | 'default': where (width, height) came from.
    """

    annotation: VideoAnnotation
    date: str
    site: str
    camera: str
    frame_stride: int
    frame_offset: int
    native_frames: int
    size_source: str
    stats: RelationStats = field(default_factory=RelationStats)

    @property
    def name(self) -> str:
        return self.annotation.video_id

    def annotation_frame(self, t):
        """30 fps annotation frame index of model frame(s) ``t`` (int, or int array -> int64 array)."""
        if np.ndim(t):
            return self.frame_offset + np.asarray(t, np.int64) * self.frame_stride
        return self.frame_offset + int(t) * self.frame_stride

    def model_frame(self, f):
        """Model frame index of 30 fps frame(s) ``f``; a frame between two model frames raises ValueError."""
        d = np.asarray(f) - self.frame_offset
        if (d % self.frame_stride).any() or (d < 0).any():
            raise ValueError(f"clip {self.name}: annotation frame(s) {f} are not sampled at stride "
                             f"{self.frame_stride} from offset {self.frame_offset}")
        return d // self.frame_stride if np.ndim(f) else int(d) // self.frame_stride


def frame_stride(fps: float) -> int:
    """Annotation frames per model frame; ``fps`` must divide 30 (30, 15, 10, 7.5, 6, 5, 3, 2, 1...)."""
    if not isinstance(fps, (int, float)) or isinstance(fps, bool) or not fps > 0:
        raise ValueError(f"fps must be a positive number, got {fps!r}")
    stride = NATIVE_FPS / fps
    if abs(stride - round(stride)) > 1e-9:
        raise ValueError(f"fps must divide {NATIVE_FPS} (frames are sampled every 30/fps annotation frames), "
                         f"got {fps}")
    return int(round(stride))


def frame_size(camera: str, box: np.ndarray) -> tuple[int, int, str]:
    """(width, height, source) for a clip: camera table, else the clip's (N, 4) xyxy boxes, else the default."""
    if camera in CAMERA_FRAME_SIZES:
        return (*CAMERA_FRAME_SIZES[camera], "camera")
    if len(box) == 0:
        return (*STANDARD_SIZES[0], "default")
    x = np.quantile(np.maximum(box[:, 0], box[:, 2]), 0.999)
    y = np.quantile(np.maximum(box[:, 1], box[:, 3]), 0.999)
    for w, h in STANDARD_SIZES:
        if x <= w and y <= h:
            return w, h, "boxes"
    return (*STANDARD_SIZES[-1], "boxes")


def _intersect(a, b) -> list[tuple[int, int]]:
    return [(max(a0, b0), min(a1, b1)) for a0, a1 in a for b0, b1 in b if max(a0, b0) <= min(a1, b1)]


def activity_relations(act: KpfActivity, categories: dict[int, str], stats: RelationStats | None = None,
                       exclude_status: Sequence[str] = ()) -> list[tuple[int, str, int, int, int]]:
    """(subject tid, predicate, object tid, first, last) at 30 fps, inclusive, for one activity (module rules)."""
    st = stats if stats is not None else RelationStats()
    st.activities += 1
    if act.status in exclude_status:
        st.excluded_status += 1
        return []
    actors: dict[int, tuple] = {}
    for tid, ranges in act.actors:  # a track listed twice keeps the union of its ranges
        actors[tid] = actors.get(tid, ()) + (ranges or act.ranges)
    if len(actors) < 2:
        st.single_actor += 1
        return []
    want = SUBJECT_CATEGORY.get(act.name.split("_", 1)[0])
    subjects = [t for t in actors if want is not None and categories.get(t) == want]
    others = [t for t in actors if t not in subjects and t in categories]
    pairs = [(s, o) for s in subjects for o in others]
    if act.name in MUTUAL_PREDICATES:
        pairs += [(s, o) for s in subjects for o in subjects if s != o]
    if not subjects:
        st.no_subject += 1
        return []
    if not pairs:
        st.no_object += 1
        return []
    out = []
    for s, o in pairs:
        spans = _intersect(_intersect(act.ranges, actors[s]), actors[o])
        if not spans:
            st.no_overlap += 1
        out.extend((s, act.name, o, a, b) for a, b in spans)
    return out


def _dense_boxes(parsed: ParsedClip, tids: np.ndarray, stride: int, offset: int, frames: int, w: int, h: int,
                 stats: RelationStats) -> np.ndarray:
    """(frames, K, 4) float32 boxes at the sampled frames, NaN elsewhere; corners sorted, clipped to the frame."""
    g = parsed.geom
    out = np.full((frames, len(tids), 4), np.nan, np.float32)
    d = g.frame - offset
    keep = (d >= 0) & (d % stride == 0) & (d // stride < frames)
    box = g.box[keep]
    swapped = (box[:, 2] < box[:, 0]) | (box[:, 3] < box[:, 1])
    stats.swapped_boxes += int(swapped.sum())
    box = np.concatenate([np.minimum(box[:, :2], box[:, 2:]), np.maximum(box[:, :2], box[:, 2:])], 1)
    box = np.clip(box, 0, np.array([w, h, w, h], np.float32))
    inside = (box[:, 2] > box[:, 0]) & (box[:, 3] > box[:, 1])
    stats.boxes_outside += int((~inside).sum())
    col = np.searchsorted(tids, g.track[keep])
    out[(d[keep] // stride)[inside], col[inside]] = box[inside]
    return out


def to_meva_clip(parsed: ParsedClip, fps: float = 10.0, frame_offset: int = 0,
                 exclude_status: Sequence[str] = ()) -> MevaClip:
    """Convert a parsed clip to a MevaClip at ``fps`` (see module docstring for every rule)."""
    stride = frame_stride(fps)
    if not 0 <= frame_offset < stride:
        raise ValueError(f"frame_offset must be in [0, {stride}) for fps {fps}, got {frame_offset}")
    info = ClipName.parse(parsed.name)
    g = parsed.geom
    untyped = set(np.unique(g.track).tolist()) - set(parsed.categories)
    if untyped:
        raise ValueError(f"MEVA clip {parsed.name}: tracks {sorted(untyped)[:5]} have boxes but no type")
    tids = np.array(sorted(parsed.categories), np.int64)
    stats = RelationStats()
    raw = [r for a in parsed.activities for r in activity_relations(a, parsed.categories, stats, exclude_status)]
    last = max([int(g.frame.max()) if len(g.frame) else -1] + [r[4] for r in raw]
               + [b for a in parsed.activities for _, b in a.ranges])
    native = max(info.seconds * NATIVE_FPS, last + 1)
    frames = max(0, math.ceil((native - frame_offset) / stride))
    w, h, source = frame_size(info.camera, g.box)
    rels = []
    for s, p, o, a, b in raw:
        begin, end = max(0, -((frame_offset - a) // stride)), min(frames, (b - frame_offset) // stride + 1)
        if begin >= end:
            stats.too_short += 1
            continue
        rels.append(RelationInstance(s, p, o, begin, end))
    stats.relations = len(rels)
    boxes = _dense_boxes(parsed, tids, stride, frame_offset, frames, w, h, stats)
    ann = VideoAnnotation(parsed.name, NATIVE_FPS / stride, w, h, tids,
                          tuple(parsed.categories[t] for t in tids.tolist()), boxes, tuple(rels))
    return MevaClip(ann, info.date, info.site, info.camera, stride, frame_offset, native, source, stats)


def split_dates(split: str, dates: Sequence[str]) -> list[str]:
    """The dates of ``split`` ('train' | 'val' | 'test') among ``dates``, using ``DEFAULT_SPLITS``."""
    if split not in SPLITS:
        raise ValueError(f"MEVA split must be one of {SPLITS}, got {split!r}")
    held = {d for ds in DEFAULT_SPLITS.values() for d in ds}
    if split == "train":
        return sorted(d for d in set(dates) if d not in held)
    return sorted(d for d in set(dates) if d in DEFAULT_SPLITS[split])


def select_sources(sources: Sequence[MevaSource], dates: Sequence[str] = (), split: str = "") -> list[MevaSource]:
    """Sources of the given dates (include list) or split; both empty = all. Setting both raises ValueError."""
    if dates and split:
        raise ValueError(f"give MEVA dates or a split, not both (dates={list(dates)}, split={split!r})")
    all_dates = {ClipName.parse(s.name).date for s in sources}
    if split:
        want = set(split_dates(split, all_dates))
    elif dates:
        bad = [d for d in dates if not re.fullmatch(r"\d{4}-\d\d-\d\d", str(d))]
        if bad:
            raise ValueError(f"MEVA dates must be YYYY-MM-DD, got {bad}")
        want = set(dates)
    else:
        return list(sources)
    return [s for s in sources if ClipName.parse(s.name).date in want]


def load_meva(paths: Sequence[str | Path], *, fps: float = 10.0, dates: Sequence[str] = (), split: str = "",
              cache_dir: str | Path = DEFAULT_CACHE_DIR, workers: int = 2, skip_empty: bool = True,
              exclude_status: Sequence[str] = (), frame_offset: int = 0, progress: bool = True) -> list[MevaClip]:
    """Every MEVA clip under ``paths`` of the chosen dates/split as a MevaClip at ``fps``, sorted by clip name.

    Parsing goes through the cache (``meva_cache.load_parsed_clips``). skip_empty: leave out clips without any
    track (about 500 clips are annotated as having no activity and carry no boxes).
    """
    stride = frame_stride(fps)
    if not 0 <= frame_offset < stride:
        raise ValueError(f"frame_offset must be in [0, {stride}) for fps {fps}, got {frame_offset}")
    sources = select_sources(find_meva_sources(paths), dates, split)
    out = []
    for parsed in load_parsed_clips(sources, cache_dir, workers, progress):
        if skip_empty and not parsed.categories:
            continue
        out.append(to_meva_clip(parsed, fps, frame_offset, exclude_status))
    return out


@dataclass(frozen=True)
class DateSummary:
    """Clips and relation instances (30 fps, module rules) of one recording date; predicates: name -> count."""

    date: str
    clips: int
    relations: int
    predicates: dict[str, int]


def summarize_dates(paths: Sequence[str | Path], exclude_status: Sequence[str] = (),
                    progress: bool = False) -> list[DateSummary]:
    """Per-date clip and relation counts, read from the small types/activities files only (no geometry parse)."""
    per: dict[str, tuple[int, Counter]] = {}
    for src in tqdm(find_meva_sources(paths), desc="meva dates", unit="clip", disable=not progress, leave=False):
        cats = parse_types(read_kpf_lines(src.types), src.types)
        acts = parse_activities(read_kpf_lines(src.activities), src.activities)
        date = ClipName.parse(src.name).date
        n, c = per.get(date, (0, Counter()))
        c.update(r[1] for a in acts for r in activity_relations(a, cats, None, exclude_status))
        per[date] = (n + 1, c)
    return [DateSummary(d, n, sum(c.values()), dict(sorted(c.items()))) for d, (n, c) in sorted(per.items())]


def derive_vocabularies(paths: Sequence[str | Path]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(object categories, predicates) the data yields, each sorted: every ``types`` category value, and every
    activity name that gives at least one relation. ``engine/vocab/meva_objects.txt`` / ``meva_predicates.txt``."""
    objects, preds = set(), set()
    for src in find_meva_sources(paths):
        cats = parse_types(read_kpf_lines(src.types), src.types)
        objects.update(cats.values())
        preds.update(r[1] for a in parse_activities(read_kpf_lines(src.activities), src.activities)
                     for r in activity_relations(a, cats))
    return tuple(sorted(objects)), tuple(sorted(preds))
