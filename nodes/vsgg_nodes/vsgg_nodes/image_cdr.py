"""Read a serialized sensor_msgs/Image (CDR, as a raw rclpy subscription hands it over) without copying its pixels.

scene_graph_node takes its images with ``raw=True`` and parses them here, on its inference thread, because
rclpy's own conversion to a Python message costs about 1.1 ms per 640x480 frame (a copy into an ``array.array``,
holding the GIL). Here the pixels stay a view into the received buffer. Pure Python, no rclpy.

Layout (OMG CDR / XCDR1 and XCDR2 agree for this type, which has no member wider than 4 bytes): a 4-byte
encapsulation header (2-byte representation id: 0x0001 CDR_LE, 0x0007 CDR2_LE, 0x0000 CDR_BE, 0x0006 CDR2_BE, then
2 option bytes), then, each primitive aligned to its size counted from the end of that header:
``header.stamp.sec`` int32, ``header.stamp.nanosec`` uint32, ``header.frame_id`` string, ``height`` uint32,
``width`` uint32, ``encoding`` string, ``is_bigendian`` uint8, ``step`` uint32, ``data`` uint8 sequence. A
string is a uint32 length counting its terminating NUL, then the bytes and the NUL; a sequence is a uint32 count,
then the elements.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

_ORDER = {b"\x00\x01": "<", b"\x00\x07": "<", b"\x00\x00": ">", b"\x00\x06": ">"}
MAX_STRING_BYTES = 4096  # frame_id and encoding: a longer one is a malformed message, not a camera name


def max_serialized_bytes(max_pixels: int) -> int:
    """The most bytes a serialized Image of at most ``max_pixels`` pixels may take: 4 bytes per pixel (bgra8, the
    widest accepted encoding), doubled for row padding, plus 64 KiB for the header and strings. scene_graph_node
    drops a larger message as soon as it takes it, before parsing or keeping it."""
    return 8 * int(max_pixels) + 65536


@dataclass(frozen=True)
class Time:
    sec: int
    nanosec: int


@dataclass(frozen=True)
class Header:
    stamp: Time
    frame_id: str


@dataclass(frozen=True)
class CdrImage:
    """The fields of a sensor_msgs/Image, with the same names, so vsgg_nodes.convert reads it like a message.
    ``data``: a read-only memoryview of the pixel bytes inside the serialized buffer (kept alive by the view)."""

    header: Header
    height: int
    width: int
    encoding: str
    is_bigendian: int
    step: int
    data: memoryview


class _Reader:
    def __init__(self, buf: memoryview, order: str):
        self.buf, self.order, self.pos = buf, order, 4  # alignment counts from the end of the 4-byte header

    def _take(self, size: int, align: int, field: str) -> int:
        self.pos += -(self.pos - 4) % align
        start, self.pos = self.pos, self.pos + size
        if self.pos > len(self.buf):
            raise ValueError(f"image CDR: {field} runs past the end of the {len(self.buf)}-byte message")
        return start

    def num(self, fmt: str, field: str) -> int:
        size = struct.calcsize(fmt)
        return struct.unpack_from(self.order + fmt, self.buf, self._take(size, size, field))[0]

    def view(self, n: int, field: str) -> memoryview:
        start = self._take(n, 1, field)
        return self.buf[start: self.pos]

    def string(self, field: str) -> str:
        n = self.num("I", field + " length")
        if not 1 <= n <= MAX_STRING_BYTES:
            raise ValueError(f"image CDR: {field} length {n} is not in 1..{MAX_STRING_BYTES} (with its NUL)")
        raw = self.view(n, field)
        if raw[-1] != 0:
            raise ValueError(f"image CDR: {field} is not NUL-terminated")
        try:
            return bytes(raw[:-1]).decode("utf-8")
        except UnicodeDecodeError as e:
            raise ValueError(f"image CDR: {field} is not UTF-8 ({e})") from None


def image_from_cdr(buf: bytes | bytearray | memoryview) -> CdrImage:
    """A serialized sensor_msgs/Image -> CdrImage (no pixel copy). Raises ValueError naming the field when the
    bytes do not form an Image: unknown encapsulation, a length running past the end, a bad string."""
    mv = memoryview(buf).cast("B")
    if len(mv) < 4:
        raise ValueError(f"image CDR: {len(mv)} bytes is shorter than the 4-byte encapsulation header")
    order = _ORDER.get(bytes(mv[:2]))
    if order is None:
        raise ValueError(f"image CDR: unsupported encapsulation 0x{bytes(mv[:2]).hex()} (plain CDR expected)")
    r = _Reader(mv, order)
    stamp = Time(r.num("i", "header.stamp.sec"), r.num("I", "header.stamp.nanosec"))
    header = Header(stamp, r.string("header.frame_id"))
    height, width = r.num("I", "height"), r.num("I", "width")
    encoding = r.string("encoding")
    is_bigendian, step = r.num("B", "is_bigendian"), r.num("I", "step")
    data = r.view(r.num("I", "data length"), "data").toreadonly()
    return CdrImage(header, height, width, encoding, is_bigendian, step, data)
