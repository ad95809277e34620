"""ROS 2 tests: the loopback-only DDS environment is put into os.environ here, before any test module imports rclpy.

vsgg_nodes.dds_env picks a ROS_DOMAIN_ID no other vsgg run on this machine holds (flock) and points Fast DDS at the
loopback-only profile; every node process the tests start inherits it. rcl logs go to a folder of this run.
"""
import os
import sys
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
