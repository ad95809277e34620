"""video_source_node: publishes sensor_msgs/Image (bgr8) from a video file or a camera index at its own rate.

So the vsgg pipeline runs without a camera driver package. Topic ``image_raw`` (relative; remap it), sensor-data
QoS (best effort, depth 1), ``header.stamp`` = the node clock when the frame is published, ``header.frame_id`` =
the ``frame_id`` parameter. Parameters: node_params.VIDEO_SOURCE_NODE. At the end of a file (or after
``max_frames``) the node logs the count and exits, unless ``loop`` restarts the file.
"""
from __future__ import annotations

import cv2
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image

from vsgg_nodes import convert
from vsgg_nodes.node_main import run_node
from vsgg_nodes.node_params import VIDEO_SOURCE_NODE
from vsgg_nodes.scene_graph_node import descriptor


class VideoSourceNode(Node):
    """Reads frames with OpenCV on a timer and publishes them; the count is in ``published``."""

    def __init__(self, **kwargs):
        super().__init__("video_source_node", **kwargs)
        for spec in VIDEO_SOURCE_NODE:
            self.declare_parameter(spec.name, spec.default, descriptor(spec))
        v = {s.name: self.get_parameter(s.name).value for s in VIDEO_SOURCE_NODE}
        bad = [r for r in (s.check(v[s.name]) for s in VIDEO_SOURCE_NODE) if r]
        if not v["source"]:
            bad.append("source: a video file path or a camera index is required")
        if bad:
            raise ValueError("; ".join(bad))
        self.v = v
        self._cap = self._open()
        fps = self._cap.get(cv2.CAP_PROP_FPS) or 30.0
        rate = v["rate_hz"] or fps
        self.published = 0
        self._pub = self.create_publisher(Image, "image_raw", qos_profile_sensor_data)
        self._timer = self.create_timer(1.0 / rate, self._tick)
        self.get_logger().info(f"publishing {v['source']} at {rate:.2f} Hz on {self._pub.topic_name}")

    def _open(self):
        src = self.v["source"]
        cap = cv2.VideoCapture(int(src) if src.isdigit() else src)
        if not cap.isOpened():
            raise ValueError(f"source: {src!r} cannot be opened by OpenCV")
        return cap

    def _tick(self) -> None:
        v = self.v
        if v["max_frames"] and self.published >= v["max_frames"]:
            return self._stop("max_frames reached")
        ok, img = self._cap.read()
        if not ok and v["loop"]:
            self._cap.release()
            self._cap = self._open()
            ok, img = self._cap.read()
        if not ok:
            return self._stop("end of video")
        if v["width"] and v["height"]:
            img = cv2.resize(img, (v["width"], v["height"]), interpolation=cv2.INTER_AREA)
        now = self.get_clock().now().to_msg()
        self._pub.publish(convert.image_message(img, v["frame_id"], (now.sec, now.nanosec)))
        self.published += 1

    def _stop(self, why: str) -> None:
        self._timer.cancel()
        self._cap.release()
        self.get_logger().info(f"{why}: {self.published} frames published")
        self.context.try_shutdown()  # ends the executor's spin: the process exits with status 0

    def close(self) -> None:
        self._cap.release()


def main(args=None) -> int:
    return run_node(VideoSourceNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
