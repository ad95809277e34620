"""engine.bench.tracker: the benchmark runs and reports figures (no timing assertions)."""
import argparse

from engine.bench.tracker import add_parser, synthetic_scene


def test_bench_runs_and_returns_figures(capsys):
    parser = argparse.ArgumentParser()
    run = add_parser(parser)
    figures = run(parser.parse_args(["--sizes", "5", "20", "--frames", "20"]))
    assert set(figures) == {"n5", "n20"}
    for f in figures.values():
        assert {"numba_median_ms", "numba_p95_ms", "numpy_median_ms", "numpy_p95_ms", "speedup_median"} <= set(f)
        assert all(v > 0 for v in f.values())
    assert "speedup" in capsys.readouterr().out


def test_synthetic_scene_shape():
    scene = synthetic_scene(50, 10, seed=0)
    assert len(scene) == 10
    assert all(40 <= len(d) <= 60 for d in scene)
