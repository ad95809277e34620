"""Conversions between engine types and vsgg_msgs / sensor_msgs / vision_msgs messages; pure, no rclpy.

The only place engine types and ROS messages meet. Every function works on plain attribute access, so the same
code serves rclpy's generated classes, rosbags' typestore dataclasses (bags written without rclpy) and
mcap_ros2's decoded objects. Building a message needs its classes: a ``MessageKit`` (``rclpy_kit()`` imports the
generated ``vsgg_msgs``; ``vsgg_nodes.bag_writer`` makes one from a rosbags typestore).

Units, as in ``engine.types``: boxes xyxy float64 pixels of the input image (origin top-left), scores 0..1, times
seconds on the stream clock. ``header.stamp`` is the frame time as a ROS time; the messages also carry the exact
float ``t`` (and ``first_seen``/``start_time`` as float seconds), because a float of seconds does not survive a
trip through (sec, nanosec) bit for bit, and a graph rebuilt from messages must equal the engine's exactly.
"""
from __future__ import annotations

import array
import math
from dataclasses import dataclass
from typing import Callable, Container, Mapping

import numpy as np

from engine.types import Detections, Entity, GraphDelta, Relation, SceneGraph

# Relation.kind values (msgs/vsgg_msgs/msg/Relation.msg)
KIND_ACTIVE, KIND_STARTED, KIND_UPDATED = 0, 1, 2
#: sensor_msgs/Image encodings accepted as input, with their channel count and the channel order to make BGR
IMAGE_ENCODINGS = {"bgr8": (3, None), "rgb8": (3, [2, 1, 0]), "bgra8": (4, [0, 1, 2]), "rgba8": (4, [2, 1, 0]),
                   "mono8": (1, [0, 0, 0])}


# ---------------------------------------------------------------------------------------------- time
def seconds_to_stamp(t: float) -> tuple[int, int]:
    """Float seconds -> (sec, nanosec) with 0 <= nanosec < 1e9 (rounded to the nearest nanosecond)."""
    if not math.isfinite(t):
        raise ValueError(f"t: must be finite, got {t}")
    sec = math.floor(t)
    ns = round((t - sec) * 1e9)
    if ns >= 1_000_000_000:
        sec, ns = sec + 1, ns - 1_000_000_000
    if not -(2 ** 31) <= sec < 2 ** 31:
        raise ValueError(f"t: {t} s does not fit a builtin_interfaces/Time (int32 seconds)")
    return int(sec), int(ns)


def stamp_to_seconds(stamp) -> float:
    """A builtin_interfaces/Time (anything with .sec and .nanosec) -> float seconds."""
    return float(stamp.sec) + float(stamp.nanosec) * 1e-9


# ---------------------------------------------------------------------------------------------- message fields
def header_fields(t: float, frame_id: str, stamp: tuple[int, int] | None = None) -> dict:
    """std_msgs/Header fields: ``stamp`` (sec, nanosec) as given (the input image's), else ``t`` converted."""
    sec, ns = stamp if stamp is not None else seconds_to_stamp(t)
    return {"stamp": {"sec": int(sec), "nanosec": int(ns)}, "frame_id": str(frame_id)}


def entity_fields(e: Entity) -> dict:
    return {"id": int(e.id), "label": e.label, "score": float(e.score),
            "box_xyxy": [float(v) for v in e.box_xyxy], "first_seen": float(e.first_seen)}


def relation_fields(r: Relation, kind: int = KIND_ACTIVE) -> dict:
    return {"subject_id": int(r.subject_id), "predicate": r.predicate, "object_id": int(r.object_id),
            "score": float(r.score), "uncertainty": float(r.uncertainty), "start_time": float(r.start_time),
            "kind": int(kind)}


def delta_fields(delta: GraphDelta, held: Container, frame_id: str, stamp: tuple[int, int] | None = None) -> dict:
    """vsgg_msgs/SceneGraphDelta fields. ``held``: the relation keys of the graph at ``delta.seq - 1`` (an upsert
    of a held key is KIND_UPDATED, of a new one KIND_STARTED)."""
    return {"header": header_fields(delta.t, frame_id, stamp), "epoch": delta.epoch, "seq": int(delta.seq),
            "t": float(delta.t), "upsert_entities": [entity_fields(e) for e in delta.upsert_entities],
            "remove_entity_ids": [int(i) for i in delta.remove_entity_ids],
            "upsert_relations": [relation_fields(r, KIND_UPDATED if r.key in held else KIND_STARTED)
                                 for r in delta.upsert_relations],
            "remove_relations": [{"subject_id": int(s), "predicate": p, "object_id": int(o)}
                                 for s, p, o in delta.remove_relations]}


def graph_fields(g: SceneGraph, frame_id: str, stamp: tuple[int, int] | None = None) -> dict:
    """vsgg_msgs/SceneGraph fields, items sorted by key (the same graph always gives the same message)."""
    return {"header": header_fields(g.t, frame_id, stamp), "epoch": g.epoch, "seq": int(g.seq), "t": float(g.t),
            "entities": [entity_fields(g.entities[i]) for i in sorted(g.entities)],
            "relations": [relation_fields(g.relations[k]) for k in sorted(g.relations)]}


# ---------------------------------------------------------------------------------------------- message objects
@dataclass(frozen=True)
class MessageKit:
    """The message classes to build objects with, and how each flavour wants its primitive arrays.

    types: type name ("Entity", "Relation", "RelationKey", "SceneGraph", "SceneGraphDelta", "Header", "Time")
    -> class taking the fields as keyword arguments. float64_array / uint64_array: list -> the array value."""

    types: Mapping[str, Callable]
    float64_array: Callable = lambda xs: np.asarray(xs, np.float64)
    uint64_array: Callable = lambda xs: np.asarray(xs, np.uint64)

    def header(self, f: dict):
        return self.types["Header"](stamp=self.types["Time"](**f["stamp"]), frame_id=f["frame_id"])

    def entity(self, f: dict):
        return self.types["Entity"](**{**f, "box_xyxy": self.float64_array(f["box_xyxy"])})

    def relation(self, f: dict):
        return self.types["Relation"](**f)

    def delta(self, f: dict):
        return self.types["SceneGraphDelta"](
            header=self.header(f["header"]), epoch=f["epoch"], seq=f["seq"], t=f["t"],
            upsert_entities=[self.entity(e) for e in f["upsert_entities"]],
            remove_entity_ids=self.uint64_array(f["remove_entity_ids"]),
            upsert_relations=[self.relation(r) for r in f["upsert_relations"]],
            remove_relations=[self.types["RelationKey"](**k) for k in f["remove_relations"]])

    def graph(self, f: dict):
        return self.types["SceneGraph"](
            header=self.header(f["header"]), epoch=f["epoch"], seq=f["seq"], t=f["t"],
            entities=[self.entity(e) for e in f["entities"]], relations=[self.relation(r) for r in f["relations"]])


def rclpy_kit() -> MessageKit:
    """A MessageKit of the generated Python classes (needs vsgg_msgs built into this interpreter's prefix)."""
    from builtin_interfaces.msg import Time
    from std_msgs.msg import Header
    from vsgg_msgs import msg
    types = {n: getattr(msg, n) for n in ("Entity", "Relation", "RelationKey", "SceneGraph", "SceneGraphDelta")}
    return MessageKit({**types, "Header": Header, "Time": Time},
                      uint64_array=lambda xs: array.array("Q", xs))  # rclpy checks sequences of int strictly


# ---------------------------------------------------------------------------------------------- messages -> engine
def entity_from_msg(m) -> Entity:
    return Entity(int(m.id), str(m.label), float(m.score), tuple(float(v) for v in m.box_xyxy), float(m.first_seen))


def relation_from_msg(m) -> Relation:
    return Relation(int(m.subject_id), str(m.predicate), int(m.object_id), float(m.score), float(m.uncertainty),
                    float(m.start_time))


def delta_from_msg(m) -> GraphDelta:
    """A vsgg_msgs/SceneGraphDelta (any flavour) -> engine GraphDelta."""
    return GraphDelta(str(m.epoch), int(m.seq), float(m.t), tuple(entity_from_msg(e) for e in m.upsert_entities),
                      tuple(int(i) for i in m.remove_entity_ids),
                      tuple(relation_from_msg(r) for r in m.upsert_relations),
                      tuple((int(k.subject_id), str(k.predicate), int(k.object_id)) for k in m.remove_relations))


def graph_from_msg(m) -> SceneGraph:
    """A vsgg_msgs/SceneGraph (any flavour) -> engine SceneGraph; ValueError if a relation lacks an entity."""
    ents = {e.id: e for e in map(entity_from_msg, m.entities)}
    rels = {r.key: r for r in map(relation_from_msg, m.relations)}
    return SceneGraph(t=float(m.t), entities=ents, relations=rels, epoch=str(m.epoch), seq=int(m.seq))


# ---------------------------------------------------------------------------------------------- images
def image_to_bgr(msg, max_pixels: int) -> np.ndarray:
    """A sensor_msgs/Image -> (H, W, 3) uint8 BGR array (a copy: the message is never modified).

    Raises ValueError naming the field for an unsupported encoding, a size over ``max_pixels``, a ``step`` shorter
    than a row, or ``data`` whose length is not ``height * step``."""
    enc = str(msg.encoding).lower()
    if enc not in IMAGE_ENCODINGS:
        raise ValueError(f"encoding: unsupported {msg.encoding!r} (one of {', '.join(IMAGE_ENCODINGS)})")
    ch, order = IMAGE_ENCODINGS[enc]
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    if h <= 0 or w <= 0:
        raise ValueError(f"height, width: must be positive, got {h}x{w}")
    if h * w > max_pixels:
        raise ValueError(f"height, width: {w}x{h} = {w * h} pixels is over the limit of {max_pixels}")
    if step < w * ch:
        raise ValueError(f"step: {step} bytes is shorter than one row ({w} x {ch} bytes)")
    buf = np.frombuffer(msg.data, np.uint8)
    if buf.size != h * step:
        raise ValueError(f"data: expected height * step = {h * step} bytes, got {buf.size}")
    img = buf.reshape(h, step)[:, : w * ch].reshape(h, w, ch)
    return np.ascontiguousarray(img if order is None else img[:, :, order])


def overlay_encoding(input_encoding: str) -> str:
    """The encoding of an overlay drawn on an image of ``input_encoding``: the input's channel order without alpha
    (rgb8, rgba8 -> rgb8; bgr8, bgra8 -> bgr8; mono8 -> bgr8, as the drawing is in colour)."""
    return "rgb8" if str(input_encoding).lower() in ("rgb8", "rgba8") else "bgr8"


def bgr_fields(img: np.ndarray, frame_id: str, stamp: tuple[int, int], encoding: str = "bgr8") -> dict:
    """sensor_msgs/Image fields of an (H, W, 3) uint8 BGR image, written as ``encoding`` ('bgr8' as is, or 'rgb8'
    with the channels swapped), no row padding."""
    if not (isinstance(img, np.ndarray) and img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3):
        raise ValueError(f"img: expected an (H, W, 3) uint8 array, got {getattr(img, 'shape', type(img))}")
    if encoding not in ("bgr8", "rgb8"):
        raise ValueError(f"encoding: {encoding!r} is not bgr8 or rgb8")
    h, w = img.shape[:2]
    data = np.ascontiguousarray(img if encoding == "bgr8" else img[:, :, ::-1]).tobytes()
    return {"header": {"stamp": {"sec": int(stamp[0]), "nanosec": int(stamp[1])}, "frame_id": frame_id},
            "height": h, "width": w, "encoding": encoding, "is_bigendian": 0, "step": w * 3, "data": data}


def image_message(img: np.ndarray, frame_id: str, stamp: tuple[int, int], encoding: str = "bgr8"):
    """A sensor_msgs/Image (the generated class, imported here: needs the ROS 2 message packages, not rclpy) of
    ``bgr_fields(img, frame_id, stamp, encoding)``."""
    from builtin_interfaces.msg import Time
    from sensor_msgs.msg import Image
    from std_msgs.msg import Header

    f = bgr_fields(img, frame_id, stamp, encoding)
    msg = Image(header=Header(stamp=Time(sec=int(stamp[0]), nanosec=int(stamp[1])), frame_id=frame_id),
                height=f["height"], width=f["width"], encoding=f["encoding"], is_bigendian=0, step=f["step"])
    msg.data = f["data"]
    return msg


# ---------------------------------------------------------------------------------------------- vision_msgs
def detections_from_vision(msg, class_index: Callable[[str], int | None]) -> Detections:
    """A vision_msgs/Detection2DArray -> Detections. Each detection keeps its best-scoring hypothesis;
    ``class_index(class_id)`` gives the engine's object index, or None to drop the detection.

    Box: ``bbox.center.position`` (x, y) and ``bbox.size_x/size_y``, pixels -> xyxy. Raises ValueError (from
    engine.types) on a negative size, a score outside 0..1 or a non-finite value."""
    boxes, scores, labels = [], [], []
    for d in msg.detections:
        if not len(d.results):
            continue
        best = max(d.results, key=lambda r: r.hypothesis.score)
        idx = class_index(str(best.hypothesis.class_id))
        if idx is None:
            continue
        c = d.bbox.center.position
        hw, hh = float(d.bbox.size_x) / 2, float(d.bbox.size_y) / 2
        boxes.append((c.x - hw, c.y - hh, c.x + hw, c.y + hh))
        scores.append(float(best.hypothesis.score))
        labels.append(int(idx))
    return Detections(np.array(boxes, np.float32).reshape(-1, 4), np.array(scores, np.float32),
                      np.array(labels, np.int32))


def stamp_of(msg) -> tuple[int, int]:
    """(sec, nanosec) of a message's header."""
    return int(msg.header.stamp.sec), int(msg.header.stamp.nanosec)

