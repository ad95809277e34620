"""CLEAR-MOT / identity scores (MOTA, IDF1, ...) of MOTChallenge-format tracking results against a ground-truth file.

Rows in both files are ``frame, id, left, top, width, height, conf, ...`` (frames from 1, pixels, ltwh boxes).
A ground-truth row whose ``conf`` column is 0 is ignored (the MOTChallenge "do not consider" flag); all other rows
count, which is the MOT15 protocol. A result box matches a ground-truth box when IoU >= ``iou_threshold``
(0.5 in MOTChallenge). Matching and the metrics are those of py-motmetrics, imported lazily so that importing
this module costs nothing; the distance matrices are computed here (``engine.boxes.iou_xyxy``), which also avoids
motmetrics 1.4's use of ``np.asfarray`` (removed in numpy 2).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from engine.boxes import iou_xyxy, ltwh_to_xyxy

METRICS = ("mota", "motp", "idf1", "idp", "idr", "recall", "precision", "num_frames", "num_objects",
           "num_predictions", "num_unique_objects", "num_matches", "num_false_positives", "num_misses",
           "num_switches", "num_fragmentations", "mostly_tracked", "partially_tracked", "mostly_lost")


def read_mot_rows(path: str | Path, name: str = "file") -> np.ndarray:
    """Read a MOTChallenge text file into an (K, 7) float64 array [frame, id, left, top, width, height, conf].

    Blank lines are skipped; a malformed line raises ValueError naming ``path`` and the line number.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{name}: file not found: {p}")
    rows = []
    for lineno, line in enumerate(p.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split(",")
        if len(parts) < 6:
            raise ValueError(f"{p}:{lineno}: expected at least 6 comma-separated fields, got {len(parts)}")
        try:
            vals = [float(x) for x in parts[:7]]
        except ValueError:
            raise ValueError(f"{p}:{lineno}: non-numeric field in {line.strip()!r}") from None
        if len(vals) == 6:
            vals.append(1.0)
        if not all(np.isfinite(vals)):
            raise ValueError(f"{p}:{lineno}: NaN or inf in {line.strip()!r}")
        if vals[4] < 0 or vals[5] < 0:
            raise ValueError(f"{p}:{lineno}: negative box width or height in {line.strip()!r}")
        rows.append(vals)
    return np.array(rows, np.float64).reshape(-1, 7)


def evaluate_mot(results: str | Path | np.ndarray, gt_path: str | Path, iou_threshold: float = 0.5) -> dict:
    """Score tracking ``results`` (a MOT text file, or an (K, >=6) array of its rows) against ``gt_path``.

    Returns a dict with float ``mota``, ``motp`` (mean 1 - IoU of matches), ``idf1``, ``idp``, ``idr``, ``recall``,
    ``precision`` and integer counts (``num_switches``, ``num_false_positives``, ``num_misses``, ...).
    """
    import motmetrics as mm  # lazy: pulls pandas, only needed for evaluation

    if not 0.0 < iou_threshold <= 1.0:
        raise ValueError(f"iou_threshold: must be in (0, 1], got {iou_threshold}")
    if isinstance(results, np.ndarray):
        hyp = np.asarray(results, np.float64)
        if hyp.ndim != 2 or hyp.shape[1] < 6:
            raise ValueError(f"results: expected an (K, >=6) array of MOT rows, got shape {hyp.shape}")
        if not np.isfinite(hyp[:, :6]).all():
            raise ValueError("results: contains NaN or inf")
    else:
        hyp = read_mot_rows(results, "results")
    gt = read_mot_rows(gt_path, "gt_path")
    gt = gt[gt[:, 6] != 0]

    acc = mm.MOTAccumulator(auto_id=False)
    frames = np.union1d(gt[:, 0], hyp[:, 0]).astype(np.int64)
    gt_order = np.argsort(gt[:, 0], kind="stable")
    hyp_order = np.argsort(hyp[:, 0], kind="stable")
    gt, hyp = gt[gt_order], hyp[hyp_order]
    g_lo = np.searchsorted(gt[:, 0], frames, "left")
    g_hi = np.searchsorted(gt[:, 0], frames, "right")
    h_lo = np.searchsorted(hyp[:, 0], frames, "left")
    h_hi = np.searchsorted(hyp[:, 0], frames, "right")
    for f, a, b, c, d in zip(frames, g_lo, g_hi, h_lo, h_hi):
        g, h = gt[a:b], hyp[c:d]
        dist = 1.0 - iou_xyxy(ltwh_to_xyxy(g[:, 2:6]), ltwh_to_xyxy(h[:, 2:6]))
        dist[dist > 1.0 - iou_threshold] = np.nan
        acc.update(g[:, 1].astype(np.int64), h[:, 1].astype(np.int64), dist, frameid=int(f))
    summary = mm.metrics.create().compute(acc, metrics=list(METRICS), name="seq")
    out = {}
    for k in METRICS:
        v = summary[k].iloc[0]
        out[k] = int(v) if k.startswith(("num_", "mostly_", "partially_")) else float(v)
    return out
