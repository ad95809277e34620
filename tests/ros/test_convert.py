"""vsgg_nodes.convert on its own: engine types <-> vsgg_msgs / sensor_msgs / vision_msgs messages, both rclpy's
generated classes and rosbags' typestore classes, and CDR bytes that each implementation decodes from the other."""
import math
from pathlib import Path

import numpy as np
import pytest

convert = pytest.importorskip("vsgg_nodes.convert", reason="vsgg_nodes is not installed: run `make ros`")
from engine.graph.diff import apply, diff, empty_graph  # noqa: E402
from engine.types import Entity, GraphDelta, Relation, SceneGraph  # noqa: E402
from vsgg_nodes.bag_writer import vsgg_typestore  # noqa: E402

HERE = Path(__file__).resolve().parent


def graphs():
    """Two consecutive graphs: an entity moves, one ends, a relation starts, one is updated, one ends."""
    a, b, c = (Entity(1, "person", 0.9, (10.5, 20.0, 110.1, 220.7), 0.1), Entity(2, "dog", 0.4, (0, 0, 5, 5), 0.2),
               Entity(7, "ball", 0.75, (300.0, 10.0, 320.0, 30.0), 1 / 3))
    g0 = SceneGraph(1 / 30, {1: a, 2: b, 7: c}, {(1, "next_to", 2): Relation(1, "next_to", 2, 0.61, start_time=0.2),
                                                (1, "watch", 7): Relation(1, "watch", 7, 0.7, 0.05, 1 / 3)},
                    epoch="ep1", seq=4)
    a2 = Entity(1, "person", 0.91, (12.0, 20.0, 112.0, 221.0), 0.1)
    g1 = SceneGraph(2 / 30, {1: a2, 7: c}, {(1, "watch", 7): Relation(1, "watch", 7, 0.8, 0.07, 1 / 3),
                                           (7, "in_front_of", 1): Relation(7, "in_front_of", 1, 0.55, start_time=2 / 30)},
                    epoch="ep1", seq=5)
    return g0, g1


@pytest.fixture(scope="module")
def rclpy_kit():
    pytest.importorskip("rclpy", reason="ROS 2 wheels missing: run `make ros`")
    return convert.rclpy_kit()


@pytest.fixture(scope="module")
def bag_store():
    return vsgg_typestore()


def test_stamp_round_trip_and_limits():
    assert convert.seconds_to_stamp(1.5) == (1, 500_000_000)
    assert convert.seconds_to_stamp(-0.25) == (-1, 750_000_000)
    assert convert.seconds_to_stamp(2.9999999999) == (3, 0)  # rounding carries into the seconds
    for bad in (math.nan, math.inf, 2.0 ** 31):
        with pytest.raises(ValueError, match=r"^t: "):
            convert.seconds_to_stamp(bad)


@pytest.mark.parametrize("flavour", ["rclpy", "rosbags"])
def test_delta_and_graph_round_trip(flavour, request):
    kit = request.getfixturevalue("rclpy_kit") if flavour == "rclpy" else request.getfixturevalue("bag_store")[1]
    g0, g1 = graphs()
    d = diff(g0, g1)
    assert d.upsert_relations and d.remove_relations and d.remove_entity_ids
    m = kit.delta(convert.delta_fields(d, g0.relations, "cam", stamp=(12, 34)))
    assert (m.header.stamp.sec, m.header.stamp.nanosec, m.header.frame_id) == (12, 34, "cam")
    kinds = {(r.subject_id, r.predicate, r.object_id): r.kind for r in m.upsert_relations}
    assert kinds == {(1, "watch", 7): convert.KIND_UPDATED, (7, "in_front_of", 1): convert.KIND_STARTED}
    back = convert.delta_from_msg(m)
    assert back == d and apply(g0, back) == g1  # exact floats: 1/30 and 1/3 survive
    gm = kit.graph(convert.graph_fields(g1, "cam"))
    assert convert.graph_from_msg(gm) == g1
    assert [e.id for e in gm.entities] == [1, 7] and all(r.kind == convert.KIND_ACTIVE for r in gm.relations)
    assert math.isnan(convert.graph_from_msg(gm).relations[(7, "in_front_of", 1)].uncertainty)


def test_cdr_bytes_cross_decode(rclpy_kit, bag_store):
    """rclpy's serializer and rosbags' CDR decode each other's bytes to the same graph."""
    from rclpy.serialization import deserialize_message, serialize_message
    from vsgg_msgs.msg import SceneGraphDelta
    store, kit = bag_store
    g0, g1 = graphs()
    fields = convert.delta_fields(diff(g0, g1), g0.relations, "cam")
    raw_rclpy = serialize_message(rclpy_kit.delta(fields))
    raw_bags = store.serialize_cdr(kit.delta(fields), "vsgg_msgs/msg/SceneGraphDelta")
    assert len(raw_rclpy) == len(raw_bags)  # alignment padding bytes may differ in content, not in place
    assert convert.delta_from_msg(store.deserialize_cdr(raw_rclpy, "vsgg_msgs/msg/SceneGraphDelta")) == diff(g0, g1)
    assert convert.delta_from_msg(deserialize_message(bytes(raw_bags), SceneGraphDelta)) == diff(g0, g1)


def test_empty_delta_and_graph(bag_store):
    _, kit = bag_store
    d = GraphDelta("e", 1, 0.0)
    assert convert.delta_from_msg(kit.delta(convert.delta_fields(d, (), ""))) == d
    g = empty_graph("e")
    assert convert.graph_from_msg(kit.graph(convert.graph_fields(g, ""))) == g


def test_graph_with_dangling_relation_is_refused(bag_store):
    _, kit = bag_store
    g0, _ = graphs()
    f = convert.graph_fields(g0, "cam")
    f["entities"] = [e for e in f["entities"] if e["id"] != 2]
    with pytest.raises(ValueError, match="relation"):
        convert.graph_from_msg(kit.graph(f))


def _image(store, **kw):
    f = {"header": store.types["std_msgs/msg/Header"](stamp=store.types["builtin_interfaces/msg/Time"](sec=1, nanosec=2),
                                                      frame_id="cam"),
         "height": 2, "width": 3, "encoding": "rgb8", "is_bigendian": 0, "step": 3 * 3,
         "data": np.arange(18, dtype=np.uint8)}
    f.update(kw)
    return store.types["sensor_msgs/msg/Image"](**f)


def test_image_encodings_to_bgr(bag_store):
    store, _ = bag_store
    rgb = np.arange(18, dtype=np.uint8).reshape(2, 3, 3)
    assert np.array_equal(convert.image_to_bgr(_image(store), 100), rgb[:, :, ::-1])
    padded = np.zeros((2, 12), np.uint8)  # rows padded to 12 bytes
    padded[:, :9] = rgb.reshape(2, 9)
    out = convert.image_to_bgr(_image(store, encoding="bgr8", step=12, data=padded.ravel()), 100)
    assert np.array_equal(out, rgb)
    mono = convert.image_to_bgr(_image(store, encoding="mono8", step=3, data=np.arange(6, dtype=np.uint8)), 100)
    assert mono.shape == (2, 3, 3) and np.array_equal(mono[:, :, 0], mono[:, :, 2])
    fields = convert.bgr_fields(rgb, "cam", (1, 2))
    assert convert.image_to_bgr(store.types["sensor_msgs/msg/Image"](
        header=_image(store).header, **{k: v for k, v in fields.items() if k != "header"}
        | {"data": np.frombuffer(fields["data"], np.uint8)}), 100).tobytes() == rgb.tobytes()


@pytest.mark.parametrize("kw, field", [
    ({"encoding": "16UC1"}, "encoding"),
    ({"height": 0}, "height"),
    ({"step": 4}, "step"),
    ({"data": np.zeros(17, np.uint8)}, "data"),
    ({"height": 200, "width": 300, "step": 900}, "pixels"),
])
def test_malformed_images_raise_naming_the_field(bag_store, kw, field):
    store, _ = bag_store
    with pytest.raises(ValueError, match=field):
        convert.image_to_bgr(_image(store, **kw), max_pixels=1000)


def test_bgr_fields_rejects_non_images():
    with pytest.raises(ValueError, match=r"^img: expected an \(H, W, 3\) uint8 array"):
        convert.bgr_fields(np.zeros((4, 4), np.uint8), "cam", (0, 0))
    with pytest.raises(ValueError, match=r"^encoding: "):
        convert.bgr_fields(np.zeros((4, 4, 3), np.uint8), "cam", (0, 0), encoding="rgba8")


@pytest.mark.parametrize("encoding, out", [("rgb8", "rgb8"), ("RGBA8", "rgb8"), ("bgr8", "bgr8"), ("bgra8", "bgr8"),
                                           ("mono8", "bgr8")])
def test_overlay_keeps_the_input_channel_order(bag_store, encoding, out):
    """The overlay (drawn in BGR) goes out in the input's channel order; as rgb8 it reads back as the same image."""
    store, _ = bag_store
    assert convert.overlay_encoding(encoding) == out
    bgr = np.arange(18, dtype=np.uint8).reshape(2, 3, 3)
    f = convert.bgr_fields(bgr, "cam", (1, 2), encoding=out)
    assert (f["encoding"], f["step"], f["header"]["frame_id"]) == (out, 9, "cam")
    back = convert.image_to_bgr(store.types["sensor_msgs/msg/Image"](
        header=_image(store).header, **{k: v for k, v in f.items() if k != "header"}
        | {"data": np.frombuffer(f["data"], np.uint8)}), 100)
    assert np.array_equal(back, bgr)


def _vision_store():
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore
    store = get_typestore(Stores.ROS2_KILTED)
    types = {}
    for f in sorted((HERE / "vision_msgs" / "msg").glob("*.msg")):
        types.update(get_types_from_msg(f.read_text(), f"vision_msgs/msg/{f.stem}"))
    store.register(types)
    return store


def test_detections_from_vision_msgs():
    """Detection2DArray (test-only definitions from the documented fields) -> Detections: best hypothesis kept,
    centre/size -> xyxy, unmapped classes dropped."""
    s = _vision_store()
    T = s.types
    header = T["std_msgs/msg/Header"](stamp=T["builtin_interfaces/msg/Time"](sec=0, nanosec=0), frame_id="cam")
    pose = T["geometry_msgs/msg/PoseWithCovariance"](
        pose=T["geometry_msgs/msg/Pose"](position=T["geometry_msgs/msg/Point"](x=0.0, y=0.0, z=0.0),
                                         orientation=T["geometry_msgs/msg/Quaternion"](x=0.0, y=0.0, z=0.0, w=1.0)),
        covariance=np.zeros(36))

    def det(cx, cy, w, h, *hyps):
        results = [T["vision_msgs/msg/ObjectHypothesisWithPose"](
            hypothesis=T["vision_msgs/msg/ObjectHypothesis"](class_id=c, score=p), pose=pose) for c, p in hyps]
        box = T["vision_msgs/msg/BoundingBox2D"](
            center=T["vision_msgs/msg/Pose2D"](position=T["vision_msgs/msg/Point2D"](x=cx, y=cy), theta=0.0),
            size_x=w, size_y=h)
        return T["vision_msgs/msg/Detection2D"](header=header, results=results, bbox=box, id="")

    msg = T["vision_msgs/msg/Detection2DArray"](header=header, detections=[
        det(50, 60, 20, 40, ("person", 0.3), ("dog", 0.8)), det(5, 5, 2, 2, ("car", 0.9)), det(9, 9, 1, 1)])
    raw = s.serialize_cdr(msg, "vision_msgs/msg/Detection2DArray")
    msg = s.deserialize_cdr(raw, "vision_msgs/msg/Detection2DArray")
    lut = {"person": 0, "dog": 1}
    d = convert.detections_from_vision(msg, lut.get)
    assert d.labels.tolist() == [1] and d.boxes_xyxy.tolist() == [[40, 40, 60, 80]]
    assert d.scores.tolist() == pytest.approx([0.8])
    bad = T["vision_msgs/msg/Detection2DArray"](header=header, detections=[det(5, 5, -2, 2, ("dog", 0.5))])
    with pytest.raises(ValueError, match="boxes_xyxy"):
        convert.detections_from_vision(bad, lut.get)
