"""`vsgg run` end to end: the engine with an exported relation model in a subprocess publishing over ZeroMQ, a
GraphSubscriber in this process, and the --jsonl delta log; both must end at the same graph."""
import json
import subprocess
import sys
from pathlib import Path

from engine.cli.demo import _free_port_pair
from engine.config import SubscriberConfig
from engine.graph.graph_json import graph_to_dict
from engine.transport import GraphSubscriber

ROOT = Path(__file__).resolve().parents[2]
TUD = ROOT / "tests" / "data" / "mot15" / "TUD-Campus" / "det.txt"
TUD_FRAMES = 71  # seqinfo.ini seqLength: one delta per frame


def replay_jsonl(path: Path, states: dict | None = None) -> dict:
    """Apply the logged delta dicts in order to an empty graph dict (graph_json layout); checks the seq chain.
    ``states``, when given, receives the graph dict after every seq."""
    ents, rels, last = {}, {}, None
    for line in path.read_text().splitlines():
        d = json.loads(line)
        assert last is None or (d["epoch"] == last["epoch"] and d["seq"] == last["seq"] + 1), "gap in the log"
        for i in d["remove_entity_ids"]:
            ents.pop(i, None)
        for e in d["upsert_entities"]:
            ents[e["id"]] = e
        rels = {k: r for k, r in rels.items() if k[0] in ents and k[2] in ents}
        for k in d["remove_relations"]:
            rels.pop(tuple(k), None)
        for r in d["upsert_relations"]:
            rels[(r["subject_id"], r["predicate"], r["object_id"])] = r
        last = d
        if states is not None:
            states[d["seq"]] = _state(last, ents, rels)
    return _state(last, ents, rels)


def _state(last, ents, rels) -> dict:
    return {"epoch": last["epoch"], "seq": last["seq"], "t": last["t"],
            "entities": [ents[i] for i in sorted(ents)], "relations": [rels[k] for k in sorted(rels)]}


def test_vsgg_run_subscriber_ends_at_the_jsonl_graph(random_model_dir, tmp_path):
    port = _free_port_pair()  # vsgg run serves snapshots on port + 1
    log = tmp_path / "deltas.jsonl"
    # thresholds inside the random model's narrow score band, so relations start and end on the wire too
    cmd = [sys.executable, "-m", "engine.cli", "run", "--source", f"mot:{TUD}", "--model", str(random_model_dir),
           "--zmq", f"tcp://127.0.0.1:{port}", "--jsonl", str(log), "--realtime", "--linger", "3", "--quiet",
           "filter.enter=0.123", "filter.exit=0.12", "filter.min_duration_s=0.1"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    sub = GraphSubscriber(SubscriberConfig(f"tcp://127.0.0.1:{port}", f"tcp://127.0.0.1:{port + 1}",
                                           heartbeat_timeout_s=5.0))
    seen = []
    sub.on_change(lambda ev: seen.append(graph_to_dict(ev.graph)))
    try:
        sub.start()
        reached = sub.wait_for(lambda s: s.graph.seq >= TUD_FRAMES, timeout_s=60)
        out, err = proc.communicate(timeout=60)
    finally:
        sub.close()
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert reached, f"subscriber stopped at seq {sub.graph.seq}; stats {sub.stats()}"
    states = {}
    want = replay_jsonl(log, states)
    # every graph the subscriber exposed, after its snapshot and after each delta, is the engine's at that seq
    assert len(seen) > 10 and all(g == states[g["seq"]] for g in seen if g["seq"] > 0)
    assert want["seq"] == TUD_FRAMES and want["entities"] and want["relations"]
    assert graph_to_dict(sub.graph) == want
    assert sub.stats().deltas_applied > 0  # it followed the live stream, not only a final snapshot
    assert f"seq {TUD_FRAMES}" in out  # the run's own summary names the same final graph
