"""SparseClip: the present pair-frames of one long video stored row by row, for videos too long or too crowded for
the dense (T, P, F) VideoClip (MEVA: 5-minute clips, dozens of tracks, few of them on screen together).

Features come from ``engine.relate.features`` exactly as the runtime computes them: one ``BoxHistory`` over the
whole video, advanced on every frame, so motion features at the start of a crop already see the frames before it.
Only ordered pairs of objects both present on a frame get a row (the engine's candidates are co-present tracks too);
pairs that hold no relation are the negatives.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.io.vidvrd import RelationInstance, VideoAnnotation
from engine.relate.features import NUM_FEATURES, BoxHistory, pair_features
from engine.vocab import Vocabulary
from offline_train.clips import VideoClip


def pair_distance(box_s: np.ndarray, box_o: np.ndarray) -> np.ndarray:
    """(P,) centre distance over the geometric mean of the two boxes' sizes (xyxy pixels in, unitless out): the
    nearness ``engine.relate.pairs.select_pairs`` ranks candidate pairs by."""
    cs, co = (box_s[:, :2] + box_s[:, 2:]) * 0.5, (box_o[:, :2] + box_o[:, 2:]) * 0.5
    size_s = np.sqrt(np.maximum(box_s[:, 2] - box_s[:, 0], 1) * np.maximum(box_s[:, 3] - box_s[:, 1], 1))
    size_o = np.sqrt(np.maximum(box_o[:, 2] - box_o[:, 0], 1) * np.maximum(box_o[:, 3] - box_o[:, 1], 1))
    return (np.hypot(*(cs - co).T) / np.sqrt(size_s * size_o)).astype(np.float32)


@dataclass(frozen=True, eq=False)
class SparseClip:
    """Rows = (pair, frame) where both objects are present, sorted by frame then pair. N rows, P pairs, C predicates.

    num_frames: T frames of the video (at the model's frame rate).
    subj, obj: (P,) column indices into the video's objects; subj_label, obj_label: (P,) int64 vocabulary indices.
    row_pair: (N,) int32 pair index; row_frame: (N,) int32 frame index (non-decreasing).
    feats: (N, F) float32 pair features; targets: (N, C) bool predicates holding; dist: (N,) float32 pair nearness
    (``pair_distance``).
    """

    video_id: str
    num_frames: int
    subj: np.ndarray
    obj: np.ndarray
    subj_label: np.ndarray
    obj_label: np.ndarray
    row_pair: np.ndarray
    row_frame: np.ndarray
    feats: np.ndarray
    targets: np.ndarray
    dist: np.ndarray

    @property
    def num_pairs(self) -> int:
        return len(self.subj)

    def frames_with_pairs(self) -> np.ndarray:
        """(T,) bool: frames where at least one pair is present."""
        out = np.zeros(self.num_frames, bool)
        out[self.row_frame] = True
        return out

    def observed(self) -> tuple[np.ndarray, np.ndarray]:
        """(feats (N, F), targets (N, C)) of every present pair-frame."""
        return self.feats, self.targets

    def frame_rows(self, start: int, stop: int) -> slice:
        """Rows of frames start <= f < stop (rows are sorted by frame)."""
        lo, hi = np.searchsorted(self.row_frame, [start, stop], side="left")
        return slice(int(lo), int(hi))

    def crop(self, start: int, length: int, max_pairs: int = 0) -> VideoClip:
        """Dense VideoClip of frames [start, start + length) over the pairs present in them. With ``max_pairs`` > 0
        and more pairs than that, the nearest pairs (smallest distance over the crop) are kept, as the engine keeps
        its nearest candidates; both directions of a pair are ranked by the same distance."""
        stop = min(start + length, self.num_frames)
        rows = self.frame_rows(start, stop)
        rp, rf = self.row_pair[rows], self.row_frame[rows] - start
        pairs = np.unique(rp)
        if max_pairs and len(pairs) > max_pairs:
            nearest = np.full(self.num_pairs, np.inf, np.float32)
            np.minimum.at(nearest, rp, self.dist[rows])
            und = np.minimum(self.subj, self.obj) * (self.subj.max(initial=0) + self.obj.max(initial=0) + 2) \
                + np.maximum(self.subj, self.obj)  # unordered pair id: both directions rank together
            order = np.lexsort((pairs, und[pairs], nearest[pairs]))
            pairs = np.sort(pairs[order[:max_pairs]])
        col = np.full(self.num_pairs, -1, np.int64)
        col[pairs] = np.arange(len(pairs))
        keep = col[rp] >= 0
        t_len, p = stop - start, len(pairs)
        feats = np.zeros((t_len, p, self.feats.shape[1]), np.float32)
        present = np.zeros((t_len, p), bool)
        targets = np.zeros((t_len, p, self.targets.shape[1]), bool)
        ci = col[rp[keep]]
        feats[rf[keep], ci] = self.feats[rows][keep]
        present[rf[keep], ci] = True
        targets[rf[keep], ci] = self.targets[rows][keep]
        return VideoClip(self.video_id, feats, present, self.subj[pairs], self.obj[pairs], self.subj_label[pairs],
                         self.obj_label[pairs], targets)

    def windows(self, length: int, max_pairs: int = 0):
        """Consecutive crops of ``length`` frames that hold at least one pair (validation over a whole video)."""
        has = self.frames_with_pairs()
        for start in range(0, self.num_frames, length):
            if has[start:start + length].any():
                yield self.crop(start, length, max_pairs)


def make_sparse_clip(ann: VideoAnnotation, objects: Vocabulary, predicates: Vocabulary, lag: int) -> SparseClip:
    """Rows of every present ordered pair-frame of ``ann`` with the runtime's features and per-frame targets.

    Labels must already be in ``objects`` / ``predicates`` (unknown ones raise ValueError naming them)."""
    boxes = ann.boxes
    t_len, k = boxes.shape[:2]
    seen = ~np.isnan(boxes).any(-1)
    labels = np.array(objects.indices(ann.categories), np.int64)
    hist = BoxHistory(max(k, 1), lag)
    all_slots = np.arange(k)
    pair_of = np.full((k, k), -1, np.int64)
    subj, obj = [], []
    rp, rf, fs, ds = [], [], [], []
    for t in range(t_len):
        cols = np.flatnonzero(seen[t])
        if len(cols) == 0:
            continue
        time_s = t / ann.fps
        hist.push(cols, boxes[t, cols], time_s)
        if len(cols) < 2:
            continue
        s, o = np.meshgrid(cols, cols, indexing="ij")
        m = s != o
        s, o = s[m], o[m]
        new = pair_of[s, o] < 0
        if new.any():
            first = len(subj)
            subj += s[new].tolist()
            obj += o[new].tolist()
            pair_of[s[new], o[new]] = np.arange(first, len(subj))
        past, dt = hist.past(all_slots, time_s)
        cur = boxes[t]
        fs.append(pair_features(cur[s], cur[o], past[s], past[o], dt[s], dt[o], (ann.width, ann.height)))
        ds.append(pair_distance(cur[s], cur[o]))
        rp.append(pair_of[s, o])
        rf.append(np.full(len(s), t, np.int32))
    subj_a, obj_a = np.array(subj, np.int64), np.array(obj, np.int64)
    row_pair = np.concatenate(rp).astype(np.int32) if rp else np.zeros(0, np.int32)
    row_frame = np.concatenate(rf) if rf else np.zeros(0, np.int32)
    feats = np.concatenate(fs) if fs else np.zeros((0, NUM_FEATURES), np.float32)
    dist = np.concatenate(ds) if ds else np.zeros(0, np.float32)
    targets = np.zeros((len(row_pair), len(predicates)), bool)
    if ann.relations and len(row_pair):
        order = np.argsort(row_pair, kind="stable")      # rows grouped by pair, each group still in frame order
        bounds = np.searchsorted(row_pair[order], np.arange(len(subj_a) + 1))
        for r in ann.relations:
            p = pair_of[ann.column(r.subject_tid), ann.column(r.object_tid)]
            if p < 0:
                continue  # the two objects are never on screen together: no box-based model can see it
            rows = order[bounds[p]:bounds[p + 1]]
            rows = rows[(row_frame[rows] >= r.begin_fid) & (row_frame[rows] < r.end_fid)]
            targets[rows, predicates.index(r.predicate)] = True
    return SparseClip(ann.video_id, t_len, subj_a, obj_a, labels[subj_a] if len(subj_a) else np.zeros(0, np.int64),
                      labels[obj_a] if len(obj_a) else np.zeros(0, np.int64), row_pair, row_frame, feats, targets,
                      dist)


def clip_prior(clips, n_objects: int, n_predicates: int) -> np.ndarray:
    """(C_obj, C_obj, C_pred) P(predicate holds | subject, object categories) over the present pair-frames of
    ``clips`` (SparseClip or VideoClip); the marginal over all pairs for category pairs never seen together.
    The same definition as ``offline_train.evaluate.frequency_prior``, counted from clip rows."""
    co = np.zeros((n_objects, n_objects))
    hits = np.zeros((n_objects, n_objects, n_predicates))
    for c in clips:
        if isinstance(c, SparseClip):
            sl, ol, tg = c.subj_label[c.row_pair], c.obj_label[c.row_pair], c.targets
        else:
            t_idx, p_idx = np.nonzero(c.present)
            sl, ol, tg = c.subj_label[p_idx], c.obj_label[p_idx], c.targets[t_idx, p_idx]
        np.add.at(co, (sl, ol), 1)
        np.add.at(hits, (sl, ol), tg.astype(np.float64))
    marginal = hits.sum((0, 1)) / max(co.sum(), 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        prior = hits / co[..., None]
    return np.where(co[..., None] > 0, prior, marginal[None, None]).astype(np.float32)


def subsample(ann: VideoAnnotation, stride: int) -> VideoAnnotation:
    """Every ``stride``-th frame of ``ann`` (frames 0, stride, 2 stride, ...) at fps / stride. A relation on
    annotation frames [b, e) holds on model frames [ceil(b / stride), ceil(e / stride)); one that covers no kept
    frame is dropped. Model frame i is annotation frame i * stride."""
    if stride == 1:
        return ann
    boxes = ann.boxes[::stride]
    rels = []
    for r in ann.relations:
        b, e = -(-r.begin_fid // stride), -(-r.end_fid // stride)
        if e > b:
            rels.append(RelationInstance(r.subject_tid, r.predicate, r.object_tid, b, min(e, len(boxes))))
    return VideoAnnotation(ann.video_id, ann.fps / stride, ann.width, ann.height, ann.tids, ann.categories, boxes,
                           tuple(rels))
