"""ROS 2 tests: the loopback-only DDS environment is put into os.environ here, before any test module imports rclpy.

vsgg_nodes.dds_env picks a ROS_DOMAIN_ID no other vsgg run on this machine holds (flock) and points Fast DDS at the
loopback-only profile; every node process the tests start inherits it. rcl logs go to a folder of this run.
Fixtures: ``probe`` (a node of this process, spun in the background) and ``vision_msgs_prefix`` (the test-only
vision_msgs package built once into build/test_vision_msgs and loaded here).
"""
import os
import shutil
import sys
import threading
import tempfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # socket_audit, ros_processes

try:
    from vsgg_nodes import dds_env
except ImportError:  # `make ros` not run: the test modules skip themselves with the reason
    dds_env = None

if dds_env is not None:
    ROS_SETTINGS = dds_env.apply(log_dir=Path(tempfile.mkdtemp(prefix="vsgg-ros-logs-")))


@pytest.fixture(scope="session")
def ros_env() -> dict:
    """The DDS settings of this run (already in os.environ)."""
    if dds_env is None:
        pytest.skip("vsgg_nodes is not installed: run `make ros`")
    assert not dds_env.problems(), dds_env.problems()
    return dict(ROS_SETTINGS)


@pytest.fixture(scope="session")
def rclpy_context(ros_env):
    """An rclpy context for the test process itself (created after the environment is checked)."""
    rclpy = pytest.importorskip("rclpy", reason="ROS 2 wheels missing: run `make ros`")
    dds_env.check()
    ctx = rclpy.context.Context()
    rclpy.init(context=ctx)
    yield ctx
    rclpy.shutdown(context=ctx)


def child_env(**extra) -> dict:
    """os.environ (with the DDS settings) plus ``extra``, for node subprocesses."""
    env = dict(os.environ)
    env.update({k: str(v) for k, v in extra.items()})
    return env


@pytest.fixture(scope="module")
def probe(rclpy_context):
    """This process's node, spun on a background executor."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    node = rclpy.create_node("vsgg_test_probe", context=rclpy_context)
    ex = SingleThreadedExecutor(context=rclpy_context)
    ex.add_node(node)
    th = threading.Thread(target=ex.spin, daemon=True)
    th.start()
    yield node
    ex.shutdown()
    node.destroy_node()


@pytest.fixture(scope="session")
def vision_msgs_prefix(ros_env):
    """tests/ros/vision_msgs built with cmake (or reused: keyed by a hash of its files) and importable here; node
    processes get its paths from ``vision_msgs_prefix.child_env()``."""
    from vision_msgs_build import build
    if shutil.which("cmake") is None or shutil.which("c++") is None:
        pytest.skip("cmake and a C++ compiler are needed to build the test-only vision_msgs package")
    prefix = build()
    print(f"\nvision_msgs test package: {'reused' if prefix.reused else 'built'} {prefix.install} "
          f"(cmake build {prefix.build_s:.1f} s)")
    prefix.load_here()
    return prefix
