"""`vsgg run --record OUT`: a rosbag2 (MCAP) of vsgg_msgs read back with a fresh typestore from the definitions in the
bag and, independently, with mcap-ros2-support; the graph rebuilt from its deltas equals the engine's at every seq."""
import argparse
import math
from dataclasses import replace
from pathlib import Path

import pytest

pytest.importorskip("vsgg_nodes", reason="vsgg_nodes is not installed: run `make ros`")
rosbags_highlevel = pytest.importorskip("rosbags.highlevel")
from rosbags.typesys import Stores, get_typestore  # noqa: E402

from engine.cli.run import add_parser, build  # noqa: E402
from engine.graph.diff import apply, empty_graph  # noqa: E402
from vsgg_nodes.bag_writer import DELTA_TOPIC, GRAPH_TOPIC, GraphBagWriter  # noqa: E402
from vsgg_nodes.convert import KIND_STARTED, KIND_UPDATED, delta_from_msg, graph_from_msg  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
TUD = ROOT / "tests" / "data" / "mot15" / "TUD-Campus" / "det.txt"
# the shipped model's scores on TUD-Campus sit low: thresholds that make relations start and end
FILTER = ["filter.enter=0.3", "filter.exit=0.2", "filter.min_duration_s=0.1"]


def _args(*extra):
    parser = argparse.ArgumentParser()
    run = add_parser(parser)
    return run, parser.parse_args(["--source", f"mot:{TUD}", "--quiet", *extra, *FILTER])


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """(bag folder, the engine's graph after every seq) of one `vsgg run --record` over TUD-Campus."""
    bag = tmp_path_factory.mktemp("rec") / "bag"
    run, args = _args("--record", str(bag), "--frame-id", "tud_cam")
    assert run(args) == 0
    engine, stream = build(args)[:2]  # the same deterministic run again, keeping every graph
    with rosbags_highlevel.AnyReader([bag]) as r:  # a new Engine draws a new epoch: take the recorded run's
        c = next(c for c in r.connections if c.topic == DELTA_TOPIC)
        epoch = r.deserialize(next(r.messages(connections=[c]))[2], c.msgtype).epoch
    graphs = {}
    for _, t, item in stream.frames:
        g = engine.step(item, t).graph
        graphs[g.seq] = replace(g, epoch=epoch)
    return bag, graphs


def _rebuild(deltas):
    g, seen = None, {}
    for d in deltas:
        g = apply(g if g is not None else empty_graph(d.epoch), d)
        seen[g.seq] = g
    return g, seen


def test_fresh_typestore_reads_the_bag(recorded):
    bag, graphs = recorded
    assert (bag / "metadata.yaml").is_file() and list(bag.glob("*.mcap"))
    deltas, snaps, kinds = [], [], set()
    # EMPTY store: every definition, std_msgs/Header included, must come from the bag itself
    with rosbags_highlevel.AnyReader([bag], default_typestore=get_typestore(Stores.EMPTY)) as r:
        types = {c.topic: c.msgtype for c in r.connections}
        assert types == {DELTA_TOPIC: "vsgg_msgs/msg/SceneGraphDelta", GRAPH_TOPIC: "vsgg_msgs/msg/SceneGraph"}
        for c, ts, raw in r.messages(connections=r.connections):
            m = r.deserialize(raw, c.msgtype)
            assert m.header.frame_id == "tud_cam"
            assert ts == round(m.t * 1e9)
            if c.topic == DELTA_TOPIC:
                deltas.append(delta_from_msg(m))
                kinds |= {x.kind for x in m.upsert_relations}
            else:
                snaps.append(graph_from_msg(m))
    final, seen = _rebuild(deltas)
    last = max(graphs)
    assert [d.seq for d in deltas] == list(range(1, last + 1))
    assert all(seen[s] == graphs[s] for s in graphs)  # every seq, bit for bit
    assert final == graphs[last] and final.entities and final.relations
    assert snaps[-1] == graphs[last] and all(s == graphs[s.seq] for s in snaps)
    assert KIND_STARTED in kinds


def test_mcap_ros2_support_reads_the_bag(recorded):
    mcap_reader = pytest.importorskip("mcap.reader")
    from mcap_ros2.decoder import DecoderFactory
    bag, graphs = recorded
    (path,) = bag.glob("*.mcap")
    deltas = []
    with open(path, "rb") as f:
        reader = mcap_reader.make_reader(f, decoder_factories=[DecoderFactory()])
        for schema, channel, _, m in reader.iter_decoded_messages(topics=[DELTA_TOPIC]):
            assert schema.encoding == "ros2msg" and channel.message_encoding == "cdr"
            deltas.append(delta_from_msg(m))
    final, seen = _rebuild(deltas)
    assert all(seen[s] == graphs[s] for s in graphs)
    assert final == graphs[max(graphs)]


def test_relation_kinds_follow_the_held_graph(tmp_path, recorded):
    """STARTED for a key the previous graph lacked, UPDATED for one it held; NaN uncertainty survives."""
    bag, graphs = recorded
    with rosbags_highlevel.AnyReader([bag]) as r:
        conns = [c for c in r.connections if c.topic == DELTA_TOPIC]
        checked = 0
        for c, _, raw in r.messages(connections=conns):
            m = r.deserialize(raw, c.msgtype)
            held = graphs.get(m.seq - 1)
            for x in m.upsert_relations:
                key = (x.subject_id, x.predicate, x.object_id)
                was = held is not None and key in held.relations
                assert x.kind == (KIND_UPDATED if was else KIND_STARTED)
                assert math.isnan(x.uncertainty) == math.isnan(graphs[m.seq].relations[key].uncertainty)
                checked += 1
    assert checked > 0


def test_record_refuses_an_existing_folder_and_bad_arguments(tmp_path):
    (tmp_path / "taken").mkdir()
    with pytest.raises(ValueError, match="path"):
        GraphBagWriter(tmp_path / "taken")
    with pytest.raises(ValueError, match="snapshot_every"):
        GraphBagWriter(tmp_path / "a", snapshot_every=0)
    with pytest.raises(TypeError, match="frame_id"):
        GraphBagWriter(tmp_path / "b", frame_id=3)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
