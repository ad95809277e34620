"""Relation filter: per (pair, predicate) smoothing with hysteresis and a minimum duration -> lifecycle events.

For each pair row r and predicate c the filter keeps a time-constant EMA of the model's score,
``s <- s + a (score - s)`` with ``a = 1 - exp(-dt / tau)`` (dt = seconds since the pair was last observed), and a
state machine:

* inactive -> pending when s >= enter (the pending time is remembered as the candidate start time);
* pending  -> active when s has stayed >= enter for at least ``min_duration`` seconds: event 'started', with the
  start time = when it first crossed ``enter``; pending -> inactive if s falls below enter first;
* active   -> inactive when s < exit: event 'ended'.

Frames where a pair is not observed (an entity missed by the detector) leave its state untouched: a missing box
is not evidence of absence. Rows are evicted with their tracks by the caller (``PairStore``), which ends their
active relations.

Beside the smoothed score the filter keeps the model's uncertainty of each (pair, predicate) at the pair's latest
observation, *not* smoothed: a relation published or updated at time t carries the uncertainty the model gave its
predicate at t (NaN when the model has no uncertainty output), next to the smoothed score.

``FilterConfig(tau_s=0, enter=t, exit=t, min_duration_s=0)`` is the unfiltered baseline (plain thresholding),
used to measure flicker with the same code.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from engine.config import FilterConfig

STARTED, UPDATED, ENDED = "started", "updated", "ended"


@dataclass(frozen=True)
class RelationEvent:
    """kind: 'started' | 'ended' ('updated' comes from the engine, when a held relation's published score moves).
    row: pair-store row; predicate: index; t: event time (s); start_time (s);
    score: smoothed score at the event; uncertainty: the model's at the pair's latest observation (NaN: none)."""

    kind: str
    row: int
    predicate: int
    t: float
    start_time: float
    score: float
    uncertainty: float = math.nan


class RelationFilter:
    """Vectorised filter state for ``capacity`` pair rows x ``num_predicates``."""

    def __init__(self, cfg: FilterConfig, capacity: int, num_predicates: int):
        self.cfg = cfg
        shape = (capacity, num_predicates)
        self.smoothed = np.zeros(shape, np.float32)
        self.active = np.zeros(shape, bool)
        self.pending_since = np.full(shape, np.nan)   # time s first crossed enter while inactive
        self.start_time = np.zeros(shape)
        self.last_t = np.full(capacity, np.nan)         # last time each row was observed
        self.uncertainty = np.full(shape, np.nan, np.float32)  # the model's, at each row's last observation
        # flicker accounting (toggles of the active flag, and active relation-seconds)
        self.toggles = 0
        self.active_seconds = 0.0

    def reset_rows(self, rows: np.ndarray) -> None:
        self.smoothed[rows] = 0
        self.active[rows] = False
        self.pending_since[rows] = np.nan
        self.last_t[rows] = np.nan
        self.uncertainty[rows] = np.nan

    def update(self, rows: np.ndarray, scores: np.ndarray, t: float,
               uncertainty: np.ndarray | None = None) -> list[RelationEvent]:
        """Feed scores (N, C) in [0, 1] observed at time t (s) for pair ``rows`` (N,), and the model's uncertainty
        (N, C) in [0, 1] of the same frame (None: the model gives none, stored as NaN). Returns lifecycle events."""
        if len(rows) == 0:
            return []
        self.uncertainty[rows] = np.nan if uncertainty is None else uncertainty
        cfg = self.cfg
        last = self.last_t[rows]
        fresh = np.isnan(last)
        dt = np.where(fresh, 0.0, t - np.where(fresh, t, last))
        if cfg.tau_s > 0:
            a = np.where(fresh, 1.0, 1.0 - np.exp(-dt / cfg.tau_s))[:, None]
        else:
            a = np.ones((len(rows), 1))
        s = self.smoothed[rows]
        s = (s + a * (scores - s)).astype(np.float32)
        self.smoothed[rows] = s
        # account active time before the state changes (relation-seconds since the row's last observation)
        self.active_seconds += float((self.active[rows].sum(1) * dt).sum())
        self.last_t[rows] = t

        act, pend = self.active[rows], self.pending_since[rows]
        above = s >= cfg.enter
        new_pend = np.where(~act & above & np.isnan(pend), t, pend)
        new_pend = np.where(~act & ~above, np.nan, new_pend)
        starts = ~act & above & (t - new_pend >= cfg.min_duration_s - 1e-9)
        ends = act & (s < cfg.exit)
        events = []
        for i, c in zip(*np.nonzero(starts)):
            events.append(RelationEvent(STARTED, int(rows[i]), int(c), t, float(new_pend[i, c]), float(s[i, c]),
                                        float(self.uncertainty[rows[i], c])))
        for i, c in zip(*np.nonzero(ends)):
            events.append(RelationEvent(ENDED, int(rows[i]), int(c), t, float(self.start_time[rows[i], c]),
                                        float(s[i, c]), float(self.uncertainty[rows[i], c])))
        st = self.start_time[rows]
        st = np.where(starts, new_pend, st)
        self.start_time[rows] = st
        self.active[rows] = (act | starts) & ~ends
        self.pending_since[rows] = np.where(starts | ends, np.nan, new_pend)
        self.toggles += int(starts.sum() + ends.sum())
        return events

    def end_rows(self, rows: np.ndarray, t: float) -> list[RelationEvent]:
        """End every active relation of ``rows`` (their pair died) and clear the rows."""
        events = [RelationEvent(ENDED, int(rows[i]), int(c), t, float(self.start_time[rows[i], c]),
                                float(self.smoothed[rows[i], c]), float(self.uncertainty[rows[i], c]))
                  for i, c in zip(*np.nonzero(self.active[rows]))]
        self.toggles += len(events)
        self.reset_rows(rows)
        return events

    def flicker_rate(self) -> float:
        """Toggles of the active flag per active relation-second (lower is steadier)."""
        return self.toggles / self.active_seconds if self.active_seconds > 0 else 0.0
