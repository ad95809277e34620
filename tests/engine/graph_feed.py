"""Random but valid scene-graph streams, and a publisher process that serves one (for the transport e2e tests).

``random_graphs(seed, epoch, n)`` is deterministic, so the test process regenerates exactly what the publisher
process publishes. The publisher process also records a digest of its own graph after every delta, and the test
checks those against the regenerated graphs.
"""
from __future__ import annotations

import hashlib
import json
import math
import random
import time

from engine.config import TransportConfig
from engine.graph.diff import diff, empty_graph
from engine.graph.build import quantize_graph
from engine.types import Entity, Relation, SceneGraph

LABELS = ("person", "cup", "chair", "dog", "table")
PREDICATES = ("near", "holding", "on", "behind", "looking_at")


def random_graphs(seed: int, epoch: str, n: int, max_entities: int = 20, max_relations: int = 30) -> list[SceneGraph]:
    """Graphs at seq 0..n of one epoch: entities are born, move, change score and die; relations start, change
    and end (uncertainty sometimes NaN); about 5 % of steps change nothing. Time base: 25 fps."""
    rng = random.Random(seed)
    graphs = [empty_graph(epoch)]
    ents: dict[int, Entity] = {}
    rels: dict[tuple, Relation] = {}
    next_id = 0
    for seq in range(1, n + 1):
        t = seq / 25.0
        if rng.random() >= 0.05:
            for i in list(ents):
                if rng.random() < 0.04:
                    del ents[i]
            rels = {k: r for k, r in rels.items() if k[0] in ents and k[2] in ents}
            while len(ents) < max_entities and rng.random() < (0.5 if len(ents) < 5 else 0.15):
                x, y = rng.uniform(0, 600), rng.uniform(0, 400)
                ents[next_id] = Entity(next_id, rng.choice(LABELS), round(rng.uniform(0.3, 1.0), 3),
                                       (x, y, x + rng.uniform(5, 80), y + rng.uniform(5, 80)), t)
                next_id += 1
            for i, e in list(ents.items()):
                if rng.random() < 0.6:
                    dx, dy = rng.gauss(0, 2), rng.gauss(0, 2)
                    b = e.box_xyxy
                    ents[i] = Entity(i, e.label, min(1.0, max(0.0, e.score + rng.gauss(0, 0.02))),
                                     (b[0] + dx, b[1] + dy, b[2] + dx, b[3] + dy), e.first_seen)
            for k in list(rels):
                u = rng.random()
                if u < 0.05:
                    del rels[k]
                elif u < 0.4:
                    r = rels[k]
                    rels[k] = Relation(*k, score=rng.random(), uncertainty=r.uncertainty, start_time=r.start_time)
            ids = sorted(ents)
            if len(ids) >= 2 and len(rels) < max_relations and rng.random() < 0.5:
                s, o = rng.sample(ids, 2)
                p = rng.choice(PREDICATES)
                if (s, p, o) not in rels:
                    unc = math.nan if rng.random() < 0.5 else rng.uniform(0, 0.3)
                    rels[(s, p, o)] = Relation(s, p, o, rng.random(), unc, t)
        # on the wire's fixed-point grid, as the Engine publishes, so subscribers hold them bit-exactly
        graphs.append(quantize_graph(SceneGraph(t=t, entities=ents, relations=rels, epoch=epoch, seq=seq)))
    return graphs


def graph_digest(g: SceneGraph) -> str:
    """Content hash of a graph (floats as exact hex, NaN included)."""
    def f(x: float) -> str:
        return float(x).hex()
    ents = [(i, e.label, f(e.score), [f(v) for v in e.box_xyxy], f(e.first_seen)) for i, e in sorted(
        g.entities.items())]
    rels = [(list(k), f(r.score), f(r.uncertainty), f(r.start_time)) for k, r in sorted(g.relations.items())]
    text = json.dumps([g.epoch, g.seq, f(g.t), ents, rels])
    return hashlib.sha256(text.encode()).hexdigest()


def serve_stream(out_q, go, stop, cfg_kwargs: dict, epoch: str, seed: int, n: int, interval_s: float,
                 record_path: str) -> None:
    """Process target: bind a GraphPublisher, report its endpoints on ``out_q``, wait for ``go``, publish the
    ``random_graphs(seed, epoch, n)`` stream ``interval_s`` apart (recording a digest per seq in ``record_path``),
    then keep serving (heartbeats, snapshots) until ``stop``; finally report the publisher's stats."""
    from engine.transport.publisher import GraphPublisher

    graphs = random_graphs(seed, epoch, n)
    with GraphPublisher(TransportConfig(**cfg_kwargs), epoch) as pub:
        out_q.put((pub.pub_endpoint, pub.snapshot_endpoint))
        if not go.wait(30):
            return
        with open(record_path, "w") as rec:
            for seq in range(1, n + 1):
                pub.publish(diff(graphs[seq - 1], graphs[seq]))
                rec.write(json.dumps([seq, graph_digest(pub.graph)]) + "\n")
                time.sleep(interval_s)
        stop.wait(30)
        out_q.put(pub.stats().__dict__)
