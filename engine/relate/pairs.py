"""Candidate entity pairs and the bounded per-pair state store keyed by (subject track id, object track id)."""
from __future__ import annotations

import numpy as np

from engine.relate.features import ordered_pairs


def select_pairs(boxes_xyxy: np.ndarray, max_pairs: int) -> tuple[np.ndarray, np.ndarray]:
    """Ordered pairs (i, j), i != j, of N boxes: all of them up to ``max_pairs``, else the nearest ones.

    Nearness is the centre distance over the geometric mean box size, so a cup by a hand wins over two far people;
    both directions of a pair are kept or dropped together. Returns (P,), (P,) int64 row indices, P <= max_pairs.
    """
    n = len(boxes_xyxy)
    i, j = ordered_pairs(n)
    if len(i) <= max_pairs:
        return i, j
    b = np.asarray(boxes_xyxy, np.float64)
    c = (b[:, :2] + b[:, 2:]) * 0.5
    size = np.sqrt(np.maximum(b[:, 2] - b[:, 0], 1) * np.maximum(b[:, 3] - b[:, 1], 1))
    d = np.hypot(*(c[i] - c[j]).T) / np.sqrt(size[i] * size[j])
    lo, hi = np.minimum(i, j), np.maximum(i, j)
    order = np.lexsort((j, i, hi, lo, d))  # by distance, ties broken deterministically, directions adjacent
    keep = order[: max_pairs - (max_pairs % 2)]
    keep.sort()
    return i[keep], j[keep]


class PairStore:
    """Fixed-capacity rows of per-pair model state, addressed by (subject id, object id).

    window (capacity, L-1, d) float32, window_valid (capacity, L-1) float32, prev_out (capacity, d) float32
    (the relation model's streaming state, see engine.relate.relation_io); last_seen (capacity,) seconds;
    subject_ids / object_ids (capacity,) int64 track ids of each row's pair, -1 for a free row (``keys`` as arrays,
    so that per-frame graph publishing can stay vectorised).
    A new pair gets a zeroed row; when the store is full, the least recently seen rows not needed now are evicted.
    """

    def __init__(self, capacity: int, window: int, d_model: int):
        self.capacity = capacity
        self.window = np.zeros((capacity, window - 1, d_model), np.float32)
        self.window_valid = np.zeros((capacity, window - 1), np.float32)
        self.prev_out = np.zeros((capacity, d_model), np.float32)
        self.last_seen = np.full(capacity, -np.inf)
        self.keys: list[tuple[int, int] | None] = [None] * capacity
        self.subject_ids = np.full(capacity, -1, np.int64)
        self.object_ids = np.full(capacity, -1, np.int64)
        self.index: dict[tuple[int, int], int] = {}
        self.free = list(range(capacity - 1, -1, -1))

    def __len__(self) -> int:
        return len(self.index)

    def rows_to_evict(self, subj_ids: np.ndarray, obj_ids: np.ndarray) -> np.ndarray:
        """Rows that must be released (least recently seen first, never one of these pairs) before ``rows_for``
        can place these pairs. The caller ends their relations, then calls ``release``."""
        if len(subj_ids) > self.capacity:
            raise ValueError(f"{len(subj_ids)} pairs exceed the pair store capacity {self.capacity}")
        keys = set(zip(subj_ids.tolist(), obj_ids.tolist()))
        need = sum(k not in self.index for k in keys) - len(self.free)
        if need <= 0:
            return np.zeros(0, np.int64)
        candidates = [r for r in np.argsort(self.last_seen, kind="stable").tolist()
                      if self.keys[r] is not None and self.keys[r] not in keys]
        return np.array(candidates[:need], np.int64)

    def rows_for(self, subj_ids: np.ndarray, obj_ids: np.ndarray, t: float) -> np.ndarray:
        """Rows (P,) for these pairs, creating zeroed rows for new ones (release ``rows_to_evict`` first)."""
        keys = list(zip(subj_ids.tolist(), obj_ids.tolist()))
        new = [k for k in keys if k not in self.index]
        if len(new) > len(self.free):
            raise ValueError(f"pair store full: {len(new)} new pairs, {len(self.free)} free rows")
        for k in new:
            r = self.free.pop()
            self.index[k] = r
            self.keys[r] = k
            self.subject_ids[r], self.object_ids[r] = k
        rows = np.array([self.index[k] for k in keys], np.int64)
        self.last_seen[rows] = t
        return rows

    def release(self, rows: np.ndarray) -> None:
        for r in rows.tolist():
            k = self.keys[r]
            if k is None:
                continue
            del self.index[k]
            self.keys[r] = None
            self.free.append(r)
        self.subject_ids[rows] = -1
        self.object_ids[rows] = -1
        self.window[rows] = 0
        self.window_valid[rows] = 0
        self.prev_out[rows] = 0
        self.last_seen[rows] = -np.inf

    def rows_of_entities(self, dead_ids: set[int]) -> np.ndarray:
        """Rows whose subject or object is in ``dead_ids``."""
        if not dead_ids:
            return np.zeros(0, np.int64)
        return np.array([r for k, r in self.index.items() if k[0] in dead_ids or k[1] in dead_ids], np.int64)

    def state(self, rows: np.ndarray):
        return self.window[rows], self.window_valid[rows], self.prev_out[rows]

    def write(self, rows: np.ndarray, window: np.ndarray, window_valid: np.ndarray, prev_out: np.ndarray) -> None:
        self.window[rows] = window
        self.window_valid[rows] = window_valid
        self.prev_out[rows] = prev_out
