"""GraphSubscriber: keeps a copy of a GraphPublisher's scene graph (or a subtree view of it) in sync over ZeroMQ.

The client side of the Clone pattern (msgs/zmq/WIRE.md):

1. connect and subscribe to deltas and heartbeats first, then ask the snapshot socket for a snapshot;
2. buffer deltas that arrive meanwhile (at most ``cfg.max_pending`` deltas and ``cfg.max_pending_bytes``);
3. install the snapshot, drop buffered deltas at or below its seq (or of another epoch), apply the rest in order;
4. afterwards apply each delta whose seq is the graph's + 1; ignore older ones; on a gap, an epoch change, a
   heartbeat announcing a seq we do not have, or a subtree view missing an entity: resync (back to 1, keeping the
   delta that revealed it);
5. when nothing valid was heard for ``cfg.heartbeat_timeout_s``: close both sockets, reconnect, resync. A snapshot
   request unanswered for ``cfg.snapshot_timeout_s`` is retried on a fresh socket (the guide's "lazy pirate").
6. a snapshot request that follows a failed one (unanswered, not adding up, or stale: a gap right after it) waits
   ``cfg.resync_backoff_s``, doubling up to ``cfg.resync_backoff_max_s``, times a random 0.5-1; a live delta
   applied in sequence, or a heartbeat at the graph's seq, resets the wait.
7. an end-of-stream message names the final seq: ``ended`` once the graph is there (resync first if behind).

Malformed messages are counted and logged (rate-limited) and never raise. All socket work happens in the thread
that calls ``poll``/``run_forever``, or in the background thread of ``start()``; ``graph`` and ``stats()`` may be
read from any thread (the SceneGraph is immutable and swapped by reference). Callbacks run in the polling thread.
"""
from __future__ import annotations

import collections
import logging
import random
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import zmq
import zmq.auth

from engine.config import SubscriberConfig
from engine.graph.diff import SequenceError
from engine.transport import wire
from engine.transport.events import GraphEvent
from engine.transport.subtree import MissingEntityError, apply_to_view
from engine.types import GraphDelta, SceneGraph

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SubscriberStats:
    """Counters since construction."""

    deltas_applied: int = 0
    deltas_stale: int = 0          # seq at or below the graph's: ignored
    snapshots: int = 0             # snapshots installed
    resyncs: int = 0               # snapshots asked for after the first one
    gaps: int = 0                  # missing seq seen in a delta or a heartbeat
    epoch_changes: int = 0
    missing_entities: int = 0      # subtree view needed an entity it did not hold
    heartbeats: int = 0
    reconnects: int = 0            # heartbeat timeouts
    snapshot_timeouts: int = 0
    error_replies: int = 0
    malformed: int = 0             # messages that failed the wire checks (dropped)
    pending_overflow: int = 0      # deltas dropped from a full pending buffer while syncing
    callback_errors: int = 0
    snapshot_requests: int = 0     # snapshot requests sent (the first, resyncs, retries)
    bad_snapshots: int = 0         # replies that did not add up (item counts, mixed or too many items): asked again
    pending_bytes_peak: int = 0    # most wire bytes the pending buffer ever held (bounded by max_pending_bytes)
    ends: int = 0                  # end-of-stream messages heard
    version_mismatches: int = 0    # messages or error replies showing the service speaks another wire version


class GraphSubscriber:
    """Subscriber to a GraphPublisher, configured by a SubscriberConfig (endpoints, subtree, timeouts, limits, CURVE).

    CURVE: ``cfg.curve_server_key_file`` is the server's public certificate and ``cfg.curve_client_key_file`` this
    client's ``.key_secret`` certificate, whose public key the server must list as authorised.
    """

    def __init__(self, cfg: SubscriberConfig):
        if not isinstance(cfg, SubscriberConfig):
            raise TypeError(f"cfg: expected a SubscriberConfig, got {type(cfg).__name__}")
        try:
            wire.check_subtree(cfg.subtree, "subscriber.subtree")
        except wire.WireError as e:
            raise ValueError(str(e)) from None
        self._cfg = cfg
        self._pub_ep, self._snap_ep, self._subtree = cfg.pub_endpoint, cfg.snapshot_endpoint, cfg.subtree
        self._hb_timeout = float(cfg.heartbeat_timeout_s)
        self._snap_timeout = float(cfg.snapshot_timeout_s)
        self._max_bytes, self._max_items = cfg.max_message_bytes, cfg.max_items
        self._curve = None
        if cfg.curve:
            for name in ("curve_server_key_file", "curve_client_key_file"):
                path = getattr(cfg, name)
                if not Path(path).is_file():
                    raise ValueError(f"subscriber.{name}: no such file {path!r}")
            server_public, _ = zmq.auth.load_certificate(cfg.curve_server_key_file)
            public, secret = zmq.auth.load_certificate(cfg.curve_client_key_file)
            if not secret:
                raise ValueError(f"subscriber.curve_client_key_file: {cfg.curve_client_key_file!r} holds no secret "
                                 "key (use the .key_secret file)")
            self._curve = (server_public, public, secret)
        self._graph = SceneGraph()
        self._synced = False
        self._pending: collections.deque[tuple[wire.WireDelta, int]] = collections.deque()  # (delta, wire bytes)
        self._pending_bytes = 0
        self._failures = 0                  # snapshot attempts since the last sign of health: sets the back-off
        self._req_due: float | None = None  # when a backed-off snapshot request is due
        self._rng = random.Random()
        self._counts = {k: 0 for k in SubscriberStats.__dataclass_fields__}
        self._callbacks: list[Callable[[GraphEvent], None]] = []
        self._rid = 0
        self._req_at = 0.0
        self._snap_meta: tuple[str, int] | None = None
        self._snap_ents: dict = {}
        self._snap_rels: dict = {}
        self._last_heard = 0.0
        self._end: wire.EndOfStream | None = None       # the latest end-of-stream announcement heard
        self._end_emitted: wire.EndOfStream | None = None
        self._version_error: str | None = None
        self._ctx = zmq.Context()
        self._sub = self._dealer = self._poller = None
        self._owner: int | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._closed = False

    # ------------------------------------------------------------------------------------------------ public

    @property
    def graph(self) -> SceneGraph:
        """The current graph (subtree view); epoch "" and seq 0 until the first snapshot arrives."""
        return self._graph

    @property
    def synced(self) -> bool:
        """True between an installed snapshot and the next resync or reconnect."""
        return self._synced

    @property
    def ended(self) -> bool:
        """True when the service announced the end of its stream and this graph is that stream's final graph."""
        e, g = self._end, self._graph
        return e is not None and self._synced and (g.epoch, g.seq) == (e.epoch, e.seq)

    @property
    def end_of_stream(self) -> wire.EndOfStream | None:
        """The latest end-of-stream announcement heard (epoch, final seq, t), or None."""
        return self._end

    @property
    def version_error(self) -> str | None:
        """Why the service and this client cannot talk (they speak different wire versions), or None."""
        return self._version_error

    @property
    def subtree(self) -> str:
        return self._subtree

    @property
    def config(self) -> SubscriberConfig:
        return self._cfg

    def stats(self) -> SubscriberStats:
        return SubscriberStats(**self._counts)

    def on_change(self, callback: Callable[[GraphEvent], None]) -> None:
        """Call ``callback(event)`` after every applied delta and installed snapshot (in the polling thread)."""
        if not callable(callback):
            raise TypeError(f"callback: expected a callable, got {type(callback).__name__}")
        self._callbacks.append(callback)

    def poll(self, timeout_s: float = 0.1) -> int:
        """Handle messages and timers for up to ``timeout_s`` seconds; returns the number of graph events."""
        if self._closed:
            raise RuntimeError("GraphSubscriber.poll after close()")
        me = threading.get_ident()
        if self._owner is None:
            self._owner = me
            self._connect()
        elif self._owner != me:
            raise RuntimeError("GraphSubscriber: poll from a second thread (ZeroMQ sockets are single-threaded)")
        deadline = time.monotonic() + max(0.0, float(timeout_s))
        n = 0
        while True:
            now = time.monotonic()
            self._check_timers(now)
            next_timer = self._last_heard + self._hb_timeout
            if not self._synced:
                due = self._req_at + self._snap_timeout if self._req_due is None else self._req_due
                next_timer = min(next_timer, due)
            wait = max(0.0, min(deadline, next_timer) - now)
            events = dict(self._poller.poll(int(wait * 1000) + (1 if wait > 0 else 0)))
            if self._dealer in events:
                n += self._drain(self._dealer, self._on_reply)
            if self._sub in events:
                n += self._drain(self._sub, self._on_pub)
            if time.monotonic() >= deadline:
                return n

    def run_forever(self, stop: threading.Event | None = None) -> None:
        """Poll until ``stop`` is set (or ``close()`` from another thread for the ``start()`` thread)."""
        stop = stop or self._stop
        while not stop.is_set() and not self._stop.is_set():
            self.poll(0.1)

    def start(self) -> "GraphSubscriber":
        """Run the subscriber in a background daemon thread; ``close()`` stops it."""
        if self._thread is not None or self._owner is not None:
            raise RuntimeError("GraphSubscriber.start: already running or polled from another thread")
        self._thread = threading.Thread(target=self._thread_main, name="vsgg-graph-subscriber", daemon=True)
        self._thread.start()
        return self

    def wait_for(self, predicate: Callable[["GraphSubscriber"], bool], timeout_s: float) -> bool:
        """Wait until ``predicate(self)`` is true (polling when no background thread runs); False on timeout."""
        deadline = time.monotonic() + timeout_s
        while not predicate(self):
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            if self._thread is None:
                self.poll(min(0.02, left))
            else:
                time.sleep(min(0.01, left))
        return True

    def close(self) -> None:
        """Stop the background thread if any and close the sockets. Idempotent."""
        if self._closed:
            return
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        else:
            self._disconnect()
        self._closed = True
        self._ctx.term()

    def __enter__(self) -> "GraphSubscriber":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------------------------------------ sockets

    def _thread_main(self) -> None:
        try:
            self.run_forever()
        finally:
            self._disconnect()

    def _socket(self, kind: int) -> zmq.Socket:
        s = self._ctx.socket(kind)
        s.setsockopt(zmq.LINGER, 0)
        s.setsockopt(zmq.MAXMSGSIZE, self._max_bytes)
        if self._curve is not None:
            s.curve_serverkey, s.curve_publickey, s.curve_secretkey = self._curve
        return s

    def _connect(self) -> None:
        self._sub = self._socket(zmq.SUB)
        for topic in wire.PUB_TOPICS:
            self._sub.setsockopt(zmq.SUBSCRIBE, topic)
        self._sub.connect(self._pub_ep)
        self._poller = zmq.Poller()
        self._poller.register(self._sub, zmq.POLLIN)
        self._new_dealer()
        self._last_heard = time.monotonic()
        self._request_snapshot()

    def _new_dealer(self) -> None:
        if self._dealer is not None:
            self._poller.unregister(self._dealer)
            self._dealer.close()
        self._dealer = self._socket(zmq.DEALER)
        self._dealer.connect(self._snap_ep)
        self._poller.register(self._dealer, zmq.POLLIN)

    def _disconnect(self) -> None:
        for s in (self._sub, self._dealer):
            if s is not None:
                s.close()
        self._sub = self._dealer = self._poller = None

    def _drain(self, sock: zmq.Socket, handler: Callable[[list[bytes], int], int]) -> int:
        n = 0
        for _ in range(1000):  # bounded, so timers run during a flood
            try:
                frames, total = wire.recv_frames(sock, 5)
            except zmq.Again:
                break
            n += handler(frames, total)
        return n

    def _malformed(self, where: str, err: Exception) -> None:
        if getattr(err, "code", None) == "version":
            self._version_mismatch(str(err))
        self._counts["malformed"] += 1
        n = self._counts["malformed"]
        if n & (n - 1) == 0:  # rate-limited: counts 1, 2, 4, 8, ...
            log.warning("dropped a malformed %s message (%s); %d so far", where, err, n)

    def _version_mismatch(self, reason: str) -> None:
        self._counts["version_mismatches"] += 1
        self._version_error = (f"the service at {self._pub_ep} speaks another wire version than this client "
                               f"(version {wire.WIRE_VERSION}): {reason}")
        n = self._counts["version_mismatches"]
        if n & (n - 1) == 0:
            log.error("%s; %d so far", self._version_error, n)

    # ------------------------------------------------------------------------------------------ state machine

    def _check_timers(self, now: float) -> None:
        if now - self._last_heard > self._hb_timeout:
            self._counts["reconnects"] += 1
            # after an announced end the silence is expected; keep listening in case a new run takes the endpoint
            log.log(logging.INFO if self._end is not None else logging.WARNING,
                    "no message from %s for %.1f s: reconnecting", self._pub_ep, now - self._last_heard)
            self._disconnect()
            self._synced = False
            self._clear_pending()
            self._connect()
        elif not self._synced and self._req_due is not None:
            if now >= self._req_due:
                self._send_request()
        elif not self._synced and now - self._req_at > self._snap_timeout:
            self._counts["snapshot_timeouts"] += 1
            log.info("snapshot request %d unanswered after %.1f s: retrying", self._rid, self._snap_timeout)
            self._new_dealer()
            self._request_snapshot()

    def _request_snapshot(self) -> None:
        """Ask for a snapshot now after a healthy spell, else after a capped exponential back-off with jitter,
        so that a service answering with stale or broken snapshots is not asked hundreds of times a second."""
        self._snap_meta, self._snap_ents, self._snap_rels = None, {}, {}
        cfg = self._cfg
        delay = 0.0
        if self._failures:
            delay = min(cfg.resync_backoff_max_s, cfg.resync_backoff_s * 2.0 ** (self._failures - 1))
            delay *= self._rng.uniform(0.5, 1.0)
        self._failures += 1
        self._req_due = time.monotonic() + delay
        if delay == 0.0:
            self._send_request()

    def _send_request(self) -> None:
        self._req_due = None
        self._rid += 1
        self._req_at = time.monotonic()
        self._counts["snapshot_requests"] += 1
        self._snap_meta, self._snap_ents, self._snap_rels = None, {}, {}
        try:
            self._dealer.send_multipart(wire.encode_request(wire.SnapshotRequest(self._rid, self._subtree)),
                                        zmq.NOBLOCK)
        except zmq.Again:
            pass  # no connection yet; the snapshot timer retries

    def _resync(self, keep: tuple[wire.WireDelta, int] | None = None) -> None:
        self._synced = False
        self._counts["resyncs"] += 1
        self._clear_pending()
        if keep is not None:
            self._buffer(*keep)
        self._request_snapshot()

    def _clear_pending(self) -> None:
        self._pending.clear()
        self._pending_bytes = 0

    def _buffer(self, d: wire.WireDelta, size: int) -> None:
        """Keep ``d`` (``size`` wire bytes) until the snapshot; the oldest go first beyond either bound."""
        while self._pending and (len(self._pending) >= self._cfg.max_pending
                                 or self._pending_bytes + size > self._cfg.max_pending_bytes):
            _, old = self._pending.popleft()
            self._pending_bytes -= old
            self._counts["pending_overflow"] += 1
        self._pending.append((d, size))
        self._pending_bytes += size
        self._counts["pending_bytes_peak"] = max(self._counts["pending_bytes_peak"], self._pending_bytes)

    def _emit(self, event: GraphEvent) -> None:
        for cb in self._callbacks:
            try:
                cb(event)
            except Exception:  # a consumer's bug must not stop the subscriber
                self._counts["callback_errors"] += 1
                log.exception("on_change callback failed")

    def _on_pub(self, frames: list[bytes], total: int) -> int:
        try:
            if total != len(frames):
                raise wire.WireError(f"message: expected 4 frames, got {total}")
            msg = wire.decode_pub(frames, self._max_bytes, self._max_items)
        except wire.WireError as e:
            self._malformed("pub", e)
            return 0
        self._last_heard = time.monotonic()
        if isinstance(msg, wire.Heartbeat):
            self._counts["heartbeats"] += 1
            g = self._graph
            if self._synced and msg.epoch != g.epoch:
                self._counts["epoch_changes"] += 1
                self._resync()
            elif self._synced and msg.seq > g.seq:
                self._counts["gaps"] += 1  # the last delta(s) before a quiet period were lost
                self._resync()
            elif self._synced and msg.seq == g.seq:
                self._failures = 0  # in step with the service: the next resync may ask at once
            return 0
        if isinstance(msg, wire.EndOfStream):
            return self._on_end(msg)
        return self._on_delta(msg, sum(map(len, frames)), live=True)

    def _on_end(self, msg: wire.EndOfStream) -> int:
        self._counts["ends"] += 1
        self._end = msg
        g = self._graph
        if self._synced and msg.epoch != g.epoch:
            self._counts["epoch_changes"] += 1
            self._resync()
        elif self._synced and msg.seq > g.seq:
            self._counts["gaps"] += 1  # the last delta(s) of the stream were lost: the snapshot has them
            self._resync()
        return self._check_end()

    def _check_end(self) -> int:
        """Emit the "end" event once the graph has reached the announced final graph."""
        if not self.ended or self._end_emitted == self._end:
            return 0
        self._end_emitted = self._end
        self._emit(GraphEvent("end", self._graph, self._graph))
        return 1

    def _on_delta(self, d: wire.WireDelta, size: int, live: bool = False) -> int:
        """Apply or buffer one delta (``size``: its wire bytes). ``live``: just received, not replayed from the
        pending buffer (only a live delta in sequence shows the resync worked)."""
        if not self._synced:
            self._buffer(d, size)
            return 0
        g = self._graph
        if d.epoch != g.epoch:
            self._counts["epoch_changes"] += 1
            log.info("epoch changed %s -> %s: resync", g.epoch, d.epoch)
            self._resync((d, size))
            return 0
        if d.seq <= g.seq:
            self._counts["deltas_stale"] += 1
            return 0
        if d.seq != g.seq + 1:
            self._counts["gaps"] += 1
            log.info("gap: got seq %d after %d: resync", d.seq, g.seq)
            self._resync((d, size))
            return 0
        try:
            d = d.resolve(g, partial=bool(self._subtree))
            new = apply_to_view(g, d, self._subtree)
        except MissingEntityError:
            self._counts["missing_entities"] += 1
            self._resync((d, size))
            return 0
        except (SequenceError, ValueError) as e:  # well-formed but inconsistent with the graph
            self._malformed("delta", e)
            self._resync()
            return 0
        self._graph = new
        self._counts["deltas_applied"] += 1
        if live:
            self._failures = 0
        self._emit(GraphEvent("delta", new, g, d))
        return 1 + self._check_end()

    def _on_reply(self, frames: list[bytes], total: int) -> int:
        try:
            if total != len(frames):
                raise wire.WireError(f"message: expected 4 frames, got {total}")
            msg = wire.decode_reply(frames, self._max_bytes, self._max_items)
        except wire.WireError as e:
            self._malformed("snapshot reply", e)
            return 0
        if self._synced or self._req_due is not None or msg.rid != self._rid:
            return 0  # a late answer to an older request (or the rest of a reply already found bad)
        if isinstance(msg, wire.ErrorReply):
            self._counts["error_replies"] += 1
            if msg.code == "version":
                self._version_mismatch(msg.reason)
            log.warning("snapshot request refused (%s): %s", msg.code, msg.reason)
            return 0  # the snapshot timer retries
        meta = (msg.epoch, msg.seq)
        if self._snap_meta is not None and meta != self._snap_meta:
            self._bad_snapshot(ValueError(f"items of {self._snap_meta} and {meta} mixed"))
            return 0
        self._snap_meta = meta
        if isinstance(msg, wire.SnapshotItems):
            self._snap_ents.update((e.id, e) for e in msg.entities)
            self._snap_rels.update((r.key, r) for r in msg.relations)
            if len(self._snap_ents) + len(self._snap_rels) > self._max_items:
                self._bad_snapshot(ValueError(f"more than max_items={self._max_items} items"))
            return 0
        try:
            if (len(self._snap_ents), len(self._snap_rels)) != (msg.n_entities, msg.n_relations):
                raise ValueError(f"got {len(self._snap_ents)} entities and {len(self._snap_rels)} relations, the "
                                 f"end message says {msg.n_entities} and {msg.n_relations}")
            snap = SceneGraph(t=msg.t, entities=self._snap_ents, relations=self._snap_rels, epoch=msg.epoch,
                              seq=msg.seq)
        except ValueError as e:
            self._bad_snapshot(e)
            return 0
        return self._install(snap)

    def _bad_snapshot(self, err: Exception) -> None:
        self._counts["bad_snapshots"] += 1
        self._malformed("snapshot reply", err)
        self._request_snapshot()

    def _install(self, snap: SceneGraph) -> int:
        previous, self._graph, self._synced = self._graph, snap, True
        self._snap_meta, self._snap_ents, self._snap_rels = None, {}, {}
        self._counts["snapshots"] += 1
        self._emit(GraphEvent("snapshot", snap, previous))
        n = 1
        pending = list(self._pending)
        self._clear_pending()
        for d, size in pending:
            if d.epoch != snap.epoch or d.seq <= snap.seq:
                continue  # another run's, or already in the snapshot
            n += self._on_delta(d, size)
        return n + self._check_end()
