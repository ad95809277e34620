"""Versioned wire format of the ZeroMQ graph service: frames and msgpack payloads, encoded and strictly checked.

The protocol is written down in msgs/zmq/WIRE.md and the payloads in msgs/zmq/graph_wire.schema.json. In short,
every message the service sends is 4 frames ``[topic, epoch, seq, payload]``:

* topic:   one of the ``TOPIC_*`` byte strings below (SUB sockets filter on it).
* epoch:   ASCII id of the engine run, 1-64 chars of ``[A-Za-z0-9._:-]``.
* seq:     8 bytes, unsigned big-endian: the graph's sequence number the message refers to.
* payload: a msgpack map with ``"v": WIRE_VERSION`` and the fields of its topic.

A snapshot request from a client is 2 frames ``[TOPIC_REQUEST, payload]``. Items travel as positional arrays:
entity ``[id, label, score, [x1, y1, x2, y2], first_seen]`` (box xyxy pixels, times in seconds) and relation
``[subject_id, predicate, object_id, score, uncertainty or nil, start_time]``; relation keys as
``[subject_id, predicate, object_id]``. Floats are float64 so a decoded graph equals the engine's exactly.
No msgpack ext or bin types are used, so none are accepted (and nothing is ever unpickled).

Every check raises ``WireError`` (a ValueError) naming the offending field; encoding runs the same checks, so
whatever the service sends, a client decodes.
"""
from __future__ import annotations

import math
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any, Sequence

import msgpack
import numpy as np
import zmq

from engine.types import Entity, GraphDelta, Relation, RelationKey

WIRE_VERSION = 1

TOPIC_DELTA = b"vsgg.delta"        # PUB: one GraphDelta
TOPIC_HEARTBEAT = b"vsgg.hb"       # PUB: liveness + latest seq when idle
TOPIC_ITEMS = b"vsgg.items"        # ROUTER reply: a batch of snapshot items
TOPIC_END = b"vsgg.end"            # ROUTER reply: end of a snapshot, carries its epoch, seq and t
TOPIC_ERROR = b"vsgg.error"        # ROUTER reply: the request was refused
TOPIC_REQUEST = b"vsgg.snapshot?"  # DEALER/REQ request: a snapshot, optionally of a subtree
PUB_TOPICS = (TOPIC_DELTA, TOPIC_HEARTBEAT)
REPLY_TOPICS = (TOPIC_ITEMS, TOPIC_END, TOPIC_ERROR)

ERROR_CODES = ("malformed", "too_large", "version")
MAX_EPOCH_LEN = 64
MAX_NAME_LEN = 128      # entity labels and predicates
MAX_SUBTREE_LEN = 256
MAX_REASON_LEN = 512
MAX_ID = 2 ** 63 - 1    # ids, seq and request ids fit a signed 64-bit integer
_EPOCH_RE = re.compile(r"[A-Za-z0-9._:-]{1,64}")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")


class WireError(ValueError):
    """A message that does not follow the wire format. ``code`` is the error reply code for it ("malformed",
    "too_large" or "version"); ``rid`` the request id when one could be read (for the error reply)."""

    def __init__(self, message: str, code: str = "malformed", rid: int | None = None):
        super().__init__(message)
        self.code = code
        self.rid = rid


@dataclass(frozen=True)
class Heartbeat:
    """Sent on the PUB socket when idle: the service is alive and its latest seq is ``seq`` in ``epoch``."""

    epoch: str
    seq: int
    interval_s: float


@dataclass(frozen=True)
class SnapshotRequest:
    """A client's request: ``rid`` is echoed in every reply message; ``subtree`` is a key prefix ("" = all)."""

    rid: int
    subtree: str = ""


@dataclass(frozen=True)
class SnapshotItems:
    """One batch of a snapshot reply (items of the graph at ``epoch``/``seq``)."""

    epoch: str
    seq: int
    rid: int
    entities: tuple[Entity, ...]
    relations: tuple[Relation, ...]


@dataclass(frozen=True)
class SnapshotEnd:
    """Last message of a snapshot reply: the graph is at ``epoch``/``seq``/``t`` and had this many items."""

    epoch: str
    seq: int
    rid: int
    t: float
    n_entities: int
    n_relations: int


@dataclass(frozen=True)
class ErrorReply:
    """The service refused a request (``code`` in ERROR_CODES, ``reason`` human readable)."""

    epoch: str
    seq: int
    rid: int | None
    code: str
    reason: str


def new_epoch() -> str:
    """A fresh epoch id (UTC start time + 32 random bits), unique per engine start."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + secrets.token_hex(4)


# ------------------------------------------------------------------------------------------------ field checks


def _int(v: Any, what: str, lo: int = 0, hi: int = MAX_ID) -> int:
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
        raise WireError(f"{what}: expected an integer, got {type(v).__name__}")
    v = int(v)
    if not lo <= v <= hi:
        raise WireError(f"{what}: {v} is outside [{lo}, {hi}]")
    return v


def _num(v: Any, what: str, lo: float = -math.inf, hi: float = math.inf) -> float:
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.integer, np.floating)):
        raise WireError(f"{what}: expected a number, got {type(v).__name__}")
    v = float(v)
    if not math.isfinite(v):
        raise WireError(f"{what}: {v} is not finite")
    if not lo <= v <= hi:
        raise WireError(f"{what}: {v} is outside [{lo}, {hi}]")
    return v


def _name(v: Any, what: str, max_len: int = MAX_NAME_LEN, allow_empty: bool = False) -> str:
    if not isinstance(v, str):
        raise WireError(f"{what}: expected a string, got {type(v).__name__}")
    if (not v and not allow_empty) or len(v) > max_len:
        raise WireError(f"{what}: length {len(v)} is outside [{0 if allow_empty else 1}, {max_len}]")
    if _CONTROL_RE.search(v):
        raise WireError(f"{what}: contains control characters")
    return v


def _list(v: Any, what: str, max_len: int, exact: int | None = None) -> Sequence:
    if not isinstance(v, (list, tuple)):
        raise WireError(f"{what}: expected an array, got {type(v).__name__}")
    if exact is not None and len(v) != exact:
        raise WireError(f"{what}: expected {exact} elements, got {len(v)}")
    if len(v) > max_len:
        raise WireError(f"{what}: {len(v)} elements exceed the limit of {max_len}")
    return v


def _map(v: Any, what: str, required: Sequence[str]) -> dict:
    if not isinstance(v, dict):
        raise WireError(f"{what}: expected a map, got {type(v).__name__}")
    missing = [k for k in required if k not in v]
    if missing:
        raise WireError(f"{what}.{missing[0]}: missing")
    unknown = sorted(str(k) for k in v if k not in required)
    if unknown:
        raise WireError(f"{what}.{unknown[0]}: unknown field (wire version {WIRE_VERSION})")
    return v


def check_epoch(epoch: Any, what: str = "epoch") -> str:
    """``epoch`` if it is a valid epoch id, else WireError."""
    if not isinstance(epoch, str) or not _EPOCH_RE.fullmatch(epoch):
        raise WireError(f"{what}: expected 1-{MAX_EPOCH_LEN} chars of [A-Za-z0-9._:-], got {epoch!r:.80}")
    return epoch


def check_subtree(subtree: Any, what: str = "subtree") -> str:
    """``subtree`` if it is a valid key prefix ("" = everything), else WireError."""
    return _name(subtree, what, MAX_SUBTREE_LEN, allow_empty=True)


def _entity(v: Any, what: str) -> Entity:
    v = _list(v, what, 5, exact=5)
    box = _list(v[3], f"{what}.box_xyxy", 4, exact=4)
    x1, y1, x2, y2 = (_num(b, f"{what}.box_xyxy[{i}]") for i, b in enumerate(box))
    if x2 < x1 or y2 < y1:
        raise WireError(f"{what}.box_xyxy: negative width or height {[x1, y1, x2, y2]}; expected x1<=x2, y1<=y2")
    return Entity(_int(v[0], f"{what}.id"), _name(v[1], f"{what}.label"), _num(v[2], f"{what}.score", 0.0, 1.0),
                  (x1, y1, x2, y2), _num(v[4], f"{what}.first_seen"))


def _relation(v: Any, what: str) -> Relation:
    v = _list(v, what, 6, exact=6)
    unc = math.nan if v[4] is None else _num(v[4], f"{what}.uncertainty", 0.0)
    return Relation(_int(v[0], f"{what}.subject_id"), _name(v[1], f"{what}.predicate"),
                    _int(v[2], f"{what}.object_id"), _num(v[3], f"{what}.score", 0.0, 1.0), unc,
                    _num(v[5], f"{what}.start_time"))


def _relation_key(v: Any, what: str) -> RelationKey:
    v = _list(v, what, 3, exact=3)
    return (_int(v[0], f"{what}.subject_id"), _name(v[1], f"{what}.predicate"), _int(v[2], f"{what}.object_id"))


def _unique(keys: Sequence, what: str) -> None:
    if len(set(keys)) != len(keys):
        seen = set()
        dup = next(k for k in keys if k in seen or seen.add(k))
        raise WireError(f"{what}: duplicate key {dup!r}")


def _entities(v: Any, what: str, max_items: int) -> tuple[Entity, ...]:
    out = tuple(_entity(e, f"{what}[{i}]") for i, e in enumerate(_list(v, what, max_items)))
    _unique([e.id for e in out], what)
    return out


def _relations(v: Any, what: str, max_items: int) -> tuple[Relation, ...]:
    out = tuple(_relation(r, f"{what}[{i}]") for i, r in enumerate(_list(v, what, max_items)))
    _unique([r.key for r in out], what)
    return out


def _count(n: int, what: str, max_items: int) -> None:
    if n > max_items:
        raise WireError(f"{what}: {n} items exceed the limit of {max_items}", code="too_large")


# ------------------------------------------------------------------------------------- python values -> payload


def _entity_body(e: Entity, what: str) -> list:
    if not isinstance(e, Entity):
        raise WireError(f"{what}: expected an Entity, got {type(e).__name__}")
    return [e.id, e.label, e.score, list(e.box_xyxy), e.first_seen]


def _relation_body(r: Relation, what: str) -> list:
    if not isinstance(r, Relation):
        raise WireError(f"{what}: expected a Relation, got {type(r).__name__}")
    unc = r.uncertainty
    return [r.subject_id, r.predicate, r.object_id, r.score,
            None if isinstance(unc, (float, np.floating)) and math.isnan(unc) else unc, r.start_time]


def _plain(v: Any) -> Any:
    """numpy scalars -> Python scalars, so msgpack packs them (and never needs an ext type)."""
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, np.generic):
        return v.item()
    return v


def _pack(body: dict, what: str) -> bytes:
    try:
        return msgpack.packb(body, use_bin_type=True)
    except (TypeError, ValueError, OverflowError) as e:
        raise WireError(f"{what}: cannot be encoded ({e})") from None


def _unpack(payload: bytes, what: str, max_items: int) -> dict:
    """msgpack map with a supported version field, else WireError."""
    return _check_version(_unpack_map(payload, what, max_items), what)


def _unpack_map(payload: bytes, what: str, max_items: int) -> dict:
    try:
        # Limits bound what a hostile peer can make us allocate; ext and bin types are never used, so refused.
        obj = msgpack.unpackb(payload, raw=False, strict_map_key=True, use_list=True, max_str_len=len(payload),
                              max_bin_len=0, max_ext_len=0, max_array_len=max(max_items, 6), max_map_len=16)
    except (ValueError, TypeError, OverflowError, RecursionError, msgpack.UnpackException) as e:
        raise WireError(f"{what}: payload is not valid msgpack within the limits ({type(e).__name__}: {e})") from None
    if not isinstance(obj, dict):
        raise WireError(f"{what}: payload must be a map, got {type(obj).__name__}")
    return obj


def _check_version(obj: dict, what: str) -> dict:
    if "v" not in obj:
        raise WireError(f"{what}.v: missing (wire version)")
    if obj["v"] != WIRE_VERSION or isinstance(obj["v"], bool):
        raise WireError(f"{what}.v: wire version {obj['v']!r} is not supported (this side speaks {WIRE_VERSION})",
                        code="version")
    return obj


def _seq_frame(seq: int) -> bytes:
    return _int(seq, "seq").to_bytes(8, "big")


def _envelope(frames: Sequence[bytes], topics: Sequence[bytes], max_bytes: int) -> tuple[bytes, str, int, bytes]:
    if len(frames) != 4:
        raise WireError(f"message: expected 4 frames [topic, epoch, seq, payload], got {len(frames)}")
    frames = [bytes(f) for f in frames]
    size = sum(len(f) for f in frames)
    if size > max_bytes:
        raise WireError(f"message: {size} bytes exceed the limit of {max_bytes}", code="too_large")
    topic, epoch_b, seq_b, payload = frames
    if topic not in topics:
        raise WireError(f"topic: {topic[:40]!r} is not one of {[t.decode() for t in topics]}")
    try:
        epoch = epoch_b.decode("ascii")
    except UnicodeDecodeError:
        raise WireError("epoch: not ASCII") from None
    check_epoch(epoch)
    if len(seq_b) != 8:
        raise WireError(f"seq: expected 8 bytes (unsigned big-endian), got {len(seq_b)}")
    seq = int.from_bytes(seq_b, "big")
    if seq > MAX_ID:
        raise WireError(f"seq: {seq} is outside [0, {MAX_ID}]")
    return topic, epoch, seq, payload


# --------------------------------------------------------------------------------------------------- encoders


def encode_delta(delta: GraphDelta, max_items: int) -> list[bytes]:
    """The 4 frames of a delta. Raises WireError naming the field when a value is not valid on the wire."""
    if not isinstance(delta, GraphDelta):
        raise WireError(f"delta: expected a GraphDelta, got {type(delta).__name__}")
    epoch = check_epoch(delta.epoch, "delta.epoch")
    seq = _int(delta.seq, "delta.seq", 1)
    body = {"v": WIRE_VERSION, "t": _plain(delta.t),
            "ents": [_plain(_entity_body(e, f"delta.ents[{i}]")) for i, e in enumerate(delta.upsert_entities)],
            "ents_rm": _plain(list(delta.remove_entity_ids)),
            "rels": [_plain(_relation_body(r, f"delta.rels[{i}]")) for i, r in enumerate(delta.upsert_relations)],
            "rels_rm": [_plain(list(k)) for k in delta.remove_relations]}
    _delta_from_body(body, epoch, seq, max_items)  # the same checks a receiver runs
    return [TOPIC_DELTA, epoch.encode("ascii"), _seq_frame(seq), _pack(body, "delta")]


def encode_heartbeat(epoch: str, seq: int, interval_s: float) -> list[bytes]:
    body = {"v": WIRE_VERSION, "interval_s": _num(interval_s, "heartbeat.interval_s", 0.0)}
    return [TOPIC_HEARTBEAT, check_epoch(epoch).encode("ascii"), _seq_frame(seq), _pack(body, "heartbeat")]


def encode_request(req: SnapshotRequest) -> list[bytes]:
    body = {"v": WIRE_VERSION, "rid": _int(req.rid, "request.rid"),
            "subtree": check_subtree(req.subtree, "request.subtree")}
    return [TOPIC_REQUEST, _pack(body, "request")]


def encode_items(epoch: str, seq: int, rid: int, entities: Sequence[Entity], relations: Sequence[Relation],
                 max_items: int) -> list[bytes]:
    body = {"v": WIRE_VERSION, "rid": _int(rid, "items.rid"),
            "ents": [_plain(_entity_body(e, f"items.ents[{i}]")) for i, e in enumerate(entities)],
            "rels": [_plain(_relation_body(r, f"items.rels[{i}]")) for i, r in enumerate(relations)]}
    _items_from_body(body, epoch, seq, max_items)
    return [TOPIC_ITEMS, check_epoch(epoch).encode("ascii"), _seq_frame(seq), _pack(body, "items")]


def encode_end(epoch: str, seq: int, rid: int, t: float, n_entities: int, n_relations: int) -> list[bytes]:
    body = {"v": WIRE_VERSION, "rid": _int(rid, "end.rid"), "t": _num(_plain(t), "end.t"),
            "n_ents": _int(n_entities, "end.n_ents"), "n_rels": _int(n_relations, "end.n_rels")}
    return [TOPIC_END, check_epoch(epoch).encode("ascii"), _seq_frame(seq), _pack(body, "end")]


def encode_error(epoch: str, seq: int, rid: int | None, code: str, reason: str) -> list[bytes]:
    if code not in ERROR_CODES:
        raise WireError(f"error.code: {code!r} is not one of {ERROR_CODES}")
    reason = _CONTROL_RE.sub(" ", str(reason))[:MAX_REASON_LEN] or code
    body = {"v": WIRE_VERSION, "rid": None if rid is None else _int(rid, "error.rid"), "code": code,
            "reason": reason}
    return [TOPIC_ERROR, check_epoch(epoch).encode("ascii"), _seq_frame(seq), _pack(body, "error")]


# --------------------------------------------------------------------------------------------------- decoders


def _delta_from_body(body: Any, epoch: str, seq: int, max_items: int) -> GraphDelta:
    if seq < 1:
        raise WireError(f"seq: a delta's seq must be >= 1, got {seq}")
    body = _map(body, "delta", ("v", "t", "ents", "ents_rm", "rels", "rels_rm"))
    n = sum(len(body[k]) if isinstance(body[k], (list, tuple)) else 0 for k in ("ents", "ents_rm", "rels", "rels_rm"))
    _count(n, "delta", max_items)
    ents = _entities(body["ents"], "delta.ents", max_items)
    rm_e = tuple(_int(i, f"delta.ents_rm[{j}]") for j, i in enumerate(_list(body["ents_rm"], "delta.ents_rm",
                                                                             max_items)))
    rels = _relations(body["rels"], "delta.rels", max_items)
    rm_r = tuple(_relation_key(k, f"delta.rels_rm[{j}]") for j, k in enumerate(_list(body["rels_rm"],
                                                                                     "delta.rels_rm", max_items)))
    _unique(rm_e, "delta.ents_rm")
    _unique(rm_r, "delta.rels_rm")
    return GraphDelta(epoch, seq, _num(body["t"], "delta.t"), ents, rm_e, rels, rm_r)


def _items_from_body(body: Any, epoch: str, seq: int, max_items: int) -> SnapshotItems:
    body = _map(body, "items", ("v", "rid", "ents", "rels"))
    n = sum(len(body[k]) if isinstance(body[k], (list, tuple)) else 0 for k in ("ents", "rels"))
    _count(n, "items", max_items)
    return SnapshotItems(epoch, seq, _int(body["rid"], "items.rid"), _entities(body["ents"], "items.ents", max_items),
                         _relations(body["rels"], "items.rels", max_items))


def decode_pub(frames: Sequence[bytes], max_bytes: int, max_items: int) -> GraphDelta | Heartbeat:
    """A message received on the SUB socket: a GraphDelta or a Heartbeat. Raises WireError."""
    topic, epoch, seq, payload = _envelope(frames, PUB_TOPICS, max_bytes)
    if topic == TOPIC_DELTA:
        return _delta_from_body(_unpack(payload, "delta", max_items), epoch, seq, max_items)
    body = _map(_unpack(payload, "heartbeat", max_items), "heartbeat", ("v", "interval_s"))
    return Heartbeat(epoch, seq, _num(body["interval_s"], "heartbeat.interval_s", 0.0))


def decode_reply(frames: Sequence[bytes], max_bytes: int, max_items: int) -> SnapshotItems | SnapshotEnd | ErrorReply:
    """A message received on the snapshot (DEALER) socket. Raises WireError."""
    topic, epoch, seq, payload = _envelope(frames, REPLY_TOPICS, max_bytes)
    if topic == TOPIC_ITEMS:
        return _items_from_body(_unpack(payload, "items", max_items), epoch, seq, max_items)
    if topic == TOPIC_END:
        body = _map(_unpack(payload, "end", max_items), "end", ("v", "rid", "t", "n_ents", "n_rels"))
        return SnapshotEnd(epoch, seq, _int(body["rid"], "end.rid"), _num(body["t"], "end.t"),
                           _int(body["n_ents"], "end.n_ents"), _int(body["n_rels"], "end.n_rels"))
    body = _map(_unpack(payload, "error", max_items), "error", ("v", "rid", "code", "reason"))
    rid = None if body["rid"] is None else _int(body["rid"], "error.rid")
    if body["code"] not in ERROR_CODES:
        raise WireError(f"error.code: {body['code']!r:.40} is not one of {ERROR_CODES}")
    return ErrorReply(epoch, seq, rid, body["code"], _name(body["reason"], "error.reason", MAX_REASON_LEN))


def decode_request(frames: Sequence[bytes], max_bytes: int) -> SnapshotRequest:
    """A request received on the ROUTER socket (identity/envelope frames already removed). Raises WireError whose
    ``code`` and best-effort ``rid`` make the error reply."""
    frames = [bytes(f) for f in frames]
    size = sum(len(f) for f in frames)
    if size > max_bytes:
        raise WireError(f"request: {size} bytes exceed the limit of {max_bytes}", code="too_large")
    if len(frames) != 2:
        raise WireError(f"request: expected 2 frames [topic, payload], got {len(frames)}")
    if frames[0] != TOPIC_REQUEST:
        raise WireError(f"request.topic: {frames[0][:40]!r} is not {TOPIC_REQUEST.decode()!r}")
    body = _unpack_map(frames[1], "request", 8)
    rid = body.get("rid")
    rid = rid if isinstance(rid, int) and not isinstance(rid, bool) and 0 <= rid <= MAX_ID else None
    try:
        body = _map(_check_version(body, "request"), "request", ("v", "rid", "subtree"))
        return SnapshotRequest(_int(body["rid"], "request.rid"), check_subtree(body["subtree"], "request.subtree"))
    except WireError as e:
        raise WireError(str(e), e.code, rid) from None


def recv_frames(socket: zmq.Socket, max_frames: int) -> tuple[list[bytes], int]:
    """Receive one multipart message without blocking (raises zmq.Again when none is waiting). Keeps at most
    ``max_frames`` parts, so a message with thousands of parts costs no memory here; returns (kept, total parts).
    Each part is already bounded by the socket's ZMQ_MAXMSGSIZE."""
    frames = [socket.recv(zmq.NOBLOCK)]
    total = 1
    while socket.getsockopt(zmq.RCVMORE):
        part = socket.recv()
        total += 1
        if len(frames) < max_frames:
            frames.append(part)
    return frames, total
