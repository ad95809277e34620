"""End-to-end tests of the ZeroMQ graph service: real sockets on loopback, the publisher in a separate process."""
import json
import multiprocessing as mp
import queue
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import msgpack
import pytest
import zmq
import zmq.auth

from engine.bench.reliability.faults import LossyProxy
from engine.config import SubscriberConfig, TransportConfig
from engine.graph.diff import diff, empty_graph
from engine.transport import GraphPublisher, GraphSubscriber, new_epoch, view, wire
from engine.types import Entity, GraphDelta, Relation, SceneGraph
from graph_feed import graph_digest, random_graphs, serve_stream

ROOT = Path(__file__).resolve().parents[2]
HB = 0.2  # short heartbeats keep the tests fast
ANY = dict(pub_endpoint="tcp://127.0.0.1:*", snapshot_endpoint="tcp://127.0.0.1:*", heartbeat_s=HB)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class FeedProcess:
    """A publisher in its own process (spawn) serving ``random_graphs(seed, epoch, n)``."""

    def __init__(self, tmp_path, epoch, seed, n, interval_s=0.004, cfg=None):
        ctx = mp.get_context("spawn")
        self.q, self.go, self.stop = ctx.Queue(), ctx.Event(), ctx.Event()
        self.record = tmp_path / f"record-{epoch}.jsonl"
        self.graphs = random_graphs(seed, epoch, n)
        self.proc = ctx.Process(target=serve_stream, args=(self.q, self.go, self.stop, cfg or ANY, epoch, seed, n,
                                                             interval_s, str(self.record)))
        self.proc.start()
        self.pub_ep, self.snap_ep = self.q.get(timeout=30)

    def finish(self) -> dict:
        self.stop.set()
        stats = self.q.get(timeout=30)
        self.proc.join(timeout=10)
        assert self.proc.exitcode == 0
        recorded = [json.loads(line) for line in self.record.read_text().splitlines()]
        assert recorded == [[s, graph_digest(self.graphs[s])] for s in range(1, len(self.graphs))], \
            "the publisher process did not publish the regenerated stream"
        return stats

    def kill(self):
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join()


class Recorder:
    """on_change callback keeping every event's (kind, graph)."""

    def __init__(self):
        self.events = []

    def __call__(self, ev):
        self.events.append((ev.kind, ev.graph))


def check_events(events, expected_by_epoch, prefix=""):
    """Every graph a subscriber exposed equals the publisher's (subtree view) graph at that epoch and seq."""
    assert events
    for kind, g in events:
        want = view(expected_by_epoch[g.epoch][g.seq], prefix)
        assert g == want, f"{kind} event at seq {g.seq}: subscriber graph differs from the publisher's"


def subscriber(feed, subtree="", pub_ep=None, **kw):
    kw.setdefault("heartbeat_timeout_s", 1.0)
    kw.setdefault("snapshot_timeout_s", 1.0)
    sub = GraphSubscriber(SubscriberConfig(pub_ep or feed.pub_ep, feed.snap_ep, subtree, **kw))
    rec = Recorder()
    sub.on_change(rec)
    return sub, rec


def test_subscribers_equal_publisher_after_every_delta(tmp_path):
    epoch, n = new_epoch(), 300
    feed = FeedProcess(tmp_path, epoch, seed=1, n=n)
    subs = [subscriber(feed, p) for p in ("", "e/", "r/", "r/1")]
    try:
        for sub, _ in subs:
            sub.start()
        for sub, _ in subs:
            assert sub.wait_for(lambda s: s.synced and s.stats().heartbeats > 0, 10)
        feed.go.set()
        final = feed.graphs[n]
        for (sub, rec), prefix in zip(subs, ("", "e/", "r/", "r/1")):
            assert sub.wait_for(lambda s: s.graph.seq == n, 15), sub.stats()
            assert sub.graph == view(final, prefix)
            check_events(rec.events, {epoch: feed.graphs}, prefix)
        full = subs[0][0].stats()
        # Subscribed and synced before the first delta: every delta applied in order, none missed.
        assert full.deltas_applied == n and full.gaps == 0 and full.malformed == 0
        assert len(final.entities) > 3 and len(final.relations) > 3
        assert any(len(g.relations) for _, g in subs[2][1].events)  # the relation view is not trivially empty
        stats = feed.finish()
        assert stats["published"] == n and stats["snapshots_served"] >= 4
    finally:
        for sub, _ in subs:
            sub.close()
        feed.kill()


def test_late_joiner_converges(tmp_path):
    epoch, n = new_epoch(), 400
    feed = FeedProcess(tmp_path, epoch, seed=2, n=n)
    try:
        feed.go.set()
        time.sleep(0.8)  # about half of the stream is out before the subscriber exists
        sub, rec = subscriber(feed)
        with sub:
            sub.start()
            assert sub.wait_for(lambda s: s.graph.seq == n, 15), sub.stats()
            assert sub.graph == feed.graphs[n]
            first_kind, first = rec.events[0]
            assert first_kind == "snapshot" and first.seq > 0  # it started from a mid-stream snapshot
            check_events(rec.events, {epoch: feed.graphs})
        feed.finish()
    finally:
        feed.kill()


def test_dropped_deltas_are_detected_and_resynced(tmp_path):
    """Deltas pass through a real proxy that loses 10 % of them: every gap is seen and resynced."""
    epoch, n = new_epoch(), 300
    feed = FeedProcess(tmp_path, epoch, seed=3, n=n)
    proxy = LossyProxy(feed.pub_ep, drop=0.1, reorder=0.0, seed=3)
    sub, rec = subscriber(feed, pub_ep=proxy.endpoint)
    try:
        with proxy, sub:
            sub.start()
            assert sub.wait_for(lambda s: s.synced, 10)
            feed.go.set()
            assert sub.wait_for(lambda s: s.graph.seq == n and s.synced, 15), sub.stats()
            assert sub.graph == feed.graphs[n]
            check_events(rec.events, {epoch: feed.graphs})
            st = sub.stats()
            assert st.gaps >= 5 and st.resyncs >= 5 and st.snapshots == st.resyncs + 1
            assert st.malformed == 0
            assert 10 <= proxy.dropped <= 50 and proxy.forwarded + proxy.dropped == n
            assert st.gaps <= proxy.dropped
        stats = feed.finish()
        assert stats["published"] == n
    finally:
        feed.kill()


@pytest.mark.parametrize("how", ["restart", "silent"])
def test_engine_restart_and_silent_service(tmp_path, how):
    """restart: the first service ends cleanly and a new one (new epoch) takes its endpoints; the subscriber must
    notice through the epoch alone (long heartbeat timeout, no reconnect). silent: the first service is killed
    outright (SIGKILL, heartbeats stop); after heartbeat_timeout_s the subscriber drops its sockets, reconnects,
    keeps what it held meanwhile, and syncs to whatever serves the endpoints next."""
    ports = dict(pub_endpoint=f"tcp://127.0.0.1:{free_port()}", snapshot_endpoint=f"tcp://127.0.0.1:{free_port()}",
                 heartbeat_s=HB)
    first_epoch, second_epoch = new_epoch() + "-a", new_epoch() + "-b"
    feed = FeedProcess(tmp_path, first_epoch, seed=4, n=60, cfg=ports)
    sub, rec = subscriber(feed, heartbeat_timeout_s=10.0 if how == "restart" else 0.8)
    second = None
    try:
        with sub:
            sub.start()
            assert sub.wait_for(lambda s: s.synced, 10)
            feed.go.set()
            assert sub.wait_for(lambda s: s.graph.seq == 60, 10)
            if how == "restart":
                feed.finish()  # close() announces the end of the first epoch's stream
                assert sub.wait_for(lambda s: s.ended, 5), sub.stats()
                assert sub.end_of_stream.epoch == first_epoch and sub.end_of_stream.seq == 60
                assert rec.events[-1][0] == "end" and rec.events[-1][1] == feed.graphs[60]
            else:
                feed.kill()
                assert sub.wait_for(lambda s: s.stats().reconnects >= 1, 5), sub.stats()
                assert sub.graph == feed.graphs[60]
            second = FeedProcess(tmp_path, second_epoch, seed=5, n=60, cfg=ports)
            second.go.set()
            assert sub.wait_for(lambda s: s.graph.epoch == second_epoch and s.graph.seq == 60 and s.synced, 15), \
                sub.stats()
            assert sub.graph == second.graphs[60] and not sub.ended
            if how == "restart":
                assert sub.stats().epoch_changes >= 1 and sub.stats().reconnects == 0
            check_events(rec.events, {first_epoch: feed.graphs, second_epoch: second.graphs})
            second.finish()
    finally:
        feed.kill()
        if second is not None:
            second.kill()


# ---------------------------------------------------------------------------- service robustness (in process)


def _stream(epoch, n, seed=7):
    graphs = random_graphs(seed, epoch, n)
    return graphs, [diff(a, b) for a, b in zip(graphs, graphs[1:])]


def _ask(sock, frames, timeout_ms=2000):
    sock.send_multipart(frames)
    if not sock.poll(timeout_ms):
        return None
    return sock.recv_multipart()


def test_malformed_and_oversized_requests_get_error_replies(tmp_path):
    epoch = new_epoch()
    graphs, deltas = _stream(epoch, 30)
    ctx = zmq.Context()
    with GraphPublisher(TransportConfig(**ANY, snapshot_batch_items=7), epoch) as pub:
        for d in deltas:
            pub.publish(d)
        dealer = ctx.socket(zmq.DEALER)
        dealer.connect(pub.snapshot_endpoint)
        good = msgpack.packb({"v": wire.WIRE_VERSION, "rid": 4, "subtree": ""})
        cases = [
            ([b"garbage"], "malformed", None, "expected 2 frames"),
            ([wire.TOPIC_REQUEST, b"\xc1"], "malformed", None, "not valid msgpack"),
            ([b"vsgg.nope", good], "malformed", None, "request.topic"),
            ([wire.TOPIC_REQUEST, msgpack.packb({"v": 1, "rid": 5, "subtree": ""})], "version", 5, "request.v"),
            ([wire.TOPIC_REQUEST, msgpack.packb({"v": wire.WIRE_VERSION, "rid": 6, "subtree": 3})], "malformed", 6, "request.subtree"),
            ([wire.TOPIC_REQUEST, msgpack.packb({"v": wire.WIRE_VERSION, "rid": 7, "subtree": "", "x": 1})], "malformed", 7,
             "request.x"),
            ([wire.TOPIC_REQUEST, msgpack.packb({"v": wire.WIRE_VERSION, "rid": -1, "subtree": ""})], "malformed", None,
             "request.rid"),
            ([wire.TOPIC_REQUEST, msgpack.packb([1, 2])], "malformed", None, "must be a map"),
            ([wire.TOPIC_REQUEST, msgpack.packb({"v": wire.WIRE_VERSION, "rid": 8, "subtree": msgpack.ExtType(1, b"x")})],
             "malformed", None, "not valid msgpack"),
            ([wire.TOPIC_REQUEST, msgpack.packb({"v": wire.WIRE_VERSION, "rid": 9, "subtree": "x" * 60000})], "too_large", None,
             "exceed the limit"),
            ([wire.TOPIC_REQUEST] + [good] * 20, "malformed", None, "got 21"),
        ]
        for frames, code, rid, words in cases:
            reply = _ask(dealer, frames)
            assert reply is not None, f"no reply to {frames[:2]!r:.60}"
            err = wire.decode_reply(reply, 1 << 20, 1000)
            assert isinstance(err, wire.ErrorReply), err
            assert (err.code, err.rid) == (code, rid) and words in err.reason, err
            assert err.epoch == epoch and err.seq == 30
        # Over ZMQ_MAXMSGSIZE: libzmq drops that connection; no reply, and the service still serves others.
        big = ctx.socket(zmq.DEALER)
        big.connect(pub.snapshot_endpoint)
        assert _ask(big, [wire.TOPIC_REQUEST, b"\0" * (2 << 20)], timeout_ms=500) is None
        # The documented client kind, DEALER, gets the whole snapshot; a REQ socket (one reply per request) gets
        # one error reply naming DEALER instead of the first batch of a snapshot it could never complete.
        dealer2, req = ctx.socket(zmq.DEALER), ctx.socket(zmq.REQ)
        for s in (dealer2, req):
            s.connect(pub.snapshot_endpoint)
            s.send_multipart(wire.encode_request(wire.SnapshotRequest(11, "")))
        ents, rels, end = {}, {}, None
        while end is None:
            assert dealer2.poll(2000)
            msg = wire.decode_reply(dealer2.recv_multipart(), 1 << 20, 1000)
            if isinstance(msg, wire.SnapshotItems):
                ents.update((e.id, e) for e in msg.entities)
                rels.update((r.key, r) for r in msg.relations)
            else:
                end = msg
        assert SceneGraph(end.t, ents, rels, end.epoch, end.seq) == graphs[30]
        assert req.poll(2000)
        err = wire.decode_reply(req.recv_multipart(), 1 << 20, 1000)
        assert isinstance(err, wire.ErrorReply) and err.rid is None and "use a DEALER socket" in err.reason, err
        for s in (dealer2, req):
            s.close(linger=0)
        assert pub.stats().request_errors == len(cases) + 1
    for s in (dealer, big):
        s.close(linger=0)
    ctx.term()


def test_subscriber_survives_malformed_messages():
    """A hostile server: bad snapshot replies and bad PUB messages are counted and dropped, never raised."""
    ctx = zmq.Context()
    pub, router = ctx.socket(zmq.PUB), ctx.socket(zmq.ROUTER)
    pub_port, snap_port = pub.bind_to_random_port("tcp://127.0.0.1"), router.bind_to_random_port("tcp://127.0.0.1")
    ep = "E1"
    e1 = Entity(1, "cup", 0.5, (1.0, 2.0, 3.0, 4.0), 0.0)
    sub = GraphSubscriber(SubscriberConfig(f"tcp://127.0.0.1:{pub_port}", f"tcp://127.0.0.1:{snap_port}",
                                           heartbeat_timeout_s=5.0))
    try:
        sub.start()
        assert router.poll(5000)
        ident, *req = router.recv_multipart()
        rid = wire.decode_request(req, 4096).rid
        router.send_multipart([ident, wire.TOPIC_ITEMS, b"E1", b"\0" * 8, b"\x93"])  # truncated msgpack
        router.send_multipart([ident, wire.TOPIC_ITEMS, b"E1", b"short", b"x"])
        router.send_multipart([ident] + wire.encode_items(ep, 5, rid, [e1], [], 100))
        router.send_multipart([ident] + wire.encode_end(ep, 5, rid, 0.2, 1, 0))
        assert sub.wait_for(lambda s: s.synced, 5)
        assert sub.graph == SceneGraph(0.2, {1: e1}, {}, ep, 5) and sub.stats().malformed == 2
        while sub.stats().heartbeats == 0:  # SUB connected (slow joiner) before the bad messages go out
            pub.send_multipart(wire.encode_heartbeat(ep, 5, 1.0))
            time.sleep(0.02)
        good = wire.encode_delta(GraphDelta(ep, 6, 0.24, remove_entity_ids=(1,)), 100)
        body = msgpack.unpackb(good[3])
        bad = [
            [b"vsgg.hb only one frame"],
            good[:3] + [b"\xc1"],
            good[:3] + [msgpack.packb({**body, "v": 1})],
            good[:3] + [msgpack.packb({**body, "ents": [[2, "cup", 20000, [0, 0, 10, 10], 0.0]]})],
            good[:3] + [msgpack.packb({**body, "ents": [[2, "cup", 5000, [50, 0, 10, 10], 0.0]]})],
            good[:2] + [b"\0" * 3, good[3]],
            good + [b"extra"],
            [wire.TOPIC_DELTA, "é".encode(), good[2], good[3]],
        ]
        for frames in bad:
            pub.send_multipart(frames)
        pub.send_multipart(good)
        assert sub.wait_for(lambda s: s.graph.seq == 6, 5), sub.stats()
        assert sub.graph.entities == {} and sub.stats().malformed == 2 + len(bad)
    finally:
        sub.close()
        pub.close(linger=0)
        router.close(linger=0)
        ctx.term()


def test_curve_authorised_client_gets_the_graph_and_unknown_client_nothing(tmp_path):
    if not zmq.has("curve"):
        pytest.skip("libzmq was built without CURVE")
    keys, allowed = tmp_path / "keys", tmp_path / "allowed"
    keys.mkdir(), allowed.mkdir()
    _, server_secret = zmq.auth.create_certificates(keys, "server")
    alice_public, alice_secret = zmq.auth.create_certificates(keys, "alice")
    _, mallory_secret = zmq.auth.create_certificates(keys, "mallory")
    Path(alice_public).rename(allowed / Path(alice_public).name)
    server_public = str(keys / "server.key")
    epoch = new_epoch()
    graphs, deltas = _stream(epoch, 20)
    cfg = TransportConfig(**ANY, curve_secret_key_file=str(server_secret), curve_authorized_keys_dir=str(allowed))
    with GraphPublisher(cfg, epoch) as pub:
        for d in deltas:
            pub.publish(d)
        eps = dict(pub_endpoint=pub.pub_endpoint, snapshot_endpoint=pub.snapshot_endpoint)
        alice = GraphSubscriber(SubscriberConfig(**eps, curve_server_key_file=server_public,
                                                 curve_client_key_file=str(alice_secret)))
        mallory = GraphSubscriber(SubscriberConfig(**eps, curve_server_key_file=server_public,
                                                   curve_client_key_file=str(mallory_secret), snapshot_timeout_s=0.3))
        plain = GraphSubscriber(SubscriberConfig(**eps, snapshot_timeout_s=0.3))
        with alice, mallory, plain:
            for s in (alice, mallory, plain):
                s.start()
            assert alice.wait_for(lambda s: s.synced and s.stats().heartbeats > 0, 5)
            assert alice.graph == graphs[20]
            time.sleep(1.0)
            for s in (mallory, plain):
                st = s.stats()
                assert not s.synced and s.graph.seq == 0 and st.snapshots == 0 and st.heartbeats == 0
                assert st.snapshot_timeouts >= 2  # it kept asking, and got nothing


# ------------------------------------------------------------------------------------------------- vsgg watch


def _scripted(epoch):
    """Six graphs: entity 1 appears; entity 2 and a relation appear; the relation changes; ends; entity 2 goes."""
    p = Entity(1, "person", 0.9, (10.0, 20.0, 50.0, 120.0), 0.04)
    c = Entity(2, "cup", 0.8, (60.0, 70.0, 80.0, 90.0), 0.08)
    r = Relation(1, "holding", 2, 0.8, start_time=0.08)
    steps = [({}, {}), ({1: p}, {}), ({1: p, 2: c}, {r.key: r}),
             ({1: p, 2: c}, {r.key: Relation(1, "holding", 2, 0.7, start_time=0.08)}), ({1: p, 2: c}, {}),
             ({1: p}, {})]
    return [SceneGraph(i * 0.04, e, rl, epoch, i) for i, (e, rl) in enumerate(steps)]


def _run_watch(args, timeout=30):
    return subprocess.Popen([sys.executable, "-m", "engine.cli", "watch", *args], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_vsgg_watch_prints_changes(tmp_path):
    epoch = new_epoch()
    graphs = _scripted(epoch)
    with GraphPublisher(TransportConfig(**ANY), epoch) as pub:
        proc = _run_watch([pub.pub_endpoint, "--snapshot", pub.snapshot_endpoint, "--count", "25", "--timeout", "30",
                           "--status-every", "0", "--heartbeat-timeout", "2"])
        lines: queue.Queue = queue.Queue()
        threading.Thread(target=lambda: [lines.put(x.rstrip("\n")) for x in proc.stdout], daemon=True).start()
        out = []
        while not any(x.startswith("= snapshot") for x in out):
            out.append(lines.get(timeout=20))
        for a, b in zip(graphs, graphs[1:]):
            pub.publish(diff(a, b))
        g = graphs[-1]
        for seq in range(6, 26):  # entity 1 moves: not printed without --entity-updates
            e = g.entities[1]
            nxt = SceneGraph(seq * 0.04, {1: Entity(1, "person", 0.9, tuple(v + 1 for v in e.box_xyxy), 0.04)}, {},
                             epoch, seq)
            pub.publish(diff(g, nxt))
            g = nxt
        assert proc.wait(timeout=30) == 0, proc.stderr.read()
        time.sleep(0.1)
        while not lines.empty():
            out.append(lines.get())
    assert out[1] == f"= snapshot epoch={epoch} seq=0 t=0.000 entities=0 relations=0"
    assert out[2:7] == ["1 + entity 1 person score=0.90 box=[10.0,20.0,50.0,120.0]",
                        "2 + entity 2 cup score=0.80 box=[60.0,70.0,80.0,90.0]",
                        "2 + relation 1 holding 2 score=0.80",
                        "3 ~ relation 1 holding 2 score=0.70",
                        "4 - relation 1 holding 2"]
    assert out[7] == "5 - entity 2 cup"
    assert out[-1].startswith(f"# status epoch={epoch} seq=25 entities=1 relations=0 deltas=25 ")


def test_vsgg_watch_times_out_without_a_service():
    port = free_port()
    proc = _run_watch([f"tcp://127.0.0.1:{port}", "--count", "1", "--timeout", "1"])
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 1, err
    assert f"snapshots from tcp://127.0.0.1:{port + 1}" in out and "synced=no" in out.splitlines()[-1]


def test_pending_buffer_is_bounded_while_syncing():
    """No snapshot service answers: deltas pile up in the pending buffer, which never exceeds max_pending."""
    ctx = zmq.Context()
    pub = ctx.socket(zmq.PUB)
    port = pub.bind_to_random_port("tcp://127.0.0.1")
    sub = GraphSubscriber(SubscriberConfig(f"tcp://127.0.0.1:{port}", f"tcp://127.0.0.1:{free_port()}",
                                           max_pending=10, heartbeat_timeout_s=5.0))
    try:
        sub.start()
        while sub.stats().heartbeats == 0:
            pub.send_multipart(wire.encode_heartbeat("E", 0, 1.0))
            time.sleep(0.02)
        for seq in range(1, 101):
            pub.send_multipart(wire.encode_delta(GraphDelta("E", seq, seq * 0.04), 10))
        assert sub.wait_for(lambda s: s.stats().pending_overflow == 90, 5), sub.stats()
        assert not sub.synced and sub.graph.seq == 0
    finally:
        sub.close()
        pub.close(linger=0)
        ctx.term()


def test_long_burst_ends_equal(tmp_path):
    """5,000 deltas as fast as the publisher takes them: whatever the high-water marks drop is resynced."""
    epoch = new_epoch()
    graphs, deltas = _stream(epoch, 5000, seed=9)
    with GraphPublisher(TransportConfig(**ANY), epoch) as pub:
        sub = GraphSubscriber(SubscriberConfig(pub.pub_endpoint, pub.snapshot_endpoint, heartbeat_timeout_s=2.0,
                                               max_pending=500))
        rec = Recorder()
        sub.on_change(rec)
        with sub:
            sub.start()
            assert sub.wait_for(lambda s: s.synced, 5)
            for d in deltas:
                pub.publish(d)
            assert sub.wait_for(lambda s: s.graph.seq == 5000 and s.synced, 20), sub.stats()
            assert sub.graph == graphs[5000] == pub.graph
            check_events(rec.events, {epoch: graphs})
