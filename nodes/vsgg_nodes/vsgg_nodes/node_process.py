"""Node processes started by vsgg itself (``vsgg ros-launch``, ``vsgg bench ros``): command line, start, stop.

Each child runs in its own session, so a Ctrl-C typed in the terminal reaches only the launcher, which then takes
the lifecycle node down in order (deactivate, cleanup) before it stops the children with SIGINT. A child also gets
SIGTERM from the kernel when the launcher dies without cleaning up (PR_SET_PDEATHSIG), so no node outlives it.
Children inherit ``os.environ``: call ``dds_env.apply()`` first, and they share the launcher's loopback DDS domain.
"""
from __future__ import annotations

import ctypes
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from vsgg_nodes.launch_plan import PACKAGE, NodePlan, ros_arguments

_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """Ask the kernel to send this process SIGTERM when its parent dies (Linux PR_SET_PDEATHSIG)."""
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def executable(package: str, name: str) -> list[str]:
    """The command that runs ``name`` of ``package``: vsgg's nodes as ``python -m`` of this interpreter (their
    entry points may not be on PATH in a pip install); others from ``<prefix>/lib/<package>/<name>`` of an
    AMENT_PREFIX_PATH entry or this venv. FileNotFoundError naming the package when it is not installed."""
    if package == PACKAGE:
        return [sys.executable, "-m", f"{PACKAGE}.{name}"]
    prefixes = [p for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p] + [sys.prefix]
    for prefix in prefixes:
        exe = Path(prefix) / "lib" / package / name
        if exe.is_file() and os.access(exe, os.X_OK):
            return [str(exe)]
    found = shutil.which(name)
    if found:
        return [found]
    raise FileNotFoundError(f"camera: {package}'s executable {name!r} is not installed (looked in lib/{package} of "
                            f"{', '.join(prefixes)}); install the package, or use camera:=video_source_node")


def command(node: NodePlan) -> list[str]:
    """The full command line of a planned node."""
    return executable(node.package, node.executable) + ros_arguments(node)


def start(cmd: list[str], log=None, die_with_parent_here: bool = True) -> subprocess.Popen:
    """Start ``cmd`` in its own session with ``os.environ``; output to ``log`` (a file) or this process's.

    ``die_with_parent_here``: set PR_SET_PDEATHSIG between fork and exec. Only safe while this process has a
    single thread (a preexec_fn may deadlock otherwise); a child started later calls ``die_with_parent()``
    itself."""
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT if log is not None else None,
                            env=dict(os.environ), start_new_session=True,
                            preexec_fn=die_with_parent if die_with_parent_here else None)


def stop(proc: subprocess.Popen, timeout_s: float = 10.0) -> int:
    """SIGINT to the child's process group (rclpy shuts down cleanly on it), SIGKILL after ``timeout_s``; the
    exit status (negative: killed by that signal)."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGINT)
            proc.wait(timeout_s)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
    return proc.wait()
