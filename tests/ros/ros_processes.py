"""Node processes for the ROS tests: start them with the run's DDS environment, drive lifecycle transitions, stop."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time


def start(module: str, params: dict, name_args: list[str] | None = None, log=None) -> subprocess.Popen:
    """``python -m vsgg_nodes.<module> --ros-args -p k:=v ...`` in its own process group (inherits os.environ)."""
    cmd = [sys.executable, "-m", f"vsgg_nodes.{module}", "--ros-args"]
    for k, v in params.items():
        cmd += ["-p", f"{k}:={str(v).lower() if isinstance(v, bool) else v}"]
    cmd += name_args or []
    return subprocess.Popen(cmd, stdout=log or subprocess.DEVNULL, stderr=subprocess.STDOUT,
                            env=dict(os.environ), start_new_session=True)


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
