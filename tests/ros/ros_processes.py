"""Node processes for the ROS tests: start them with the run's DDS environment, drive lifecycle transitions, stop."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time


def start(module: str, params: dict, name_args: list[str] | None = None, log=None,
          env: dict | None = None) -> subprocess.Popen:
    """``python -m vsgg_nodes.<module> --ros-args -p k:=v ...`` in its own process group; its environment is
    os.environ (with the run's DDS settings) updated with ``env``."""
    cmd = [sys.executable, "-m", f"vsgg_nodes.{module}", "--ros-args"]
    for k, v in params.items():
        cmd += ["-p", f"{k}:={str(v).lower() if isinstance(v, bool) else v}"]
    cmd += name_args or []
    return subprocess.Popen(cmd, stdout=log or subprocess.DEVNULL, stderr=subprocess.STDOUT,
                            env={**os.environ, **(env or {})}, start_new_session=True)


def stop(proc: subprocess.Popen, timeout: float = 10.0) -> int:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return proc.returncode


def call(node, client, request, timeout: float = 20.0):
    """Call a service from a node spun by a background executor; the response or TimeoutError."""
    if not client.wait_for_service(timeout_sec=timeout):
        raise TimeoutError(f"service {client.srv_name} not available")
    fut = client.call_async(request)
    t0 = time.monotonic()
    while not fut.done():
        if time.monotonic() - t0 > timeout:
            raise TimeoutError(f"no response from {client.srv_name}")
        time.sleep(0.01)
    return fut.result()


def wait_until(cond, timeout: float, step: float = 0.02) -> bool:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if cond():
            return True
        time.sleep(step)
    return cond()


def transition(probe, node_name: str, tid: int) -> bool:
    """Ask ``/<node_name>/change_state`` for lifecycle transition ``tid``; whether it succeeded."""
    from lifecycle_msgs.msg import Transition
    from lifecycle_msgs.srv import ChangeState
    cli = probe.create_client(ChangeState, f"/{node_name}/change_state")
    try:
        return call(probe, cli, ChangeState.Request(transition=Transition(id=tid))).success
    finally:
        probe.destroy_client(cli)


def lifecycle_state(probe, node_name: str) -> str:
    """The label of the lifecycle node's current state ('unconfigured', 'inactive', 'active', ...)."""
    from lifecycle_msgs.srv import GetState
    cli = probe.create_client(GetState, f"/{node_name}/get_state")
    try:
        return call(probe, cli, GetState.Request()).current_state.label
    finally:
        probe.destroy_client(cli)


def publish_until(pub, make_msg, arrived, tries: int = 6, wait: float = 5.0) -> list:
    """Publish ``make_msg(i)`` for i = 0, 1, ... until ``arrived(msg)`` holds (at most ``tries`` messages, ``wait`` s
    each); the messages sent. A publisher that sees its subscriber matched may still lose its first message: the
    subscriber's side of the match can lag (best effort, no resend), so the first message of a test goes this way."""
    sent = []
    for i in range(tries):
        sent.append(make_msg(i))
        pub.publish(sent[-1])
        if wait_until(lambda: arrived(sent[-1]), wait):
            return sent
    raise TimeoutError(f"none of {tries} messages on {pub.topic_name} arrived")
