"""Child processes of the reliability suite: `vsgg run` services, `vsgg watch` watchers, free loopback ports.

Every child writes stdout and stderr to files in a work folder (never a pipe that could fill up and block it), runs
niced, and is killed by ``Child.stop()`` / the context manager if it outlives its run. ``tracebacks()`` lists the
children whose stderr shows a Python traceback (an outcome of its own in the report).
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from engine.bench.reliability.parser_targets import ROOT

NICE = 10  # the machine is shared: children yield to interactive work


def free_port_pair() -> int:
    """A loopback TCP port P with P + 1 also free (``vsgg run --zmq`` binds snapshots on port + 1)."""
    for _ in range(200):
        with socket.socket() as a:
            a.bind(("127.0.0.1", 0))
            port = a.getsockname()[1]
            if port >= 65534:
                continue
            with socket.socket() as b:
                try:
                    b.bind(("127.0.0.1", port + 1))
                except OSError:
                    continue
            return port
    raise RuntimeError("no two consecutive free loopback ports found")


class Child:
    """A child process with its output in ``folder``/``name``.out / .err."""

    def __init__(self, name: str, argv: list[str], folder: Path):
        self.name, self.argv = name, argv
        self.out_path, self.err_path = folder / f"{name}.out", folder / f"{name}.err"
        self._out, self._err = open(self.out_path, "w"), open(self.err_path, "w")
        env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
        self.proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=self._out, stderr=self._err,
                                     stdin=subprocess.DEVNULL, preexec_fn=lambda: os.nice(NICE))
        self.pid = self.proc.pid

    def wait(self, timeout: float) -> int | None:
        """Exit status, or None when it is still running after ``timeout`` seconds."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def signal(self, sig: int) -> None:
        if self.proc.poll() is None:
            os.kill(self.pid, sig)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        rc = self.proc.wait()
        self._out.close()
        self._err.close()
        return rc

    def stdout(self) -> str:
        self._out.flush()
        return self.out_path.read_text(errors="replace")

    def stderr(self) -> str:
        self._err.flush()
        return self.err_path.read_text(errors="replace")

    def wait_for_output(self, text: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.stdout():
                return True
            if self.proc.poll() is not None:
                return text in self.stdout()
            time.sleep(0.05)
        return False


def vsgg(*args: str) -> list[str]:
    """argv of a vsgg command run by this interpreter (the installed console script may be elsewhere)."""
    return [sys.executable, "-m", "engine.cli", *args]


def run_service_argv(det: Path, port: int, final: Path, model: str, linger: float = 3.0) -> list[str]:
    """`vsgg run` replaying ``det`` at its frame rate on tcp://127.0.0.1:``port`` (snapshots on port + 1)."""
    return vsgg("run", "--source", f"mot:{det}", "--zmq", f"tcp://127.0.0.1:{port}", "--final-graph", str(final),
                "--realtime", "--linger", f"{linger:g}", "--quiet", "--model", model, "transport.heartbeat_s=0.2")


def watch_argv(pub: str, snapshot: str, final: Path, timeout: float = 90.0) -> list[str]:
    return vsgg("watch", pub, "--snapshot", snapshot, "--heartbeat-timeout", "1", "--timeout", f"{timeout:g}",
                "--status-every", "0", "--final-graph", str(final))


def same_graph(a: Path, b: Path) -> bool:
    """Both JSON graph files exist and hold the same graph (engine.graph.graph_json form)."""
    try:
        return json.loads(a.read_text()) == json.loads(b.read_text())
    except (OSError, ValueError):
        return False


def graph_size(path: Path) -> tuple[int, int]:
    try:
        g = json.loads(path.read_text())
        return len(g["entities"]), len(g["relations"])
    except (OSError, ValueError, KeyError):
        return (-1, -1)


def has_traceback(child: Child) -> bool:
    return "Traceback (most recent call last)" in child.stderr()
