"""DetectorThread: order, bounded look-ahead, errors raised to the consumer at their frame, clean close."""
import threading
import time

import numpy as np
import pytest

from engine.detect.pipeline import DetectorThread
from engine.types import Detections


class CountingDetector:
    """A real (if trivial) detector: one box whose x is the image's first pixel value; records the calling thread."""

    def __init__(self, fail_at=None, delay=0.0):
        self.threads, self.fail_at, self.delay, self.calls = set(), fail_at, delay, 0

    def detect(self, image):
        self.threads.add(threading.current_thread().name)
        self.calls += 1
        if self.fail_at is not None and int(image[0, 0, 0]) == self.fail_at:
            raise ValueError(f"bad frame {self.fail_at}")
        time.sleep(self.delay)
        x = float(image[0, 0, 0])
        return Detections(np.array([[x, 0, x + 5, 5]], np.float32), np.array([0.9], np.float32),
                          np.zeros(1, np.int32))


def frames(n):
    for i in range(n):
        yield i, i / 10, np.full((4, 4, 3), i, np.uint8)


def test_frames_come_in_order_with_their_detections_from_another_thread():
    det = CountingDetector()
    got = list(DetectorThread(det, frames(50)))
    assert [f.index for f in got] == list(range(50))
    assert [float(f.dets.boxes_xyxy[0, 0]) for f in got] == [float(i) for i in range(50)]
    assert all(f.detect_ms >= 0 for f in got) and det.threads == {"vsgg-detector"}


def test_look_ahead_is_bounded():
    det = CountingDetector()
    it = iter(DetectorThread(det, frames(100), depth=2))
    next(it)
    time.sleep(0.3)
    assert det.calls <= 1 + 2 + 1   # the frame taken, the queue, and one waiting to be put
    it.close()


def test_an_error_is_raised_at_its_frame_in_the_consumer():
    seen = []
    with pytest.raises(ValueError, match="bad frame 7"):
        for f in DetectorThread(CountingDetector(fail_at=7), frames(20)):
            seen.append(f.index)
    assert seen == list(range(7))


def test_stopping_early_ends_the_thread():
    det = CountingDetector(delay=0.01)
    dt = DetectorThread(det, frames(10_000))
    for f in dt:
        if f.index == 3:
            break
    dt.close()
    assert not dt._thread.is_alive() and det.calls < 20


def test_depth_must_be_positive():
    with pytest.raises(ValueError, match="depth: must be >= 1"):
        DetectorThread(CountingDetector(), frames(1), depth=0)
