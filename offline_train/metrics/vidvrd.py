"""VidVRD/VidOR relation instances: the validated record, its JSON forms and the trajectory vIoU of the scorer.

A relation instance is ``subject --predicate--> object`` over a frame interval of one video, with one box per frame
for the subject and the object. This is the unit of the official VidVRD-helper scorer (used for ImageNet-VidVRD
and VidOR), for ground truth and predictions alike.

Conventions (those of VidVRD-helper, which the metrics in ``relation_detection`` and ``relation_tagging`` follow):

* Frames are integer indices at the video's native frame rate; an interval is ``[begin_fid, end_fid)`` with
  ``end_fid`` **exclusive**, so it holds ``end_fid - begin_fid`` frames (at least one).
* Boxes are ``xyxy`` in pixels of the video frame, origin top-left, ``x2 >= x1``, ``y2 >= y1``. Areas and
  intersections use the **+1-pixel** convention of the reference: a box covers ``(x2 - x1 + 1) * (y2 - y1 + 1)``
  pixels and two boxes intersect over ``max(0, min(x2) - max(x1) + 1)`` by ``max(0, min(y2) - max(y1) + 1)``.
* ``viou_xyxy`` (voluminal IoU) of two trajectories sums the per-frame intersections over the frames the two
  intervals share and divides by the summed areas of **every** frame of both trajectories minus that sum; frames
  outside the overlap count only in the denominator, and disjoint (or merely touching) intervals give 0.
* Ground truth is scored **as annotated**: every relation instance of the annotation is one instance, even when
  another instance of the same triplet touches, overlaps or duplicates it (the only merge happens upstream, where a
  label map collapses two predicate names into one: ``offline_train.data.label_map``).
* A frame of an instance where the annotation has no box for the subject or the object (the object is out of view)
  is a **missing box**: a row of NaN. It covers no pixels, so it adds nothing to that trajectory's volume or to any
  intersection (not in the reference, whose ground-truth builder raises a KeyError there; on every input the
  reference accepts the two agree). Each trajectory needs at least one box. The official prediction file has a box
  on every frame, so predictions read from or written to JSON may not have missing boxes.

Sources: ``video_relations_from_annotation`` turns one parsed official annotation (``engine.io.vidvrd``) into ground
truth, as VidVRD-helper's ``Dataset.get_relation_insts`` does; ``predictions_from_json`` / ``predictions_to_json``
read and write the official prediction file (a bare ``{video_id: [...]}`` mapping is accepted too)::

    {"results": {video_id: [{"triplet": [s, p, o], "score": f, "duration": [begin_fid, end_fid],
                             "sub_traj": [[x1, y1, x2, y2], ...], "obj_traj": [...]}, ...]}}

which is what ``vsgg eval`` writes.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping

import numpy as np

from engine.io.vidvrd import VideoAnnotation

Triplet = tuple[str, str, str]  # (subject category, predicate, object category)


def _trajectory(name: str, value, n_frames: int) -> np.ndarray:
    """Validate an (n_frames, 4) xyxy pixel trajectory (all-NaN rows = missing boxes, at least one box present);
    return a read-only float64 copy."""
    try:
        a = np.array(value, dtype=np.float64, copy=True)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{name}: not a numeric (T, 4) array of xyxy boxes ({e})") from None
    if a.ndim != 2 or a.shape[1] != 4:
        raise ValueError(f"{name}: expected shape (T, 4) xyxy boxes, got {a.shape}")
    if len(a) != n_frames:
        raise ValueError(f"{name}: has {len(a)} boxes but the duration holds {n_frames} frames (end exclusive)")
    missing = np.isnan(a).all(1)
    if not np.isfinite(a[~missing]).all():
        raise ValueError(f"{name}: contains inf or a partly NaN box (a missing box is a whole row of NaN)")
    if missing.all():
        raise ValueError(f"{name}: no box on any frame of the duration (need at least one)")
    with np.errstate(invalid="ignore"):  # NaN rows compare False
        bad = (a[:, 2] < a[:, 0]) | (a[:, 3] < a[:, 1])
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{name}: box {i} has negative width or height ({a[i].tolist()}); expected x1<=x2, y1<=y2")
    a.flags.writeable = False
    return a


@dataclass(frozen=True, eq=False)
class VideoRelation:
    """One relation instance of one video, ground truth or prediction. Validated on construction.

    triplet:   (subject category, predicate, object category), non-empty strings.
    begin_fid: first frame index (int >= 0). end_fid: one past the last frame (exclusive), > begin_fid.
    sub_traj:  (end_fid - begin_fid, 4) float64 xyxy pixel boxes of the subject, one per frame; read-only. A row of
               NaN is a missing box (no pixels on that frame); at least one row is a box.
    obj_traj:  same for the object.
    score:     ranking confidence, any finite float (ground truth: unused, 1.0 by default).
    """

    triplet: Triplet
    begin_fid: int
    end_fid: int
    sub_traj: np.ndarray
    obj_traj: np.ndarray
    score: float = 1.0

    def __post_init__(self):
        t = self.triplet
        if not isinstance(t, (tuple, list)) or len(t) != 3 or not all(isinstance(x, str) and x for x in t):
            raise ValueError(f"triplet: expected (subject, predicate, object) non-empty strings, got {t!r}")
        for name in ("begin_fid", "end_fid"):
            v = getattr(self, name)
            if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
                raise ValueError(f"{name}: expected an integer frame index, got {v!r}")
        b, e = int(self.begin_fid), int(self.end_fid)
        if b < 0 or e <= b:
            raise ValueError(f"duration: expected 0 <= begin_fid < end_fid (end exclusive), got [{b}, {e})")
        s = self.score
        if isinstance(s, (bool, np.bool_)) or not isinstance(s, (int, float, np.integer, np.floating)):
            raise ValueError(f"score: expected a number, got {s!r}")
        if not math.isfinite(float(s)):
            raise ValueError(f"score: must be finite, got {s!r}")
        object.__setattr__(self, "triplet", tuple(t))
        object.__setattr__(self, "begin_fid", b)
        object.__setattr__(self, "end_fid", e)
        object.__setattr__(self, "score", float(s))
        object.__setattr__(self, "sub_traj", _trajectory("sub_traj", self.sub_traj, e - b))
        object.__setattr__(self, "obj_traj", _trajectory("obj_traj", self.obj_traj, e - b))

    @property
    def predicate(self) -> str:
        return self.triplet[1]


def rank_by_score(rels: list[VideoRelation], top: int | None = None) -> list[VideoRelation]:
    """``rels`` by descending score, ties kept in input order (Python's stable ``sorted(reverse=True)``, as the
    reference sorts); only the first ``top`` when ``top`` is given."""
    ranked = sorted(rels, key=lambda r: r.score, reverse=True)
    return ranked if top is None else ranked[:top]


def check_video_ids(gt: Mapping, pred: Mapping) -> None:
    """Raise a ValueError naming the ids when ``pred`` has videos that ``gt`` lacks (a split or id mix-up).

    Ground-truth videos absent from ``pred`` are allowed: the reference scores them as having no predictions.
    """
    extra = sorted(set(map(str, pred)) - set(map(str, gt)))
    if extra:
        raise ValueError(f"pred: {len(extra)} video id(s) not in the ground truth, e.g. {extra[:5]}")
    for vid, rels in list(gt.items()) + list(pred.items()):
        if not isinstance(rels, (list, tuple)) or not all(isinstance(r, VideoRelation) for r in rels):
            raise TypeError(f"video '{vid}': expected a list of VideoRelation")


def viou_xyxy(traj_a: np.ndarray, begin_a: int, traj_b: np.ndarray, begin_b: int) -> float:
    """Voluminal IoU of two trajectories (T_a, 4) and (T_b, 4) xyxy pixels starting at frames begin_a / begin_b.

    +1-pixel areas; intersections summed over shared frames only; union = both volumes minus the intersection.
    Rows of NaN (missing boxes) add nothing to either sum.
    """
    end_a, end_b = begin_a + len(traj_a), begin_b + len(traj_b)
    lo, hi = max(begin_a, begin_b), min(end_a, end_b)
    if hi <= lo:
        return 0.0
    a = traj_a[lo - begin_a: hi - begin_a]
    b = traj_b[lo - begin_b: hi - begin_b]
    iw = np.maximum(0.0, np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0]) + 1.0)
    ih = np.maximum(0.0, np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1]) + 1.0)
    inter = float(np.nansum(iw * ih))
    vol_a = float(np.nansum((traj_a[:, 2] - traj_a[:, 0] + 1.0) * (traj_a[:, 3] - traj_a[:, 1] + 1.0)))
    vol_b = float(np.nansum((traj_b[:, 2] - traj_b[:, 0] + 1.0) * (traj_b[:, 3] - traj_b[:, 1] + 1.0)))
    return inter / (vol_a + vol_b - inter)


def _instance_from_json(name: str, r) -> VideoRelation:
    if not isinstance(r, Mapping):
        raise ValueError(f"{name}: expected a mapping with triplet, score, duration, sub_traj, obj_traj")
    missing = [k for k in ("triplet", "score", "duration", "sub_traj", "obj_traj") if k not in r]
    if missing:
        raise ValueError(f"{name}: missing field(s) {missing}")
    d = r["duration"]
    if not isinstance(d, (list, tuple)) or len(d) != 2:
        raise ValueError(f"{name}.duration: expected [begin_fid, end_fid], got {d!r}")
    try:
        rel = VideoRelation(r["triplet"], d[0], d[1], r["sub_traj"], r["obj_traj"], r["score"])
    except ValueError as e:
        raise ValueError(f"{name}.{e}") from None
    _require_every_box(name, rel)
    return rel


def _require_every_box(name: str, rel: VideoRelation) -> None:
    """The official prediction file has a box on every frame: a null / NaN box there is an error."""
    for field in ("sub_traj", "obj_traj"):
        missing = np.flatnonzero(np.isnan(getattr(rel, field)).any(1))
        if len(missing):
            raise ValueError(f"{name}.{field}: box {int(missing[0])} is missing (null); the prediction format needs "
                             "a box on every frame of the duration")


def predictions_from_json(data: Mapping) -> dict[str, list[VideoRelation]]:
    """Parse the official prediction structure (``{"results": {vid: [...]}}`` or a bare ``{vid: [...]}``)."""
    if not isinstance(data, Mapping):
        raise ValueError(f"predictions: expected a mapping, got {type(data).__name__}")
    results = data["results"] if "results" in data else data
    if not isinstance(results, Mapping):
        raise ValueError("predictions.results: expected a mapping video_id -> list of relation instances")
    out: dict[str, list[VideoRelation]] = {}
    for vid, rels in results.items():
        if not isinstance(rels, (list, tuple)):
            raise ValueError(f"predictions['{vid}']: expected a list of relation instances")
        out[str(vid)] = [_instance_from_json(f"predictions['{vid}'][{i}]", r) for i, r in enumerate(rels)]
    return out


def predictions_to_json(preds: Mapping[str, list[VideoRelation]], version: str = "VERSION 1.0") -> dict:
    """The official prediction structure for ``preds`` (JSON-serialisable plain Python); a missing box raises."""
    for vid, rels in preds.items():
        for i, r in enumerate(rels):
            _require_every_box(f"preds['{vid}'][{i}]", r)
    return {"version": version, "results": {
        str(vid): [{"triplet": list(r.triplet), "score": r.score, "duration": [r.begin_fid, r.end_fid],
                    "sub_traj": r.sub_traj.tolist(), "obj_traj": r.obj_traj.tolist()} for r in rels]
        for vid, rels in preds.items()}}


def video_relations_from_annotation(ann: VideoAnnotation) -> list[VideoRelation]:
    """Ground-truth relations of one parsed official annotation (``engine.io.vidvrd.load_vidvrd``), in file order.

    One instance per annotated instance, as annotated (no merging). Trajectories are the subject's and object's boxes
    over ``[begin_fid, end_fid)``, as VidVRD-helper's ``Dataset.get_relation_insts`` cuts them; a frame of that span
    without a box stays a missing box (NaN row, see the module docstring). A subject or object with no box on any
    frame of the span raises a ValueError naming the instance.
    """
    out = []
    for i, r in enumerate(ann.relations):
        b, e = r.begin_fid, r.end_fid
        s_col, o_col = ann.column(r.subject_tid), ann.column(r.object_tid)
        sub, obj = ann.boxes[b:e, s_col], ann.boxes[b:e, o_col]
        for role, tid, traj in (("subject", r.subject_tid, sub), ("object", r.object_tid, obj)):
            if np.isnan(traj).all():
                raise ValueError(f"video {ann.video_id!r} relation_instances[{i}]: {role} tid {tid} has no box on "
                                 f"any frame of [{b}, {e})")
        out.append(VideoRelation((ann.categories[s_col], r.predicate, ann.categories[o_col]), b, e, sub, obj))
    return out
