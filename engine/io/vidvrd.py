"""The official VidVRD / VidOR annotation JSON format: parse, validate, write, and per-frame label conversion.

Format (VidVRD-helper, ``VERSION 1.0``)::

    {"video_id", "frame_count", "fps", "width", "height",
     "subject/objects": [{"tid", "category"}],
     "trajectories": [[{"tid", "bbox": {"xmin","ymin","xmax","ymax"}, "generated", "tracker"}, ...] per frame],
     "relation_instances": [{"subject_tid", "object_tid", "predicate", "begin_fid", "end_fid"}]}

``end_fid`` is **exclusive**. Boxes are pixel coordinates ``xyxy`` as written in the file (VidVRD's scorer uses the
+1-pixel area convention; that lives in the metrics, not here). Frame ``f`` is at time ``f / fps`` seconds.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.vocab import Vocabulary

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
        present = ~np.isnan(boxes).any(-1)
        b = boxes[present]
        if not np.isfinite(b).all() or (b[:, 2] < b[:, 0]).any() or (b[:, 3] < b[:, 1]).any():
            raise ValueError(f"{where}: boxes must be finite xyxy with x1<=x2 and y1<=y2")
        if not (self.fps > 0 and self.width > 0 and self.height > 0):
            raise ValueError(f"{where}: fps, width and height must be positive")
        known = set(tids.tolist())
        for r in self.relations:
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


def parse_vidvrd(data: dict, source: str = "<dict>") -> VideoAnnotation:
    """Build a VideoAnnotation from the decoded official JSON; every problem raises ValueError naming ``source``."""
    if not isinstance(data, dict):
        raise ValueError(f"{source}: top level must be a JSON object")
    try:
        vid = str(_need(data, "video_id", source))
        where = f"{source} (video {vid})"
        objs = _need(data, "subject/objects", where)
        trajs = _need(data, "trajectories", where)
        n_frames = int(_need(data, "frame_count", where))
        if not isinstance(objs, list) or not isinstance(trajs, list):
            raise ValueError(f"{where}: 'subject/objects' and 'trajectories' must be lists")
        if len(trajs) != n_frames:
            raise ValueError(f"{where}: frame_count is {n_frames} but 'trajectories' has {len(trajs)} frames")
        tids = [int(_need(o, "tid", f"{where} subject/objects")) for o in objs]
        cats = [str(_need(o, "category", f"{where} subject/objects")) for o in objs]
        col = {t: k for k, t in enumerate(tids)}
        if len(col) != len(tids):
            raise ValueError(f"{where}: duplicate tid in 'subject/objects'")
        boxes = np.full((n_frames, len(tids), 4), np.nan, np.float32)
        for f, frame in enumerate(trajs):
            if not isinstance(frame, list):
                raise ValueError(f"{where}: trajectories[{f}] must be a list")
            for item in frame:
                tid = int(_need(item, "tid", f"{where} trajectories[{f}]"))
                if tid not in col:
                    raise ValueError(f"{where}: trajectories[{f}] has tid {tid} not in 'subject/objects'")
                bb = _need(item, "bbox", f"{where} trajectories[{f}]")
                boxes[f, col[tid]] = [float(_need(bb, k, f"{where} trajectories[{f}] bbox"))
                                      for k in ("xmin", "ymin", "xmax", "ymax")]
        rels = []
        for i, r in enumerate(data.get("relation_instances", [])):
            w = f"{where} relation_instances[{i}]"
            rels.append(RelationInstance(int(_need(r, "subject_tid", w)), str(_need(r, "predicate", w)),
                                         int(_need(r, "object_tid", w)), int(_need(r, "begin_fid", w)),
                                         int(_need(r, "end_fid", w))))
        return VideoAnnotation(vid, float(_need(data, "fps", where)), int(_need(data, "width", where)),
                               int(_need(data, "height", where)), np.array(tids, np.int64), tuple(cats), boxes,
                               tuple(rels))
    except (TypeError, KeyError) as e:  # wrong JSON types inside fields
        raise ValueError(f"{source}: malformed annotation ({type(e).__name__}: {e})") from e


def load_vidvrd(path: str | Path) -> VideoAnnotation:
    """Read one official VidVRD/VidOR annotation JSON file."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"annotation file not found: {p}")
    try:
        data = json.loads(p.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{p}: not valid JSON ({e})") from e
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
