"""The official VidVRD / VidOR annotation JSON format: parse, validate, write, and per-frame label conversion.

Format (VidVRD-helper, ``VERSION 1.0``)::

    {"video_id", "frame_count", "fps", "width", "height",
     "subject/objects": [{"tid", "category"}],
     "trajectories": [[{"tid", "bbox": {"xmin","ymin","xmax","ymax"}, "generated", "tracker"}, ...] per frame],
     "relation_instances": [{"subject_tid", "object_tid", "predicate", "begin_fid", "end_fid"}]}

``end_fid`` is **exclusive**. Boxes are pixel coordinates ``xyxy`` as written in the file (VidVRD's scorer uses the
+1-pixel area convention; that lives in the metrics, not here). Frame ``f`` is at time ``f / fps`` seconds.

Parsing is strict, because a lenient reading turns a broken file into silently wrong ground truth: ids, frame
numbers and sizes must be JSON integers (``3`` or ``3.0``, never ``0.7`` or ``"3"``); ``fps`` a finite number > 0;
box coordinates finite numbers (a ``NaN`` box is an error, not an absent object: absent objects are simply not
listed in that frame); a tid at most once per frame; category and predicate names pass ``engine.vocab.check_name``
(no control or bidirectional characters). Every problem is a ValueError naming the file, the field and the frame.
"""
from __future__ import annotations

import json
import math
import numbers
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.vocab import Vocabulary, check_name, read_text_file

FORMAT_VERSION = "VERSION 1.0"


@dataclass(frozen=True)
class RelationInstance:
    """``subject --predicate--> object`` holding on frames ``begin_fid <= f < end_fid``."""

    subject_tid: int
    predicate: str
    object_tid: int
    begin_fid: int
    end_fid: int


@dataclass(frozen=True, eq=False)
class VideoAnnotation:
    """One annotated video.

    tids:       (K,) int64 object track ids as in the file.
    categories: K category names, aligned with ``tids``.
    boxes:      (T, K, 4) float32 xyxy pixels; NaN rows where object k is absent in frame t.
    relations:  relation instances (end exclusive), subject/object given by tid.
    """

    video_id: str
    fps: float
    width: int
    height: int
    tids: np.ndarray
    categories: tuple[str, ...]
    boxes: np.ndarray
    relations: tuple[RelationInstance, ...] = ()

    def __post_init__(self):
        where = f"video {self.video_id!r}"
        tids = np.asarray(self.tids, dtype=np.int64)
        boxes = np.asarray(self.boxes, dtype=np.float32)
        if tids.ndim != 1 or len(set(tids.tolist())) != len(tids):
            raise ValueError(f"{where}: tids must be a 1-D array of unique ids, got {tids.tolist()}")
        if len(self.categories) != len(tids):
            raise ValueError(f"{where}: {len(self.categories)} categories for {len(tids)} tids")
        if boxes.ndim != 3 or boxes.shape[1:] != (len(tids), 4):
            raise ValueError(f"{where}: boxes must have shape (T, {len(tids)}, 4), got {boxes.shape}")
        nan = np.isnan(boxes)
        if (nan.any(-1) & ~nan.all(-1)).any():
            f, k = np.argwhere(nan.any(-1) & ~nan.all(-1))[0].tolist()
            raise ValueError(f"{where}: box of tid {int(tids[k])} in frame {f} is partly NaN "
                             f"({boxes[f, k].tolist()}); a box is either all NaN (absent) or finite")
        present = ~nan.any(-1)
        b = boxes[present]
        if not np.isfinite(b).all() or (b[:, 2] < b[:, 0]).any() or (b[:, 3] < b[:, 1]).any():
            raise ValueError(f"{where}: boxes must be finite xyxy with x1<=x2 and y1<=y2")
        for name, v in (("fps", self.fps), ("width", self.width), ("height", self.height)):
            if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v) or v <= 0:
                raise ValueError(f"{where}: {name} must be a finite number > 0, got {v!r}")
        for c in self.categories:
            check_name(c, f"{where} category")
        known = set(tids.tolist())
        for r in self.relations:
            check_name(r.predicate, f"{where} predicate")
            if r.subject_tid not in known or r.object_tid not in known:
                raise ValueError(f"{where}: relation {r} refers to an unknown tid")
            if not 0 <= r.begin_fid < r.end_fid <= len(boxes):
                raise ValueError(f"{where}: relation {r} has a bad frame span for {len(boxes)} frames "
                                 "(need 0 <= begin_fid < end_fid <= frame_count; end_fid is exclusive)")
        tids.flags.writeable = False
        boxes.flags.writeable = False
        object.__setattr__(self, "tids", tids)
        object.__setattr__(self, "boxes", boxes)
        object.__setattr__(self, "categories", tuple(self.categories))
        object.__setattr__(self, "relations", tuple(self.relations))

    @property
    def frame_count(self) -> int:
        return int(self.boxes.shape[0])

    @property
    def present(self) -> np.ndarray:
        """(T, K) bool: object k has a box in frame t."""
        return ~np.isnan(self.boxes).any(-1)

    def column(self, tid: int) -> int:
        """Index k of object ``tid`` in ``tids`` / ``boxes``."""
        hit = np.flatnonzero(self.tids == tid)
        if len(hit) == 0:
            raise ValueError(f"video {self.video_id!r}: unknown tid {tid}")
        return int(hit[0])


def _need(d: dict, key: str, where: str):
    if not isinstance(d, dict) or key not in d:
        raise ValueError(f"{where}: missing field '{key}'")
    return d[key]


def _int(d: dict, key: str, where: str) -> int:
    """Field ``key`` as an int: a JSON integer, or a float with an integral value (``3.0``); else ValueError."""
    v = _need(d, key, where)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or (isinstance(v, float) and not v.is_integer()):
        raise ValueError(f"{where}: '{key}' must be an integer, got {v!r}")
    return int(v)


def _real(d: dict, key: str, where: str) -> float:
    """Field ``key`` as a finite float; a string, bool, null, NaN or inf raises ValueError naming the field."""
    v = _need(d, key, where)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise ValueError(f"{where}: '{key}' must be a finite number, got {v!r}")
    return float(v)


def _name(d: dict, key: str, where: str) -> str:
    v = _need(d, key, where)
    if not isinstance(v, str):
        raise ValueError(f"{where}: '{key}' must be a string, got {v!r}")
    return check_name(v, f"{where} '{key}'")


def parse_vidvrd(data: dict, source: str = "<dict>") -> VideoAnnotation:
    """Build a VideoAnnotation from the decoded official JSON; every problem raises ValueError naming ``source``."""
    if not isinstance(data, dict):
        raise ValueError(f"{source}: top level must be a JSON object")
    try:
        vid = check_name(str(_need(data, "video_id", source)), f"{source} video_id")
        where = f"{source} (video {vid})"
        objs = _need(data, "subject/objects", where)
        trajs = _need(data, "trajectories", where)
        n_frames = _int(data, "frame_count", where)
        fps = _real(data, "fps", where)
        if fps <= 0:
            raise ValueError(f"{where}: 'fps' must be > 0, got {fps!r}")
        width, height = _int(data, "width", where), _int(data, "height", where)
        if not isinstance(objs, list) or not isinstance(trajs, list):
            raise ValueError(f"{where}: 'subject/objects' and 'trajectories' must be lists")
        if len(trajs) != n_frames:
            raise ValueError(f"{where}: frame_count is {n_frames} but 'trajectories' has {len(trajs)} frames")
        tids = [_int(o, "tid", f"{where} subject/objects[{i}]") for i, o in enumerate(objs)]
        cats = [_name(o, "category", f"{where} subject/objects[{i}]") for i, o in enumerate(objs)]
        col = {t: k for k, t in enumerate(tids)}
        if len(col) != len(tids):
            raise ValueError(f"{where}: duplicate tid in 'subject/objects'")
        boxes = np.full((n_frames, len(tids), 4), np.nan, np.float32)
        for f, frame in enumerate(trajs):
            if not isinstance(frame, list):
                raise ValueError(f"{where}: trajectories[{f}] must be a list")
            seen = set()
            for item in frame:
                w = f"{where} trajectories[{f}]"
                tid = _int(item, "tid", w)
                if tid not in col:
                    raise ValueError(f"{w}: tid {tid} not in 'subject/objects'")
                if tid in seen:
                    raise ValueError(f"{w}: tid {tid} listed twice in one frame")
                seen.add(tid)
                bb = _need(item, "bbox", w)
                boxes[f, col[tid]] = [_real(bb, k, f"{w} tid {tid} bbox") for k in ("xmin", "ymin", "xmax", "ymax")]
        rels = []
        instances = data.get("relation_instances", [])
        if not isinstance(instances, list):
            raise ValueError(f"{where}: 'relation_instances' must be a list")
        for i, r in enumerate(instances):
            w = f"{where} relation_instances[{i}]"
            rels.append(RelationInstance(_int(r, "subject_tid", w), _name(r, "predicate", w),
                                         _int(r, "object_tid", w), _int(r, "begin_fid", w), _int(r, "end_fid", w)))
        return VideoAnnotation(vid, fps, width, height, np.array(tids, np.int64), tuple(cats), boxes, tuple(rels))
    except (TypeError, KeyError) as e:  # wrong JSON types inside fields
        raise ValueError(f"{source}: malformed annotation ({type(e).__name__}: {e})") from e


def load_vidvrd(path: str | Path) -> VideoAnnotation:
    """Read one official VidVRD/VidOR annotation JSON file."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"annotation file not found: {p}")
    text = read_text_file(p, "annotation file")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"{p}: not valid JSON ({e})") from None
    except RecursionError:  # json's C decoder recurses per nesting level
        raise ValueError(f"{p}: not a VidVRD annotation (JSON nested too deeply to parse)") from None
    return parse_vidvrd(data, str(p))


def to_vidvrd_dict(ann: VideoAnnotation) -> dict:
    """The official JSON structure of ``ann`` (boxes written as floats rounded to 0.01 px; generated=0)."""
    trajs = []
    for f in range(ann.frame_count):
        frame = []
        for k, tid in enumerate(ann.tids.tolist()):
            b = ann.boxes[f, k]
            if not np.isnan(b).any():
                x1, y1, x2, y2 = (round(float(v), 2) for v in b)
                frame.append({"tid": tid, "bbox": {"xmin": x1, "ymin": y1, "xmax": x2, "ymax": y2},
                              "generated": 0, "tracker": "none"})
        trajs.append(frame)
    return {
        "version": FORMAT_VERSION, "video_id": ann.video_id, "frame_count": ann.frame_count, "fps": ann.fps,
        "width": ann.width, "height": ann.height,
        "subject/objects": [{"tid": t, "category": c} for t, c in zip(ann.tids.tolist(), ann.categories)],
        "trajectories": trajs,
        "relation_instances": [{"subject_tid": r.subject_tid, "object_tid": r.object_tid, "predicate": r.predicate,
                                "begin_fid": r.begin_fid, "end_fid": r.end_fid} for r in ann.relations],
    }


def save_vidvrd(ann: VideoAnnotation, path: str | Path) -> None:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(to_vidvrd_dict(ann), separators=(",", ":")))


def frame_labels(ann: VideoAnnotation, predicates: Vocabulary, unknown: str = "error") -> np.ndarray:
    """(T, K, K, P) bool: predicate p holds for (subject column i, object column j) in frame t.

    unknown: 'error' raises ValueError on a predicate outside ``predicates``; 'drop' ignores it.
    """
    if unknown not in ("error", "drop"):
        raise ValueError(f"unknown must be 'error' or 'drop', got {unknown!r}")
    k = len(ann.tids)
    out = np.zeros((ann.frame_count, k, k, len(predicates)), bool)
    for r in ann.relations:
        if r.predicate not in predicates:
            if unknown == "drop":
                continue
            raise ValueError(f"video {ann.video_id!r}: predicate '{r.predicate}' is not in vocabulary "
                             f"'{predicates.name}'")
        out[r.begin_fid:r.end_fid, ann.column(r.subject_tid), ann.column(r.object_tid), predicates.index(r.predicate)] = True
    return out


def instances_from_labels(labels: np.ndarray, tids: np.ndarray, predicates: Vocabulary) -> tuple[RelationInstance, ...]:
    """Inverse of ``frame_labels``: merge consecutive frames where a triplet holds into [begin, end) spans."""
    t, k, k2, p = labels.shape
    if k != k2 or p != len(predicates) or len(tids) != k:
        raise ValueError(f"labels shape {labels.shape} does not match {len(tids)} tids and {len(predicates)} predicates")
    pad = np.zeros((1, k, k, p), bool)
    edges = np.diff(np.concatenate([pad, labels, pad]).astype(np.int8), axis=0)  # +1 at begin, -1 at end
    begins, ends = np.argwhere(edges == 1), np.argwhere(edges == -1)
    # argwhere orders by (frame, i, j, p); sort both by (i, j, p, frame) so begins and ends pair up.
    order_b = np.lexsort((begins[:, 0], begins[:, 3], begins[:, 2], begins[:, 1]))
    order_e = np.lexsort((ends[:, 0], ends[:, 3], ends[:, 2], ends[:, 1]))
    out = []
    for (b, i, j, q), (e, *_rest) in zip(begins[order_b], ends[order_e]):
        out.append(RelationInstance(int(tids[i]), predicates.names[q], int(tids[j]), int(b), int(e)))
    return tuple(out)
