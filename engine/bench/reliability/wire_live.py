"""Malformed messages over real sockets: snapshot requests to a live service's ROUTER, PUB messages to a subscriber.

* ``fuzz_router``: a ``service`` role process (engine + GraphPublisher, engine.bench.reliability.roles) gets
  mutated snapshot requests from a DEALER, plus oversized ones (over ``max_request_bytes``: a ``too_large`` error
  reply; over ZMQ_MAXMSGSIZE: libzmq drops the connection). Per case: ``clear`` (an error reply), ``accepted`` (a
  snapshot reply), ``dropped`` (no reply within 1 s: the connection was dropped or the message was not a request;
  the DEALER is replaced). Afterwards the service must still be alive and serve a fresh GraphSubscriber, else every
  case since the last healthy check counts as ``crash``.
* ``fuzz_subscriber``: a GraphSubscriber in this process follows a scripted service (a PUB and a ROUTER socket
  driven here) that serves a valid snapshot and then sends mutated deltas, heartbeats and end-of-stream messages.
  Per case: ``clear`` (the subscriber counted it malformed), ``accepted`` (applied or ignored as stale/a gap),
  ``filtered`` (a topic the SUB socket does not subscribe to: never delivered) or ``crash`` (``poll`` raised).
  Afterwards a new epoch's end of stream must bring it to that epoch's final graph (``recovered``).
"""
from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
import time
from collections import Counter

import msgpack
import zmq

from engine.bench.reliability.mutators import case_class, case_rng, mutate
from engine.bench.reliability.parser_targets import MAX_ITEMS, ROOT, TARGETS, sample_graphs, split_frames
from engine.config import SubscriberConfig
from engine.transport import GraphSubscriber, wire
from engine.types import SceneGraph


def _reply(dealer: zmq.Socket, timeout_s: float) -> str | None:
    """Topic of the first reply message (its other parts drained), or None when nothing came."""
    if not dealer.poll(int(timeout_s * 1000)):
        return None
    topic = dealer.recv_multipart()[0]
    while dealer.poll(50):  # the rest of a snapshot reply
        dealer.recv_multipart()
    return topic.decode(errors="replace")


def _healthy(pub: str, snap: str) -> bool:
    with GraphSubscriber(SubscriberConfig(pub, snap, heartbeat_timeout_s=2.0)) as sub:
        return sub.wait_for(lambda s: s.synced, 10)


def fuzz_router(cases: int, seed: int, deadline: float | None = None) -> dict:
    """Send ``cases`` mutated requests (and 3 oversized ones) to a live service process; outcome counts."""
    target = TARGETS["wire_router_request"]
    svc = subprocess.Popen([sys.executable, "-m", "engine.bench.reliability.roles", "service", "--seconds", "600",
                            "--max-fps", "30", "--report-s", "3600"], cwd=ROOT, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    counts: Counter = Counter()
    ctx = zmq.Context()
    dealer = None
    alive = False
    try:
        eps = json.loads(svc.stdout.readline())
        pub, snap = eps["pub"], eps["snapshot"]

        def new_dealer():
            d = ctx.socket(zmq.DEALER)
            d.setsockopt(zmq.LINGER, 0)
            d.connect(snap)
            return d

        dealer = new_dealer()
        oversized = [[wire.TOPIC_REQUEST, msgpack.packb({"v": 3, "rid": 1, "subtree": "e" * 5000})],
                     [wire.TOPIC_REQUEST, b"\x00" * (2 << 20)], [b"x"] * 5000]
        msgs: list[list[bytes]] = []
        for i in range(cases):
            if deadline is not None and time.monotonic() > deadline:
                break
            rng = case_rng(seed, "router_live", i)
            data = mutate(target.seed(lambda n: 0), target.serialize, case_class(rng), rng)
            msgs.append(split_frames(data) or [b""])
        msgs += oversized
        for frames in msgs:
            dealer.send_multipart(frames)
            topic = _reply(dealer, 1.0)
            if topic == wire.TOPIC_ERROR.decode():
                counts["clear"] += 1
            elif topic in (wire.TOPIC_ITEMS.decode(), wire.TOPIC_END.decode()):
                counts["accepted"] += 1
            else:
                counts["dropped"] += 1
                dealer.close()
                dealer = new_dealer()
        alive = svc.poll() is None and _healthy(pub, snap)
        if not alive:
            counts["crash"] += sum(counts.values())
    finally:
        if dealer is not None:
            dealer.close()
        ctx.term()
        svc.kill()
        _, err = svc.communicate()
    return {"cases": len(msgs), **{k: counts[k] for k in ("clear", "accepted", "dropped", "crash")},
            "service_alive": bool(alive), "traceback": "Traceback" in err}


class _ScriptedService:
    """PUB + ROUTER on free loopback ports; answers every snapshot request with ``self.graph``."""

    def __init__(self, graph):
        self.graph = graph
        self._ctx = zmq.Context()
        self.pub = self._ctx.socket(zmq.PUB)
        self.router = self._ctx.socket(zmq.ROUTER)
        self.pub_ep = f"tcp://127.0.0.1:{self.pub.bind_to_random_port('tcp://127.0.0.1')}"
        self.snap_ep = f"tcp://127.0.0.1:{self.router.bind_to_random_port('tcp://127.0.0.1')}"
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            if not self.router.poll(20):
                continue
            ident, *body = self.router.recv_multipart()
            req = wire.decode_request(body, 4096)
            g = self.graph
            with self._lock:
                self.router.send_multipart([ident, *wire.encode_items(g.epoch, g.seq, req.rid,
                                                                      list(g.entities.values()),
                                                                      list(g.relations.values()), MAX_ITEMS)])
                self.router.send_multipart([ident, *wire.encode_end(g.epoch, g.seq, req.rid, g.t, len(g.entities),
                                                                    len(g.relations))])

    def send(self, frames) -> None:
        with self._lock:
            self.pub.send_multipart(frames)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.pub.close(linger=0)
        self.router.close(linger=0)
        self._ctx.term()


def fuzz_subscriber(cases: int, seed: int, deadline: float | None = None) -> dict:
    """Send ``cases`` mutated PUB messages to a GraphSubscriber in this process; outcome counts and recovery."""
    target = TARGETS["wire_sub_message"]
    g0, g1, _ = sample_graphs()
    svc = _ScriptedService(g0)
    counts: Counter = Counter()
    crash_examples = []
    sub = GraphSubscriber(SubscriberConfig(svc.pub_ep, svc.snap_ep, heartbeat_timeout_s=5.0))
    quiet = logging.getLogger("engine.transport")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)  # it logs every malformed message (rate-limited): expected here
    try:
        sub.wait_for(lambda s: s.synced, 10)
        time.sleep(0.2)  # the SUB connection must be up before messages are published (PUB drops otherwise)
        n = 0
        for i in range(cases):
            if deadline is not None and time.monotonic() > deadline:
                break
            rng = case_rng(seed, "sub_live", i)
            doc = target.seed(lambda k: rng.randrange(k))
            frames = split_frames(mutate(doc, target.serialize, case_class(rng), rng)) or [b""]
            before = sub.stats()
            svc.send(frames)
            n += 1
            try:
                # every message a SUB socket lets through moves some counter (malformed, heartbeats, stale ...)
                seen = sub.wait_for(lambda s: s.stats() != before, 0.15)
            except Exception as e:  # noqa: BLE001 - the subscriber must never raise on input
                counts["crash"] += 1
                crash_examples.append(f"{type(e).__name__}: {e}"[:200])
                continue
            if not seen:
                counts["filtered"] += 1  # a topic the SUB socket does not subscribe to: never delivered
            else:
                counts["clear" if sub.stats().malformed > before.malformed else "accepted"] += 1
        # Whatever state the fuzz left (a mutated delta may have been valid and applied), a new epoch's service
        # announcing the end of its stream must bring the subscriber to that stream's final graph.
        final = SceneGraph(g1.t, g1.entities, g1.relations, "FUZZ-2", g1.seq)
        svc.graph = final
        for _ in range(10):
            svc.send(wire.encode_eos(final.epoch, final.seq, final.t))
            if sub.wait_for(lambda s: s.ended and s.graph.epoch == final.epoch, 1.0):
                break
        recovered = sub.ended and sub.graph == final
        stats = sub.stats()
    finally:
        quiet.setLevel(level)
        sub.close()
        svc.close()
    return {"cases": n, **{k: counts[k] for k in ("clear", "accepted", "filtered", "crash")},
            "recovered": bool(recovered), "graph_seq": sub.graph.seq, "graph_epoch": sub.graph.epoch,
            "malformed_counted": stats.malformed, "resyncs": stats.resyncs, "crash_examples": crash_examples[:5]}
