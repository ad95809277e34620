"""A scene-graph consumer for the ROS tests: rebuilds the graph from ``graph_delta`` with the Clone rules."""
from __future__ import annotations

import threading

from vsgg_msgs.msg import SceneGraph, SceneGraphDelta

from engine.graph.diff import apply, empty_graph
from vsgg_nodes import convert
from vsgg_nodes.scene_graph_node import DELTA_QOS, GRAPH_QOS


class Follower:
    """Rebuilds the graph from ``<ns>/graph_delta`` (drop seq <= last, count a gap instead of applying it) and keeps
    every ``<ns>/graph`` snapshot it hears.

    by_seq: (epoch, seq) -> rebuilt graph; by_stamp: the delta's header stamp (sec, nanosec) -> rebuilt graph, so a
    graph can be matched with the input frame of the same stamp. Read them under ``lock``."""

    def __init__(self, probe, ns: str = "/vsgg"):
        self.graph, self.by_seq, self.by_stamp, self.snapshots, self.gaps = None, {}, {}, [], 0
        self.lock = threading.Lock()
        self.subs = [probe.create_subscription(SceneGraphDelta, f"{ns}/graph_delta", self.on_delta, DELTA_QOS),
                     probe.create_subscription(SceneGraph, f"{ns}/graph", self.on_graph, GRAPH_QOS)]

    def on_delta(self, m):
        d = convert.delta_from_msg(m)
        with self.lock:
            if self.graph is None or self.graph.epoch != d.epoch:
                if d.seq != 1:
                    self.gaps += 1
                    return
                self.graph = empty_graph(d.epoch)
            if d.seq <= self.graph.seq:
                return
            if d.seq != self.graph.seq + 1:
                self.gaps += 1
                return
            self.graph = apply(self.graph, d)
            self.by_seq[(d.epoch, d.seq)] = self.graph
            self.by_stamp[convert.stamp_of(m)] = self.graph

    def on_graph(self, m):
        with self.lock:
            self.snapshots.append(convert.graph_from_msg(m))
