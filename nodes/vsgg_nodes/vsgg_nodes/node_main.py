"""The ``main()`` every vsgg node shares: check that DDS stays on loopback, init rclpy, spin, shut down cleanly."""
from __future__ import annotations

import sys
from typing import Callable

from vsgg_nodes import dds_env


def run_node(make_node: Callable, args: list[str] | None = None, threads: int = 2) -> int:
    """Create the node with ``make_node()`` inside an rclpy context and spin it on a multi-threaded executor
    (services and parameter changes stay responsive while a callback runs) until shutdown or Ctrl-C.

    Exits with status 1 before any context exists when the environment could let DDS traffic leave the machine
    (vsgg_nodes.dds_env)."""
    try:
        dds_env.check()
    except RuntimeError as e:
        print(e, file=sys.stderr)
        return 1
    import rclpy
    from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor

    try:
        with rclpy.init(args=args):
            node = make_node()
            executor = MultiThreadedExecutor(num_threads=threads)
            executor.add_node(node)
            try:
                executor.spin()
            finally:
                close = getattr(node, "close", None)
                if close is not None:
                    close()
                node.destroy_node()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    return 0
