"""Injected faults: the watcher's final graph must equal the service's after each (real processes, loopback only).

The service is a real ``vsgg run`` replaying a generated MOT sequence (engine.bench.reliability.scene) at its frame
rate on ZeroMQ; the main subscriber is a real ``vsgg watch`` that exits 0 once it holds the final graph of the
stream. Both write their final graph (``--final-graph``); a fault is *recovered* when the watcher exits 0 and the two
files are equal. Faults (``FAULTS``):

* ``kill9_restart``:  the service is killed with SIGKILL mid-stream and a new one (new epoch) started on the same
                      ports; the watcher must end on the new service's final graph;
* ``lossy_proxy``:    the watcher listens through a proxy that drops 10 % of the deltas and swaps 10 % with the
                      next one (reordering); snapshots come from the service;
* ``silent_service``: the service is stopped (SIGSTOP) for 2.5 s, longer than the watcher's heartbeat timeout, then
                      continued;
* ``slow_and_stuck``: a subscriber that sleeps 15 ms per graph event (it falls behind a 100 fps stream) and a SUB
                      socket that never reads run beside the watcher; the service must not block, and the slow
                      subscriber must end on the final graph too;
* ``oversized_subscriptions``: raw ZMTP peers subscribe a 10 MB topic, 200 topics of 50 KB and 20,000 random
                      topics; the service's RSS growth is recorded, and the watcher must recover.
"""
from __future__ import annotations

import random
import signal
import socket
import sys
import threading
import time
from pathlib import Path

import zmq

from engine.bench.reliability.processes import (Child, free_port_pair, graph_size, has_traceback,
                                                run_service_argv, same_graph, watch_argv)
from engine.bench.reliability.roles import rss_kb
from engine.bench.reliability.scene import write_mot_sequence
from engine.transport import wire

FAULTS = ("kill9_restart", "lossy_proxy", "silent_service", "slow_and_stuck", "oversized_subscriptions")


class LossyProxy:
    """SUB -> PUB forwarder on loopback that drops a seeded fraction of deltas and delays another fraction by one
    delta (so it arrives after its successor). Other messages (heartbeats, end of stream) pass unchanged. With
    reorder=0 it is a plain dropping network (the transport tests use it so). Subscribers connect to ``endpoint``;
    snapshots still come straight from the service's ROUTER."""

    def __init__(self, upstream: str, drop: float, reorder: float, seed: int = 0):
        self._rng = random.Random(seed)
        self._drop, self._reorder = drop, reorder
        self._ctx = zmq.Context()
        self._sub = self._ctx.socket(zmq.SUB)
        self._sub.setsockopt(zmq.SUBSCRIBE, b"")
        self._sub.setsockopt(zmq.RCVHWM, 0)
        self._sub.connect(upstream)
        self._pub = self._ctx.socket(zmq.PUB)
        self._pub.setsockopt(zmq.SNDHWM, 0)
        self.endpoint = f"tcp://127.0.0.1:{self._pub.bind_to_random_port('tcp://127.0.0.1')}"
        self.dropped = self.reordered = self.forwarded = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lossy-proxy", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        held = None
        while not self._stop.is_set():
            if not self._sub.poll(20):
                continue
            frames = self._sub.recv_multipart()
            if frames[0] != wire.TOPIC_DELTA:
                self._pub.send_multipart(frames)
                continue
            u = self._rng.random()
            if u < self._drop:
                self.dropped += 1
                continue
            if held is None and u < self._drop + self._reorder:
                held = frames
                self.reordered += 1
                continue
            self._pub.send_multipart(frames)
            self.forwarded += 1
            if held is not None:
                self._pub.send_multipart(held)
                held = None

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._sub.close(linger=0)
        self._pub.close(linger=0)
        self._ctx.term()

    def __enter__(self) -> "LossyProxy":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class ZmtpPeer:
    """A subscriber speaking ZMTP 3.0 (NULL security) over a plain TCP socket, so it can send subscriptions a
    libzmq SUB socket would refuse or choke on itself. Written from the ZMTP 3.0 specification (rfc 23)."""

    def __init__(self, endpoint: str):
        host, port = endpoint[len("tcp://"):].rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=5)
        greeting = b"\xff" + bytes(8) + b"\x7f" + b"\x03\x00" + b"NULL".ljust(20, b"\0") + b"\x00" + bytes(31)
        ready = b"\x05READY" + b"\x0bSocket-Type" + (3).to_bytes(4, "big") + b"SUB"
        self.sock.sendall(greeting + self._frame(ready, command=True))

    @staticmethod
    def _frame(body: bytes, command: bool = False) -> bytes:
        long = len(body) > 255
        flags = (0x04 if command else 0) | (0x02 if long else 0)
        return bytes([flags]) + len(body).to_bytes(8 if long else 1, "big") + body

    def subscribe(self, topics) -> bool:
        """Send a subscription per topic; False once the service has dropped this connection."""
        try:
            self.sock.sendall(b"".join(self._frame(b"\x01" + t) for t in topics))
            return True
        except OSError:
            return False

    def close(self) -> None:
        self.sock.close()


def _sequence(folder: Path, frames: int, fps: float, seed: int) -> Path:
    return write_mot_sequence(folder / "seq", frames, n=6, seed=seed, fps=fps)


class _Run:
    """One fault scenario's processes and verdict (children are killed on exit)."""

    def __init__(self, name: str, folder: Path, model: str):
        self.name, self.model = name, model
        self.folder = folder / name
        self.folder.mkdir(parents=True, exist_ok=True)
        self.children: list[Child] = []
        self.notes: dict = {}

    def child(self, name: str, argv: list[str]) -> Child:
        c = Child(name, argv, self.folder)
        self.children.append(c)
        return c

    def close(self) -> None:
        for c in self.children:
            c.stop()

    def verdict(self, watcher: Child, service_final: Path, watcher_final: Path, service: Child | None) -> dict:
        rc = watcher.wait(60)
        if service is not None:
            service.wait(30)
        equal = rc == 0 and same_graph(service_final, watcher_final)
        status = [ln for ln in watcher.stdout().splitlines() if ln.startswith("# status ")]
        kv = dict(x.split("=", 1) for x in status[-1].split()[2:] if "=" in x) if status else {}
        return {"fault": self.name, "recovered": bool(equal), "watcher_exit": rc,
                "watcher": {k: int(kv[k]) for k in ("snapshots", "resyncs", "gaps", "reconnects") if k in kv},
                "graph": dict(zip(("entities", "relations"), graph_size(service_final))),
                "tracebacks": [c.name for c in self.children if has_traceback(c)], **self.notes}


def _start(run: _Run, det: Path, port: int, name: str = "service", linger: float = 3.0) -> tuple[Child, Path]:
    final = run.folder / f"{name}_final.json"
    svc = run.child(name, run_service_argv(det, port, final, run.model, linger))
    return svc, final


def _watch(run: _Run, pub: str, snapshot: str, name: str = "watcher") -> tuple[Child, Path]:
    final = run.folder / f"{name}_final.json"
    return run.child(name, watch_argv(pub, snapshot, final)), final


def _eps(port: int) -> tuple[str, str]:
    return f"tcp://127.0.0.1:{port}", f"tcp://127.0.0.1:{port + 1}"


def kill9_restart(run: _Run, frames: int, fps: float, seed: int) -> dict:
    det, port = _sequence(run.folder, frames, fps, seed), free_port_pair()
    first, _ = _start(run, det, port, "service_killed")
    watcher, w_final = _watch(run, *_eps(port))
    watcher.wait_for_output("= snapshot", 30)
    time.sleep(0.4 * frames / fps)
    first.signal(signal.SIGKILL)
    run.notes["killed_exit"] = first.wait(10)
    time.sleep(1.5)  # longer than the watcher's heartbeat timeout: it notices the silence and reconnects
    second, s_final = _start(run, det, port, "service_restarted")
    return run.verdict(watcher, s_final, w_final, second)


def lossy_proxy(run: _Run, frames: int, fps: float, seed: int) -> dict:
    det, port = _sequence(run.folder, frames, fps, seed), free_port_pair()
    svc, s_final = _start(run, det, port)
    pub, snap = _eps(port)
    proxy = LossyProxy(pub, drop=0.10, reorder=0.10, seed=seed)
    try:
        watcher, w_final = _watch(run, proxy.endpoint, snap)
        out = run.verdict(watcher, s_final, w_final, svc)
    finally:
        proxy.close()
    out.update(dropped=proxy.dropped, reordered=proxy.reordered, forwarded=proxy.forwarded)
    return out


def silent_service(run: _Run, frames: int, fps: float, seed: int) -> dict:
    det, port = _sequence(run.folder, frames, fps, seed), free_port_pair()
    svc, s_final = _start(run, det, port)
    watcher, w_final = _watch(run, *_eps(port))
    watcher.wait_for_output("= snapshot", 30)
    time.sleep(0.3 * frames / fps)
    svc.signal(signal.SIGSTOP)
    time.sleep(2.5)
    svc.signal(signal.SIGCONT)
    return run.verdict(watcher, s_final, w_final, svc)


def slow_and_stuck(run: _Run, frames: int, fps: float, seed: int) -> dict:
    det, port = _sequence(run.folder, frames, fps, seed), free_port_pair()
    svc, s_final = _start(run, det, port)
    pub, snap = _eps(port)
    ctx = zmq.Context()
    stuck = ctx.socket(zmq.SUB)  # subscribes and never reads: its queues fill, the service must not care
    stuck.setsockopt(zmq.RCVHWM, 10)
    stuck.setsockopt(zmq.SUBSCRIBE, b"")
    stuck.connect(pub)
    try:
        slow_final = run.folder / "slow_final.json"
        slow = run.child("slow_subscriber", [sys.executable, "-m", "engine.bench.reliability.roles", "subscriber",
                                             "--pub", pub, "--snapshot", snap, "--slow", "0.015", "--timeout", "90",
                                             "--final", str(slow_final)])
        watcher, w_final = _watch(run, pub, snap)
        t0 = time.monotonic()
        out = run.verdict(watcher, s_final, w_final, svc)
        run_s = time.monotonic() - t0
        slow_rc = slow.wait(90)
    finally:
        stuck.close(linger=0)
        ctx.term()
    slow_equal = slow_rc == 0 and same_graph(s_final, slow_final)
    out.update(recovered=out["recovered"] and slow_equal, slow_subscriber_equal=slow_equal,
               service_exit=svc.proc.returncode, service_done_s=round(run_s, 2))
    return out


def oversized_subscriptions(run: _Run, frames: int, fps: float, seed: int) -> dict:
    det, port = _sequence(run.folder, frames, fps, seed), free_port_pair()
    svc, s_final = _start(run, det, port)
    pub, snap = _eps(port)
    watcher, w_final = _watch(run, pub, snap)
    watcher.wait_for_output("= snapshot", 30)
    before = rss_kb(svc.pid)
    rng = random.Random(seed)
    peers = []
    try:
        for topics in ([b"x" * (10 << 20)], [rng.randbytes(50_000) for _ in range(200)],
                       [rng.randbytes(rng.randint(1, 60)) for _ in range(20_000)]):
            p = ZmtpPeer(pub)
            p.subscribe(topics)
            peers.append(p)
        peak = before
        t_end = time.monotonic() + 2.0
        while time.monotonic() < t_end:
            peak = max(peak, rss_kb(svc.pid))
            time.sleep(0.05)
    finally:
        for p in peers:
            p.close()
    run.notes["service_rss_growth_mb"] = round((peak - before) / 1024, 1)
    return run.verdict(watcher, s_final, w_final, svc)


SCENARIOS = {"kill9_restart": kill9_restart, "lossy_proxy": lossy_proxy, "silent_service": silent_service,
             "slow_and_stuck": slow_and_stuck, "oversized_subscriptions": oversized_subscriptions}


def run_faults(folder: Path, names=FAULTS, frames: int = 300, fps: float = 60.0, seed: int = 0,
               model: str = "default", progress=None) -> list[dict]:
    """Run the named fault scenarios one after another; one result dict per scenario.

    frames / fps: length and rate of the replayed sequence (``frames / fps`` seconds of stream per scenario).
    model: ``default`` (the shipped relation model: graphs with relations) or ``none`` (tracker-only graphs)."""
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        raise ValueError(f"faults: unknown {unknown} (known: {', '.join(FAULTS)})")
    from engine.cli.run import DEFAULT_MODEL
    model_arg = str(DEFAULT_MODEL) if model == "default" else model
    results = []
    for i, name in enumerate(names):
        run = _Run(name, folder, model_arg)
        t0 = time.monotonic()
        try:
            r = SCENARIOS[name](run, frames, fps, seed + i)
        finally:
            run.close()
        r["seconds"] = round(time.monotonic() - t0, 1)
        results.append(r)
        if progress is not None:
            progress(1)
    return results
