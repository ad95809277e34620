"""``vsgg bench tracker``: per-step latency of the numba ``Tracker`` against the same algorithm in numpy + scipy.

The baseline ``NumpyTracker`` is a faithful vectorised implementation of ``engine.track.tracker``'s algorithm (same
stages, gates, lifecycle and Kalman model): numpy broadcasting for IoU, batched ``np.matmul`` /
``np.linalg.solve`` for the Kalman filter, and ``scipy.optimize.linear_sum_assignment`` on the "stay unmatched"
padded cost matrix for each gated assignment (the same optimum as ``engine.track.assign.assign_gated``). Both run in
the same process on the same synthetic scene: ``n`` boxes moving at constant velocity with detection jitter, a
few missed detections and a few false positives per frame. Figures: median and p95 milliseconds per ``step``.
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np
from scipy.optimize import linear_sum_assignment

from engine.config import TrackerConfig
from engine.track.tracker import FREE, LOST, TENTATIVE, TRACKED, Tracker
from engine.types import Detections, Tracks


def _iou_xyxy_np(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, 4) x (M, 4) xyxy -> (N, M) IoU, vectorised numpy."""
    iw = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0])
    ih = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1])
    inter = np.clip(iw, 0, None) * np.clip(ih, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def _assign_gated_scipy(cost: np.ndarray, max_cost: float) -> np.ndarray:
    """Gated assignment with scipy: (K, 2) matches minimising sum(cost - max_cost) over pairs with cost < max_cost."""
    n, m = cost.shape
    if n == 0 or m == 0:
        return np.zeros((0, 2), np.int64)
    allowed = cost < max_cost
    padded = np.zeros((n, m + n))
    padded[:, :m] = np.where(allowed, cost - max_cost, 1.0)  # + n "stay unmatched" columns at 0
    rows, cols = linear_sum_assignment(padded)
    keep = cols < m
    keep[keep] = allowed[rows[keep], cols[keep]]
    return np.stack([rows[keep], cols[keep]], 1).astype(np.int64)


class NumpyTracker:
    """``engine.track.tracker.Tracker``'s algorithm in numpy + scipy (the benchmark baseline); same API subset."""

    def __init__(self, cfg: TrackerConfig | None = None):
        self.cfg = cfg = TrackerConfig() if cfg is None else cfg
        cap = cfg.max_tracks
        ratio = np.array([1.0, 1.0, cfg.size_noise_ratio, cfg.size_noise_ratio])
        self._wp, self._wv = cfg.std_weight_position * ratio, cfg.std_weight_velocity * ratio
        self._wm = cfg.std_weight_measurement * np.ones(4)
        self._F = np.eye(8)
        self._F[:4, 4:] = np.eye(4)
        self.mean, self.cov = np.zeros((cap, 8)), np.zeros((cap, 8, 8))
        self.ids, self.status = np.zeros(cap, np.int64), np.zeros(cap, np.int8)
        self.hits, self.age, self.misses = (np.zeros(cap, np.int32) for _ in range(3))
        self.label, self.score = np.zeros(cap, np.int32), np.zeros(cap, np.float32)
        self.next_id, self._t = 0, None

    def _scale(self, m: np.ndarray) -> np.ndarray:  # (K, 4) per-component box size, >= 1 px
        return np.maximum(m[:, [2, 3, 2, 3]], 1.0)

    def _stage(self, slots, dets, trk_boxes, d: Detections, min_iou, matched_det, det_used):
        if len(slots) == 0 or len(dets) == 0:
            return
        cost = 1.0 - _iou_xyxy_np(trk_boxes[slots], d.boxes_xyxy[dets].astype(np.float64))
        if self.cfg.class_gating:
            cost[self.label[slots][:, None] != d.labels[dets][None, :]] = np.inf
        m = _assign_gated_scipy(cost, 1.0 - min_iou)
        matched_det[slots[m[:, 0]]] = dets[m[:, 1]]
        det_used[dets[m[:, 1]]] = True

    def step(self, dets: Detections, t: float) -> Tracks:
        cfg, st = self.cfg, self.status
        if self._t is not None and not t > self._t:
            raise ValueError(f"t: must increase strictly, got {t} after {self._t}")
        live = np.flatnonzero(st != FREE)
        # predict
        m, s = self.mean[live], self._scale(self.mean[live])
        m[:, :4] += m[:, 4:]
        P = self._F @ self.cov[live] @ self._F.T
        q = np.concatenate([(self._wp * s) ** 2, (self._wv * s) ** 2], 1)
        P[:, np.arange(8), np.arange(8)] += q
        small = m[:, 2:4] < 1.0
        m[:, 2:4][small] = 1.0
        vel = m[:, 6:8]
        vel[small & (vel < 0)] = 0.0
        self.mean[live], self.cov[live] = m, P
        self.age[live] += 1
        trk_boxes = np.zeros((len(st), 4))
        trk_boxes[live] = np.concatenate([m[:, :2] - m[:, 2:4] / 2, m[:, :2] + m[:, 2:4] / 2], 1)
        # three association stages
        matched_det = np.full(len(st), -1, np.int64)
        det_used = np.zeros(len(dets), bool)
        sc = dets.scores
        self._stage(np.flatnonzero((st == TRACKED) | (st == LOST)), np.flatnonzero(sc >= cfg.high_score),
                    trk_boxes, dets, cfg.match_iou_high, matched_det, det_used)
        self._stage(np.flatnonzero((st == TRACKED) & (matched_det < 0)),
                    np.flatnonzero((sc >= cfg.low_score) & (sc < cfg.high_score) & ~det_used),
                    trk_boxes, dets, cfg.match_iou_low, matched_det, det_used)
        self._stage(np.flatnonzero(st == TENTATIVE), np.flatnonzero((sc >= cfg.high_score) & ~det_used),
                    trk_boxes, dets, cfg.match_iou_tentative, matched_det, det_used)
        # Kalman update of matched tracks
        det_c = np.concatenate([(dets.boxes_xyxy[:, :2] + dets.boxes_xyxy[:, 2:]) / 2,
                                dets.boxes_xyxy[:, 2:] - dets.boxes_xyxy[:, :2]], 1).astype(np.float64)
        upd = np.flatnonzero(matched_det >= 0)
        d_upd = matched_det[upd]
        m, P = self.mean[upd], self.cov[upd]
        S = P[:, :4, :4].copy()
        S[:, np.arange(4), np.arange(4)] += (self._wm * self._scale(m)) ** 2
        X = np.linalg.solve(S, P[:, :4, :])                       # (K, 4, 8) = S^-1 H P
        m += np.einsum("kqi,kq->ki", X, det_c[d_upd] - m[:, :4])
        P -= np.einsum("kqi,kqj->kij", X, P[:, :4, :])
        self.mean[upd], self.cov[upd] = m, (P + P.transpose(0, 2, 1)) / 2
        # lifecycle
        self.hits[upd] += 1
        self.misses[upd] = 0
        self.score[upd], self.label[upd] = dets.scores[d_upd], dets.labels[d_upd]
        promote = (st[upd] == LOST) | ((st[upd] == TENTATIVE) & (self.hits[upd] >= cfg.min_hits))
        st[upd[promote]] = TRACKED
        missed = (st != FREE) & (matched_det < 0)
        st[missed & (st == TENTATIVE)] = FREE
        old = missed & (st != FREE)
        self.misses[old] += 1
        st[old] = LOST
        st[old & (self.misses > cfg.max_age)] = FREE
        # births
        births = np.flatnonzero((sc >= cfg.new_track_score) & ~det_used)
        confirm = cfg.min_hits <= 1 or (cfg.confirm_first_frame and self._t is None)
        free = np.flatnonzero(st == FREE)
        lost = np.flatnonzero(st == LOST)
        lost = lost[np.argsort(-self.misses[lost], kind="stable")]  # evict the stalest lost tracks first
        new = np.concatenate([free, lost])[: len(births)]
        births = births[: len(new)]
        if len(new):
            z, s = det_c[births], self._scale(det_c[births])
            st[new] = TRACKED if confirm else TENTATIVE
            self.ids[new] = self.next_id + np.arange(len(new))
            self.next_id += len(new)
            self.hits[new], self.age[new], self.misses[new] = 1, 0, 0
            self.label[new], self.score[new] = dets.labels[births], dets.scores[births]
            self.mean[new] = np.concatenate([z, np.zeros_like(z)], 1)
            self.cov[new] = 0.0
            self.cov[new[:, None], np.arange(8), np.arange(8)] = np.concatenate(
                [(2 * self._wp * s) ** 2, (10 * self._wv * s) ** 2], 1)
        self._t = float(t)
        out = np.flatnonzero((st == TRACKED) & (self.misses == 0))
        out = out[np.argsort(self.ids[out])]
        mo = self.mean[out]
        boxes = np.concatenate([mo[:, :2] - mo[:, 2:4] / 2, mo[:, :2] + mo[:, 2:4] / 2], 1).astype(np.float32)
        return Tracks(self.ids[out], boxes, mo[:, 4:].astype(np.float32), self.score[out], self.label[out],
                      self.age[out], self.misses[out])


def synthetic_scene(n: int, frames: int, seed: int = 0, width: float = 1920.0, height: float = 1080.0):
    """Detections of ``n`` boxes moving at constant velocity (bouncing off the image border), per frame.

    Jitter 2 % of the box size, 3 % missed detections, about n / 50 false positives per frame; scores in
    [0.3, 1] so both association stages work. Returns a list of ``Detections`` (xyxy float32 pixels).
    """
    rng = np.random.default_rng(seed)
    size = np.column_stack([rng.uniform(20, 60, n), rng.uniform(50, 150, n)])
    pos = rng.uniform([0, 0], [width, height], (n, 2))
    vel = rng.normal(0, 3, (n, 2))
    out = []
    for _ in range(frames):
        pos += vel
        bounce = (pos < 0) | (pos > [width, height])
        vel[bounce] *= -1
        keep = rng.random(n) > 0.03
        c = pos[keep] + rng.normal(0, 0.02, (keep.sum(), 2)) * size[keep]
        wh = size[keep] * (1 + rng.normal(0, 0.02, (keep.sum(), 2)))
        n_fp = rng.poisson(n / 50)
        c = np.concatenate([c, rng.uniform([0, 0], [width, height], (n_fp, 2))])
        wh = np.concatenate([wh, rng.uniform(20, 100, (n_fp, 2))])
        boxes = np.concatenate([c - wh / 2, c + wh / 2], 1).astype(np.float32)
        scores = np.concatenate([rng.uniform(0.3, 1.0, keep.sum()), rng.uniform(0.3, 0.8, n_fp)]).astype(np.float32)
        out.append(Detections(boxes, scores, np.zeros(len(boxes), np.int32)))
    return out


def _time_steps(tracker, scene) -> np.ndarray:
    ms = np.empty(len(scene))
    for i, d in enumerate(scene):
        t0 = time.perf_counter()
        tracker.step(d, float(i))
        ms[i] = (time.perf_counter() - t0) * 1e3
    return ms


def run_benchmark(sizes=(10, 50, 100), frames: int = 300, warm_frames: int = 30, seed: int = 0) -> dict:
    """Median / p95 ms per step for both trackers at each size; the first ``warm_frames`` are not timed."""
    from tqdm import tqdm

    Tracker().warmup()
    figures = {}
    for n in tqdm(sizes, desc="bench tracker", unit="size", file=sys.stderr):
        scene = synthetic_scene(n, frames + warm_frames, seed)
        fig = {}
        for name, cls in (("numba", Tracker), ("numpy", NumpyTracker)):
            ms = _time_steps(cls(), scene)[warm_frames:]
            fig[f"{name}_median_ms"] = float(np.median(ms))
            fig[f"{name}_p95_ms"] = float(np.percentile(ms, 95))
        fig["speedup_median"] = fig["numpy_median_ms"] / fig["numba_median_ms"]
        figures[f"n{n}"] = fig
    return figures


def add_parser(parser: argparse.ArgumentParser):
    parser.description = "Tracker step latency: numba Tracker vs the same algorithm in numpy + scipy."
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 50, 100], help="objects per frame")
    parser.add_argument("--frames", type=int, default=300, help="timed frames per size")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic scenes")
    return run


def run(args) -> dict:
    if args.frames < 1 or any(n < 1 for n in args.sizes):
        raise ValueError("--frames and --sizes must be positive")
    figures = run_benchmark(tuple(args.sizes), args.frames, seed=args.seed)
    print(f"{'objects':>8} | {'numba median':>12} {'p95':>8} | {'numpy median':>12} {'p95':>8} | "
          f"{'speedup':>7}  (ms per step)")
    for key, f in figures.items():
        print(f"{key[1:]:>8} | {f['numba_median_ms']:12.4f} {f['numba_p95_ms']:8.4f} | "
              f"{f['numpy_median_ms']:12.4f} {f['numpy_p95_ms']:8.4f} | {f['speedup_median']:6.1f}x")
    return figures
