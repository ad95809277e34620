"""Per-predicate recall accumulators and the two published mean-recall (mR@K) variants.

Both variants start from, for every evaluated unit (an Action Genome frame, or a VidVRD video), ``hits[c]`` = the
ground-truth relations of predicate class ``c`` recovered in the top K and ``counts[c]`` = the ground-truth
relations of class ``c``. They differ in where the division happens:

* **accumulated** (variant A; TEMPURA and TD2-Net): ``recall[c] = sum(hits[c]) / sum(counts[c])`` over the whole
  dataset, so a class is weighted by its instances.
* **per_frame** (variant B; the Scene-Graph-Benchmark style that DSG-DETR ships commented out): each unit where
  ``c`` occurs contributes ``hits[c] / counts[c]``; ``recall[c]`` is the mean of those over the units where ``c``
  occurs, so a class is weighted by the frames it occurs in.

``mR`` is the mean of ``recall[c]`` over classes, either ``over="all"`` classes of the vocabulary, where a class that
never occurs counts as 0 (what both reference codes print: they divide by the 26 Action Genome predicates), or
``over="present"``, only classes that occur in the ground truth. On a full benchmark split every class occurs and the
two agree. (TEMPURA also adds 1e-10 to each denominator; that shifts results by < 1e-9 and is left out.)

State is O(number of classes), whatever the number of units added.
"""
from __future__ import annotations

import numpy as np

MEAN_OVER = ("all", "present")


def _counts(name: str, value, num_classes: int) -> np.ndarray:
    a = np.asarray(value)
    if a.dtype.kind not in "iu":
        raise ValueError(f"{name}: expected an integer array, got dtype {a.dtype}")
    if a.shape != (num_classes,):
        raise ValueError(f"{name}: expected shape ({num_classes},), got {a.shape}")
    if (a < 0).any():
        raise ValueError(f"{name}: negative count")
    return a.astype(np.int64)


class MeanRecall:
    """Streaming per-class recall for one K. ``add`` one unit at a time; read either variant at any point.

    State: hits, counts, per-unit recall sums and the number of units each class occurs in, all (C,).
    """

    def __init__(self, num_classes: int):
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"num_classes must be an integer >= 1, got {num_classes!r}")
        self.num_classes = num_classes
        self.hits = np.zeros(num_classes, np.int64)
        self.counts = np.zeros(num_classes, np.int64)
        self.unit_recall_sum = np.zeros(num_classes, np.float64)
        self.units_present = np.zeros(num_classes, np.int64)

    def add(self, hits, counts) -> None:
        """One unit's (C,) integer hits and ground-truth counts per class; requires hits <= counts."""
        h = _counts("hits", hits, self.num_classes)
        c = _counts("counts", counts, self.num_classes)
        if (h > c).any():
            i = int(np.flatnonzero(h > c)[0])
            raise ValueError(f"hits: class {i} has {int(h[i])} hits but only {int(c[i])} ground-truth relations")
        present = c > 0
        self.hits += h
        self.counts += c
        self.unit_recall_sum[present] += h[present] / c[present]
        self.units_present += present

    def accumulated(self) -> np.ndarray:
        """Variant A: (C,) float64 pooled hits / pooled counts; NaN for classes that never occurred."""
        out = np.full(self.num_classes, np.nan)
        ok = self.counts > 0
        out[ok] = self.hits[ok] / self.counts[ok]
        return out

    def per_frame(self) -> np.ndarray:
        """Variant B: (C,) float64 mean over units of the unit's recall for the class; NaN if it never occurred."""
        out = np.full(self.num_classes, np.nan)
        ok = self.units_present > 0
        out[ok] = self.unit_recall_sum[ok] / self.units_present[ok]
        return out

    @staticmethod
    def mean(per_class: np.ndarray, over: str = "all") -> float:
        """mR from a (C,) per-class recall vector with NaN for absent classes (see the module docstring)."""
        if over not in MEAN_OVER:
            raise ValueError(f"over must be one of {MEAN_OVER}, got {over!r}")
        r = np.asarray(per_class, dtype=np.float64)
        present = ~np.isnan(r)
        if over == "all":
            return float(np.sum(r[present]) / len(r))
        return float(np.mean(r[present])) if present.any() else 0.0
