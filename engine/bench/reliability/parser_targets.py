"""The parsers the reliability suite fuzzes: for each, a valid seed document, its serializer and the call under test.

Every target is a ``Target(name, seed, serialize, run)``: ``seed(root)`` builds a valid document (a Python
structure, see engine.bench.reliability.mutators), ``serialize(doc) -> bytes`` writes it in the parser's format and
``run(data, workdir)`` feeds the bytes to the engine's real parser the way the engine reads them (a file in
``workdir``, or the frames of a wire message), consuming the result completely (every frame of a stream, the
embedding tables of a model side-car, ``resolve`` and ``apply`` of a delta), so that errors raised late count too.

Only parsers in engine/ are fuzzed here; the MEVA KPF line parser lives in offline_train/, which engine/ must not
import, and has its own tests.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import msgpack
import yaml

from engine.bench.reliability.mutators import expand_deep_msgpack

ROOT = Path(__file__).resolve().parents[3]
MODELS = ROOT / "engine" / "models"
MAX_BYTES = 1 << 20      # the transport defaults (TransportConfig / SubscriberConfig)
MAX_ITEMS = 100_000
EPOCH = "FUZZ-1"


@dataclass(frozen=True)
class Target:
    """A parser under test. ``seed(rng_pick)``: valid document (``rng_pick(n)`` picks one of n variants)."""

    name: str
    seed: Callable[[Callable[[int], int]], Any]
    serialize: Callable[[Any], bytes]
    run: Callable[[bytes, Path], Any]


# ------------------------------------------------------------------------------------------- serializers


def _json(doc: Any) -> bytes:
    return json.dumps(doc).encode()


def _yaml(doc: Any) -> bytes:
    return yaml.safe_dump(doc, allow_unicode=True, sort_keys=False).encode()


def lines_bytes(doc: Any) -> bytes:
    """A list of rows (lists of fields, or single values) as comma-separated lines."""
    rows = doc if isinstance(doc, list) else [doc]
    return "\n".join(",".join(map(str, r)) if isinstance(r, list) else str(r) for r in rows).encode()


def _ini(doc: Any) -> bytes:
    if not isinstance(doc, dict):
        return str(doc).encode()
    out = []
    for section, body in doc.items():
        out.append(f"[{section}]")
        if isinstance(body, dict):
            out += [f"{k}={v}" for k, v in body.items()]
        else:
            out.append(str(body))
    return "\n".join(out).encode()


def _frames_bytes(doc: Any) -> bytes:
    """A wire message as a list of frames; str -> UTF-8, int -> 8-byte big-endian seq, dict/list -> msgpack,
    packed with 4-byte length prefixes (the fuzz carries frames through byte-level mutations this way)."""
    frames = doc if isinstance(doc, list) else [doc]
    out = bytearray()
    for f in frames:
        if isinstance(f, str):
            b = f.encode("utf-8", "surrogatepass")
        elif isinstance(f, bool) or f is None or isinstance(f, float):
            b = msgpack.packb(f)
        elif isinstance(f, int):
            b = f.to_bytes(8, "big") if 0 <= f < 2 ** 64 else str(f).encode()
        else:
            b = expand_deep_msgpack(msgpack.packb(f, use_bin_type=True))
        out += len(b).to_bytes(4, "big") + b
    return bytes(out)


def split_frames(data: bytes) -> list[bytes]:
    """Inverse of ``_frames_bytes``, lenient: a damaged length takes what is left."""
    frames, i = [], 0
    while i < len(data):
        n = int.from_bytes(data[i:i + 4], "big")
        frames.append(data[i + 4:i + 4 + n])
        i += 4 + n
    return frames


# --------------------------------------------------------------------------------------------- documents


def det_rows(pick) -> list:
    """20 frames of a valid det.txt with two boxes each (MOTChallenge fields, pixels)."""
    rows = []
    for f in range(1, 21):
        for k in range(2):
            x, y = 10 + 5 * f + 200 * k, 40 + 2 * f
            rows.append([f, -1, x, y, 60, 120, round(0.6 + 0.1 * k, 2), -1, -1, -1])
    return rows


def _seqinfo(pick) -> dict:
    return {"Sequence": {"name": "fuzz", "imDir": "img1", "frameRate": 30, "seqLength": 25, "imWidth": 640,
                         "imHeight": 480, "imExt": ".jpg"}}


def vidvrd_doc(pick) -> dict:
    """A valid VidVRD annotation: 8 frames, a person watching a dog (boxes xyxy pixels)."""
    frames = []
    for f in range(8):
        frames.append([{"tid": 0, "bbox": {"xmin": 10 + f, "ymin": 20, "xmax": 80 + f, "ymax": 200},
                        "generated": 0, "tracker": "none"},
                       {"tid": 1, "bbox": {"xmin": 300, "ymin": 50 + f, "xmax": 360, "ymax": 120 + f},
                        "generated": 0, "tracker": "none"}])
    return {"version": "VERSION 1.0", "video_id": "fuzz_video", "frame_count": 8, "fps": 30.0, "width": 640,
            "height": 480, "subject/objects": [{"tid": 0, "category": "person"}, {"tid": 1, "category": "dog"}],
            "trajectories": frames,
            "relation_instances": [{"subject_tid": 0, "object_tid": 1, "predicate": "watch", "begin_fid": 1,
                                    "end_fid": 6}]}


def _name_map(pick) -> dict:
    return {"adult": "person", "puppy": "dog", "pickup": "car", "rock": None}


def _class_map(pick) -> dict:
    return yaml.safe_load((MODELS.parent / "detect" / "class_maps" / "coco_to_vidvrd.yaml").read_text())


def _engine_config(pick) -> dict:
    from engine.config import EngineConfig, to_dict
    d = to_dict(EngineConfig())
    d.pop("detector")  # its input_size None and tuples are covered by the other sections' types
    return d


def _relation_sidecar(pick) -> dict:
    return json.loads((MODELS / "default" / "relation.json").read_text())


def _detector_sidecar(pick) -> dict:
    return json.loads((MODELS / "nanodet" / "nanodet.json").read_text())


def sample_graphs():
    """(g0 at seq 4, g1 at seq 5, the delta g0 -> g1) of epoch EPOCH: moves, a birth, a rescore, a new relation."""
    from engine.graph.diff import diff
    from engine.types import Entity, Relation, SceneGraph
    e1 = Entity(1, "person", 0.9, (10.0, 20.0, 50.0, 120.0), 0.0)
    e2 = Entity(2, "dog", 0.8, (200.0, 40.0, 260.0, 100.0), 0.0)
    r = Relation(1, "watch", 2, 0.7, math.nan, 0.0)
    g0 = SceneGraph(0.1, {1: e1, 2: e2}, {r.key: r}, EPOCH, 4)
    e1b = Entity(1, "person", 0.85, (12.0, 20.0, 52.0, 121.0), 0.0)
    e3 = Entity(3, "cup", 0.6, (100.0, 100.0, 120.0, 130.0), 0.2)
    r2 = Relation(1, "watch", 2, 0.4, math.nan, 0.0)
    r3 = Relation(3, "near", 1, 0.5, 0.1, 0.2)
    g1 = SceneGraph(0.2, {1: e1b, 2: e2, 3: e3}, {r2.key: r2, r3.key: r3}, EPOCH, 5)
    return g0, g1, diff(g0, g1)


def _as_doc(frames: list[bytes]) -> list:
    """Real encoded frames -> a document: topic/epoch as text, seq as int, payload as its msgpack structure."""
    return [frames[0].decode(), frames[1].decode(), int.from_bytes(frames[2], "big"),
            msgpack.unpackb(frames[3], raw=False)]


def _pub_message(pick) -> list:
    from engine.transport import wire
    g0, g1, d = sample_graphs()
    which = pick(3)
    if which == 0:
        return _as_doc(wire.encode_delta(d, MAX_ITEMS, base=g0))
    if which == 1:
        return _as_doc(wire.encode_heartbeat(EPOCH, 5, 1.0))
    return _as_doc(wire.encode_eos(EPOCH, 5, 0.2))


def _reply_message(pick) -> list:
    from engine.transport import wire
    g0, g1, _ = sample_graphs()
    which = pick(3)
    if which == 0:
        return _as_doc(wire.encode_items(EPOCH, 5, 9, list(g1.entities.values()), list(g1.relations.values()),
                                         MAX_ITEMS))
    if which == 1:
        return _as_doc(wire.encode_end(EPOCH, 5, 9, 0.2, 3, 2))
    return _as_doc(wire.encode_error(EPOCH, 5, 9, "malformed", "request.subtree: expected a string"))


def request_doc(pick=lambda n: 0) -> list:
    from engine.transport import wire
    topic, payload = wire.encode_request(wire.SnapshotRequest(9, ""))
    return [topic.decode(), msgpack.unpackb(payload, raw=False)]


# ----------------------------------------------------------------------------------------------- callers


def _write(workdir: Path, name: str, data: bytes) -> Path:
    p = workdir / name
    p.write_bytes(data)
    return p


def _run_mot(data: bytes, workdir: Path):
    from engine.io.sources import MotDetections
    return sum(len(d) for _, _, d in MotDetections(_write(workdir, "det.txt", data)))


def _run_seqinfo(data: bytes, workdir: Path):
    from engine.io.streams import open_stream
    from engine.vocab import builtin
    det = _write(workdir, "det.txt", lines_bytes(det_rows(None)))
    _write(workdir, "seqinfo.ini", data)
    s = open_stream(f"mot:{det}", builtin("vidvrd_objects"))
    return sum(1 for _ in s.frames)


def _run_vidvrd(data: bytes, workdir: Path):
    from engine.io.sources import VidvrdReplay
    from engine.io.vidvrd import load_vidvrd
    from engine.vocab import builtin
    ann = load_vidvrd(_write(workdir, "video.json", data))
    return sum(len(d) for _, _, d in VidvrdReplay(ann, builtin("vidvrd_objects"), jitter=0.05, false_positives=0.5))


def _run_vocab(data: bytes, workdir: Path):
    from engine.vocab import Vocabulary
    return len(Vocabulary.from_file(_write(workdir, "classes.txt", data)))


def _run_name_map(suffix: str):
    def run(data: bytes, workdir: Path):
        from engine.vocab import load_name_map
        return load_name_map(_write(workdir, f"category_map{suffix}", data), "--category-map file")
    return run


def _run_class_map(data: bytes, workdir: Path):
    from engine.detect.class_map import load_class_map
    return load_class_map(str(_write(workdir, "class_map.yaml", data)))


def _run_engine_config(data: bytes, workdir: Path):
    from engine.config import load_engine_config
    return load_engine_config(_write(workdir, "run.yaml", data))


def _run_relation_sidecar(data: bytes, workdir: Path):
    from engine.relate.relation_io import read_model_info
    _write(workdir, "relation.onnx", b"not checked: check_hash=False")
    _write(workdir, "relation.json", data)
    info = read_model_info(workdir / "relation.onnx", check_hash=False)
    return info.embedding_table("objects").shape, info.embedding_table("predicates").shape, info.shapes(3)


def _run_detector_sidecar(data: bytes, workdir: Path):
    from engine.detect.sidecar import load_sidecar
    return load_sidecar(_write(workdir, "detector.json", data))


def _run_pub(data: bytes, workdir: Path):
    from engine.graph.diff import apply
    from engine.transport import wire
    msg = wire.decode_pub(split_frames(data), MAX_BYTES, MAX_ITEMS)
    if isinstance(msg, wire.WireDelta):  # what the subscriber does with it next
        g0 = sample_graphs()[0]
        return apply(g0, msg.resolve(g0))
    return msg


def _run_reply(data: bytes, workdir: Path):
    from engine.transport import wire
    return wire.decode_reply(split_frames(data), MAX_BYTES, MAX_ITEMS)


def _run_request(data: bytes, workdir: Path):
    from engine.transport import wire
    from engine.transport.subtree import view
    req = wire.decode_request(split_frames(data), 4096)
    return view(sample_graphs()[1], req.subtree)


TARGETS: dict[str, Target] = {t.name: t for t in (
    Target("mot_det_txt", det_rows, lines_bytes, _run_mot),
    Target("seqinfo_ini", _seqinfo, _ini, _run_seqinfo),
    Target("vidvrd_json", vidvrd_doc, _json, _run_vidvrd),
    Target("vocabulary_file", lambda pick: ["person", "dog", "car", "cup"], lines_bytes, _run_vocab),
    Target("category_map_yaml", _name_map, _yaml, _run_name_map(".yaml")),
    Target("category_map_json", _name_map, _json, _run_name_map(".json")),
    Target("class_map_yaml", _class_map, _yaml, _run_class_map),
    Target("engine_config_yaml", _engine_config, _yaml, _run_engine_config),
    Target("relation_sidecar_json", _relation_sidecar, _json, _run_relation_sidecar),
    Target("detector_sidecar_json", _detector_sidecar, _json, _run_detector_sidecar),
    Target("wire_sub_message", _pub_message, _frames_bytes, _run_pub),
    Target("wire_snapshot_reply", _reply_message, _frames_bytes, _run_reply),
    Target("wire_router_request", request_doc, _frames_bytes, _run_request),
)}


def frames_of(doc: Any) -> list[bytes]:
    """The frames of a wire-message document (for sending mutated messages over real sockets)."""
    return split_frames(_frames_bytes(doc))


def check_seeds(workdir: Path) -> None:
    """Every seed document parses cleanly (else the fuzz would test nothing); raises the first failure."""
    for t in TARGETS.values():
        for v in range(3):
            t.run(t.serialize(t.seed(lambda n: v % n)), workdir)


def preview(data: bytes) -> str:
    """A short printable preview of a case's bytes, for reports."""
    return repr(data[:60]) + (f"... ({len(data)} bytes)" if len(data) > 60 else "")
