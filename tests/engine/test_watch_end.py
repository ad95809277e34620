"""End of stream (wire version 3) and the exit status of `vsgg watch`: real `vsgg watch` processes, real sockets."""
import queue
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import msgpack
import zmq

from engine.bench.reliability.faults import LossyProxy
from engine.config import SubscriberConfig, TransportConfig
from engine.graph.diff import diff
from engine.transport import GraphPublisher, GraphSubscriber, new_epoch, wire
from graph_feed import random_graphs

ROOT = Path(__file__).resolve().parents[2]
ANY = dict(pub_endpoint="tcp://127.0.0.1:*", snapshot_endpoint="tcp://127.0.0.1:*", heartbeat_s=0.2)


def watch(*args) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "engine.cli", "watch", *args, "--status-every", "0"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def lines_of(proc: subprocess.Popen) -> queue.Queue:
    q: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [q.put(x.rstrip("\n")) for x in proc.stdout], daemon=True).start()
    return q


def wait_line(q: queue.Queue, prefix: str, out: list, timeout: float = 20) -> None:
    while not any(x.startswith(prefix) for x in out):
        out.append(q.get(timeout=timeout))


def test_watch_exits_0_after_the_end_of_stream_late_joiner_too():
    epoch = new_epoch()
    graphs = random_graphs(5, epoch, 40)
    with GraphPublisher(TransportConfig(**ANY), epoch) as pub:
        eps = (pub.pub_endpoint, "--snapshot", pub.snapshot_endpoint, "--heartbeat-timeout", "5")
        early = watch(*eps)  # no --timeout and no --count: only the end of the stream stops it
        q, out = lines_of(early), []
        wait_line(q, "= snapshot", out)
        for a, b in zip(graphs, graphs[1:]):
            pub.publish(diff(a, b))
        pub.end_stream()
        assert early.wait(timeout=20) == 0, early.stderr.read()
        time.sleep(0.1)
        while not q.empty():
            out.append(q.get())
        # A watcher started after the end: snapshot, then the repeated end-of-stream message.
        late = watch(*eps)
        late_out, err = late.communicate(timeout=20)
        assert late.returncode == 0, err
    end = f"= end epoch={epoch} seq=40 t={graphs[40].t:.3f} entities={len(graphs[40].entities)} " \
          f"relations={len(graphs[40].relations)}"
    assert out[-2] == end and out[-1].startswith(f"# status epoch={epoch} seq=40 ")
    late_lines = late_out.splitlines()
    assert late_lines[1].startswith(f"= snapshot epoch={epoch} seq=40 ") and late_lines[-2] == end


def test_watch_with_nothing_received_exits_1_on_timeout():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    t0 = time.monotonic()
    proc = watch(f"tcp://127.0.0.1:{port}", "--timeout", "1")
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 1 and "nothing received" in err and "--timeout 1 s" in err, (out, err)
    assert time.monotonic() - t0 < 15


def test_watch_stops_at_once_on_a_wire_version_mismatch():
    """A version-2 service (as the previous release): v2 heartbeats, and a v2 'version' error for our request."""
    ctx = zmq.Context()
    pub, router = ctx.socket(zmq.PUB), ctx.socket(zmq.ROUTER)
    pub_port, snap_port = pub.bind_to_random_port("tcp://127.0.0.1"), router.bind_to_random_port("tcp://127.0.0.1")
    stop = threading.Event()

    def old_service():
        hb = msgpack.packb({"v": 2, "interval_s": 0.05})
        while not stop.is_set():
            pub.send_multipart([wire.TOPIC_HEARTBEAT, b"OLD", bytes(8), hb])
            if router.poll(50):
                ident, _, body = router.recv_multipart()
                rid = msgpack.unpackb(body)["rid"]
                err = msgpack.packb({"v": 2, "rid": rid, "code": "version", "reason": "request.v: wire version 3 is "
                                     "not supported (this side speaks 2)"})
                router.send_multipart([ident, wire.TOPIC_ERROR, b"OLD", bytes(8), err])

    t = threading.Thread(target=old_service, daemon=True)
    t.start()
    try:
        t0 = time.monotonic()
        proc = watch(f"tcp://127.0.0.1:{pub_port}", "--snapshot", f"tcp://127.0.0.1:{snap_port}", "--timeout", "60")
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 1, (out, err)
        assert "speaks another wire version than this client (version 3)" in err and "wire version 2" in err, err
        assert time.monotonic() - t0 < 15  # it did not wait for --timeout
    finally:
        stop.set()
        t.join()
        pub.close(linger=0)
        router.close(linger=0)
        ctx.term()


def test_subscriber_that_lost_the_last_deltas_resyncs_to_the_final_graph():
    """Every delta is lost on the way (a real proxy drops them all); the end-of-stream message names seq 12, so the
    subscriber sees it is behind, takes a snapshot and only then reports the end."""
    epoch = new_epoch()
    graphs = random_graphs(6, epoch, 12)
    with GraphPublisher(TransportConfig(**ANY), epoch) as pub, \
            LossyProxy(pub.pub_endpoint, drop=1.0, reorder=0.0) as proxy:
        sub = GraphSubscriber(SubscriberConfig(proxy.endpoint, pub.snapshot_endpoint, heartbeat_timeout_s=5.0))
        kinds = []
        sub.on_change(lambda ev: kinds.append((ev.kind, ev.graph.seq)))
        with sub:
            assert sub.wait_for(lambda s: s.synced and s.stats().heartbeats > 0, 10)
            for a, b in zip(graphs, graphs[1:]):
                pub.publish(diff(a, b))
            pub.end_stream()
            assert sub.wait_for(lambda s: s.ended, 10), sub.stats()
            assert sub.graph == graphs[12] and proxy.dropped == 12
            st = sub.stats()
            assert st.deltas_applied == 0 and st.gaps == 1 and st.resyncs == 1 and st.ends >= 1
            assert kinds == [("snapshot", 0), ("snapshot", 12), ("end", 12)]
            sub.poll(0.5)  # the repeated announcement does not report the end again
            assert kinds[-1] == ("end", 12) and len(kinds) == 3 and sub.stats().ends >= 2
