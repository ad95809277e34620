"""GraphSubscriber's Clone-pattern rules against a scripted service (real PUB and ROUTER sockets on loopback, the
test playing the service message by message): buffered deltas, the delta that revealed a gap, stale replies,
the pending buffer's byte bound and the resync back-off."""
import time

import zmq

from engine.config import SubscriberConfig
from engine.graph.diff import diff
from engine.transport import GraphSubscriber, wire
from engine.types import Entity, GraphDelta, SceneGraph
from graph_feed import random_graphs

E = "SCRIPTED"
MB = 1 << 20


class ScriptedService:
    """PUB + ROUTER bound on free loopback ports; the test sends exactly the messages it wants."""

    def __init__(self):
        self.ctx = zmq.Context()
        self.pub, self.router = self.ctx.socket(zmq.PUB), self.ctx.socket(zmq.ROUTER)
        for s in (self.pub, self.router):
            s.setsockopt(zmq.LINGER, 0)
            s.setsockopt(zmq.SNDHWM, 0)
        self.pub_ep = f"tcp://127.0.0.1:{self.pub.bind_to_random_port('tcp://127.0.0.1')}"
        self.snap_ep = f"tcp://127.0.0.1:{self.router.bind_to_random_port('tcp://127.0.0.1')}"
        self.requests = 0

    def subscriber(self, **kw) -> GraphSubscriber:
        kw.setdefault("heartbeat_timeout_s", 30.0)
        kw.setdefault("snapshot_timeout_s", 30.0)
        return GraphSubscriber(SubscriberConfig(self.pub_ep, self.snap_ep, **kw))

    def next_request(self, sub: GraphSubscriber, timeout: float = 5.0) -> tuple[bytes, int]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            sub.poll(0.005)
            if self.router.poll(0):
                ident, *req = self.router.recv_multipart()
                self.requests += 1
                return ident, wire.decode_request(req, 4096).rid
        raise AssertionError(f"no snapshot request within {timeout} s; {sub.stats()}")

    def connect_pub(self, sub: GraphSubscriber, seq: int = 0) -> None:
        """Heartbeats until the subscriber hears one (the SUB connection is up: nothing sent later is lost)."""
        while sub.stats().heartbeats == 0:
            self.pub.send_multipart(wire.encode_heartbeat(E, seq, 1.0))
            sub.poll(0.01)

    def reply(self, ident: bytes, rid: int, g: SceneGraph, n_entities: int | None = None) -> None:
        ents, rels = list(g.entities.values()), list(g.relations.values())
        self.router.send_multipart([ident] + wire.encode_items(g.epoch, g.seq, rid, ents, rels, 10_000))
        n = len(ents) if n_entities is None else n_entities
        self.router.send_multipart([ident] + wire.encode_end(g.epoch, g.seq, rid, g.t, n, len(rels)))

    def delta(self, graphs, seq: int) -> None:
        self.pub.send_multipart(wire.encode_delta(diff(graphs[seq - 1], graphs[seq]), 10_000, base=graphs[seq - 1]))

    def close(self) -> None:
        self.pub.close()
        self.router.close()
        self.ctx.term()


def settle(sub: GraphSubscriber, seconds: float = 0.3) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        sub.poll(0.02)


def test_deltas_buffered_before_the_snapshot_are_applied_after_it():
    graphs = random_graphs(21, E, 8)
    svc = ScriptedService()
    sub = svc.subscriber()
    try:
        ident, rid = svc.next_request(sub)
        svc.connect_pub(sub)
        for seq in (4, 5, 6, 7, 8):  # 4 and 5 are in the snapshot, 6-8 follow it
            svc.delta(graphs, seq)
        settle(sub)
        assert not sub.synced
        svc.reply(ident, rid, graphs[5])
        assert sub.wait_for(lambda s: s.graph.seq == 8, 5), sub.stats()
        assert sub.graph == graphs[8] and sub.stats().deltas_applied == 3
    finally:
        sub.close()
        svc.close()


def test_the_delta_that_revealed_a_gap_is_applied_after_the_resync():
    graphs = random_graphs(22, E, 7)
    svc = ScriptedService()
    sub = svc.subscriber()
    try:
        ident, rid = svc.next_request(sub)
        svc.connect_pub(sub)
        svc.reply(ident, rid, graphs[5])
        assert sub.wait_for(lambda s: s.synced and s.graph.seq == 5, 5)
        svc.delta(graphs, 7)  # 6 was lost
        ident, rid2 = svc.next_request(sub)
        assert rid2 > rid and sub.stats().gaps == 1 and not sub.synced
        svc.reply(ident, rid2, graphs[6])  # the snapshot does not contain 7: only the kept delta gets there
        assert sub.wait_for(lambda s: s.graph.seq == 7, 5), sub.stats()
        assert sub.graph == graphs[7] and sub.stats().deltas_applied == 1
    finally:
        sub.close()
        svc.close()


def test_a_late_reply_to_an_older_request_is_ignored():
    graphs = random_graphs(23, E, 7)
    svc = ScriptedService()
    sub = svc.subscriber()
    seen = []
    sub.on_change(lambda ev: seen.append((ev.kind, ev.graph.seq)))
    try:
        ident, rid = svc.next_request(sub)
        svc.connect_pub(sub)
        svc.reply(ident, rid, graphs[5])
        assert sub.wait_for(lambda s: s.synced, 5)
        svc.delta(graphs, 7)
        ident, rid2 = svc.next_request(sub)
        svc.reply(ident, rid, graphs[3])  # the answer to the first request, arriving late: stale
        settle(sub)
        assert not sub.synced and sub.graph == graphs[5]
        svc.reply(ident, rid2, graphs[6])
        assert sub.wait_for(lambda s: s.graph.seq == 7, 5), sub.stats()
        assert sub.graph == graphs[7]
        assert seen == [("snapshot", 5), ("snapshot", 6), ("delta", 7)]
    finally:
        sub.close()
        svc.close()


def _big_delta(seq: int, n: int) -> GraphDelta:
    """A delta of ``n`` new entities: about 60 bytes each on the wire."""
    ents = tuple(Entity(seq * n + i, "person-" + "x" * 30, 0.5, (1.0, 2.0, 30.0, 40.0), 0.0) for i in range(n))
    return GraphDelta(E, seq, seq * 0.04, ents)


def test_pending_buffer_is_bounded_in_bytes():
    """No snapshot arrives while 16 deltas of about 500 KB do: the buffer keeps at most max_pending_bytes."""
    svc = ScriptedService()
    sub = svc.subscriber(max_pending_bytes=2 * MB, max_items=20_000)
    try:
        svc.next_request(sub)  # and never answered
        svc.connect_pub(sub)
        frames = [wire.encode_delta(_big_delta(seq, 8000), 20_000) for seq in range(1, 17)]
        sizes = [sum(map(len, f)) for f in frames]
        assert 400_000 < min(sizes) and max(sizes) < MB
        for f in frames:
            svc.pub.send_multipart(f)
        dropped = 16 - (2 * MB) // min(sizes)  # at least this many cannot fit
        assert sub.wait_for(lambda s: s.stats().pending_overflow >= dropped, 20), sub.stats()
        settle(sub)
        st = sub.stats()
        assert max(sizes) <= st.pending_bytes_peak <= 2 * MB
        assert dropped <= st.pending_overflow <= dropped + 1 and st.pending_overflow < 16
    finally:
        sub.close()
        svc.close()


def _count_requests(svc, sub, seconds, answer) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            ident, rid = svc.next_request(sub, timeout=deadline - time.monotonic())
        except AssertionError:
            return
        answer(ident, rid)


def test_broken_snapshots_are_retried_with_back_off():
    """A service whose snapshot never adds up (item count off by one): re-asked after 25-50 ms, then twice as long
    each time up to 2 s, so about 8 requests in 3 s instead of one per round trip."""
    graphs = random_graphs(24, E, 3)
    svc = ScriptedService()
    sub = svc.subscriber()
    try:
        svc.connect_pub(sub)
        t0 = time.monotonic()
        _count_requests(svc, sub, 3.0, lambda ident, rid: svc.reply(ident, rid, graphs[3],
                                                                     n_entities=len(graphs[3].entities) + 1))
        st = sub.stats()
        assert 4 <= svc.requests <= 12, (svc.requests, st)
        assert st.snapshot_requests == svc.requests and st.bad_snapshots >= svc.requests - 1
        assert not sub.synced and time.monotonic() - t0 < 5
    finally:
        sub.close()
        svc.close()


def test_stale_snapshots_do_not_cause_a_resync_storm():
    """The service keeps serving a snapshot at seq 2 while its deltas are at seq 10: each install meets the gap
    again. The resyncs are counted and spaced out."""
    graphs = random_graphs(25, E, 10)
    svc = ScriptedService()
    sub = svc.subscriber()
    try:
        svc.connect_pub(sub)
        ident, rid = svc.next_request(sub)
        svc.delta(graphs, 10)
        settle(sub, 0.1)
        svc.reply(ident, rid, graphs[2])
        _count_requests(svc, sub, 3.0, lambda ident, rid: svc.reply(ident, rid, graphs[2]))
        st = sub.stats()
        assert 4 <= svc.requests <= 12, (svc.requests, st)
        assert st.resyncs >= svc.requests - 1 and st.gaps >= svc.requests - 1 and st.snapshots >= svc.requests - 1
    finally:
        sub.close()
        svc.close()
