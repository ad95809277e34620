"""Action Genome annotations (``object_bbox_and_relationship.pkl`` + ``person_bbox.pkl``) -> one VideoAnnotation per
video, following STTran's conventions.

File format (Action Genome v1.0; both files are dicts keyed by the frame name ``'001YG.mp4/000089.png'``, and both
hold the same keys)::

    person_bbox[frame] = {'bbox': (n, 4) float32 xyxy pixels (n = 0 when no person was detected, STTran uses row 0),
                          'bbox_score': (n,), 'bbox_size': (W, H), 'bbox_mode': 'xyxy',
                          'keypoints': (n, 17, 3), 'keypoints_logits': (n, 17)}
    object_bbox_and_relationship[frame] = [
        {'class': 'cup/glass/bottle', 'bbox': (x, y, w, h) pixels or None, 'visible': bool,
         'attention_relationship': ['looking_at'],                  # exactly one label
         'spatial_relationship': ['in_front_of', 'on_the_side_of'], # any number
         'contacting_relationship': ['holding'],                    # any number
         'metadata': {'tag': '001YG.mp4/cup_glass_bottle/000089', 'set': 'train' | 'test'}}, ...]

Names. The pickles spell classes with slashes and predicates with underscores, while ``engine/vocab/ag_objects.txt``
and ``ag_predicates.txt`` (AG's own ``object_classes.txt`` / ``relationship_classes.txt``) drop them: the loader
removes every ``/`` from class names (``closet/cabinet`` -> ``closetcabinet``, ``cup/glass/bottle``, ``paper/notebook``,
``phone/camera``, ``sofa/couch``) and every ``_`` from predicate names (``looking_at`` -> ``lookingat``,
``in_front_of`` -> ``infrontof``, ``not_contacting`` -> ``notcontacting``...). STTran does the same by patching those
entries of the class lists. A name that is still not an AG name (or a predicate in the wrong field) is a format
error. Map files (``label_map``) then apply to these vocabulary names, not to the raw spellings.

Conversion (STTran's defaults): frames are grouped per video and sorted by frame number; a frame is kept when it
belongs to the requested split (``metadata['set']``), has at least one visible object and, unless
``require_person_box=False``, a person box. Only visible objects are used, and a visible object must have a bbox.
Object boxes are converted from xywh to xyxy (x2 = x + w). In the VideoAnnotation, column 0 / tid 0 is the person
(category ``person``); every object class seen in the video gets one tid (1, 2, ... in order of first appearance),
since AG annotates at most one instance per class per frame. Relations: attention and contacting predicates point
person -> object, spatial predicates point object -> person (AG/STTran's triplet convention); a predicate holding on
consecutive kept keyframes becomes one RelationInstance spanning them.

Time. The VideoAnnotation's frame axis is the kept **keyframe** index, not the video frame number; ``AGVideo`` keeps
the original frame numbers and ``AGVideo.times`` gives seconds. AG dumped frames with ffmpeg at each video's native
rate (numbered from 1, and "not always 24 fps"), which the pickles do not record, so ``fps`` is an assumption;
``annotation.fps`` is the mean keyframe rate so that ``f / fps`` approximates seconds since the first keyframe.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Mapping

import numpy as np
from tqdm import tqdm

from engine.io.vidvrd import RelationInstance, VideoAnnotation
from engine.vocab import Vocabulary, builtin
from offline_train.data.label_map import LabelMap, merge_spans, remap_annotation
from offline_train.data.safe_pickle import load_safe_pickle

PERSON_FILE = "person_bbox.pkl"
OBJECT_FILE = "object_bbox_and_relationship.pkl"
PERSON_CATEGORY = "person"
GROUPS = ("attention", "spatial", "contacting")
GROUP_FIELDS = {g: f"{g}_relationship" for g in GROUPS}
# Positions of each group in ag_predicates.txt (= AG's relationship_classes.txt; STTran slices it the same way).
_GROUP_SLICES = {"attention": slice(0, 3), "spatial": slice(3, 9), "contacting": slice(9, None)}
_OBJECT_FIELDS = ("class", "bbox", "visible", "metadata") + tuple(GROUP_FIELDS.values())
_FRAME_KEY = re.compile(r"^(?P<video>[^/]+)/(?P<num>\d+)\.[A-Za-z]+$")
SPLITS = ("train", "test")


def ag_category_name(raw: str) -> str:
    """Pickle class spelling -> ag_objects vocabulary name (``'cup/glass/bottle'`` -> ``'cupglassbottle'``)."""
    return raw.replace("/", "")


def ag_predicate_name(raw: str) -> str:
    """Pickle predicate spelling -> ag_predicates vocabulary name (``'in_front_of'`` -> ``'infrontof'``)."""
    return raw.replace("_", "")


def ag_group_names() -> dict[str, tuple[str, ...]]:
    """The AG vocabulary names of each predicate group: attention (3), spatial (6), contacting (17)."""
    names = builtin("ag_predicates").names
    return {g: names[_GROUP_SLICES[g]] for g in GROUPS}


def mapped_group_names(predicates: LabelMap | None = None) -> dict[str, tuple[str, ...]]:
    """Each group's predicate names after ``predicates`` (dropped names left out). Raises ValueError if the map sends
    names of two groups to one target name, since the grouped heads (softmax attention, sigmoid spatial/contacting)
    need the groups to stay disjoint."""
    out, owner = {}, {}
    for g, names in ag_group_names().items():
        mapped = []
        for n in names:
            t = n if predicates is None else predicates.map(n, "Action Genome predicate groups")
            if t is None or t in mapped:
                continue
            if owner.get(t, g) != g:
                src = predicates.source if predicates is not None else "<identity>"
                raise ValueError(f"{src}: '{n}' ({g}) maps to '{t}', already a {owner[t]} predicate; "
                                 "groups must stay disjoint")
            owner[t] = g
            mapped.append(t)
        out[g] = tuple(mapped)
    return out


def ag_predicate_groups(vocab: Vocabulary, predicates: LabelMap | None = None) -> dict[str, list[int]]:
    """Indices in ``vocab`` of each group's predicates: ``{'attention': [...], 'spatial': [...], 'contacting': [...]}``.

    With the built-in ``ag_predicates`` vocabulary: attention 0-2, spatial 3-8, contacting 9-25. ``predicates`` maps the
    AG names first (as the loader does). A name missing from ``vocab`` raises ValueError.
    """
    return {g: vocab.indices(names) for g, names in mapped_group_names(predicates).items()}


@dataclass(frozen=True, eq=False)
class AGVideo:
    """One Action Genome video.

    annotation:     VideoAnnotation over the T kept keyframes (frame axis = keyframe index; boxes xyxy pixels).
    frame_numbers:  (T,) int64 frame numbers from the frame names (ffmpeg numbering, from 1), increasing.
    frame_keys:     the T frame names as in the pickles (``'001YG.mp4/000089.png'``), the image path under frames/.
    split:          'train' or 'test' (metadata 'set').
    source_fps:     the assumed native frame rate used for ``times``.
    predicate_groups: group name -> predicate names (target vocabulary) of that group.
    """

    annotation: VideoAnnotation
    frame_numbers: np.ndarray
    frame_keys: tuple[str, ...]
    split: str
    source_fps: float
    predicate_groups: Mapping[str, tuple[str, ...]]

    def __post_init__(self):
        nums = np.array(self.frame_numbers, dtype=np.int64)
        if nums.shape != (self.annotation.frame_count,) or len(self.frame_keys) != len(nums):
            raise ValueError(f"AGVideo {self.annotation.video_id!r}: need one frame number and key per annotated "
                             f"frame ({self.annotation.frame_count}), got {nums.shape} and {len(self.frame_keys)}")
        if (np.diff(nums) <= 0).any():
            raise ValueError(f"AGVideo {self.annotation.video_id!r}: frame_numbers must increase")
        nums.flags.writeable = False
        object.__setattr__(self, "frame_numbers", nums)
        object.__setattr__(self, "frame_keys", tuple(self.frame_keys))
        object.__setattr__(self, "predicate_groups", MappingProxyType(dict(self.predicate_groups)))

    @property
    def times(self) -> np.ndarray:
        """(T,) float64 seconds of each keyframe from the start of the video."""
        return (self.frame_numbers - 1) / self.source_fps


def _where(frame: str, field: str, obj: int | None = None) -> str:
    o = f" object {obj}" if obj is not None else ""
    return f"Action Genome frame '{frame}'{o} field '{field}'"


def _box_xywh_to_xyxy(value, frame: str, obj: int) -> np.ndarray:
    a = np.asarray(value) if value is not None else None
    if a is None or a.dtype.kind not in "fiu" or a.shape != (4,):
        raise ValueError(f"{_where(frame, 'bbox', obj)}: expected (x, y, w, h) of 4 numbers, got {value!r}")
    x, y, w, h = (float(v) for v in a)
    if not np.isfinite([x, y, w, h]).all() or w < 0 or h < 0:
        raise ValueError(f"{_where(frame, 'bbox', obj)}: need finite x, y and w, h >= 0, got {value!r}")
    return np.array([x, y, x + w, y + h], np.float32)


def _person_box(entry, frame: str) -> tuple[np.ndarray | None, tuple[int, int]]:
    """(first person box xyxy or None, (W, H)) of one person_bbox entry."""
    if not isinstance(entry, dict):
        raise ValueError(f"{PERSON_FILE} frame '{frame}': expected a dict, got {type(entry).__name__}")
    for key in ("bbox", "bbox_size"):
        if key not in entry:
            raise ValueError(f"{PERSON_FILE} frame '{frame}': missing field '{key}'")
    if entry.get("bbox_mode", "xyxy") != "xyxy":
        raise ValueError(f"{PERSON_FILE} frame '{frame}' field 'bbox_mode': only 'xyxy' is supported, "
                         f"got {entry['bbox_mode']!r}")
    b = np.asarray(entry["bbox"])
    if b.dtype.kind not in "fiu" or b.ndim != 2 or b.shape[1] != 4:
        raise ValueError(f"{PERSON_FILE} frame '{frame}' field 'bbox': expected an (n, 4) xyxy array, "
                         f"got shape {b.shape} dtype {b.dtype}")
    size = entry["bbox_size"]
    try:
        w, h = (int(v) for v in size)
    except (TypeError, ValueError):
        raise ValueError(f"{PERSON_FILE} frame '{frame}' field 'bbox_size': expected (W, H), got {size!r}") from None
    if w <= 0 or h <= 0:
        raise ValueError(f"{PERSON_FILE} frame '{frame}' field 'bbox_size': need W, H > 0, got {size!r}")
    if len(b) == 0:
        return None, (w, h)
    box = b[0].astype(np.float32)
    if not np.isfinite(box).all() or box[2] < box[0] or box[3] < box[1]:
        raise ValueError(f"{PERSON_FILE} frame '{frame}' field 'bbox': need finite x1<=x2, y1<=y2, "
                         f"got {box.tolist()}")
    return box, (w, h)


def _frame_split(objs, frame: str) -> str:
    """The 'set' of a frame; every object must carry all fields and agree on the set."""
    if not isinstance(objs, list):
        raise ValueError(f"{OBJECT_FILE} frame '{frame}': expected a list of objects, got {type(objs).__name__}")
    sets = set()
    for i, o in enumerate(objs):
        if not isinstance(o, dict):
            raise ValueError(f"{OBJECT_FILE} frame '{frame}' object {i}: expected a dict, got {type(o).__name__}")
        for key in _OBJECT_FIELDS:
            if key not in o:
                raise ValueError(f"{_where(frame, key, i)}: missing")
        meta = o["metadata"]
        s = meta.get("set") if isinstance(meta, dict) else None
        if s not in SPLITS:
            raise ValueError(f"{_where(frame, 'metadata', i)}: 'set' must be one of {SPLITS}, got {meta!r}")
        sets.add(s)
    if len(sets) > 1:
        raise ValueError(f"{OBJECT_FILE} frame '{frame}': objects disagree on metadata 'set' ({sorted(sets)})")
    return sets.pop() if sets else ""


def _object_labels(o: dict, frame: str, i: int, groups: dict[str, frozenset[str]],
                   objects: Vocabulary) -> tuple[str, dict[str, list[str]]]:
    """(AG class name, {group: AG predicate names}) of one visible object, validated. ``groups``: AG names per group."""
    raw = o["class"]
    if not isinstance(raw, str) or ag_category_name(raw) not in objects:
        raise ValueError(f"{_where(frame, 'class', i)}: {raw!r} is not an Action Genome object class")
    rels = {}
    for g, fld in GROUP_FIELDS.items():
        vals = o[fld]
        if not isinstance(vals, (list, tuple)) or not all(isinstance(v, str) for v in vals):
            raise ValueError(f"{_where(frame, fld, i)}: expected a list of predicate names, got {vals!r}")
        names = [ag_predicate_name(v) for v in vals]
        for raw_v, n in zip(vals, names):
            if n not in groups[g]:
                raise ValueError(f"{_where(frame, fld, i)}: '{raw_v}' is not an Action Genome {g} predicate "
                                 f"(expected one of {sorted(groups[g])})")
        if g == "attention" and len(names) != 1:
            raise ValueError(f"{_where(frame, fld, i)}: a visible object needs exactly one attention label, "
                             f"got {vals!r}")
        rels[g] = list(dict.fromkeys(names))
    return ag_category_name(raw), rels


def _parse_key(frame) -> tuple[str, int]:
    m = _FRAME_KEY.match(frame) if isinstance(frame, str) else None
    if m is None:
        raise ValueError(f"Action Genome frame key {frame!r}: expected 'VIDEO.mp4/000089.png'")
    return m["video"], int(m["num"])


def _video_frames(vid: str, frames: list[tuple[int, str]], person_bbox: dict, object_bbox: dict, split: str,
                  require_person_box: bool, groups: dict, objects: Vocabulary) -> list[tuple]:
    """Kept frames of one video, in frame order: (number, key, person box or None, (W, H), [(class, box, rels)])."""
    kept = []
    for num, key in frames:
        objs = object_bbox[key]
        s = _frame_split(objs, key)
        if split and s != split:
            continue
        visible = []
        for i, o in enumerate(objs):
            if not isinstance(o["visible"], (bool, np.bool_)):
                raise ValueError(f"{_where(key, 'visible', i)}: expected True/False, got {o['visible']!r}")
            if not o["visible"]:
                continue
            cat, rels = _object_labels(o, key, i, groups, objects)
            if any(cat == c for c, _, _ in visible):
                raise ValueError(f"{_where(key, 'class', i)}: class {o['class']!r} appears twice in one frame "
                                 "(Action Genome annotates one instance per class per frame)")
            visible.append((cat, _box_xywh_to_xyxy(o["bbox"], key, i), rels))
        if not visible:
            continue
        pbox, size = _person_box(person_bbox[key], key)
        if pbox is None and require_person_box:
            continue
        kept.append((num, key, pbox, size, visible, s))
    return kept


def _to_annotation(vid: str, kept: list[tuple], fps: float) -> VideoAnnotation:
    """VideoAnnotation in AG vocabulary names from the kept frames of one video."""
    sizes = {k[3] for k in kept}
    if len(sizes) > 1:
        raise ValueError(f"{PERSON_FILE} video '{vid}' field 'bbox_size': frames disagree on the image size "
                         f"({sorted(sizes)})")
    width, height = sizes.pop()
    tid_of: dict[str, int] = {}
    for k in kept:
        for cat, _, _ in k[4]:
            tid_of.setdefault(cat, len(tid_of) + 1)  # tid 0 is the person
    boxes = np.full((len(kept), len(tid_of) + 1, 4), np.nan, np.float32)
    rels = []
    for t, (_, _, pbox, _, visible, _) in enumerate(kept):
        if pbox is not None:
            boxes[t, 0] = pbox
        for cat, box, rels_by_group in visible:
            tid = tid_of[cat]
            boxes[t, tid] = box
            for g, names in rels_by_group.items():
                for p in names:
                    s, o = (tid, 0) if g == "spatial" else (0, tid)
                    rels.append(RelationInstance(s, p, o, t, t + 1))
    nums = [k[0] for k in kept]
    span_s = (nums[-1] - nums[0]) / fps
    rate = (len(nums) - 1) / span_s if len(nums) > 1 and span_s > 0 else fps
    return VideoAnnotation(vid, rate, width, height, np.arange(len(tid_of) + 1, dtype=np.int64),
                           (PERSON_CATEGORY, *tid_of), boxes, merge_spans(rels))


def parse_action_genome(person_bbox: dict, object_bbox: dict, categories: LabelMap | None = None,
                        predicates: LabelMap | None = None, *, split: str = "", require_person_box: bool = True,
                        min_frames: int = 1, max_videos: int = 0, fps: float = 24.0,
                        progress: bool = False) -> list[AGVideo]:
    """Convert the two decoded Action Genome dicts into AGVideo objects, sorted by video id.

    categories / predicates: maps from AG vocabulary names to the training vocabularies (default: identity onto
    ``ag_objects`` / ``ag_predicates``). split: 'train', 'test' or '' for both. require_person_box: drop frames
    without a person box (STTran's default). min_frames: skip videos with fewer kept frames (STTran keeps > 2, i.e. 3).
    max_videos: stop after this many videos (0 = all). fps: assumed native frame rate for ``AGVideo.times``.
    Any format problem raises ValueError naming the frame (and object index and field); nothing is returned then.
    """
    if split not in ("", *SPLITS):
        raise ValueError(f"split must be '', 'train' or 'test', got {split!r}")
    if min_frames < 1 or max_videos < 0 or not fps > 0:
        raise ValueError(f"need min_frames >= 1, max_videos >= 0, fps > 0; got {min_frames}, {max_videos}, {fps}")
    for name, d in ((PERSON_FILE, person_bbox), (OBJECT_FILE, object_bbox)):
        if not isinstance(d, dict):
            raise ValueError(f"{name}: expected a dict keyed by frame name, got {type(d).__name__}")
    if person_bbox.keys() != object_bbox.keys():
        only_p = sorted(person_bbox.keys() - object_bbox.keys(), key=str)
        only_o = sorted(object_bbox.keys() - person_bbox.keys(), key=str)
        frame, missing_in = (only_p[0], OBJECT_FILE) if only_p else (only_o[0], PERSON_FILE)
        raise ValueError(f"Action Genome frame {frame!r}: missing from {missing_in} "
                         f"({len(only_p) + len(only_o)} frames are in only one of the two files)")
    categories = categories or LabelMap(builtin("ag_objects"))
    predicates = predicates or LabelMap(builtin("ag_predicates"))
    target_groups = MappingProxyType(mapped_group_names(predicates))
    groups = {g: frozenset(names) for g, names in ag_group_names().items()}
    objects = builtin("ag_objects")
    videos: dict[str, list[tuple[int, str]]] = {}
    for key in person_bbox:
        vid, num = _parse_key(key)
        videos.setdefault(vid, []).append((num, key))
    out = []
    for vid in tqdm(sorted(videos), desc="action genome", unit="video", disable=not progress, leave=False):
        frames = sorted(videos[vid])
        for (n0, k0), (n1, k1) in zip(frames, frames[1:]):
            if n0 == n1:
                raise ValueError(f"Action Genome frames {k0!r} and {k1!r} have the same frame number")
        kept = _video_frames(vid, frames, person_bbox, object_bbox, split, require_person_box, groups, objects)
        if len(kept) < min_frames:
            continue
        sets = sorted({k[5] for k in kept})
        if len(sets) > 1:
            raise ValueError(f"{OBJECT_FILE} video '{vid}' field 'metadata': frames of both sets {sets}")
        raw = _to_annotation(vid, kept, fps)
        ann = remap_annotation(raw, categories, predicates, f"Action Genome video '{vid}'")
        out.append(AGVideo(ann, np.array([k[0] for k in kept], np.int64), tuple(k[1] for k in kept), sets[0],
                           float(fps), target_groups))
        if max_videos and len(out) >= max_videos:
            break
    return out


def load_action_genome(root: str | Path, categories: LabelMap | None = None, predicates: LabelMap | None = None,
                       **options) -> list[AGVideo]:
    """Read ``root/person_bbox.pkl`` and ``root/object_bbox_and_relationship.pkl`` (AG's ``annotations/`` folder)
    with the restricted unpickler and convert them with ``parse_action_genome(..., **options)``.

    Errors name the folder: ValueError for a format problem or a refused pickle, FileNotFoundError for a missing file.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"Action Genome annotation folder not found: {root}")
    person = load_safe_pickle(root / PERSON_FILE)
    objects = load_safe_pickle(root / OBJECT_FILE)
    try:
        return parse_action_genome(person, objects, categories, predicates, **options)
    except ValueError as e:
        raise ValueError(f"{root}: {e}") from e
