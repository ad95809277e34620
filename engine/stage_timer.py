"""StageTimer: wall-clock milliseconds per named pipeline stage of one frame, kept apart from the stage logic."""
from __future__ import annotations

import time
from contextlib import contextmanager


class StageTimer:
    """Times the stages of one ``Engine.step`` call.

    ``with timer.stage("tracker"): ...`` adds that block's wall time (ms, ``time.perf_counter``) to the stage;
    stages never entered read 0.0, so every frame reports the same keys. ``ms()`` returns the per-stage figures plus
    ``"total"``: the time since the timer was made (which includes the glue between stages).
    """

    def __init__(self, stages: tuple[str, ...]):
        self._t0 = time.perf_counter()
        self._ms = dict.fromkeys(stages, 0.0)

    @contextmanager
    def stage(self, name: str):
        if name not in self._ms:  # a typo would silently create a new key that no report shows
            raise KeyError(f"stage: unknown stage {name!r} (known: {', '.join(self._ms)})")
        c = time.perf_counter()
        try:
            yield
        finally:
            self._ms[name] += (time.perf_counter() - c) * 1e3

    def ms(self) -> dict[str, float]:
        out = dict(self._ms)
        out["total"] = (time.perf_counter() - self._t0) * 1e3
        return out
