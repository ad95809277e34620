"""engine.bench.tracker: the benchmark runs and reports figures (no timing assertions)."""
import argparse

import pytest

from engine.bench.tracker import add_parser, synthetic_scene


def test_bench_runs_and_returns_figures(capsys):
    parser = argparse.ArgumentParser()
    run = add_parser(parser)
    figures = run(parser.parse_args(["--sizes", "5", "20", "--frames", "20"]))
    assert set(figures) == {"n5", "n20"}
    for f in figures.values():
        assert {"numba_median_ms", "numba_p95_ms", "numpy_median_ms", "numpy_p95_ms", "speedup_median"} <= set(f)
        for impl in ("numba", "numpy"):   # consistency of the figures, not speed: 0 < median <= p95, finite
            assert 0 < f[f"{impl}_median_ms"] <= f[f"{impl}_p95_ms"] < float("inf")
        assert f["speedup_median"] == pytest.approx(f["numpy_median_ms"] / f["numba_median_ms"])
    out = capsys.readouterr().out
    for key, f in figures.items():       # the table prints the returned figures, one row per size
        assert f"{f['numba_median_ms']:12.4f} {f['numba_p95_ms']:8.4f}" in out
        assert f"{f['speedup_median']:6.1f}x" in out


def test_synthetic_scene_shape():
    scene = synthetic_scene(50, 10, seed=0)
    assert len(scene) == 10
    assert all(40 <= len(d) <= 60 for d in scene)
