"""scene_graph_node's optional ``overlay`` topic: each processed frame with its scene graph drawn, as sensor_msgs/Image.

The drawing is engine.io.overlay's ``OverlayRenderer.render`` (the same as ``vsgg run --overlay``): tracked boxes
with their track ids and labels, relation arrows, the relation panel and a status line. The image has the input
frame's size (pixels), its ``header.stamp``, the node's output ``frame_id`` (the input's unless the ``frame_id``
parameter overrides it, as on every other output) and its channel order (``convert.overlay_encoding``: rgb8 or
bgr8). ``publish`` runs on the node's inference thread, never in an executor callback: drawing costs milliseconds.
"""
from __future__ import annotations

import numpy as np
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image

from engine.io.overlay import OverlayRenderer
from engine.types import SceneGraph
from vsgg_nodes import convert

# reliable: both reliable viewers (rviz's default) and best-effort ones match it; keep-last 2 never blocks the
# inference thread on a slow viewer (an old overlay is overwritten, not waited for)
OVERLAY_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=2, reliability=ReliabilityPolicy.RELIABLE)


class OverlayOutput:
    """The ``overlay`` publisher of one activation and the renderer of the current frame size."""

    def __init__(self, node):
        self.pub = node.create_publisher(Image, "overlay", OVERLAY_QOS)
        self._renderer: OverlayRenderer | None = None

    def publish(self, graph: SceneGraph, bgr: np.ndarray, input_encoding: str, frame_id: str,
                stamp: tuple[int, int]) -> None:
        """Draw ``graph`` (boxes in pixels of ``bgr``) on ``bgr``, an (H, W, 3) uint8 BGR frame that is not
        modified, and publish it with ``stamp`` (sec, nanosec) and ``frame_id``."""
        h, w = bgr.shape[:2]
        if self._renderer is None or self._renderer.size != (w, h):
            # a new camera size: a renderer (font scale, panel-corner memory) made for it
            self._renderer = OverlayRenderer((w, h))
        self.pub.publish(convert.image_message(self._renderer.render(graph, bgr), frame_id, stamp,
                                               convert.overlay_encoding(input_encoding)))
