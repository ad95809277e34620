"""The processes of the soak and fault runs: engine alone, graph service (engine + publisher), and a subscriber.

Run as ``python -m engine.bench.reliability.roles ROLE [options]``; each role writes JSON lines on stdout:

* ``engine``:     a tracker-only Engine (no relation model) stepping ``MovingBoxes`` for ``--seconds``;
* ``service``:    the same Engine publishing every delta through a GraphPublisher bound on free loopback ports
                  (first line: ``{"pub": ..., "snapshot": ..., "epoch": ...}``); at the end it announces the end
                  of the stream, keeps serving for ``--linger`` seconds and writes its final graph to ``--final``;
* ``subscriber``: a GraphSubscriber of ``--pub``/``--snapshot`` until the stream ends (or ``--timeout``); with
                  ``--slow S`` it sleeps S seconds after every graph event (a consumer that cannot keep up); writes
                  its graph to ``--final`` and its stats to ``--stats``.

Every ``--report-s`` seconds a role prints ``{"t": s, "frames": n, "rss_kb": VmRSS}`` (frames: engine steps, or
deltas applied for the subscriber), read from /proc/self/status, which the soak fits a line to. Frames are paced
to at most ``--max-fps`` so that the processes share the machine's cores.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path


def rss_kb(pid: int | str = "self") -> int:
    """VmRSS of a process in kB (/proc/PID/status); 0 when the process is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


def _say(obj: dict) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def _write_graph(path: str, graph) -> None:
    if path:
        from engine.graph.graph_json import graph_to_dict
        Path(path).write_text(json.dumps(graph_to_dict(graph), sort_keys=True))


def _run_engine(args, publish: bool) -> int:
    from engine.config import EngineConfig, TransportConfig
    from engine.bench.reliability.scene import MovingBoxes
    from engine.runtime import Engine
    from engine.vocab import builtin

    engine = Engine(EngineConfig(), builtin("vidvrd_objects"), None, None, image_wh=(640, 480))
    engine.warmup()
    scene = MovingBoxes(args.objects, args.seed)
    pub = None
    if publish:
        from engine.transport import GraphPublisher
        cfg = TransportConfig(pub_endpoint="tcp://127.0.0.1:*", snapshot_endpoint="tcp://127.0.0.1:*",
                              heartbeat_s=args.heartbeat)
        pub = GraphPublisher(cfg, engine.epoch)
        _say({"pub": pub.pub_endpoint, "snapshot": pub.snapshot_endpoint, "epoch": engine.epoch})
    period = 1.0 / args.max_fps
    t0 = time.monotonic()
    next_report = t0
    n = 0
    try:
        while True:
            now = time.monotonic()
            if now >= next_report:
                _say({"t": round(now - t0, 3), "frames": n, "rss_kb": rss_kb()})
                next_report += args.report_s
            if now - t0 >= args.seconds or (args.frames and n >= args.frames):
                break
            res = engine.step(scene.next_frame(), n / args.fps)
            if pub is not None:
                pub.publish(res.delta)
            n += 1
            lag = t0 + n * period - time.monotonic()
            if lag > 0:
                time.sleep(lag)
        _say({"t": round(time.monotonic() - t0, 3), "frames": n, "rss_kb": rss_kb(), "done": True})
        _write_graph(args.final, engine.snapshot())
        if pub is not None:
            pub.end_stream()
            time.sleep(args.linger)
    finally:
        if pub is not None:
            pub.close()
    return 0


def _run_subscriber(args) -> int:
    from engine.config import SubscriberConfig
    from engine.transport import GraphSubscriber

    cfg = SubscriberConfig(pub_endpoint=args.pub, snapshot_endpoint=args.snapshot,
                           heartbeat_timeout_s=args.heartbeat_timeout)
    with GraphSubscriber(cfg) as sub:
        if args.slow > 0:
            sub.on_change(lambda ev: time.sleep(args.slow))
        t0 = time.monotonic()
        next_report = t0
        while not sub.ended:
            now = time.monotonic()
            if now >= next_report:
                _say({"t": round(now - t0, 3), "frames": sub.stats().deltas_applied, "seq": sub.graph.seq,
                      "rss_kb": rss_kb()})
                next_report += args.report_s
            if now - t0 > args.timeout:
                break
            sub.poll(0.05)
        st = sub.stats()
        _say({"t": round(time.monotonic() - t0, 3), "frames": st.deltas_applied, "seq": sub.graph.seq,
              "rss_kb": rss_kb(), "done": True, "ended": sub.ended})
        _write_graph(args.final, sub.graph)
        if args.stats:
            Path(args.stats).write_text(json.dumps(st.__dict__))
    return 0 if sub.ended else 1


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m engine.bench.reliability.roles")
    ap.add_argument("role", choices=("engine", "service", "subscriber"))
    ap.add_argument("--seconds", type=float, default=10.0, help="engine/service: run this long")
    ap.add_argument("--frames", type=int, default=0, help="engine/service: stop after this many frames (0: --seconds)")
    ap.add_argument("--max-fps", type=float, default=1000.0, help="engine/service: at most this many steps per s")
    ap.add_argument("--fps", type=float, default=30.0, help="engine/service: stream time base (frames per s)")
    ap.add_argument("--objects", type=int, default=10, help="engine/service: MovingBoxes slots")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--heartbeat", type=float, default=0.2, help="service: heartbeat interval (s)")
    ap.add_argument("--linger", type=float, default=2.0, help="service: serve this long after the end (s)")
    ap.add_argument("--pub", default="", help="subscriber: the service's PUB endpoint")
    ap.add_argument("--snapshot", default="", help="subscriber: the service's snapshot endpoint")
    ap.add_argument("--heartbeat-timeout", type=float, default=1.0, help="subscriber: reconnect after this (s)")
    ap.add_argument("--slow", type=float, default=0.0, help="subscriber: sleep this long per graph event (s)")
    ap.add_argument("--timeout", type=float, default=120.0, help="subscriber: give up after this (s)")
    ap.add_argument("--final", default="", help="write the final graph here (JSON)")
    ap.add_argument("--stats", default="", help="subscriber: write its stats here (JSON)")
    ap.add_argument("--report-s", type=float, default=0.5, help="seconds between progress lines")
    ap.add_argument("--nice", type=int, default=0, help="raise the process's niceness by this much")
    args = ap.parse_args(argv)
    if args.nice:
        os.nice(args.nice)
    if args.role == "subscriber":
        return _run_subscriber(args)
    return _run_engine(args, publish=args.role == "service")


if __name__ == "__main__":
    sys.exit(main())
