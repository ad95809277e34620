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
    # status epoch=... seq=21 entities=4 relations=2 deltas=21 snapshots=1 resyncs=0 gaps=0 malformed=0 synced=yes

Entity box/score updates are printed only with ``--entity-updates`` (they change every frame).
Exit status: 0; 1 when ``--count`` deltas were not seen within ``--timeout`` seconds.
"""
from __future__ import annotations

import argparse
import time

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
    if event.kind == "snapshot":
        lines.append(f"= snapshot epoch={g.epoch} seq={g.seq} t={g.t:.3f} entities={len(g.entities)} "
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
                        help="stop after S seconds (exit 1 if --count was not reached); 0 = run until Ctrl-C")
    parser.add_argument("--heartbeat-timeout", type=float, default=3.0, metavar="S",
                        help="reconnect when nothing was heard for S seconds")
    parser.add_argument("--status-every", type=float, default=5.0, metavar="S",
                        help="print a status line every S seconds (0 = only at exit)")
    parser.add_argument("--entity-updates", action="store_true", help="also print entity box/score updates")
    parser.add_argument("--curve-server-key", default="", metavar="FILE", help="server public key certificate")
    parser.add_argument("--curve-client-key", default="", metavar="FILE", help="client .key_secret certificate")
    return run


def run(args: argparse.Namespace) -> int:
    if args.count < 0 or args.timeout < 0 or args.status_every < 0:
        raise ValueError("--count, --timeout and --status-every must be >= 0")
    snapshot = args.snapshot or snapshot_endpoint_for(args.endpoint)
    sub = GraphSubscriber(args.endpoint, snapshot, args.subtree, args.heartbeat_timeout,
                          curve_server_key_file=args.curve_server_key, curve_client_key_file=args.curve_client_key)
    sub.on_change(lambda ev: [print(line, flush=True) for line in format_event(ev, args.entity_updates)])
    start = last_status = time.monotonic()
    print(f"# watching {args.endpoint} (snapshots from {snapshot}, subtree {args.subtree!r})", flush=True)
    try:
        while not (args.count and sub.stats().deltas_applied >= args.count):
            now = time.monotonic()
            if args.timeout and now - start >= args.timeout:
                break
            if args.status_every and now - last_status >= args.status_every:
                print(status_line(sub), flush=True)
                last_status = now
            sub.poll(0.1)
    except KeyboardInterrupt:
        pass
    finally:
        print(status_line(sub), flush=True)
        sub.close()
    return 1 if args.count and sub.stats().deltas_applied < args.count else 0
