"""GraphPublisher: binds PUB (deltas, heartbeats, end of stream) and ROUTER (snapshots) and serves the graph.

Threading. ZeroMQ sockets must not be shared between threads, so the publisher has one service thread that owns
the PUB and ROUTER sockets. The engine thread calls ``publish(delta)``, which checks and encodes the delta,
applies it to the publisher's graph (``engine.graph.diff.apply``), swaps in the new immutable SceneGraph and queues the
encoded frames over an inproc PAIR socket (bounded by ``queue_size``; when full the delta is dropped and counted,
and subscribers resync). The service thread sends queued deltas on PUB, answers snapshot requests from the current
SceneGraph reference (immutable, so reading it without a lock is safe) and sends a heartbeat whenever nothing was
published for ``heartbeat_s``. Snapshots and heartbeats therefore keep flowing while the engine is busy or idle.

Ordering. The graph reference is swapped before the delta is queued, so a snapshot may already contain deltas
that are still queued; subscribers drop those (seq <= snapshot seq), and every later delta follows the snapshot.
A heartbeat carries the seq of the last delta the service thread handled (sent, dropped or skipped), or of the last
one dropped on a full queue if that is later, so a subscriber that missed the last delta before a quiet period
notices it.

End of stream. ``end_stream()`` (or ``close()``) queues an end-of-stream announcement behind the last delta; the
service thread sends it on PUB at once and then every ``heartbeat_s`` in place of heartbeats, so a subscriber that
joins late, or resyncs, learns the final seq as well.

Bound on received data: ZMQ_MAXMSGSIZE = ``max_message_bytes`` on the ROUTER (a larger frame makes libzmq drop the
peer's connection); requests over ``max_request_bytes`` or otherwise malformed get an error reply and the service
carries on. CURVE (optional): a zmq.auth ThreadAuthenticator checks client keys for both sockets.
"""
from __future__ import annotations

import logging
import math
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

from engine.config import TransportConfig
from engine.graph.diff import apply, empty_graph
from engine.transport import wire
from engine.transport.guarded_pub import GuardedPub
from engine.transport.subtree import view
from engine.types import GraphDelta, SceneGraph

log = logging.getLogger(__name__)

_DELIVER, _SKIP, _END, _STOP = b"D", b"S", b"E", b"X"  # inproc control frames
_MAX_REQUEST_FRAMES = 8                     # identity + delimiter + request (2) + room to report extras
_LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]", "::1")


@dataclass(frozen=True)
class PublisherStats:
    """Counters since start. Deltas: published (sent on PUB), dropped_queue_full (service thread behind),
    oversized (encoded delta > max_message_bytes, not sent)."""

    published: int = 0
    dropped_queue_full: int = 0
    oversized: int = 0
    heartbeats: int = 0
    subscriptions_refused: int = 0  # PUB subscriptions that cannot match a topic of the service (not applied)
    subscription_floods: int = 0    # times PUB peers held over max_subscription_bytes (all PUB peers dropped)
    peer_messages: int = 0          # data messages from XSUB peers on the PUB socket (dropped)
    end_announcements: int = 0     # end-of-stream messages sent (first one, then one per heartbeat interval)
    snapshots_served: int = 0
    request_errors: int = 0


def _is_power_of_two(n: int) -> bool:  # rate-limits repeated warnings to counts 1, 2, 4, 8, ...
    return n > 0 and n & (n - 1) == 0


def load_server_keys(path: str) -> tuple[bytes, bytes]:
    """(public, secret) CURVE keys from a zmq.auth ``*.key_secret`` certificate file; ValueError naming the field."""
    if not Path(path).is_file():
        raise ValueError(f"transport.curve_secret_key_file: no such file {path!r}")
    public, secret = zmq.auth.load_certificate(path)
    if not secret:
        raise ValueError(f"transport.curve_secret_key_file: {path!r} holds no secret key (use the .key_secret file)")
    return public, secret


class GraphPublisher:
    """Serve one epoch's scene graph over ZeroMQ. Use as a context manager or call ``close()``.

    ``publish(delta)`` must get deltas of ``epoch`` with seq 1, 2, 3, ... (as engine.graph.diff.diff makes them).
    """

    def __init__(self, cfg: TransportConfig, epoch: str):
        if not isinstance(cfg, TransportConfig):
            raise TypeError(f"cfg: expected a TransportConfig, got {type(cfg).__name__}")
        wire.check_epoch(epoch)
        self._cfg = cfg
        self._epoch = epoch
        self._graph = empty_graph(epoch)
        self._lock = threading.Lock()        # serialises publish()/close() callers on the caller-side PAIR
        self._counts = {k: 0 for k in PublisherStats.__dataclass_fields__}
        self._closed = False
        self._ended = False
        self._dropped_seq = 0                # last seq dropped on a full queue: heartbeats must announce it
        self._endpoints = ("", "")
        self._error: BaseException | None = None
        self._ready = threading.Event()
        self._stop = threading.Event()
        self._ctx = zmq.Context()
        self._auth = None
        self._keys = None
        try:
            if cfg.curve:
                self._keys = load_server_keys(cfg.curve_secret_key_file)
                if cfg.curve_authorized_keys_dir and not Path(cfg.curve_authorized_keys_dir).is_dir():
                    raise ValueError("transport.curve_authorized_keys_dir: no such directory "
                                     f"{cfg.curve_authorized_keys_dir!r}")
                self._auth = ThreadAuthenticator(self._ctx)
                self._auth.start()
                self._auth.configure_curve(domain="*", location=cfg.curve_authorized_keys_dir or
                                           zmq.auth.CURVE_ALLOW_ANY)
            self._inproc = f"inproc://vsgg-publisher-{secrets.token_hex(6)}"
            self._pipe = self._ctx.socket(zmq.PAIR)
            self._pipe.setsockopt(zmq.SNDHWM, cfg.queue_size)
            self._pipe.setsockopt(zmq.LINGER, 0)
            self._pipe.bind(self._inproc)
        except BaseException:
            self._teardown()
            raise
        for name in ("pub_endpoint", "snapshot_endpoint"):
            ep = getattr(cfg, name)
            host = ep.split("://", 1)[1].rsplit(":", 1)[0] if ep.startswith("tcp://") else "127.0.0.1"
            if host not in _LOOPBACK_HOSTS and not cfg.curve:
                log.warning("transport.%s=%s serves the graph beyond this host without CURVE", name, ep)
        self._thread = threading.Thread(target=self._serve, name="vsgg-graph-publisher", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            self._thread.join()
            self._teardown()
            raise ValueError(f"transport: cannot bind ({self._error})") from self._error

    # ------------------------------------------------------------------------------------------- caller side

    @property
    def graph(self) -> SceneGraph:
        """The graph after the last published delta (what snapshots serve)."""
        return self._graph

    @property
    def epoch(self) -> str:
        return self._epoch

    @property
    def pub_endpoint(self) -> str:
        """The bound PUB address (the port resolved when the config asked for ``*``)."""
        return self._endpoints[0]

    @property
    def snapshot_endpoint(self) -> str:
        return self._endpoints[1]

    def stats(self) -> PublisherStats:
        return PublisherStats(**self._counts)

    def publish(self, delta: GraphDelta) -> None:
        """Apply ``delta`` to the graph and queue it for sending. Raises TypeError/ValueError (SequenceError on a
        wrong epoch or seq, WireError naming the bad field) and then leaves the graph unchanged."""
        if not isinstance(delta, GraphDelta):
            raise TypeError(f"delta: expected a GraphDelta, got {type(delta).__name__}")
        with self._lock:
            if self._closed:
                raise RuntimeError("GraphPublisher.publish after close()")
            if self._ended:
                raise RuntimeError("GraphPublisher.publish after end_stream()")
            frames = wire.encode_delta(delta, self._cfg.max_items, base=self._graph)
            new = apply(self._graph, delta)
            self._graph = new
            seq = delta.seq.to_bytes(8, "big")
            if sum(len(f) for f in frames) > self._cfg.max_message_bytes:
                self._counts["oversized"] += 1
                if _is_power_of_two(self._counts["oversized"]):
                    log.warning("delta seq %d is larger than max_message_bytes=%d and was not sent (subscribers "
                                "resync from a snapshot); %d so far", delta.seq, self._cfg.max_message_bytes,
                                self._counts["oversized"])
                msg = [_SKIP, seq]
            else:
                msg = [_DELIVER, seq, *frames]
            try:
                self._pipe.send_multipart(msg, zmq.NOBLOCK)
            except zmq.Again:
                self._dropped_seq = delta.seq
                self._counts["dropped_queue_full"] += 1
                if _is_power_of_two(self._counts["dropped_queue_full"]):
                    log.warning("publisher queue full (%d deltas): delta seq %d dropped; %d so far",
                                self._cfg.queue_size, delta.seq, self._counts["dropped_queue_full"])

    @property
    def ended(self) -> bool:
        """True once ``end_stream()`` (or ``close()``) announced the end of this epoch's stream."""
        return self._ended

    def end_stream(self) -> None:
        """Announce that this epoch's stream has ended at the current graph: after the queued deltas, an
        end-of-stream message (msgs/zmq/WIRE.md §6) goes out on PUB, and then again every ``heartbeat_s`` in place
        of heartbeats while the service keeps answering snapshot requests. ``publish`` raises afterwards.
        Idempotent; ``close()`` calls it."""
        with self._lock:
            if self._closed:
                raise RuntimeError("GraphPublisher.end_stream after close()")
            self._announce_end()

    def _announce_end(self) -> None:  # caller holds self._lock
        if self._ended:
            return
        self._ended = True
        g = self._graph
        # Blocking (bounded) unlike publish(): the announcement must not be lost to a full queue, and the service
        # thread drains the queue continuously.
        if self._pipe.poll(10_000, zmq.POLLOUT):
            self._pipe.send_multipart([_END, g.seq.to_bytes(8, "big"), repr(float(g.t)).encode()])
        else:
            log.warning("publisher queue stuck for 10 s: end of stream (seq %d) not announced", g.seq)

    def close(self) -> None:
        """Announce the end of the stream (``end_stream``) unless done already, stop the service thread (queued
        messages are sent first) and release the sockets. Idempotent."""
        with self._lock:
            if self._closed:
                return
            if self._thread.is_alive():
                self._announce_end()
            self._closed = True
            try:
                self._pipe.send(_STOP, zmq.NOBLOCK)
            except zmq.Again:
                self._stop.set()  # queue full: the service thread sees the flag within one poll interval
        self._thread.join(timeout=10)
        if self._thread.is_alive():
            self._stop.set()
            self._thread.join(timeout=5)
        self._teardown()

    def __enter__(self) -> "GraphPublisher":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _teardown(self) -> None:
        pipe = getattr(self, "_pipe", None)
        if pipe is not None:
            pipe.close(linger=0)
        if self._auth is not None:
            self._auth.stop()
            self._auth = None
        self._ctx.term()

    # ---------------------------------------------------------------------------------------- service thread

    def _socket(self, kind: int) -> zmq.Socket:
        s = self._ctx.socket(kind)
        s.setsockopt(zmq.SNDHWM, self._cfg.send_hwm)
        if self._keys is not None:
            s.curve_publickey, s.curve_secretkey = self._keys
            s.curve_server = True
        return s

    def _serve(self) -> None:
        cfg = self._cfg
        pub = router = pipe = None
        try:
            pub = GuardedPub(self._socket, cfg.pub_endpoint, wire.PUB_TOPICS, cfg.max_subscription_bytes,
                             self._counts)
            router = self._socket(zmq.ROUTER)
            router.setsockopt(zmq.LINGER, 0)
            router.setsockopt(zmq.MAXMSGSIZE, cfg.max_message_bytes)
            router.setsockopt(zmq.RCVHWM, 100)
            router.bind(cfg.snapshot_endpoint)
            pipe = self._ctx.socket(zmq.PAIR)
            pipe.setsockopt(zmq.LINGER, 0)
            pipe.setsockopt(zmq.RCVHWM, cfg.queue_size)
            pipe.connect(self._inproc)
            self._endpoints = (pub.endpoint, router.getsockopt_string(zmq.LAST_ENDPOINT))
        except zmq.ZMQError as e:
            self._error = e
            for s in (pub, router, pipe):
                if s is not None:
                    s.close(linger=0)
            self._ready.set()
            return
        self._ready.set()
        try:
            self._loop(pub, router, pipe)
        except Exception:  # e.g. the PUB endpoint taken by another process during a rebind
            log.exception("graph service thread failed: no more deltas, heartbeats or snapshots")
        finally:
            for s in (router, pipe, pub):
                s.close()

    def _loop(self, pub: GuardedPub, router: zmq.Socket, pipe: zmq.Socket) -> None:
        hb = self._cfg.heartbeat_s
        poller = zmq.Poller()
        poller.register(pipe, zmq.POLLIN)
        poller.register(router, zmq.POLLIN)
        poller.register(pub.socket, zmq.POLLIN)  # (un)subscriptions
        last_sent = time.monotonic()
        last_seq = 0
        end: list[bytes] | None = None  # the end-of-stream message, once announced
        while not self._stop.is_set():
            wait_ms = max(0.0, min(0.25, last_sent + hb - time.monotonic())) * 1000
            events = dict(poller.poll(math.ceil(wait_ms)))
            if pub.socket in events:
                old = pub.socket
                if pub.drain():
                    poller.unregister(old)
                    poller.register(pub.socket, zmq.POLLIN)
            if pipe in events:
                for _ in range(256):  # bounded, so snapshot requests are served during a burst too
                    try:
                        msg = pipe.recv_multipart(zmq.NOBLOCK)
                    except zmq.Again:
                        break
                    if msg[0] == _STOP:
                        return
                    if msg[0] == _END:
                        end = wire.encode_eos(self._epoch, int.from_bytes(msg[1], "big"), float(msg[2]))
                        pub.send_multipart(end)
                        self._counts["end_announcements"] += 1
                        last_sent = time.monotonic()
                        continue
                    last_seq = int.from_bytes(msg[1], "big")
                    if msg[0] == _SKIP:
                        continue
                    pub.send_multipart(msg[2:])
                    self._counts["published"] += 1
                    last_sent = time.monotonic()
            if router in events:
                for _ in range(64):
                    try:
                        self._serve_request(router)
                    except zmq.Again:
                        break
            if end is not None and time.monotonic() - last_sent >= hb:
                pub.send_multipart(end)  # in place of heartbeats: late joiners learn that the stream has ended
                self._counts["end_announcements"] += 1
                last_sent = time.monotonic()
            elif time.monotonic() - last_sent >= hb:
                # A delta dropped on a full queue never reaches this thread; announcing its seq anyway is what
                # lets a subscriber that got everything before the drop notice it is behind.
                last_seq = max(last_seq, self._dropped_seq)
                pub.send_multipart(wire.encode_heartbeat(self._epoch, last_seq, hb))
                self._counts["heartbeats"] += 1
                last_sent = time.monotonic()

    def _serve_request(self, router: zmq.Socket) -> None:
        """Answer one request waiting on the ROUTER (zmq.Again when none): the snapshot, or an error reply."""
        frames, total = wire.recv_frames(router, _MAX_REQUEST_FRAMES)
        envelope, body = frames[:1], frames[1:]
        if body and body[0] == b"":  # a REQ client: keep its empty delimiter, so it gets the error reply
            envelope, body = frames[:2], frames[2:]
        graph = self._graph
        try:
            if len(envelope) == 2:
                raise wire.WireError("request: REQ sockets are not supported (a snapshot reply is several messages and "
                                     "a REQ socket takes one); use a DEALER socket")
            if total > len(frames):
                raise wire.WireError(f"request: expected 2 frames [topic, payload], got {total - len(envelope)}")
            req = wire.decode_request(body, self._cfg.max_request_bytes)
            v = view(graph, req.subtree)
            n = len(v.entities) + len(v.relations)
            if n > self._cfg.max_items:
                raise wire.WireError(f"snapshot: {n} items exceed max_items={self._cfg.max_items}; ask for a "
                                     "smaller subtree", code="too_large", rid=req.rid)
        except wire.WireError as e:
            self._counts["request_errors"] += 1
            if _is_power_of_two(self._counts["request_errors"]):
                log.warning("refused a snapshot request (%s: %s); %d so far", e.code, e,
                            self._counts["request_errors"])
            router.send_multipart(envelope + wire.encode_error(self._epoch, graph.seq, e.rid, e.code, str(e)))
            return
        ents = [v.entities[i] for i in sorted(v.entities)]
        rels = [v.relations[k] for k in sorted(v.relations)]
        n_e, batch = len(ents), self._cfg.snapshot_batch_items
        for start in range(0, n_e + len(rels), batch):  # entities first, then relations, `batch` items a message
            stop = start + batch
            ce = ents[start:stop]
            cr = rels[max(start - n_e, 0):max(stop - n_e, 0)]
            router.send_multipart(envelope + wire.encode_items(v.epoch, v.seq, req.rid, ce, cr, self._cfg.max_items))
        router.send_multipart(envelope + wire.encode_end(v.epoch, v.seq, req.rid, v.t, len(ents), len(rels)))
        self._counts["snapshots_served"] += 1
