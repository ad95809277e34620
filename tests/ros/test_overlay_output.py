"""scene_graph_node's ``overlay`` topic across processes, and its refusal where there are no pixels.

With publish_overlay on, every image sent to image_raw (a real photo with a person: scikit-image's astronaut) comes
back on ``overlay`` with the same size, encoding (rgb8 and bgr8 both tried), stamp and frame_id, and differs from the
input along the border of every box of the graph the node published for that frame. With input 'detections' the
parameter is refused at configure with the reason. (Off, the default, no overlay topic exists:
test_scene_graph_node.)"""
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("rclpy", reason="ROS 2 wheels missing: run `make ros`")
cv2 = pytest.importorskip("cv2")
from builtin_interfaces.msg import Time  # noqa: E402
from lifecycle_msgs.msg import Transition  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from std_msgs.msg import Header  # noqa: E402

from graph_follower import Follower  # noqa: E402
from ros_processes import lifecycle_state, publish_until, start, stop, transition, wait_until  # noqa: E402
from vsgg_nodes import convert  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
NS = "/ovl"


def border_pixels(box_xyxy, w: int, h: int) -> tuple[np.ndarray, np.ndarray]:
    """(rows, cols) of the pixels on the four edges of a box (rounded to whole pixels, clipped to the image)."""
    x1, y1, x2, y2 = (int(round(v)) for v in box_xyxy)
    xs, ys = np.arange(max(x1, 0), min(x2, w - 1) + 1), np.arange(max(y1, 0), min(y2, h - 1) + 1)
    edges = [(np.full(len(xs), y), xs) for y in (y1, y2) if 0 <= y < h]
    edges += [(ys, np.full(len(ys), x)) for x in (x1, x2) if 0 <= x < w]
    if not edges:
        return np.zeros(0, int), np.zeros(0, int)
    return np.concatenate([r for r, _ in edges]), np.concatenate([c for _, c in edges])


def test_overlay_images_match_the_input_and_show_the_boxes(probe, tmp_path):
    bgr = cv2.imread(str(ROOT / "tests" / "data" / "images" / "astronaut.jpg"))
    h, w = bgr.shape[:2]
    log = open(tmp_path / "scene_graph_node.log", "w")
    sg = start("scene_graph_node", {"publish_overlay": True, "max_frame_age_s": 0.0},
               ["-r", f"__ns:={NS}", "-r", "image_raw:=/ovl_cam/image_raw"], log=log)
    name = f"{NS.strip('/')}/scene_graph_node"
    got = {}
    try:
        assert wait_until(lambda: probe.count_publishers(f"{NS}/scene_graph_node/transition_event") > 0, 30)
        assert transition(probe, name, Transition.TRANSITION_CONFIGURE) is True
        assert transition(probe, name, Transition.TRANSITION_ACTIVATE) is True
        follow = Follower(probe, NS)
        probe.create_subscription(Image, f"{NS}/overlay", lambda m: got.__setitem__(convert.stamp_of(m), m), 10)
        pub = probe.create_publisher(Image, "/ovl_cam/image_raw", 10)
        assert wait_until(lambda: pub.get_subscription_count() > 0, 30), "the node does not subscribe image_raw"
        assert wait_until(lambda: probe.count_publishers(f"{NS}/overlay") > 0, 30), "no overlay publisher"

        def frame(k: int, enc: str) -> Image:
            m = Image(header=Header(stamp=Time(sec=2000 + k, nanosec=250_000_000), frame_id="cam_ovl"), height=h,
                      width=w, encoding=enc, is_bigendian=0, step=w * 3)
            m.data = np.ascontiguousarray(bgr[:, :, ::-1] if enc == "rgb8" else bgr).tobytes()
            return m

        def arrived(m) -> bool:
            return convert.stamp_of(m) in got and convert.stamp_of(m) in follow.by_stamp

        # a first frame until it comes back (the node's subscription has matched this publisher), then 5 rgb8 and
        # 2 bgr8 frames one at a time: the node never supersedes one
        sent = [publish_until(pub, lambda i: frame(i, "rgb8"), arrived)[-1]]
        k0 = sent[0].header.stamp.sec - 2000
        for k in range(k0 + 1, k0 + 8):
            sent.append(frame(k, "rgb8" if len(sent) < 6 else "bgr8"))
            pub.publish(sent[-1])
            assert wait_until(lambda: arrived(sent[-1]), 30), f"frame {k}: no overlay"
        boxes_checked = 0
        for m in sent:
            enc, stamp = m.encoding, convert.stamp_of(m)
            pixels = np.frombuffer(m.data, np.uint8).reshape(h, w, 3)
            o = got[stamp]
            assert (o.height, o.width, o.step, o.encoding, o.header.frame_id) == (h, w, w * 3, enc, "cam_ovl")
            out = np.frombuffer(o.data, np.uint8).reshape(h, w, 3)
            assert (out != pixels).any()  # at least the status line is drawn on every frame
            with follow.lock:
                graph = follow.by_stamp[stamp]
            for e in graph.entities.values():  # each box is drawn where the graph has it
                rows, cols = border_pixels(e.box_xyxy, w, h)
                if not len(rows):  # a predicted box wholly outside the frame: nothing of it is visible
                    continue
                changed = (out[rows, cols] != pixels[rows, cols]).any(axis=1)
                assert changed.mean() > 0.9, (stamp, e, changed.mean())
                boxes_checked += 1
        assert boxes_checked >= 3, "the detector found no one in astronaut.jpg: no box to check"
        assert sg.poll() is None, "scene_graph_node died"
        # deactivate destroys the overlay publisher with the others
        assert transition(probe, name, Transition.TRANSITION_DEACTIVATE) is True
        assert wait_until(lambda: probe.count_publishers(f"{NS}/overlay") == 0, 10)
    finally:
        assert stop(sg) is not None
        log.close()


def test_publish_overlay_with_detections_input_is_refused_at_configure(probe, tmp_path):
    log_path = tmp_path / "scene_graph_node.log"
    log = open(log_path, "w")
    sg = start("scene_graph_node", {"input": "detections", "publish_overlay": True}, ["-r", "__ns:=/ovl_bad"],
               log=log)
    name = "ovl_bad/scene_graph_node"
    try:
        assert wait_until(lambda: probe.count_publishers("/ovl_bad/scene_graph_node/transition_event") > 0, 30)
        assert transition(probe, name, Transition.TRANSITION_CONFIGURE) is False
        assert lifecycle_state(probe, name) == "unconfigured"
        assert sg.poll() is None
    finally:
        stop(sg)
        log.close()
    assert "publish_overlay: needs input 'image'" in log_path.read_text()
