"""GuardedPub: the graph service's publishing socket, with the memory its subscribers can make it hold bounded.

A ZeroMQ PUB socket keeps every subscription each peer sends, in a trie with about one node per topic byte, and
frees it only when that peer disconnects. Any local process that can connect may therefore subscribe to a 10 MB
topic, or to millions of random ones, and grow the service by gigabytes. Measured with libzmq 4.3.5 (pyzmq 27):
20,000 random 1 KB subscriptions add about 780 MB to a plain PUB.

GuardedPub uses an XPUB socket in manual mode (ZMQ_XPUB_MANUAL), so every (un)subscription reaches the service
thread, which

* caps the size of any message a peer may send with ZMQ_MAXMSGSIZE (``MAX_SUBSCRIPTION_MESSAGE_BYTES``; a larger
  one makes libzmq drop that peer before it buffers the message);
* applies only subscriptions that can match a topic the service sends (prefixes of ``topics``, "" included), so
  the matching trie stays tiny;
* counts the bytes of all subscriptions its peers hold (libzmq keeps a manual socket's subscriptions too, to send
  the unsubscriptions when a peer leaves). Beyond ``max_subscription_bytes`` it closes the socket and binds a new
  one on the same endpoint: every peer is dropped and what they held is freed. libzmq cannot drop a single peer of
  an XPUB, and the socket does not say which peer sent a subscription, so a flood costs every subscriber one
  reconnect (their SUB sockets reconnect and resubscribe by themselves, and resync through the gap rules).

Only the service thread may call it (ZeroMQ sockets are single-threaded).
"""
from __future__ import annotations

import logging
import time
from typing import Callable, Sequence

import zmq

log = logging.getLogger(__name__)

MAX_SUBSCRIPTION_MESSAGE_BYTES = 1024  # room for the ZMTP/CURVE handshake messages, which this limit also covers
SUBSCRIPTION_QUEUE = 16                # ZMQ_RCVHWM: (un)subscriptions waiting per peer
_REBIND_TRIES_S = 5.0


class GuardedPub:
    """The XPUB socket of the service, bound to ``endpoint`` (a ``*`` port is resolved at the first bind and kept).

    ``make_socket(kind)`` creates a socket with the service's common options (HWM, CURVE); ``counts`` is the
    publisher's counter dict, which gets ``subscriptions_refused`` (not applied: they cannot match any topic),
    ``subscription_floods`` (rebinds) and ``peer_messages`` (non-subscription messages from XSUB peers, dropped).
    """

    def __init__(self, make_socket: Callable[[int], zmq.Socket], endpoint: str, topics: Sequence[bytes],
                 max_subscription_bytes: int, counts: dict):
        self._make = make_socket
        self._topics = tuple(topics)
        self._max_bytes = max_subscription_bytes
        self._counts = counts
        self._held = 0  # bytes of the subscriptions libzmq holds for all peers (an upper bound, see _drain)
        self.socket = self._bind(endpoint, retry=False)
        self.endpoint = self.socket.getsockopt_string(zmq.LAST_ENDPOINT)

    @property
    def held_bytes(self) -> int:
        return self._held

    def _bind(self, endpoint: str, retry: bool) -> zmq.Socket:
        s = self._make(zmq.XPUB)
        try:
            s.setsockopt(zmq.XPUB_MANUAL, 1)
            s.setsockopt(zmq.MAXMSGSIZE, MAX_SUBSCRIPTION_MESSAGE_BYTES)
            # libzmq files a subscription in its trie when it takes it off the peer's pipe, before this thread
            # sees it; a short pipe keeps what it can take ahead of the count small (a SUB sends 3 subscriptions).
            s.setsockopt(zmq.RCVHWM, SUBSCRIPTION_QUEUE)
            s.setsockopt(zmq.LINGER, 500)  # let the last deltas and the end-of-stream message leave on close
            deadline = time.monotonic() + (_REBIND_TRIES_S if retry else 0.0)
            while True:
                try:
                    s.bind(endpoint)
                    return s
                except zmq.ZMQError as e:
                    # the old listener is closed asynchronously by libzmq's I/O thread: wait for the port
                    if e.errno != zmq.EADDRINUSE or time.monotonic() >= deadline:
                        raise
                    time.sleep(0.01)
        except BaseException:
            s.close(linger=0)
            raise

    def send_multipart(self, frames: Sequence[bytes]) -> None:
        self.socket.send_multipart(frames)

    def drain(self, max_messages: int = 10_000) -> bool:
        """Handle waiting (un)subscriptions; True when a flood made it rebind (``self.socket`` is then new)."""
        s = self.socket
        for _ in range(max_messages):
            try:
                msg = s.recv(zmq.NOBLOCK)
            except zmq.Again:
                break
            kind, topic = msg[:1], msg[1:]
            if kind == b"\x01":
                # Duplicates from one peer are counted again although libzmq holds them once: an over-estimate,
                # which a rebind resets.
                self._held += len(msg)
                if any(t.startswith(topic) for t in self._topics):
                    s.setsockopt(zmq.SUBSCRIBE, topic)  # applies to the peer that sent it (manual mode)
                else:
                    self._counts["subscriptions_refused"] += 1
            elif kind == b"\x00":
                self._held = max(0, self._held - len(msg))
                if any(t.startswith(topic) for t in self._topics):
                    s.setsockopt(zmq.UNSUBSCRIBE, topic)
            else:
                self._counts["peer_messages"] += 1
            if self._held > self._max_bytes:
                self._rebind()
                return True
        return False

    def _rebind(self) -> None:
        self._counts["subscription_floods"] += 1
        n = self._counts["subscription_floods"]
        if n & (n - 1) == 0:
            log.warning("PUB peers hold more than transport.max_subscription_bytes=%d bytes of subscriptions: "
                        "dropping every PUB connection (subscribers reconnect and resync); %d so far",
                        self._max_bytes, n)
        self.socket.close(linger=0)
        self._held = 0
        self.socket = self._bind(self.endpoint, retry=True)

    def close(self, linger: int | None = None) -> None:
        self.socket.close(linger=linger)
