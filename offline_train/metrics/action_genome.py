"""Action Genome scene-graph recall: R@K with / semi / no constraint and both mR@K variants, per STTran's scorer.

Semantics of STTran ``lib/evaluation_recall.py`` (``BasicSceneGraphEvaluator`` + ``evaluate_from_dict``), which
TEMPURA, TD2-Net, DSG-DETR and most Action Genome papers reuse. Predicate indices are positions in
``engine/vocab/ag_predicates.txt``: attention 0-2 (lookingat, notlookingat, unsure), spatial 3-8 (above ... in),
contacting 9-25 (carrying ... writingon). Boxes are xyxy pixels (convert the AG pickle's xywh object boxes first).

Ground truth of a frame (``AGFrameGT``): one person box and M objects. Each object gives one attention triplet
``(person, attention, object)``, one **spatial triplet per listed spatial predicate, pointing object -> person**
``(object, spatial, person)``, and one contacting triplet per listed contacting predicate ``(person, contacting,
object)``. A frame with no triplet (M = 0) is skipped and counted in ``n_frames_without_gt`` (STTran's loader drops
such frames; its scorer would divide by zero).

Predictions of a frame (``AGFramePred``): boxes with labels and detector scores, and per (person, object) pair the
attention (3), spatial (6) and contacting (17) scores, already normalised as the model emits them (STTran applies a
softmax to attention before scoring; do that before building the record). Candidate triplets per pair:

* ``with``: the argmax of each group (first on ties): 3 triplets, each scored by its predicate score.
* ``semi``: the attention argmax, plus every spatial and every contacting predicate whose score is strictly
  greater than ``semi_threshold`` (0.9); a group with no score above it contributes **nothing** (there is no
  fallback to the argmax).
* ``no``: all 26 predicates; after ranking only the top ``no_constraint_max`` (100) candidates of the frame are
  kept, so R@K for K > 100 equals R@100.

Spatial candidates point object -> person like the ground truth. Candidates are ranked by ``score(subject box) *
score(object box) * predicate score`` (1 * 1 * p with ground-truth boxes, PredCls), descending; ties keep candidate
order (attention, spatial, contacting group, then pair, then predicate), where the reference's unstable numpy sort
leaves the order unspecified. A ground-truth triplet is recalled at K when **any** of the top-K candidates has the
same (subject label, predicate, object label) and IoU >= ``iou_threshold`` with both its subject and object box
(+1-pixel IoU). Matching is not one-to-one: one candidate may recall several ground-truth triplets and several
candidates the same one. Frame recall = recalled / ground-truth triplets; ``R@K`` = mean over frames.

``mR@K``: per predicate hits and counts per frame, combined as in ``offline_train.metrics.mean_recall`` into
``mR@K_accumulated`` (TEMPURA / TD2-Net) and ``mR@K_per_frame``, averaged ``over="all"`` 26 predicates by default.

Known divergences, only reachable with scores of exactly 0 (softmax / sigmoid outputs never are): in ``semi`` the
reference recognises a row's group by ``score[0] + score[1] > 0`` (then ``[3] + [4]``, then ``[9] + [10]``), so e.g. a
hard one-hot "unsure" attention row is dropped; in ``with`` it takes the argmax over all 26 columns, so an all-zero
group yields "lookingat" at score 0. Here groups are explicit. In ``no`` the reference also ranks zero-score copies
of each pair under the other groups' predicates; they duplicate real candidates and never change recall.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Mapping, Sequence

import numpy as np
from tqdm import tqdm

from engine.io.vidvrd import VideoAnnotation
from engine.vocab import builtin
from offline_train.metrics.mean_recall import MEAN_OVER, MeanRecall

GROUPS = (("attention", 0, 3), ("spatial", 3, 9), ("contacting", 9, 26))  # (name, first, end) predicate indices
NUM_PREDICATES = 26
MODES = ("with", "semi", "no")
NEVER = np.iinfo(np.int64).max  # first-hit rank of a ground-truth triplet that no candidate recalls


@lru_cache(maxsize=1)
def predicate_names() -> tuple[str, ...]:
    names = builtin("ag_predicates").names
    if len(names) != NUM_PREDICATES:
        raise ValueError(f"ag_predicates vocabulary has {len(names)} names, expected {NUM_PREDICATES}")
    return names


@lru_cache(maxsize=1)
def _person_label() -> int:
    return builtin("ag_objects").index("person")


def _array(name: str, value, shape: tuple, kind: str) -> np.ndarray:
    """Validated read-only copy; ``shape`` uses None for a free axis; kind 'f' (finite float64) or 'i' (int64)."""
    try:
        a = np.asarray(value)
    except ValueError as e:  # ragged nested lists
        raise ValueError(f"{name}: not a rectangular array ({e})") from None
    if a.size == 0 and a.dtype.kind in "fiu":
        a = a.astype(np.int64)  # an empty list parses as float64; it is a valid empty index or score array
    if a.dtype == np.bool_ or a.dtype.kind not in ("iu" if kind == "i" else "fiu"):
        raise ValueError(f"{name}: expected {'an integer' if kind == 'i' else 'a numeric'} array, got dtype {a.dtype}")
    if a.ndim == 1 and a.size == 0 and len(shape) == 2:
        a = a.reshape(0, shape[1])  # an empty list stands for zero rows
    if a.ndim != len(shape) or any(s is not None and s != d for s, d in zip(shape, a.shape)):
        want = "(" + ", ".join("N" if s is None else str(s) for s in shape) + ")"
        raise ValueError(f"{name}: expected shape {want}, got {a.shape}")
    a = np.array(a, dtype=np.int64 if kind == "i" else np.float64, copy=True)
    if kind == "f" and not np.isfinite(a).all():
        raise ValueError(f"{name}: contains NaN or inf")
    a.flags.writeable = False
    return a


def _boxes(name: str, value, n: int | None = None) -> np.ndarray:
    b = _array(name, value, (n, 4), "f")
    bad = (b[:, 2] < b[:, 0]) | (b[:, 3] < b[:, 1])
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{name}: box {i} has negative width or height ({b[i].tolist()}); expected x1<=x2, y1<=y2")
    return b


def _unit_scores(name: str, value, shape: tuple) -> np.ndarray:
    s = _array(name, value, shape, "f")
    if ((s < 0) | (s > 1)).any():
        raise ValueError(f"{name}: scores must be in [0, 1]")
    return s


@dataclass(frozen=True, eq=False)
class AGFrameGT:
    """Ground truth of one Action Genome frame. Validated and made read-only on construction.

    person_box_xyxy:   (4,) float64 pixels.
    object_boxes_xyxy: (M, 4) float64 pixels.
    object_labels:     (M,) int64 indices into engine/vocab/ag_objects.txt.
    attention:         (M,) int64 predicate index in [0, 3), exactly one per object.
    spatial:           M tuples of predicate indices in [3, 9) (object -> person), possibly empty.
    contacting:        M tuples of predicate indices in [9, 26) (person -> object), possibly empty.
    person_label:      ag_objects index of the person; None = that of "person".
    """

    person_box_xyxy: np.ndarray
    object_boxes_xyxy: np.ndarray
    object_labels: np.ndarray
    attention: np.ndarray
    spatial: tuple[tuple[int, ...], ...]
    contacting: tuple[tuple[int, ...], ...]
    person_label: int | None = None

    def __post_init__(self):
        person = np.asarray(self.person_box_xyxy)
        if person.shape != (4,):
            raise ValueError(f"person_box_xyxy: expected shape (4,), got {person.shape}")
        person = _boxes("person_box_xyxy", person[None], 1)[0]
        boxes = _boxes("object_boxes_xyxy", self.object_boxes_xyxy)
        m = len(boxes)
        labels = _array("object_labels", self.object_labels, (m,), "i")
        attention = _array("attention", self.attention, (m,), "i")
        if ((attention < 0) | (attention >= 3)).any():
            raise ValueError(f"attention: predicate indices must be in [0, 3), got {attention.tolist()}")
        multi = {}
        for name, lo, hi in GROUPS[1:]:
            lists = getattr(self, name)
            if len(lists) != m:
                raise ValueError(f"{name}: expected {m} entries (one per object), got {len(lists)}")
            multi[name] = tuple(tuple(int(p) for p in _array(f"{name}[{i}]", ps, (None,), "i"))
                                for i, ps in enumerate(lists))
            for i, ps in enumerate(multi[name]):
                if any(not lo <= p < hi for p in ps):
                    raise ValueError(f"{name}[{i}]: predicate indices must be in [{lo}, {hi}), got {list(ps)}")
        pl = _person_label() if self.person_label is None else self.person_label
        if isinstance(pl, bool) or not isinstance(pl, (int, np.integer)) or pl < 0:
            raise ValueError(f"person_label: expected a non-negative integer, got {pl!r}")
        if (labels < 0).any():
            raise ValueError("object_labels: negative label index")
        object.__setattr__(self, "person_box_xyxy", person)
        object.__setattr__(self, "object_boxes_xyxy", boxes)
        object.__setattr__(self, "object_labels", labels)
        object.__setattr__(self, "attention", attention)
        object.__setattr__(self, "spatial", multi["spatial"])
        object.__setattr__(self, "contacting", multi["contacting"])
        object.__setattr__(self, "person_label", int(pl))

    def triplets(self) -> tuple[np.ndarray, np.ndarray]:
        """(G, 2) int64 (subject, object) box indices with 0 = person, m + 1 = object m; (G,) int64 predicates."""
        rows = []  # (subject, object, predicate)
        for m in range(len(self.object_labels)):
            rows.append((0, m + 1, int(self.attention[m])))
            rows.extend((m + 1, 0, p) for p in self.spatial[m])
            rows.extend((0, m + 1, p) for p in self.contacting[m])
        t = np.array(rows, np.int64).reshape(-1, 3)
        return t[:, :2], t[:, 2]


@dataclass(frozen=True, eq=False)
class AGFramePred:
    """Predictions of one frame. Validated and made read-only on construction.

    boxes_xyxy: (N, 4) float64 pixels. labels: (N,) int64 ag_objects indices. box_scores: (N,) in [0, 1]
    (all 1 for PredCls). pairs: (P, 2) int64 (person box index, object box index) rows into boxes.
    attention: (P, 3), spatial: (P, 6), contacting: (P, 17) predicate scores in [0, 1].
    """

    boxes_xyxy: np.ndarray
    labels: np.ndarray
    box_scores: np.ndarray
    pairs: np.ndarray
    attention: np.ndarray
    spatial: np.ndarray
    contacting: np.ndarray

    def __post_init__(self):
        boxes = _boxes("boxes_xyxy", self.boxes_xyxy)
        n = len(boxes)
        labels = _array("labels", self.labels, (n,), "i")
        if (labels < 0).any():
            raise ValueError("labels: negative label index")
        pairs = _array("pairs", self.pairs, (None, 2), "i")
        if ((pairs < 0) | (pairs >= n)).any():
            raise ValueError(f"pairs: box indices must be in [0, {n})")
        p = len(pairs)
        object.__setattr__(self, "boxes_xyxy", boxes)
        object.__setattr__(self, "labels", labels)
        object.__setattr__(self, "box_scores", _unit_scores("box_scores", self.box_scores, (n,)))
        object.__setattr__(self, "pairs", pairs)
        for name, lo, hi in GROUPS:
            object.__setattr__(self, name, _unit_scores(name, getattr(self, name), (p, hi - lo)))

    def candidates(self, mode: str, semi_threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Candidate triplets of ``mode`` in candidate order: (C, 2) box indices (subject, object), (C,) predicate
        indices, (C,) predicate scores."""
        pairs, preds, scores = [], [], []
        for name, lo, _ in GROUPS:
            s = getattr(self, name)                                           # (P, group size)
            sub_obj = self.pairs[:, ::-1] if name == "spatial" else self.pairs
            if mode == "with" or (mode == "semi" and name == "attention"):
                keep = np.zeros(s.shape, bool)
                keep[np.arange(len(s)), np.argmax(s, axis=1)] = True
            elif mode == "semi":
                keep = s > semi_threshold
            else:
                keep = np.ones(s.shape, bool)
            rows, cols = np.nonzero(keep)                                     # pair-major, predicate ascending
            pairs.append(sub_obj[rows])
            preds.append(cols + lo)
            scores.append(s[rows, cols])
        return (np.concatenate(pairs).reshape(-1, 2), np.concatenate(preds).astype(np.int64),
                np.concatenate(scores))


def ag_frames_from_annotation(ann: VideoAnnotation) -> dict[int, AGFrameGT]:
    """Ground truth per keyframe of an Action Genome video as ``offline_train.data.action_genome`` builds it
    (column of category "person" = the person; attention / contacting person -> object, spatial object -> person).

    Returns {frame index: AGFrameGT} for the frames with a person box and at least one object; category and
    predicate names must be those of the built-in ag_objects / ag_predicates vocabularies.
    """
    objects, preds = builtin("ag_objects"), builtin("ag_predicates")
    where = f"video {ann.video_id!r}"
    if ann.categories.count("person") != 1:
        raise ValueError(f"{where}: expected exactly one 'person' track, got categories {list(ann.categories)}")
    person = ann.categories.index("person")
    labels = np.array([objects.index(c) for c in ann.categories], np.int64)
    present = ann.present
    out = {}
    for t in range(ann.frame_count):
        cols = [k for k in range(len(ann.tids)) if k != person and present[t, k]]
        if not present[t, person] or not cols:
            continue
        rel = {k: ([], [], []) for k in cols}  # attention, spatial, contacting predicate indices
        for r in ann.relations:
            if r.begin_fid <= t < r.end_fid:
                s, o, p = ann.column(r.subject_tid), ann.column(r.object_tid), preds.index(r.predicate)
                group = next(g for g, (_, lo, hi) in enumerate(GROUPS) if lo <= p < hi)
                k, other = (s, o) if group == 1 else (o, s)  # spatial points object -> person
                if other != person or k not in rel:
                    raise ValueError(f"{where} frame {t}: relation {r} does not link the person and a visible "
                                     f"object in the {GROUPS[group][0]} direction")
                rel[k][group].append(p)
        for k in cols:
            if len(rel[k][0]) != 1:
                raise ValueError(f"{where} frame {t}: object tid {int(ann.tids[k])} needs exactly one attention "
                                 f"relation, got {len(rel[k][0])}")
        out[t] = AGFrameGT(ann.boxes[t, person], ann.boxes[t, cols], labels[cols], [rel[k][0][0] for k in cols],
                           [tuple(rel[k][1]) for k in cols], [tuple(rel[k][2]) for k in cols],
                           int(labels[person]))
    return out


def iou_xyxy_plus1(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(A, B) IoU of xyxy pixel boxes (A, 4) and (B, 4) with +1-pixel areas, as the reference's bbox_overlaps."""
    iw = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]) + 1.0
    ih = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]) + 1.0
    inter = np.where((iw > 0) & (ih > 0), iw * ih, 0.0)
    area_a = (a[:, 2] - a[:, 0] + 1.0) * (a[:, 3] - a[:, 1] + 1.0)
    area_b = (b[:, 2] - b[:, 0] + 1.0) * (b[:, 3] - b[:, 1] + 1.0)
    return inter / (area_a[:, None] + area_b[None, :] - inter)


@dataclass(frozen=True)
class ActionGenomeEvalConfig:
    """iou_threshold in [0, 1]; recall_at: the K of R@K; modes: subset of with / semi / no; semi_threshold: strict
    lower bound on spatial / contacting scores in semi mode; no_constraint_max: candidates kept per frame in no
    mode (STTran: 100); mean_recall_over: "all" predicates (reference) or "present" ones only."""

    iou_threshold: float = 0.5
    recall_at: tuple[int, ...] = (10, 20, 50)
    modes: tuple[str, ...] = MODES
    semi_threshold: float = 0.9
    no_constraint_max: int = 100
    mean_recall_over: str = "all"

    def __post_init__(self):
        if not 0.0 <= self.iou_threshold <= 1.0:
            raise ValueError(f"iou_threshold must be in [0, 1], got {self.iou_threshold}")
        if not self.recall_at or any(isinstance(k, bool) or not isinstance(k, int) or k < 1 for k in self.recall_at):
            raise ValueError(f"recall_at must be a non-empty tuple of integers >= 1, got {self.recall_at!r}")
        if not self.modes or any(m not in MODES for m in self.modes):
            raise ValueError(f"modes must be a non-empty subset of {MODES}, got {self.modes!r}")
        if not 0.0 <= self.semi_threshold <= 1.0:
            raise ValueError(f"semi_threshold must be in [0, 1], got {self.semi_threshold}")
        if isinstance(self.no_constraint_max, bool) or not isinstance(self.no_constraint_max, int) \
                or self.no_constraint_max < 1:
            raise ValueError(f"no_constraint_max must be an integer >= 1, got {self.no_constraint_max!r}")
        if self.mean_recall_over not in MEAN_OVER:
            raise ValueError(f"mean_recall_over must be one of {MEAN_OVER}, got {self.mean_recall_over!r}")


def first_hit_ranks(gt: AGFrameGT, pred: AGFramePred, mode: str, cfg: ActionGenomeEvalConfig) -> np.ndarray:
    """(G,) int64: for each ground-truth triplet (``gt.triplets()`` order) the 0-based rank of the best-ranked
    candidate that recalls it, or NEVER when none of the kept candidates does."""
    g_pairs, g_pred = gt.triplets()
    gt_boxes = np.vstack([gt.person_box_xyxy[None], gt.object_boxes_xyxy])
    gt_labels = np.concatenate([[gt.person_label], gt.object_labels])
    c_pairs, c_pred, c_score = pred.candidates(mode, cfg.semi_threshold)
    overall = pred.box_scores[c_pairs[:, 0]] * pred.box_scores[c_pairs[:, 1]] * c_score
    order = np.argsort(-overall, kind="stable")
    if mode == "no":
        order = order[:cfg.no_constraint_max]
    c_pairs, c_pred = c_pairs[order], c_pred[order]
    ok = cfg.iou_threshold <= iou_xyxy_plus1(gt_boxes, pred.boxes_xyxy)      # (M + 1, N)
    hit = ((g_pred[:, None] == c_pred[None, :])
           & (gt_labels[g_pairs[:, 0]][:, None] == pred.labels[c_pairs[:, 0]][None, :])
           & (gt_labels[g_pairs[:, 1]][:, None] == pred.labels[c_pairs[:, 1]][None, :])
           & ok[g_pairs[:, 0]][:, c_pairs[:, 0]] & ok[g_pairs[:, 1]][:, c_pairs[:, 1]])   # (G, C)
    never = np.full(len(g_pred), NEVER, np.int64)
    if hit.shape[1] == 0:
        return never
    return np.where(hit.any(axis=1), np.argmax(hit, axis=1), never)


@dataclass
class ActionGenomeEvaluator:
    """Streaming scorer: ``add`` one frame at a time, ``result`` at any point. State is O(modes * K * 26)."""

    cfg: ActionGenomeEvalConfig = field(default_factory=ActionGenomeEvalConfig)

    def __post_init__(self):
        ks = tuple(dict.fromkeys(self.cfg.recall_at))
        self._ks = ks
        self._recall_sum = {m: dict.fromkeys(ks, 0.0) for m in self.cfg.modes}
        self._mr = {m: {k: MeanRecall(NUM_PREDICATES) for k in ks} for m in self.cfg.modes}
        self.n_frames = 0
        self.n_frames_without_gt = 0

    def add(self, gt: AGFrameGT, pred: AGFramePred) -> dict | None:
        """Score one frame; returns ``{mode: {K: frame recall}}``, or None for a frame without ground truth."""
        if not isinstance(gt, AGFrameGT) or not isinstance(pred, AGFramePred):
            raise TypeError(f"add: expected (AGFrameGT, AGFramePred), got ({type(gt).__name__}, "
                            f"{type(pred).__name__})")
        _, g_pred = gt.triplets()
        if len(g_pred) == 0:
            self.n_frames_without_gt += 1
            return None
        per_mode = {m: first_hit_ranks(gt, pred, m, self.cfg) for m in self.cfg.modes}  # all before any update
        counts = np.bincount(g_pred, minlength=NUM_PREDICATES)
        out = {}
        for m, first in per_mode.items():
            out[m] = {}
            for k in self._ks:
                hit = first < k
                out[m][k] = float(np.count_nonzero(hit)) / len(g_pred)
                self._recall_sum[m][k] += out[m][k]
                self._mr[m][k].add(np.bincount(g_pred[hit], minlength=NUM_PREDICATES), counts)
        self.n_frames += 1
        return out

    def result(self) -> dict:
        """``{"n_frames", "n_frames_without_gt", mode: {"R@K", "mR@K_accumulated", "mR@K_per_frame",
        "per_predicate_recall@K_accumulated": {name: r}, "per_predicate_recall@K_per_frame": {...}}}``; the
        per-predicate dicts list only predicates present in the ground truth. Fractions in [0, 1]."""
        if self.n_frames == 0:
            raise ValueError("no frame with ground-truth relations was added; nothing to score")
        names = predicate_names()
        out: dict = {"n_frames": self.n_frames, "n_frames_without_gt": self.n_frames_without_gt}
        for m in self.cfg.modes:
            res = {}
            for k in self._ks:
                res[f"R@{k}"] = self._recall_sum[m][k] / self.n_frames
                for variant, per_class in (("accumulated", self._mr[m][k].accumulated()),
                                           ("per_frame", self._mr[m][k].per_frame())):
                    res[f"mR@{k}_{variant}"] = MeanRecall.mean(per_class, self.cfg.mean_recall_over)
                    res[f"per_predicate_recall@{k}_{variant}"] = {
                        names[i]: float(r) for i, r in enumerate(per_class) if not np.isnan(r)}
            out[m] = res
        return out


def evaluate_action_genome(gt: Sequence[AGFrameGT] | Mapping[str, AGFrameGT],
                           pred: Sequence[AGFramePred] | Mapping[str, AGFramePred],
                           cfg: ActionGenomeEvalConfig = ActionGenomeEvalConfig(),
                           progress: bool = False) -> dict:
    """Score a dataset: frames paired by position (sequences) or by frame id (mappings with equal key sets).
    Returns ``ActionGenomeEvaluator.result()``."""
    if isinstance(gt, Mapping) != isinstance(pred, Mapping):
        raise TypeError("gt and pred must both be sequences or both be mappings keyed by frame id")
    if isinstance(gt, Mapping):
        missing, extra = sorted(set(gt) - set(pred)), sorted(set(pred) - set(gt))
        if missing or extra:
            raise ValueError(f"pred: frame ids differ from gt (missing {missing[:5]}, unknown {extra[:5]})")
        pairs = [(gt[f], pred[f]) for f in gt]
    else:
        if len(gt) != len(pred):
            raise ValueError(f"pred: {len(pred)} frames but gt has {len(gt)}")
        pairs = list(zip(gt, pred))
    ev = ActionGenomeEvaluator(cfg)
    for g, p in tqdm(pairs, desc="action genome recall", disable=not progress):
        ev.add(g, p)
    return ev.result()
