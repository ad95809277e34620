"""Keep freed frame-sized buffers in the process instead of handing them back to the kernel (glibc malloc only).

A process that moves camera frames allocates and frees buffers of about 1 MB (640x480 BGR is 921,600 bytes) many
times a second: DDS receive buffers, rclpy's message conversion, ZeroMQ messages, the detector's input tensor.
glibc serves every allocation above ``M_MMAP_THRESHOLD`` (128 KB at start; it only adapts when a free happens to
raise it) with a fresh ``mmap``, so each new buffer costs a page fault per 4 KB page: about 225 faults, 0.3 to
0.5 ms, per frame-sized buffer on this machine. Measured with a 640x480 sensor_msgs/Image between two processes
over Fast DDS shared memory: publish -> callback 2.8 ms median by default, 1.5 ms with ``keep_freed_buffers()``
in both processes.

``keep_freed_buffers()`` raises the mmap threshold (allocations up to ``mmap_threshold`` come from the heap and
are reused after ``free``) and the trim threshold (up to ``trim_threshold`` of free heap is kept rather than
returned). The memory this can hold beyond the live data is bounded by ``trim_threshold`` per malloc arena.
It calls ``mallopt(3)`` through ctypes; on other C libraries (musl, macOS, Windows) it does nothing. Used by the
ROS processes (node_main.run_node, the bench roles); ``vsgg run`` does without it, as it made no difference to the
detector's in-process time there (``vsgg bench detector``: 22.5 vs 22.8 ms median).
"""
from __future__ import annotations

import ctypes
import ctypes.util
import sys

# mallopt(3) parameter numbers, from glibc's <malloc.h>
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD_BYTES = 16 << 20    # above a 1080p BGR frame (6.2 MB)
MMAP_THRESHOLD_MAX = 32 << 20      # glibc's documented ceiling on 64-bit (HEAP_MAX_SIZE / 2)
TRIM_THRESHOLD_BYTES = 64 << 20


def keep_freed_buffers(mmap_threshold: int = MMAP_THRESHOLD_BYTES, trim_threshold: int = TRIM_THRESHOLD_BYTES) -> bool:
    """Tune glibc malloc for frame-sized buffers (see the module docstring). True when both settings took effect,
    False where the C library is not glibc or refused a value. Call it once, early in the process.

    Raises ValueError unless 0 < mmap_threshold <= 32 MB and trim_threshold >= mmap_threshold (glibc itself
    accepts nonsense silently)."""
    if not 0 < mmap_threshold <= MMAP_THRESHOLD_MAX:
        raise ValueError(f"mmap_threshold: must be in (0, {MMAP_THRESHOLD_MAX}] bytes, got {mmap_threshold}")
    if trim_threshold < mmap_threshold:
        raise ValueError(f"trim_threshold: must be >= mmap_threshold ({mmap_threshold}), got {trim_threshold}")
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # no libc by that name, or a C library without mallopt (musl)
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    # glibc returns 1 on success, 0 on a bad value
    return bool(mallopt(M_MMAP_THRESHOLD, int(mmap_threshold)) == 1 and
                mallopt(M_TRIM_THRESHOLD, int(trim_threshold)) == 1)
