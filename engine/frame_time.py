"""check_frame_time: the one rule for frame times (seconds, finite, strictly increasing) that the engine and the
tracker both enforce before changing any state."""
from __future__ import annotations

import math
import numbers


def check_frame_time(t, last: float | None) -> float:
    """``t`` as float seconds; TypeError/ValueError naming ``t`` unless it is a finite real number greater than
    ``last`` (the previous frame's time, None before the first frame)."""
    if isinstance(t, bool) or not isinstance(t, numbers.Real):
        raise TypeError(f"t: expected a real number (seconds), got {type(t).__name__}")
    t = float(t)
    if not math.isfinite(t):
        raise ValueError(f"t: must be finite, got {t}")
    if last is not None and t <= last:
        raise ValueError(f"t: must increase strictly, got {t} after {last}")
    return t
