"""Soak: engine, graph service and subscriber run side by side for a while; RSS growth per 100k frames of each.

Three processes (engine.bench.reliability.roles), all on ``MovingBoxes`` with a tracker-only engine (no relation
model: with it a step costs ~1 ms and a 2-minute soak would see too few frames to measure a leak of 1 MB per 100k):

* ``engine``:     Engine.step alone, as fast as it goes (at most ``engine_fps`` steps per second);
* ``service``:    Engine + GraphPublisher (at most ``service_fps``), ending its stream after ``seconds``;
* ``subscriber``: a GraphSubscriber of the service until the end of the stream.

Each prints (frames, VmRSS) every half second. Growth is the slope of a least-squares line through the samples
after the warm-up (the first ``warmup_fraction`` of the run: numba, allocator and socket buffers settle), in MB per
100,000 frames (for the subscriber, per 100,000 deltas applied). The subscriber's final graph must equal the
service's.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

from engine.bench.reliability.processes import Child, has_traceback, same_graph

TARGET_MB_PER_100K = 1.0


def growth_mb_per_100k(samples: list[dict], warmup_fraction: float = 0.25) -> float | None:
    """Slope of VmRSS over frames after the warm-up, in MB per 100k frames; None with too few samples.

    samples: dicts with ``t`` (s), ``frames`` and ``rss_kb``, in time order."""
    if not samples:
        return None
    t_end = samples[-1]["t"]
    pts = [(s["frames"], s["rss_kb"]) for s in samples if s["t"] >= warmup_fraction * t_end and s["rss_kb"] > 0]
    if len(pts) < 3 or pts[-1][0] - pts[0][0] <= 0:
        return None
    f, r = np.array(pts, np.float64).T
    slope_kb_per_frame = np.polyfit(f, r, 1)[0]
    return float(slope_kb_per_frame * 1e5 / 1024)


def _samples(child: Child) -> list[dict]:
    out = []
    for line in child.stdout().splitlines():
        try:
            d = json.loads(line)
        except ValueError:
            continue
        if "rss_kb" in d:
            out.append(d)
    return out


def _summary(samples: list[dict], warmup_fraction: float) -> dict:
    g = growth_mb_per_100k(samples, warmup_fraction)
    rss = [s["rss_kb"] / 1024 for s in samples if s["rss_kb"] > 0]
    return {"frames": samples[-1]["frames"] if samples else 0,
            "rss_start_mb": round(rss[0], 1) if rss else None, "rss_end_mb": round(rss[-1], 1) if rss else None,
            "rss_peak_mb": round(max(rss), 1) if rss else None,
            "growth_mb_per_100k_frames": None if g is None else round(g, 3),
            "samples": len(samples)}


def run_soak(folder: Path, seconds: float, seed: int = 0, engine_fps: float = 3000.0, service_fps: float = 1000.0,
             warmup_fraction: float = 0.25, progress=None) -> dict:
    """Run the three processes for ``seconds`` (plus start-up and the subscriber's catch-up); per-process figures.

    progress: optional callable taking elapsed whole seconds (a tqdm ``update``)."""
    if not seconds > 0:
        raise ValueError(f"seconds: must be > 0, got {seconds!r}")
    folder.mkdir(parents=True, exist_ok=True)
    role = [sys.executable, "-m", "engine.bench.reliability.roles"]
    common = ["--seconds", f"{seconds:g}", "--seed", str(seed), "--objects", "10"]
    s_final, b_final = folder / "service_final.json", folder / "subscriber_final.json"
    children = []
    try:
        service = Child("soak_service", role + ["service", *common, "--max-fps", f"{service_fps:g}", "--final",
                                                str(s_final), "--linger", "5"], folder)
        children.append(service)
        if not service.wait_for_output('"pub"', 60):
            raise RuntimeError(f"soak service did not start: {service.stderr()[-500:]}")
        eps = json.loads(service.stdout().splitlines()[0])
        subscriber = Child("soak_subscriber", role + ["subscriber", "--pub", eps["pub"], "--snapshot",
                                                      eps["snapshot"], "--final", str(b_final), "--timeout",
                                                      f"{seconds + 120:g}", "--heartbeat-timeout", "3"], folder)
        engine = Child("soak_engine", role + ["engine", *common, "--max-fps", f"{engine_fps:g}"], folder)
        children += [subscriber, engine]
        t0 = time.monotonic()
        shown = 0
        while service.proc.poll() is None or engine.proc.poll() is None or subscriber.proc.poll() is None:
            if time.monotonic() - t0 > seconds + 180:
                break
            time.sleep(0.5)
            el = int(min(time.monotonic() - t0, seconds))
            if progress is not None and el > shown:
                progress(el - shown)
                shown = el
        rcs = {c.name: c.wait(1) for c in children}
        result = {"seconds": seconds, "model": "none (tracker-only graphs)",
                  "engine": _summary(_samples(engine), warmup_fraction),
                  "service": _summary(_samples(service), warmup_fraction),
                  "subscriber": _summary(_samples(subscriber), warmup_fraction),
                  "subscriber_equal_graph": same_graph(s_final, b_final), "exit_codes": rcs,
                  "tracebacks": [c.name for c in children if has_traceback(c)]}
    finally:
        for c in children:
            c.stop()
    growth = [result[k]["growth_mb_per_100k_frames"] for k in ("engine", "service", "subscriber")]
    result["max_growth_mb_per_100k_frames"] = None if None in growth else max(growth)
    return result
