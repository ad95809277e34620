"""Live status line and final summary of an engine run: fps, graph size, per-stage latency percentiles."""
from __future__ import annotations

import random
import sys
import time
from collections import deque

import numpy as np

from engine.runtime import STAGES

WINDOW = 300            # frames kept for the live percentiles (bounded)
RESERVOIR_SIZE = 4096   # samples kept per stage for the summary percentiles, whatever the run length


class Reservoir:
    """A uniform random sample of at most ``capacity`` values of a stream of any length (Vitter's algorithm R), so
    a run's latency percentiles cost the same memory after a minute or a week. Seeded: reruns report the same."""

    def __init__(self, capacity: int = RESERVOIR_SIZE, seed: int = 0):
        self.capacity, self.seen = capacity, 0
        self.values = np.empty(capacity, np.float64)
        self._rng = random.Random(seed)  # a scalar draw per stage per frame: Python's is ~10x cheaper than numpy's

    def add(self, v: float) -> None:
        if self.seen < self.capacity:
            self.values[self.seen] = v
        else:
            j = self._rng.randrange(self.seen + 1)
            if j < self.capacity:
                self.values[j] = v
        self.seen += 1

    def sample(self) -> np.ndarray:
        return self.values[: min(self.seen, self.capacity)]


class RunReport:
    """Counts and latency figures of a run in constant memory; a live status line on ``stream`` when ``live``."""

    def __init__(self, live: bool = True, every_s: float = 0.5, stream=None):
        # sys.stderr looked up now, not at import: a redirected stderr (tests, embedding apps) gets the line
        self.live, self.every_s, self.stream = live, every_s, stream if stream is not None else sys.stderr
        self.t0 = time.monotonic()
        self.last_print = 0.0
        self.frames = 0
        self.recent = deque(maxlen=WINDOW)
        self.stage_ms: dict[str, Reservoir] = {s: Reservoir(seed=i) for i, s in enumerate((*STAGES, "total"))}
        self.entities = self.relations = 0
        self.changes = {"started": 0, "updated": 0, "ended": 0}

    def add(self, res) -> None:
        self.frames += 1
        for k, v in res.timings_ms.items():
            if k not in self.stage_ms:
                self.stage_ms[k] = Reservoir(seed=len(self.stage_ms))
            self.stage_ms[k].add(v)
        self.recent.append(res.timings_ms["total"])
        self.entities, self.relations = len(res.graph.entities), len(res.graph.relations)
        for c in res.changes:
            self.changes[c.kind] = self.changes.get(c.kind, 0) + 1
        now = time.monotonic()
        if self.live and now - self.last_print >= self.every_s:
            self.last_print = now
            self._status(now)

    def _status(self, now: float) -> None:
        fps = self.frames / max(now - self.t0, 1e-9)
        p95 = float(np.percentile(self.recent, 95)) if self.recent else 0.0
        self.stream.write(f"\rframe {self.frames:6d}  {fps:7.1f} fps  entities {self.entities:3d}  "
                          f"relations {self.relations:4d}  p95 {p95:6.2f} ms ")
        self.stream.flush()

    def finish(self) -> None:
        """Stop the clock; the live line is redrawn with the final figures (it would otherwise show the state of up
        to ``every_s`` before the end) and ended."""
        self.wall = time.monotonic() - self.t0
        if self.live:
            self._status(self.t0 + self.wall)
            self.stream.write("\n")
            self.stream.flush()

    def figures(self) -> dict:
        out = {"frames": self.frames, "wall_s": round(getattr(self, "wall", time.monotonic() - self.t0), 3)}
        out["fps"] = round(self.frames / max(out["wall_s"], 1e-9), 1)
        for k, r in self.stage_ms.items():
            v = r.sample()
            if len(v):
                out[f"{k}_ms_median"] = round(float(np.median(v)), 3)
                out[f"{k}_ms_p95"] = round(float(np.percentile(v, 95)), 3)
        out["relations_started"], out["relations_ended"] = self.changes["started"], self.changes["ended"]
        out["relations_updated"] = self.changes["updated"]
        return out

    def summary(self, engine=None) -> str:
        f = self.figures()
        lines = [f"{f['frames']} frames in {f['wall_s']:.2f} s ({f['fps']:.1f} fps); relations started "
                 f"{f['relations_started']}, updated {f['relations_updated']}, ended {f['relations_ended']}",
                 "stage        median ms    p95 ms"]
        for k in (*STAGES, "total"):
            if f"{k}_ms_median" in f:
                lines.append(f"  {k:10s} {f[f'{k}_ms_median']:9.3f} {f[f'{k}_ms_p95']:9.3f}")
        if engine is not None:
            lines.append(f"flicker rate (toggles per active relation-second): {engine.filter.flicker_rate():.3f}")
        return "\n".join(lines)
