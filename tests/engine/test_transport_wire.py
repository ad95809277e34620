"""Wire format, subtree views, change lists, TransportConfig and the argument checks of the transport classes."""
import json
import math
from pathlib import Path

import msgpack
import numpy as np
import pytest

from engine.config import ConfigError, SubscriberConfig, TransportConfig, from_dict
from engine.graph.diff import SequenceError, apply, diff, empty_graph
from engine.transport import GraphPublisher, GraphSubscriber, fields, graph_changes, new_epoch, wire
from engine.transport.subtree import MissingEntityError, apply_to_view, entity_key, relation_key, view
from engine.graph.build import quantize_entity, quantize_relation
from engine.types import Entity, GraphDelta, Relation, SceneGraph
from engine.cli.watch import snapshot_endpoint_for
from graph_feed import random_graphs

SCHEMA = Path(__file__).resolve().parents[2] / "msgs" / "zmq" / "graph_wire.schema.json"
EP = "20261122T101500Z-1a2b3c4d"
MB = 1 << 20
V = wire.WIRE_VERSION
ANY = dict(pub_endpoint="tcp://127.0.0.1:*", snapshot_endpoint="tcp://127.0.0.1:*")


@pytest.fixture(scope="module")
def stream():
    graphs = random_graphs(11, EP, 200)
    return graphs, [diff(a, b) for a, b in zip(graphs, graphs[1:])]


def sample_delta():
    return GraphDelta(EP, 7, 0.28, (Entity(3, "person", 0.9, (1.0, 2.0, 30.0, 40.0), 0.04),), (5,),
                      (Relation(3, "holding", 4, 0.7, math.nan, 0.2), Relation(3, "near", 4, 0.5, 0.1, 0.1)),
                      ((3, "on", 4),))


# ----------------------------------------------------------------------------------------------- round trips


def test_delta_round_trip_is_exact(stream):
    graphs, deltas = stream
    short = full = 0
    for base, d in zip(graphs, deltas):
        frames = wire.encode_delta(d, 1000)
        assert len(frames) == 4 and frames[0] == wire.TOPIC_DELTA and frames[2] == d.seq.to_bytes(8, "big")
        assert wire.decode_pub(frames, MB, 1000).resolve() == d  # NaN uncertainty compares equal (nil on the wire)
        small = wire.encode_delta(d, 1000, base=base)  # short forms against the graph the delta applies to
        got = wire.decode_pub(small, MB, 1000)
        assert got.resolve(base) == d
        short += len(got.moves) + len(got.scores)
        full += sum(map(len, frames)) - sum(map(len, small))
    assert any(math.isnan(r.uncertainty) for d in deltas for r in d.upsert_relations)
    assert short > 100 and full > 0  # the short forms were used, and they are smaller


def test_short_forms_need_the_graph_they_were_made_for(stream):
    graphs, deltas = stream
    i = next(i for i, d in enumerate(deltas) if d.upsert_entities and d.upsert_entities[0].id in graphs[i].entities)
    got = wire.decode_pub(wire.encode_delta(deltas[i], 1000, base=graphs[i]), MB, 1000)
    assert got.moves
    with pytest.raises(MissingEntityError, match="moves entity"):
        got.resolve(empty_graph(EP))
    partial = got.resolve(empty_graph(EP), partial=True)  # a subtree view skips what it does not hold
    assert len(partial.upsert_entities) == len(deltas[i].upsert_entities) - len(got.moves)
    e = graphs[i].entities[got.moves[0][0]]
    shrunk = SceneGraph(graphs[i].t, {**graphs[i].entities, e.id: Entity(e.id, e.label, e.score,
                                                                         (0.0, 0.0, 0.0, 0.0), e.first_seen)},
                        graphs[i].relations, EP, graphs[i].seq)
    d = got.moves[0][1]
    if min(d[2] - d[0], d[3] - d[1]) < 0:  # only a shrinking move can go negative from a zero box
        with pytest.raises(ValueError, match="negative size"):
            got.resolve(shrunk)


def test_wire_keeps_the_published_grid():
    """Off-grid values are rounded to 0.1 px and 1e-4 on the way; on-grid ones come back bit-exactly."""
    e = Entity(1, "cup", 0.123456, (1.04, 2.06, 3.15, 4.0), 0.5)
    back = wire.decode_pub(wire.encode_delta(GraphDelta(EP, 1, 0.5, (e,)), 10), MB, 10).resolve()
    assert back.upsert_entities[0] == Entity(1, "cup", 0.1235, (1.0, 2.1, 3.2, 4.0), 0.5) == quantize_entity(e)
    r = Relation(1, "on", 1, 0.98766, 0.00004, 0.25)
    back = wire.decode_pub(wire.encode_delta(GraphDelta(EP, 1, 0.5, (e,), upsert_relations=(r,)), 10), MB, 10)
    assert back.resolve().upsert_relations[0] == quantize_relation(r) == Relation(1, "on", 1, 0.9877, 0.0, 0.25)


def test_numpy_scalars_are_encoded_as_plain_values():
    e = Entity(np.int64(3), "cup", np.float32(0.5), tuple(np.float32([1, 2, 3, 4])), np.float64(0.1))
    back = wire.decode_pub(wire.encode_delta(GraphDelta(EP, 1, np.float64(0.5), (e,)), 10), MB, 10).resolve()
    assert back.upsert_entities[0] == Entity(3, "cup", 0.5, (1.0, 2.0, 3.0, 4.0), 0.1)
    assert type(back.upsert_entities[0].id) is int


def test_other_messages_round_trip():
    hb = wire.decode_pub(wire.encode_heartbeat(EP, 42, 1.0), MB, 10)
    assert hb == wire.Heartbeat(EP, 42, 1.0)
    eos = wire.encode_eos(EP, 42, 1.68)
    assert eos[0] == wire.TOPIC_EOS and wire.decode_pub(eos, MB, 10) == wire.EndOfStream(EP, 42, 1.68)
    with pytest.raises(wire.WireError, match="eos.x"):
        wire.decode_pub(eos[:3] + [msgpack.packb({"v": V, "t": 1.0, "x": 1})], MB, 10)
    with pytest.raises(wire.WireError, match="wire version 2 is not supported") as e:
        wire.decode_pub(eos[:3] + [msgpack.packb({"v": 2, "t": 1.0})], MB, 10)
    assert e.value.code == "version"
    assert wire.decode_request(wire.encode_request(wire.SnapshotRequest(9, "r/3/")), 4096) == \
        wire.SnapshotRequest(9, "r/3/")
    d = sample_delta()
    items = wire.decode_reply(wire.encode_items(EP, 7, 9, d.upsert_entities, d.upsert_relations, 10), MB, 10)
    assert items == wire.SnapshotItems(EP, 7, 9, d.upsert_entities, d.upsert_relations)
    end = wire.decode_reply(wire.encode_end(EP, 7, 9, 0.28, 1, 2), MB, 10)
    assert end == wire.SnapshotEnd(EP, 7, 9, 0.28, 1, 2)
    err = wire.decode_reply(wire.encode_error(EP, 7, None, "too_large", "line\nbreak"), MB, 10)
    assert err == wire.ErrorReply(EP, 7, None, "too_large", "line break")


def test_new_epoch_is_valid_and_unique():
    a, b = new_epoch(), new_epoch()
    assert a != b and wire.check_epoch(a) == a


def test_documented_epoch_examples_parse():
    """WIRE.md §5 gives an example of each epoch form; each passes the frame rule, and new_epoch() has its form."""
    import re
    text = (SCHEMA.parent / "WIRE.md").read_text()
    examples = re.findall(r"for example `([^`]+)`", text[text.index("## 5."):text.index("## 6.")])
    assert len(examples) == 2
    for ex in examples:
        assert wire.check_epoch(ex) == ex
        frames = wire.encode_heartbeat(ex, 3, 1.0)
        assert wire.decode_pub(frames, MB, 10).epoch == ex
    engine_form, new_form = examples
    assert re.fullmatch(r"[0-9a-f]{12}", engine_form)
    form = r"[0-9]{8}T[0-9]{6}Z-[0-9a-f]{8}"  # UTC time, then 32 random bits in hex
    assert re.fullmatch(form, new_form) and re.fullmatch(form, new_epoch())


# ------------------------------------------------------------------------------------------------ bad inputs


def _mutated(**changes):
    frames = wire.encode_delta(sample_delta(), 10)
    body = msgpack.unpackb(frames[3])
    body.update(changes)
    return frames[:3] + [msgpack.packb(body)]


BAD_DELTA_BODIES = [
    (dict(v=1), "delta.v", "version"),
    (dict(v=2), "delta.v", "version"),  # the previous version, and the next one
    (dict(v=4), "delta.v", "version"),
    (dict(v=True), "delta.v", "version"),
    (dict(t="now"), "delta.t", "malformed"),
    (dict(t=math.inf), "delta.t", "malformed"),
    (dict(extra=1), "delta.extra", "malformed"),
    (dict(ents=[[3, "person", 15000, [0, 0, 1, 1], 0.0]]), "delta.ents[0].score", "malformed"),
    (dict(ents=[[3, "person", 0.5, [0, 0, 1, 1], 0.0]]), "delta.ents[0].score", "malformed"),
    (dict(ents=[[3, "person", math.nan, [0, 0, 1, 1], 0.0]]), "delta.ents[0].score", "malformed"),
    (dict(ents=[[-3, "person", 5000, [0, 0, 1, 1], 0.0]]), "delta.ents[0].id", "malformed"),
    (dict(ents=[[True, "person", 5000, [0, 0, 1, 1], 0.0]]), "delta.ents[0].id", "malformed"),
    (dict(ents=[[3, "", 5000, [0, 0, 1, 1], 0.0]]), "delta.ents[0].label", "malformed"),
    (dict(ents=[[3, "a\x00b", 5000, [0, 0, 1, 1], 0.0]]), "delta.ents[0].label", "malformed"),
    (dict(ents=[[3, "x" * 129, 5000, [0, 0, 1, 1], 0.0]]), "delta.ents[0].label", "malformed"),
    (dict(ents=[[3, "person", 5000, [0, 0, 1], 0.0]]), "delta.ents[0].box_xyxy", "malformed"),
    (dict(ents=[[3, "person", 5000, [2, 0, 1, 1], 0.0]]), "delta.ents[0].box_xyxy", "malformed"),
    (dict(ents=[[3, "person", 5000, [0.5, 0, 1, 1], 0.0]]), "delta.ents[0].box_xyxy[0]", "malformed"),
    (dict(ents=[[3, "person", 5000, [0, 0, 1, 1]]]), "delta.ents[0]", "malformed"),
    (dict(ents=[[3, "p", 5000, [0, 0, 1, 1], 0.0], [3, "p", 5000, [0, 0, 1, 1], 0.0]]), "duplicate", "malformed"),
    (dict(ents={"3": 1}), "delta.ents", "malformed"),
    (dict(ents_mv=[[3, 1, 1, 1]]), "delta.ents_mv[0]", "malformed"),
    (dict(ents_mv=[[3, 1, 1, 1, 1.5]]), "delta.ents_mv[0].dy2", "malformed"),
    (dict(ents_mv=[[3, 1, 1, 1, 1, 10001]]), "delta.ents_mv[0].score", "malformed"),
    (dict(ents_mv=[[3, 0, 0, 0, 0]]), "ents_mv: duplicate key 3", "malformed"),
    (dict(ents_rm=[1, 1]), "delta.ents_rm", "malformed"),
    (dict(ents_rm=[1.5]), "delta.ents_rm[0]", "malformed"),
    (dict(rels=[[3, "on", 4, 5000, -1, 0.0]]), "delta.rels[0].uncertainty", "malformed"),
    (dict(rels=[[3, "on", 4, 5000, None]]), "delta.rels[0]", "malformed"),
    (dict(rels=[[3, 7, 4, 5000, None, 0.0]]), "delta.rels[0].predicate", "malformed"),
    (dict(rels_sc=[[3, "on", 4]]), "delta.rels_sc[0]", "malformed"),
    (dict(rels_sc=[[3, "on", 4, -1]]), "delta.rels_sc[0].score", "malformed"),
    (dict(rels_sc=[[3, "holding", 4, 10]]), "rels_sc: duplicate key", "malformed"),
    (dict(rels_rm=[[3, "on"]]), "delta.rels_rm[0]", "malformed"),
    (dict(rels_rm=[[3, "on", 2 ** 63]]), "delta.rels_rm[0].object_id", "malformed"),
]


@pytest.mark.parametrize("change,field,code", BAD_DELTA_BODIES, ids=[b[1] for b in BAD_DELTA_BODIES])
def test_bad_delta_payload_names_the_field(change, field, code):
    with pytest.raises(wire.WireError, match=field.replace("[", r"\[").replace("]", r"\]")) as e:
        wire.decode_pub(_mutated(**change), MB, 10)
    assert e.value.code == code and isinstance(e.value, ValueError)


def test_bad_frames_name_the_field():
    good = wire.encode_delta(sample_delta(), 10)
    cases = [
        (good[:3], "message: expected 4 frames"),
        ([b"vsgg.other"] + good[1:], "topic"),
        ([good[0], b"bad epoch!"] + good[2:], "epoch"),
        ([good[0], b"x" * 65] + good[2:], "epoch"),
        ([good[0], "é".encode()] + good[2:], "epoch: not ASCII"),
        (good[:2] + [b"\x01\x02"] + good[3:], "seq: expected 8 bytes"),
        (good[:2] + [b"\xff" * 8] + good[3:], "seq: "),
        (good[:2] + [(0).to_bytes(8, "big")] + good[3:], "seq: a delta's seq must be >= 1"),
        (good[:3] + [b"\xc1"], "not valid msgpack"),
        (good[:3] + [b"\x93\x01"], "not valid msgpack"),
        (good[:3] + [msgpack.packb([1, 2])], "must be a map"),
        (good[:3] + [msgpack.packb({1: 2})], "not valid msgpack"),
        (good[:3] + [msgpack.packb({"v": 1, "b": b"bytes"})], "not valid msgpack"),
        (good[:3] + [msgpack.packb({"v": 1, "x": msgpack.ExtType(1, b"")})], "not valid msgpack"),
        (good[:3] + [msgpack.packb({"t": 0})], "delta.v: missing"),
    ]
    for frames, words in cases:
        with pytest.raises(wire.WireError, match=words):
            wire.decode_pub(frames, MB, 10)
    with pytest.raises(wire.WireError, match="exceed the limit") as e:
        wire.decode_pub(good, 100, 10)
    assert e.value.code == "too_large"
    with pytest.raises(wire.WireError, match="delta: 5 items exceed the limit of 4"):
        wire.decode_pub(good, MB, 4)
    with pytest.raises(wire.WireError, match="topic"):
        wire.decode_reply(good, MB, 10)  # a delta is not a snapshot reply


def test_bad_requests_carry_code_and_rid():
    def req(body):
        return [wire.TOPIC_REQUEST, msgpack.packb(body)]
    cases = [
        (req({"v": V, "rid": 3, "subtree": "x" * 257}), "malformed", 3, "request.subtree"),
        (req({"v": V, "rid": 3, "subtree": "a\nb"}), "malformed", 3, "request.subtree"),
        (req({"v": 9, "rid": 4, "subtree": ""}), "version", 4, "request.v"),
        (req({"v": V, "subtree": ""}), "malformed", None, "request.rid: missing"),
        (req({"v": V, "rid": "5", "subtree": ""}), "malformed", None, "request.rid"),
        ([wire.TOPIC_REQUEST, msgpack.packb({"v": V, "rid": 1, "subtree": "y" * 5000})], "too_large", None,
         "exceed the limit"),
    ]
    for frames, code, rid, words in cases:
        with pytest.raises(wire.WireError, match=words) as e:
            wire.decode_request(frames, 4096)
        assert (e.value.code, e.value.rid) == (code, rid)


def test_encoding_checks_values_too():
    bad = [
        (GraphDelta(EP, 1, 0.0, (Entity(1, "a", math.nan, (0, 0, 1, 1)),)), "delta.ents\\[0\\].score"),
        (GraphDelta(EP, 1, 0.0, (Entity(1.5, "a", 0.5, (0, 0, 1, 1)),)), "delta.ents\\[0\\].id"),
        (GraphDelta(EP, 1, 0.0, ("not an entity",)), "delta.ents\\[0\\]: expected an Entity"),
        (GraphDelta(EP, 1, 0.0, upsert_relations=(Relation(1, "on", 2, 0.5, math.inf),)),
         "delta.rels\\[0\\].uncertainty"),
        (GraphDelta("bad epoch", 1, 0.0), "delta.epoch"),
        (GraphDelta(EP, 0, 0.0), "delta.seq"),
        (GraphDelta(EP, 1, "t"), "delta.t"),
    ]
    for d, words in bad:
        with pytest.raises(wire.WireError, match=words):
            wire.encode_delta(d, 10)
    with pytest.raises(wire.WireError, match="error.code"):
        wire.encode_error(EP, 0, None, "nope", "x")


# ---------------------------------------------------------------------------------------------- JSON Schema


def test_schema_accepts_every_payload_and_rejects_bad_ones(stream):
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    assert schema["$defs"]["version"]["const"] == wire.WIRE_VERSION
    assert tuple(schema["$defs"]["error"]["properties"]["code"]["enum"]) == wire.ERROR_CODES
    assert schema["$defs"]["name"]["maxLength"] == fields.MAX_NAME_LEN
    graphs, deltas = stream
    g = graphs[-1]
    payloads = [("delta", wire.encode_delta(d, 1000)[3]) for d in deltas[:50]] + [
        ("heartbeat", wire.encode_heartbeat(EP, 1, 1.0)[3]), ("eos", wire.encode_eos(EP, 1, 0.5)[3]),
        ("request", wire.encode_request(wire.SnapshotRequest(1, "e/"))[1]),
        ("items", wire.encode_items(EP, 1, 1, list(g.entities.values()), list(g.relations.values()), 1000)[3]),
        ("end", wire.encode_end(EP, 1, 1, 0.5, 3, 4)[3]),
        ("error", wire.encode_error(EP, 1, None, "malformed", "bad")[3]),
        ("error", wire.encode_error(EP, 1, 5, "version", "bad")[3])]
    for name, p in payloads:
        validator.validate(msgpack.unpackb(p))
        own = jsonschema.Draft202012Validator({**schema, "anyOf": [{"$ref": f"#/$defs/{name}"}]})
        own.validate(msgpack.unpackb(p))  # and against the definition its topic names
    assert not validator.is_valid({"v": V - 1, "t": 1.0})
    for change, field, _ in BAD_DELTA_BODIES:
        if "duplicate" in field or "box_xyxy" in field and change["ents"][0][3][0] == 2:
            continue  # cross-field rules (unique ids, x1 <= x2) are beyond JSON Schema; the decoder checks them
        if "nan" in repr(change) or "inf" in repr(change):
            continue  # JSON has no NaN or infinity
        assert not validator.is_valid(msgpack.unpackb(_mutated(**change)[3])), field


# ---------------------------------------------------------------------------------------------- subtree views


def test_keys():
    assert entity_key(12) == "e/12" and relation_key((12, "holding", 7)) == "r/12/holding/7"


@pytest.mark.parametrize("prefix", ["", "e/", "e/1", "r/", "r/1", "r/3/near/", "x"])
def test_apply_to_view_tracks_the_view_of_the_full_graph(stream, prefix):
    graphs, deltas = stream
    v, missing = view(graphs[0], prefix), 0
    for g_prev, g, d in zip(graphs, graphs[1:], deltas):
        want = view(g, prefix)
        try:
            v = apply_to_view(v, d, prefix)
        except MissingEntityError:
            missing += 1
            v = want  # what a resync gives
        assert v == want
        for (s, _, o) in v.relations:  # always a valid graph, relations only where the key matches
            assert s in v.entities and o in v.entities
        assert all(relation_key(k).startswith(prefix) for k in v.relations)
    if prefix == "":
        assert missing == 0 and view(graphs[-1], "") is graphs[-1]
    if prefix == "r/":
        assert missing > 0  # the resync path is exercised


def test_apply_to_view_checks_the_sequence():
    g = view(SceneGraph(0.0, {}, {}, EP, 3), "e/")
    with pytest.raises(SequenceError):
        apply_to_view(g, GraphDelta(EP, 5, 0.0), "e/")
    with pytest.raises(SequenceError):
        apply_to_view(g, GraphDelta("other", 4, 0.0), "e/")


def test_missing_entity_is_reported():
    a, b = Entity(1, "person", 0.9, (0, 0, 1, 1)), Entity(2, "cup", 0.5, (0, 0, 1, 1))
    full = SceneGraph(0.0, {1: a, 2: b}, {}, EP, 1)
    v = view(full, "r/")
    assert v.entities == {}
    d = GraphDelta(EP, 2, 0.1, upsert_relations=(Relation(1, "holding", 2, 0.9),))
    with pytest.raises(MissingEntityError, match="needs entity 1"):
        apply_to_view(v, d, "r/")
    d2 = GraphDelta(EP, 2, 0.1, upsert_entities=(a, b), upsert_relations=(Relation(1, "holding", 2, 0.9),))
    assert apply_to_view(v, d2, "r/") == view(apply(full, d2), "r/")


def test_graph_changes():
    p, c = Entity(1, "person", 0.9, (0, 0, 1, 1)), Entity(2, "cup", 0.5, (0, 0, 1, 1))
    r = Relation(1, "holding", 2, 0.9)
    g0 = SceneGraph(0.0, {1: p, 2: c}, {r.key: r}, EP, 1)
    p2 = Entity(1, "person", 0.8, (0, 0, 2, 2))
    d = Entity(3, "dog", 0.7, (0, 0, 1, 1))
    r2 = Relation(1, "holding", 2, 0.5)
    r3 = Relation(1, "near", 3, 0.6)
    g1 = SceneGraph(0.1, {1: p2, 3: d}, {r3.key: r3}, "other-epoch", 1)
    ch = graph_changes(g0, g1)
    assert (ch.added, ch.removed, ch.updated, ch.started, ch.ended) == ((d,), (c,), (p2,), (r3,), (r,))
    g2 = SceneGraph(0.0, {1: p, 2: c}, {r.key: r2}, EP, 2)
    assert graph_changes(g0, g2).relations_updated == (r2,) and graph_changes(g0, g0).is_empty


# ---------------------------------------------------------------------------------------------------- config


def test_transport_config_defaults_and_checks():
    cfg = TransportConfig()
    assert (cfg.pub_endpoint, cfg.snapshot_endpoint, cfg.heartbeat_s) == ("tcp://127.0.0.1:5556",
                                                                         "tcp://127.0.0.1:5557", 1.0)
    assert not cfg.curve
    assert from_dict(TransportConfig, {"heartbeat_s": 0.5}).heartbeat_s == 0.5
    bad = [
        (dict(pub_endpoint="localhost:5556"), "transport.pub_endpoint"),
        (dict(snapshot_endpoint="tcp://"), "transport.snapshot_endpoint"),
        (dict(snapshot_endpoint="tcp://127.0.0.1:5556"), "must differ"),
        (dict(heartbeat_s=0.0), "transport.heartbeat_s"),
        (dict(max_message_bytes=1000), "transport.max_message_bytes"),
        (dict(max_request_bytes=10), "transport.max_request_bytes"),
        (dict(max_items=0), "transport.max_items"),
        (dict(snapshot_batch_items=0), "transport.snapshot_batch_items"),
        (dict(queue_size=0), "transport.queue_size"),
        (dict(curve_authorized_keys_dir="/tmp"), "transport.curve_authorized_keys_dir"),
    ]
    for kw, words in bad:
        with pytest.raises(ConfigError, match=words):
            TransportConfig(**kw)
    with pytest.raises(ConfigError, match="unknown config key 'port'"):
        from_dict(TransportConfig, {"port": 1})


# ------------------------------------------------------------------------------- publisher / subscriber args


def test_publish_rejects_bad_deltas_and_keeps_its_graph():
    with GraphPublisher(TransportConfig(**ANY), EP) as pub:
        d1 = diff(empty_graph(EP), SceneGraph(0.1, {1: Entity(1, "a", 0.5, (0, 0, 1, 1))}, {}, EP, 1))
        pub.publish(d1)
        g = pub.graph
        bad = [
            (GraphDelta(EP, 3, 0.2), SequenceError, "does not follow"),
            (GraphDelta("other", 2, 0.2), SequenceError, "epoch"),
            (GraphDelta(EP, 2, 0.2, (Entity(2, "a", 7.0, (0, 0, 1, 1)),)), wire.WireError, "ents\\[0\\].score"),
            (GraphDelta(EP, 2, 0.2, upsert_relations=(Relation(1, "on", 9, 0.5),)), ValueError, "missing entity"),
            ("delta", TypeError, "GraphDelta"),
        ]
        for d, exc, words in bad:
            with pytest.raises(exc, match=words):
                pub.publish(d)
            assert pub.graph is g
        pub.publish(GraphDelta(EP, 2, 0.2, remove_entity_ids=(1,)))
        assert pub.graph.seq == 2 and not pub.graph.entities
        assert not pub.ended
        pub.end_stream()
        pub.end_stream()  # idempotent
        assert pub.ended
        with pytest.raises(RuntimeError, match="after end_stream"):
            pub.publish(GraphDelta(EP, 3, 0.3))
        assert pub.graph.seq == 2
    with pytest.raises(RuntimeError, match="after close"):
        pub.publish(GraphDelta(EP, 3, 0.3))
    with pytest.raises(RuntimeError, match="after close"):
        pub.end_stream()


def test_oversized_delta_is_not_sent_but_applied():
    cfg = TransportConfig(**ANY, max_message_bytes=65536)
    ents = {i: Entity(i, "thing", 0.5, (0.0, 0.0, 1.0, 1.0)) for i in range(4000)}
    with GraphPublisher(cfg, EP) as pub:
        pub.publish(diff(empty_graph(EP), SceneGraph(0.1, ents, {}, EP, 1)))
        assert pub.graph.seq == 1 and len(pub.graph.entities) == 4000
        assert pub.stats().oversized == 1


def test_publisher_argument_checks(tmp_path):
    with pytest.raises(TypeError, match="TransportConfig"):
        GraphPublisher({"heartbeat_s": 1.0}, EP)
    with pytest.raises(ValueError, match="epoch"):
        GraphPublisher(TransportConfig(**ANY), "no spaces allowed")
    with pytest.raises(TypeError, match="drop_fraction"):  # the old test hook is gone from the service
        GraphPublisher(TransportConfig(**ANY), EP, drop_fraction=0.5)
    with pytest.raises(ValueError, match="curve_secret_key_file"):
        GraphPublisher(TransportConfig(**ANY, curve_secret_key_file=str(tmp_path / "none.key_secret")), EP)
    with GraphPublisher(TransportConfig(**ANY), EP) as pub:
        taken = TransportConfig(pub_endpoint=pub.pub_endpoint, snapshot_endpoint="tcp://127.0.0.1:*")
        with pytest.raises(ValueError, match="cannot bind"):
            GraphPublisher(taken, EP)


def test_subscriber_config_and_argument_checks(tmp_path):
    ok = dict(pub_endpoint="tcp://127.0.0.1:5556", snapshot_endpoint="tcp://127.0.0.1:5557")
    assert SubscriberConfig() == SubscriberConfig(**ok) and not SubscriberConfig().curve
    assert from_dict(SubscriberConfig, {"max_pending": 5}).max_pending == 5
    bad = [
        (dict(pub_endpoint="127.0.0.1:5556"), "subscriber.pub_endpoint"),
        (dict(snapshot_endpoint=None), "subscriber.snapshot_endpoint"),
        (dict(heartbeat_timeout_s=0), "subscriber.heartbeat_timeout_s"),
        (dict(snapshot_timeout_s=-1.0), "subscriber.snapshot_timeout_s"),
        (dict(heartbeat_timeout_s=True), "subscriber.heartbeat_timeout_s"),
        (dict(max_items=1.5), "subscriber.max_items"),
        (dict(max_message_bytes=0), "subscriber.max_message_bytes"),
        (dict(max_pending=0), "subscriber.max_pending"),
        (dict(subtree=3), "subscriber.subtree"),
        (dict(curve_server_key_file="x"), "give both"),
    ]
    for kw, words in bad:
        with pytest.raises(ConfigError, match=words):
            SubscriberConfig(**{**ok, **kw})
    with pytest.raises(ConfigError, match="unknown config key 'port'"):
        from_dict(SubscriberConfig, {"port": 1})
    with pytest.raises(TypeError, match="SubscriberConfig"):
        GraphSubscriber(TransportConfig())
    with pytest.raises(ValueError, match="subscriber.subtree"):
        GraphSubscriber(SubscriberConfig(subtree="a\tb"))
    with pytest.raises(ValueError, match="subscriber.curve_server_key_file: no such file"):
        GraphSubscriber(SubscriberConfig(curve_server_key_file=str(tmp_path / "a"),
                                         curve_client_key_file=str(tmp_path / "b")))
    sub = GraphSubscriber(SubscriberConfig())
    assert sub.config == SubscriberConfig()
    with pytest.raises(TypeError, match="callable"):
        sub.on_change("print")
    sub.close()


def test_watch_snapshot_endpoint_is_pub_port_plus_one():
    assert snapshot_endpoint_for("tcp://10.0.0.2:5556") == "tcp://10.0.0.2:5557"
    for bad in ("ipc:///tmp/x", "tcp://host", "tcp://host:65535"):
        with pytest.raises(ValueError, match="--snapshot"):
            snapshot_endpoint_for(bad)


@pytest.mark.parametrize("name", ["per\x1bson", "per\x7fson", "per\x9bson", "per\u202eson", "per\u200bson",
                                  "per\u2028son"])
def test_names_with_control_or_formatting_characters_are_refused(name):
    from engine.transport.fields import WireError, check_name
    with pytest.raises(WireError, match="contains control or formatting characters"):
        check_name(name, "label")
    assert check_name("person on bike", "label") == "person on bike"
