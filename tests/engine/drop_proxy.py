"""DroppingProxy: a real SUB -> PUB forwarder that loses a seeded fraction of deltas (for the transport tests).

Subscribers that connect to the proxy's PUB instead of the service's see a lossy network: heartbeats and other
topics pass, and each delta is dropped with probability ``drop_fraction`` (``random.Random(seed)``, so a run is
reproducible). Snapshots still come straight from the service's ROUTER. Real sockets on loopback, one thread.
"""
from __future__ import annotations

import random
import threading

import zmq

from engine.transport import wire


class DroppingProxy:
    """Forward everything the service at ``upstream`` publishes to a PUB bound on a free loopback port.

    ``forwarded``/``dropped`` count deltas; ``other`` counts every other message (heartbeats, end-of-stream).
    Use as a context manager; ``endpoint`` is the address subscribers connect to.
    """

    def __init__(self, upstream: str, drop_fraction: float, seed: int = 0):
        if not 0.0 <= drop_fraction <= 1.0:
            raise ValueError(f"drop_fraction: expected a number in [0, 1], got {drop_fraction!r}")
        self._rng = random.Random(seed)
        self._fraction = drop_fraction
        self._ctx = zmq.Context()
        self._sub = self._ctx.socket(zmq.SUB)
        self._sub.setsockopt(zmq.SUBSCRIBE, b"")
        self._sub.setsockopt(zmq.RCVHWM, 0)  # the proxy itself must not lose anything it was not told to drop
        self._sub.connect(upstream)
        self._pub = self._ctx.socket(zmq.PUB)
        self._pub.setsockopt(zmq.SNDHWM, 0)
        port = self._pub.bind_to_random_port("tcp://127.0.0.1")
        self.endpoint = f"tcp://127.0.0.1:{port}"
        self.forwarded = self.dropped = self.other = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="dropping-proxy", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            if not self._sub.poll(20):
                continue
            frames = self._sub.recv_multipart()
            if frames[0] == wire.TOPIC_DELTA:
                if self._rng.random() < self._fraction:
                    self.dropped += 1
                    continue
                self.forwarded += 1
            else:
                self.other += 1
            self._pub.send_multipart(frames)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._sub.close(linger=0)
        self._pub.close(linger=0)
        self._ctx.term()

    def __enter__(self) -> "DroppingProxy":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
