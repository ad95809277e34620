"""vsgg_nodes.image_cdr against rclpy's own serializer: every field equal, pixels not copied, and every truncated
or garbled buffer refused with a ValueError naming the field (never an IndexError or struct.error)."""
import struct

import numpy as np
import pytest

pytest.importorskip("rclpy", reason="ROS 2 wheels missing: run `make ros`")
from rclpy.serialization import serialize_message  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402

from vsgg_nodes import convert  # noqa: E402
from vsgg_nodes.image_cdr import image_from_cdr, max_serialized_bytes  # noqa: E402


def image(h, w, encoding="bgr8", channels=3, pad=0, frame_id="camera", sec=1796575461, nanosec=123456789):
    rng = np.random.default_rng(h * 31 + w)
    step = w * channels + pad
    msg = Image(height=h, width=w, encoding=encoding, is_bigendian=0, step=step)
    msg.header.frame_id, msg.header.stamp.sec, msg.header.stamp.nanosec = frame_id, sec, nanosec
    msg.data = rng.integers(0, 256, h * step, np.uint8).tobytes()
    return msg


CASES = [image(480, 640), image(3, 5, "rgb8"), image(4, 7, "mono8", 1), image(2, 3, "bgra8", 4, pad=3),
         image(1, 1, frame_id=""), image(2, 2, frame_id="a"), image(2, 2, frame_id="ab"), image(2, 2, frame_id="abc"),
         image(2, 2, frame_id="kamera_ünïcode"), image(0, 0)]


@pytest.mark.parametrize("msg", CASES, ids=lambda m: f"{m.width}x{m.height}-{m.encoding}-{m.header.frame_id!r}")
def test_fields_equal_rclpy_and_pixels_are_a_view(msg):
    raw = serialize_message(msg)
    got = image_from_cdr(raw)
    assert (got.header.stamp.sec, got.header.stamp.nanosec, got.header.frame_id) == \
        (msg.header.stamp.sec, msg.header.stamp.nanosec, msg.header.frame_id)
    assert (got.height, got.width, got.encoding, got.is_bigendian, got.step) == \
        (msg.height, msg.width, msg.encoding, msg.is_bigendian, msg.step)
    assert bytes(got.data) == bytes(msg.data) and got.data.readonly
    if msg.height:
        assert np.shares_memory(np.frombuffer(got.data, np.uint8), np.frombuffer(raw, np.uint8))
        assert np.array_equal(convert.image_to_bgr(got, 10**7), convert.image_to_bgr(msg, 10**7))
        assert convert.stamp_of(got) == convert.stamp_of(msg)


def test_big_endian_encapsulation():
    def s(text):
        b = text.encode() + b"\0"
        return struct.pack(">I", len(b)) + b
    body = struct.pack(">iI", 7, 9) + s("cam") + struct.pack(">II", 1, 2) + s("mono8")
    body += b"\1" + b"\0" * (-(len(body) + 1) % 4) + struct.pack(">II", 2, 2) + b"\x05\x06"
    got = image_from_cdr(b"\x00\x00\x00\x00" + body)
    assert (got.header.stamp.sec, got.header.stamp.nanosec, got.header.frame_id, got.height, got.width,
            got.encoding, got.is_bigendian, got.step, bytes(got.data)) == (7, 9, "cam", 1, 2, "mono8", 1, 2, b"\5\6")


def test_every_truncation_and_garbage_is_a_named_value_error():
    raw = serialize_message(image(2, 3, frame_id="cam"))
    for n in range(len(raw)):
        with pytest.raises(ValueError, match="image CDR"):
            image_from_cdr(raw[:n])
    with pytest.raises(ValueError, match="encapsulation"):
        image_from_cdr(b"\x00\x0a\x00\x00" + raw[4:])
    bad = bytearray(raw)
    bad[12:16] = struct.pack("<I", 10**6)  # frame_id length far past the end
    with pytest.raises(ValueError, match="header.frame_id"):
        image_from_cdr(bytes(bad))
    bad = bytearray(raw)
    bad[16 + 3] = ord("x")  # the NUL of "cam" overwritten
    with pytest.raises(ValueError, match="NUL"):
        image_from_cdr(bytes(bad))
    rng = np.random.default_rng(0)
    for _ in range(300):
        junk = b"\x00\x01\x00\x00" + rng.integers(0, 256, rng.integers(0, 80), np.uint8).tobytes()
        try:
            image_from_cdr(junk)
        except ValueError:
            pass


def test_byte_limit_admits_every_image_within_the_pixel_limit():
    widest = image(480, 640, "bgra8", 4, pad=64, frame_id="f" * 200)  # widest encoding, padded rows, long frame id
    assert len(serialize_message(widest)) <= max_serialized_bytes(640 * 480)
    assert max_serialized_bytes(640 * 480) < 3_000_000  # the 3 MB image of the node test is over it
