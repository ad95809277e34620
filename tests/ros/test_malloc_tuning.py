"""vsgg_nodes.malloc_tuning on a real image stream: a 640x480 sensor_msgs/Image received over Fast DDS costs hundreds
of page faults with glibc's default malloc settings and almost none with keep_freed_buffers() (a count, not a
timing: the machine is shared)."""
import json
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("rclpy", reason="ROS 2 wheels missing: run `make ros`")
from vsgg_nodes.malloc_tuning import keep_freed_buffers  # noqa: E402

HELPER = Path(__file__).with_name("image_faults.py")


def test_keep_freed_buffers_takes_effect_on_glibc_and_refuses_bad_values():
    for bad, name in (({"mmap_threshold": 1 << 30}, "mmap_threshold"), ({"mmap_threshold": 0}, "mmap_threshold"),
                      ({"trim_threshold": 1 << 20}, "trim_threshold")):
        with pytest.raises(ValueError, match=name):
            keep_freed_buffers(**bad)
    if not sys.platform.startswith("linux"):
        pytest.skip("mallopt is glibc's")
    assert keep_freed_buffers() is True


def faults_per_image(probe, tuned: int, topic: str) -> float:
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image
    pub = probe.create_publisher(Image, topic, qos_profile_sensor_data)
    img = np.random.default_rng(0).integers(0, 255, (480, 640, 3), np.uint8)
    proc = subprocess.Popen([sys.executable, str(HELPER), "--topic", topic, "--tuned", str(tuned)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    stop = threading.Event()

    def publish():
        while not stop.wait(1 / 50):
            msg = Image(height=480, width=640, encoding="bgr8", step=640 * 3)
            msg.data = img.tobytes()
            pub.publish(msg)

    t = threading.Thread(target=publish, daemon=True)
    t.start()
    try:
        out, _ = proc.communicate(timeout=90)
    finally:
        stop.set()
        t.join()
        probe.destroy_publisher(pub)
    lines = [ln for ln in out.splitlines() if ln.startswith("{")]
    assert proc.returncode == 0 and lines, out
    return json.loads(lines[-1])["faults_per_msg"]


def test_received_images_reuse_buffers_instead_of_faulting_pages_in(probe):
    default = faults_per_image(probe, 0, "/vsgg_test/faults_default")
    tuned = faults_per_image(probe, 1, "/vsgg_test/faults_tuned")
    # 921,600 bytes is 225 pages; by default every received image faults several such buffers in afresh
    assert default > 200, default
    assert tuned < 20, tuned
