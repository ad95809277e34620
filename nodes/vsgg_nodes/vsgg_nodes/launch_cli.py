"""`vsgg ros-launch live_camera [name:=value ...]`: start the ROS 2 camera + scene graph nodes, as ros2 launch would.

For machines without the ``ros2`` command (e.g. the pip-installed ROS 2 wheels): the nodes and parameters of
``launch/live_camera.launch.py`` (both come from vsgg_nodes.launch_plan), started as processes with the loopback
DDS environment (vsgg_nodes.dds_env). The launcher itself drives scene_graph_node through its lifecycle services:
configure, then activate. On Ctrl-C (SIGINT) or SIGTERM it deactivates and cleans the node up, then stops every
child; exit status 130 / 143. If scene_graph_node dies or refuses a transition the launcher stops the rest and
exits 1; a camera that ends (video_source_node at the end of its file) leaves the graph node running.
"""
from __future__ import annotations

import argparse
import signal
import threading
import time
from pathlib import Path

from vsgg_nodes import dds_env, node_process
from vsgg_nodes.launch_plan import ARGUMENTS, LAUNCH_NAME, plan

PREFIX = "[ros-launch]"


def say(text: str) -> None:
    print(f"{PREFIX} {text}", flush=True)


def parse_assignments(items: list[str]) -> dict[str, str]:
    """``["name:=value", ...]`` -> {name: value}; ValueError naming the malformed or repeated item."""
    out = {}
    for item in items:
        name, sep, value = item.partition(":=")
        if not sep or not name:
            raise ValueError(f"{item!r}: launch arguments are written name:=value")
        if name in out:
            raise ValueError(f"{name}: given twice")
        out[name] = value
    return out


def add_parser(parser: argparse.ArgumentParser):
    parser.add_argument("launch", choices=[LAUNCH_NAME], help="the launch description to start")
    parser.add_argument("assignments", nargs="*", metavar="name:=value", help="launch arguments (listed below)")
    parser.add_argument("--startup-timeout", type=float, default=120.0, metavar="S",
                        help="seconds to wait for each node's lifecycle service and each transition")
    parser.add_argument("--log-dir", type=Path, default=None,
                        help="folder for the nodes' rcl logs (default: ROS_LOG_DIR, else ~/.ros/log)")
    width = max(len(a.name) for a in ARGUMENTS)
    parser.epilog = "launch arguments of live_camera:\n" + "\n".join(
        f"  {a.name.ljust(width)}  {a.description}" + (f" [{', '.join(a.choices)}]" if a.choices else "")
        + (f" (default: {a.default})" if a.default else "") for a in ARGUMENTS)
    return run


class _Signals:
    """SIGINT/SIGTERM set ``stop`` (and remember which came first) instead of raising in the middle of a call."""

    def __init__(self):
        self.stop, self.signum = threading.Event(), 0
        self._old = {s: signal.signal(s, self._on) for s in (signal.SIGINT, signal.SIGTERM)}

    def _on(self, signum, frame) -> None:
        self.signum = self.signum or signum
        self.stop.set()

    def restore(self) -> None:
        for s, h in self._old.items():
            signal.signal(s, h)


def run(args) -> int:
    if args.startup_timeout <= 0:
        raise ValueError(f"--startup-timeout: must be > 0, got {args.startup_timeout}")
    camera, graph = plan(parse_assignments(args.assignments))
    commands = [(graph, node_process.command(graph)), (camera, node_process.command(camera))]
    settings = dds_env.apply(log_dir=args.log_dir)
    say(f"DDS kept on this machine: ROS_DOMAIN_ID={settings[dds_env.DOMAIN_VAR]}, "
        f"{dds_env.RANGE_VAR}=LOCALHOST, profile {settings[dds_env.PROFILE_VAR]}")
    sig = _Signals()
    procs, status = [], 0
    ctx = node = executor = spinner = client = None
    try:
        for plan_, cmd in commands:  # children first: no thread of this process exists yet (preexec_fn)
            p = node_process.start(cmd)
            procs.append((plan_, p))
            say(f"started {plan_.fqn} ({plan_.package} {plan_.executable}), pid {p.pid}")
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.signals import SignalHandlerOptions

        from vsgg_nodes.lifecycle_client import LifecycleClient
        ctx = rclpy.context.Context()
        # args=[]: sys.argv holds the launch arguments, not ROS arguments; our signal handlers stay installed
        rclpy.init(args=[], context=ctx, signal_handler_options=SignalHandlerOptions.NO)
        node = rclpy.create_node("vsgg_ros_launch", context=ctx)
        executor = SingleThreadedExecutor(context=ctx)
        executor.add_node(node)
        spinner = threading.Thread(target=executor.spin, name="ros-launch-executor", daemon=True)
        spinner.start()
        client = LifecycleClient(node, graph.fqn)
        status = _bring_up(client, procs, args.startup_timeout, sig.stop)
        if status == 0 and not sig.stop.is_set():
            say("running; Ctrl-C to stop")
            status = _watch(procs, sig.stop)
    finally:
        if client is not None:
            _take_down(client, procs)
        for plan_, p in reversed(procs):
            rc = node_process.stop(p)
            say(f"stopped {plan_.fqn} (exit status {rc})")
        if executor is not None:
            executor.shutdown(timeout_sec=2)
        if spinner is not None:
            spinner.join(timeout=5)
        if node is not None:
            node.destroy_node()
        if ctx is not None:
            ctx.try_shutdown()
        sig.restore()
    if sig.signum:
        say(f"stopped by {signal.Signals(sig.signum).name}")
        return 128 + sig.signum
    return status


def _graph_alive(procs) -> bool:
    return procs[0][1].poll() is None


def _bring_up(client, procs, timeout_s: float, stop: threading.Event) -> int:
    """configure then activate; 0 on success, 1 when the node refused, failed or died (nothing when stopped)."""
    if not client.wait_for_services(timeout_s, stop):
        if not stop.is_set():
            say(f"error: {client.target} offered no lifecycle service within {timeout_s:g} s"
                + ("" if _graph_alive(procs) else " (its process exited)"))
        return 0 if stop.is_set() else 1
    for transition in ("configure", "activate"):
        t0 = time.monotonic()
        say(f"{transition} {client.target} ...")
        ok = client.change(transition, timeout_s, stop)
        if stop.is_set():
            return 0
        if not ok:
            why = "refused or failed (see the node's log)" if ok is False else f"no answer within {timeout_s:g} s"
            say(f"error: {transition} {client.target}: {why}")
            return 1
        say(f"{transition} {client.target}: ok ({time.monotonic() - t0:.1f} s)")
    return 0


def _watch(procs, stop: threading.Event) -> int:
    """Until a signal (0) or scene_graph_node's death (1); a camera that exits is reported once."""
    reported = set()
    while not stop.wait(0.2):
        for plan_, p in procs:
            rc = p.poll()
            if rc is None or plan_.fqn in reported:
                continue
            reported.add(plan_.fqn)
            say(f"{plan_.fqn} exited with status {rc}")
            if plan_.lifecycle:
                return 1
    return 0


def _take_down(client, procs) -> None:
    """Deactivate (when active) and clean up (when inactive) the lifecycle node, each step printed."""
    if not _graph_alive(procs):
        return
    state = client.settled_state(timeout_s=30.0)
    for frm, transition in (("active", "deactivate"), ("inactive", "cleanup")):
        if state != frm:
            continue
        ok = client.change(transition, timeout_s=15.0)
        say(f"{transition} {client.target}: {'ok' if ok else 'failed' if ok is False else 'no answer'}")
        if not ok:
            return
        state = "inactive" if transition == "deactivate" else "unconfigured"
