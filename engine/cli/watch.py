"""``vsgg watch tcp://HOST:PORT``: follow a graph service with a GraphSubscriber and print its changes line by line.

The address is the service's PUB endpoint. The snapshot (ROUTER) endpoint is ``--snapshot`` or, by default, the
same host with the PUB port + 1 (the TransportConfig defaults are 5556 and 5557). Output, one line per change,
prefixed with the graph's seq::

    = snapshot epoch=20261122T101500Z-1a2b3c4d seq=0 t=0.000 entities=0 relations=0
    12 + entity 3 person score=0.91 box=[10.0,20.0,50.0,120.0]
    14 + relation 3 holding 7 score=0.80
    15 ~ relation 3 holding 7 score=0.75
    20 - relation 3 holding 7
    21 - entity 3 person
    = end epoch=20261122T101500Z-1a2b3c4d seq=21 t=0.840 entities=4 relations=2
    # status epoch=... seq=21 entities=4 relations=2 deltas=21 snapshots=1 resyncs=0 gaps=0 malformed=0 synced=yes

Entity box/score updates are printed only with ``--entity-updates`` (they change every frame).
Exit status 0: the service announced the end of its stream and the watcher holds its final graph; or ``--count``
deltas were applied; or ``--timeout`` / Ctrl-C came after a graph was received (without ``--count``).
Exit status 1, with the reason on stderr: ``--timeout`` passed with nothing received or with ``--count`` not
reached; the stream ended but the service went away before the watcher caught up; or the service speaks another
wire version.
"""
from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from pathlib import Path

from engine.config import SubscriberConfig
from engine.transport.events import GraphEvent
from engine.transport.subscriber import GraphSubscriber
from engine.types import Entity, Relation


def snapshot_endpoint_for(pub_endpoint: str) -> str:
    """tcp://HOST:PORT -> tcp://HOST:PORT+1; ValueError for other endpoints (give --snapshot then)."""
    if not pub_endpoint.startswith("tcp://") or ":" not in pub_endpoint[6:]:
        raise ValueError(f"endpoint {pub_endpoint!r}: not tcp://HOST:PORT; give the snapshot endpoint with --snapshot")
    host, port = pub_endpoint[6:].rsplit(":", 1)
    if not port.isdigit() or not 0 < int(port) < 65535:
        raise ValueError(f"endpoint {pub_endpoint!r}: port must be 1-65534; or give --snapshot")
    return f"tcp://{host}:{int(port) + 1}"


def _entity(e: Entity, with_values: bool = True) -> str:
    s = f"entity {e.id} {e.label}"
    if with_values:
        s += f" score={e.score:.2f} box=[{','.join(f'{v:.1f}' for v in e.box_xyxy)}]"
    return s


def _relation(r: Relation, with_values: bool = True) -> str:
    s = f"relation {r.subject_id} {r.predicate} {r.object_id}"
    return s + (f" score={r.score:.2f}" if with_values else "")


def format_event(event: GraphEvent, entity_updates: bool = False) -> list[str]:
    """The lines ``vsgg watch`` prints for one subscriber event."""
    g, c = event.graph, event.changes()
    lines = []
    if event.kind in ("snapshot", "end"):
        lines.append(f"= {event.kind} epoch={g.epoch} seq={g.seq} t={g.t:.3f} entities={len(g.entities)} "
                     f"relations={len(g.relations)}")
    p = f"{g.seq} "
    lines += [p + "- " + _relation(r, False) for r in c.ended]
    lines += [p + "- " + _entity(e, False) for e in c.removed]
    lines += [p + "+ " + _entity(e) for e in c.added]
    if entity_updates:
        lines += [p + "~ " + _entity(e) for e in c.updated]
    lines += [p + "+ " + _relation(r) for r in c.started]
    lines += [p + "~ " + _relation(r) for r in c.relations_updated]
    return lines


def status_line(sub: GraphSubscriber) -> str:
    g, s = sub.graph, sub.stats()
    return (f"# status epoch={g.epoch or '-'} seq={g.seq} entities={len(g.entities)} relations={len(g.relations)} "
            f"deltas={s.deltas_applied} snapshots={s.snapshots} resyncs={s.resyncs} gaps={s.gaps} "
            f"reconnects={s.reconnects} malformed={s.malformed} synced={'yes' if sub.synced else 'no'}")


def add_parser(parser: argparse.ArgumentParser):
    parser.description = "Print the changes of a vsgg graph service (ZeroMQ) line by line."
    parser.add_argument("endpoint", help="PUB endpoint of the service, e.g. tcp://127.0.0.1:5556")
    parser.add_argument("--snapshot", default="", metavar="ENDPOINT",
                        help="snapshot (ROUTER) endpoint; default: same host, PUB port + 1")
    parser.add_argument("--subtree", default="", help="key prefix: e/<id>, r/<subject>/<predicate>/<object>")
    parser.add_argument("--count", type=int, default=0, metavar="N", help="exit after N applied deltas")
    parser.add_argument("--timeout", type=float, default=0.0, metavar="S",
                        help="stop after S seconds (exit 1 if nothing was received or --count was not reached); "
                        "0 = run until the stream ends or Ctrl-C")
    parser.add_argument("--heartbeat-timeout", type=float, default=3.0, metavar="S",
                        help="reconnect when nothing was heard for S seconds")
    parser.add_argument("--status-every", type=float, default=5.0, metavar="S",
                        help="print a status line every S seconds (0 = only at exit)")
    parser.add_argument("--entity-updates", action="store_true", help="also print entity box/score updates")
    parser.add_argument("--curve-server-key", default="", metavar="FILE", help="server public key certificate")
    parser.add_argument("--curve-client-key", default="", metavar="FILE", help="client .key_secret certificate")
    parser.add_argument("--final-graph", default="", metavar="FILE", help="write the graph held at exit here "
                        "(JSON, engine.graph.graph_json), e.g. to compare it with the engine's")
    return run


def run(args: argparse.Namespace) -> int:
    if args.count < 0 or args.timeout < 0 or args.status_every < 0:
        raise ValueError("--count, --timeout and --status-every must be >= 0")
    snapshot = args.snapshot or snapshot_endpoint_for(args.endpoint)
    cfg = SubscriberConfig(pub_endpoint=args.endpoint, snapshot_endpoint=snapshot, subtree=args.subtree,
                           heartbeat_timeout_s=args.heartbeat_timeout, curve_server_key_file=args.curve_server_key,
                           curve_client_key_file=args.curve_client_key)
    sub = GraphSubscriber(cfg)
    sub.on_change(lambda ev: [print(line, flush=True) for line in format_event(ev, args.entity_updates)])
    start = last_status = time.monotonic()
    print(f"# watching {args.endpoint} (snapshots from {snapshot}, subtree {args.subtree!r})", flush=True)
    failure = None
    # Ctrl-C / SIGINT ends the watch even where SIGINT was inherited as ignored (see engine.cli.run)
    old_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        failure = _follow(sub, args, start, last_status)
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGINT, old_int)
        print(status_line(sub), flush=True)
        if args.final_graph:
            from engine.graph.graph_json import graph_to_dict
            Path(args.final_graph).parent.mkdir(parents=True, exist_ok=True)
            Path(args.final_graph).write_text(json.dumps(graph_to_dict(sub.graph), sort_keys=True))
        sub.close()
    if failure:
        print(f"vsgg watch: {failure}", file=sys.stderr)
        return 1
    return 0


def _follow(sub: GraphSubscriber, args: argparse.Namespace, start: float, last_status: float) -> str | None:
    """Poll until the stream ends, ``--count`` is reached or ``--timeout`` passes; the failure message or None."""
    reconnects_at_end = None
    while True:
        st = sub.stats()
        if sub.version_error:
            return sub.version_error
        if sub.ended or (args.count and st.deltas_applied >= args.count):
            return None
        end = sub.end_of_stream
        if end is not None and reconnects_at_end is None:
            reconnects_at_end = st.reconnects
        if end is not None and st.reconnects > reconnects_at_end:
            # the service announced the end and then went silent before this watcher caught up
            return (f"the stream of epoch {end.epoch} ended at seq {end.seq}, but the service went away before this "
                    f"watcher got past seq {sub.graph.seq}")
        now = time.monotonic()
        if args.timeout and now - start >= args.timeout:
            if st.snapshots == 0:
                return f"nothing received from {args.endpoint} within --timeout {args.timeout:g} s"
            if args.count:
                return f"{st.deltas_applied} of --count {args.count} deltas within --timeout {args.timeout:g} s"
            return None
        if args.status_every and now - last_status >= args.status_every:
            print(status_line(sub), flush=True)
            last_status = now
        sub.poll(0.1)
