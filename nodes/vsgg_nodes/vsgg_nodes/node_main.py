"""The ``main()`` every vsgg node shares: check that DDS stays on loopback, init rclpy, spin, shut down cleanly."""
from __future__ import annotations

import sys
from typing import Callable

from vsgg_nodes import dds_env
from vsgg_nodes.malloc_tuning import keep_freed_buffers


def run_node(make_node: Callable, args: list[str] | None = None) -> int:
    """Create the node with ``make_node()`` inside an rclpy context and spin it on a single-threaded executor
    until shutdown or Ctrl-C.

    Single-threaded because no callback of a vsgg node blocks (scene_graph_node runs inference on its own worker
    thread), so services and parameter changes stay responsive without a pool. rclpy's MultiThreadedExecutor hands
    every callback to a Python thread pool, and on this 2-core machine those extra threads fought the inference
    thread for the GIL: ``vsgg bench ros`` measured +13 to +20 ms per frame (median) over ZeroMQ with it, about
    +2 ms with the single-threaded executor.

    Exits with status 1 before any context exists when the environment could let DDS traffic leave the machine
    (vsgg_nodes.dds_env)."""
    try:
        dds_env.check()
    except RuntimeError as e:
        print(e, file=sys.stderr)
        return 1
    keep_freed_buffers()  # frame-sized DDS and image buffers reused, not page-faulted in afresh (-1.3 ms per image)
    import rclpy
    from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor

    try:
        with rclpy.init(args=args):
            node = make_node()
            executor = SingleThreadedExecutor()
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
