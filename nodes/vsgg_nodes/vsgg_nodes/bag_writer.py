"""Record the scene graph as a rosbag2 (MCAP storage) of vsgg_msgs deltas and snapshots, without rclpy.

Written with rosbags' Writer; the vsgg_msgs definitions (parsed from the package's .msg files) are stored in the bag,
so ``ros2 bag play``, Foxglove and a fresh rosbags typestore can decode it without vsgg installed.

Topics (the scene_graph_node's names under the default namespace):

* ``/vsgg/graph_delta`` (vsgg_msgs/msg/SceneGraphDelta): every delta, seq 1, 2, 3, ... of one epoch;
* ``/vsgg/graph`` (vsgg_msgs/msg/SceneGraph): a snapshot every ``snapshot_every`` frames and the final graph.

Bag time of a message = the frame time ``t`` (s) in integer nanoseconds. This is also the ``vsgg.sinks`` entry
point ``rosbag`` that ``vsgg run ... --record OUT`` opens (``open_sink``).
"""
from __future__ import annotations

from pathlib import Path

from engine.types import GraphDelta, SceneGraph
from vsgg_nodes.convert import MessageKit, delta_fields, graph_fields

DELTA_TOPIC, GRAPH_TOPIC = "/vsgg/graph_delta", "/vsgg/graph"
MSG_TYPES = ("Entity", "Relation", "RelationKey", "SceneGraph", "SceneGraphDelta")


def msg_dir() -> Path:
    """The vsgg_msgs .msg files: in the source tree (repo/msgs/vsgg_msgs/msg) or the installed share folder."""
    src = Path(__file__).resolve().parents[3] / "msgs" / "vsgg_msgs" / "msg"
    if src.is_dir():
        return src
    try:
        from ament_index_python.packages import get_package_share_directory
        return Path(get_package_share_directory("vsgg_msgs")) / "msg"
    except (ImportError, LookupError):
        raise FileNotFoundError(f"vsgg_msgs .msg files: not in {src} and no installed vsgg_msgs share folder") \
            from None


def vsgg_typestore():
    """(rosbags Typestore with the ROS 2 Kilted standard types plus vsgg_msgs, MessageKit building its classes)."""
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore
    store = get_typestore(Stores.ROS2_KILTED)
    types = {}
    for name in MSG_TYPES:
        types.update(get_types_from_msg((msg_dir() / f"{name}.msg").read_text(), f"vsgg_msgs/msg/{name}"))
    store.register(types)
    kit = MessageKit({**{n: store.types[f"vsgg_msgs/msg/{n}"] for n in MSG_TYPES},
                      "Header": store.types["std_msgs/msg/Header"], "Time": store.types["builtin_interfaces/msg/Time"]})
    return store, kit


def _bag_time_ns(t: float) -> int:
    return max(0, round(t * 1e9))


class GraphBagWriter:
    """Writes deltas (and periodic snapshots) of one engine run to a new rosbag2 folder ``path`` (MCAP storage).

    frame_id: the camera frame written into every header. snapshot_every: frames between snapshots (>= 1).
    ``write(delta, graph)`` must get every delta of the run in order, with ``graph`` = the graph after it.
    Bounded state: the relation keys of the last graph (to mark upserts as started or updated)."""

    def __init__(self, path: str | Path, frame_id: str = "camera", snapshot_every: int = 30):
        from rosbags.rosbag2 import StoragePlugin, Writer
        if isinstance(snapshot_every, bool) or not isinstance(snapshot_every, int) or snapshot_every < 1:
            raise ValueError(f"snapshot_every: must be an integer >= 1, got {snapshot_every!r}")
        if not isinstance(frame_id, str):
            raise TypeError(f"frame_id: expected a string, got {type(frame_id).__name__}")
        p = Path(path)
        if p.exists():
            raise ValueError(f"path: {p} already exists (a bag is written to a new folder)")
        self.path, self.frame_id, self.snapshot_every = p, frame_id, snapshot_every
        self.store, self.kit = vsgg_typestore()
        self._writer = Writer(p, version=9, storage_plugin=StoragePlugin.MCAP)
        self._writer.open()
        self._delta_conn = self._writer.add_connection(DELTA_TOPIC, "vsgg_msgs/msg/SceneGraphDelta",
                                                       typestore=self.store)
        self._graph_conn = self._writer.add_connection(GRAPH_TOPIC, "vsgg_msgs/msg/SceneGraph", typestore=self.store)
        self._held: frozenset = frozenset()
        self._last: SceneGraph | None = None
        self._since_snapshot = 0
        self.deltas = self.snapshots = 0

    def write(self, delta: GraphDelta, graph: SceneGraph) -> None:
        """Record ``delta`` (and ``graph`` when a snapshot is due)."""
        if not isinstance(delta, GraphDelta) or not isinstance(graph, SceneGraph):
            raise TypeError("write: expected (GraphDelta, SceneGraph)")
        if graph.seq != delta.seq or graph.epoch != delta.epoch:
            raise ValueError(f"graph: seq/epoch {graph.seq}/{graph.epoch} do not match the delta's "
                             f"{delta.seq}/{delta.epoch}")
        msg = self.kit.delta(delta_fields(delta, self._held, self.frame_id))
        self._writer.write(self._delta_conn, _bag_time_ns(delta.t),
                           self.store.serialize_cdr(msg, "vsgg_msgs/msg/SceneGraphDelta"))
        self.deltas += 1
        self._held, self._last = frozenset(graph.relations), graph
        self._since_snapshot += 1
        if self._since_snapshot >= self.snapshot_every:
            self._snapshot(graph)

    def _snapshot(self, graph: SceneGraph) -> None:
        msg = self.kit.graph(graph_fields(graph, self.frame_id))
        self._writer.write(self._graph_conn, _bag_time_ns(graph.t),
                           self.store.serialize_cdr(msg, "vsgg_msgs/msg/SceneGraph"))
        self.snapshots += 1
        self._since_snapshot = 0

    def close(self) -> None:
        """Write the final graph (unless just written) and finish the bag; idempotent."""
        if self._writer is None:
            return
        if self._last is not None and self._since_snapshot:
            self._snapshot(self._last)
        self._writer.close()
        self._writer = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def open_sink(path: str, frame_id: str = "camera", snapshot_every: int = 30) -> GraphBagWriter:
    """``vsgg.sinks`` entry point: a sink with ``write(delta, graph)`` and ``close()``."""
    return GraphBagWriter(path, frame_id=frame_id, snapshot_every=snapshot_every)
