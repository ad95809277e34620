"""DetectorThread: the detector stage off the caller's thread, so frame n+1 is detected while frame n is tracked,
related and published. ONNX Runtime releases the GIL while it runs, so on two cores the stages overlap and a frame's
total latency is not the sum of all stages.
"""
from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass
from typing import Iterable

import numpy as np

from engine.types import Detections


@dataclass(frozen=True)
class DetectedFrame:
    """One source frame with its detections: index (frame number of the source), t (s, the source's time base),
    image (H, W, 3) uint8 BGR, dets (labels index the detector's vocabulary), detect_ms (wall time of ``detect``)."""

    index: int
    t: float
    image: np.ndarray
    dets: Detections
    detect_ms: float


_END = object()


class DetectorThread:
    """Iterate to get DetectedFrames in source order; the detector runs ahead by at most ``depth`` frames (bounded
    memory: at most depth + 1 images are held). An error in the source or the detector is raised to the consumer
    at the frame where it happened. ``close()`` stops the thread (also when iteration stopped early).

    frames: an iterable of (index, t, image) as ``engine.io.streams`` gives for pixel sources.
    """

    def __init__(self, detector, frames: Iterable, depth: int = 2):
        if depth < 1:
            raise ValueError(f"depth: must be >= 1, got {depth}")
        self.detector = detector
        self._frames = iter(frames)
        self._q: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="vsgg-detector", daemon=True)
        self._thread.start()

    def _put(self, item) -> bool:
        while not self._stop.is_set():
            try:
                self._q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        try:
            for index, t, image in self._frames:
                if self._stop.is_set():
                    return
                c = time.perf_counter()
                dets = self.detector.detect(image)
                item = DetectedFrame(index, t, image, dets, (time.perf_counter() - c) * 1e3)
                if not self._put(item):
                    return
            self._put(_END)
        except BaseException as e:  # handed to the consumer, which re-raises it in its own thread
            self._put(e)

    def __iter__(self):
        try:
            while True:
                item = self._q.get()
                if item is _END:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            self.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5.0)
