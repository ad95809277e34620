"""Versioned wire format of the ZeroMQ graph service: frames and msgpack payloads, encoded and strictly checked.

The protocol is written down in msgs/zmq/WIRE.md and the payloads in msgs/zmq/graph_wire.schema.json. In short,
every message the service sends is 4 frames ``[topic, epoch, seq, payload]``:

* topic:   one of the ``TOPIC_*`` byte strings below (SUB sockets filter on it).
* epoch:   ASCII id of the engine run, 1-64 chars of ``[A-Za-z0-9._:-]``.
* seq:     8 bytes, unsigned big-endian: the graph's sequence number the message refers to.
* payload: a msgpack map with ``"v": WIRE_VERSION`` and the fields of its topic.

A snapshot request from a client is 2 frames ``[TOPIC_REQUEST, payload]``. Items travel as positional arrays in
fixed point (boxes in 1/10 px, scores and uncertainties in 1/10000 steps, times float64 seconds; see
engine.transport.fields for the forms). A delta says a changed item the receiver already holds in its short form:
an entity *move* (box change in steps, new score if any) or a relation *score*; that is why deltas only apply to
the graph at ``seq - 1`` (the Clone pattern's rule anyway), and why ``decode_pub`` returns a ``WireDelta`` that
``resolve(graph)`` turns into a GraphDelta. A graph whose values sit on the grid (engine.graph.build.quantize_graph,
what the Engine publishes) reaches subscribers bit-exactly. Empty sections of a delta are left out.
No msgpack ext or bin types are used, so none are accepted (and nothing is ever unpickled).

Every check raises ``WireError`` (a ValueError) naming the offending field; encoding runs the same checks, so
whatever the service sends, a client decodes.
"""
from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Any, Sequence

import msgpack
import zmq

from engine.graph.build import BOX_STEPS_PER_PX, SCORE_STEPS, box_steps
from engine.transport.fields import (CONTROL_RE, MAX_ID, MAX_REASON_LEN, WireError, check_array, check_count,
                                     check_epoch, check_int, check_map, check_name, check_number, check_subtree,
                                     check_unique, entities_from_wire, entity_move_from_wire, entity_move_to_wire,
                                     entity_to_wire, plain, relation_key_from_wire, relation_score_from_wire,
                                     relation_score_to_wire, relation_to_wire, relations_from_wire)
from engine.transport.subtree import MissingEntityError
from engine.types import Entity, GraphDelta, Relation, RelationKey, SceneGraph

WIRE_VERSION = 3  # 2: fixed-point items, entity moves and relation scores in deltas; 3: end of stream (vsgg.eos)

TOPIC_DELTA = b"vsgg.delta"        # PUB: one GraphDelta
TOPIC_HEARTBEAT = b"vsgg.hb"       # PUB: liveness + latest seq when idle
TOPIC_EOS = b"vsgg.eos"            # PUB: the epoch's stream has ended at this seq (replaces heartbeats from then on)
TOPIC_ITEMS = b"vsgg.items"        # ROUTER reply: a batch of snapshot items
TOPIC_END = b"vsgg.end"            # ROUTER reply: end of a snapshot, carries its epoch, seq and t
TOPIC_ERROR = b"vsgg.error"        # ROUTER reply: the request was refused
TOPIC_REQUEST = b"vsgg.snapshot?"  # DEALER request: a snapshot, optionally of a subtree
PUB_TOPICS = (TOPIC_DELTA, TOPIC_HEARTBEAT, TOPIC_EOS)
REPLY_TOPICS = (TOPIC_ITEMS, TOPIC_END, TOPIC_ERROR)

ERROR_CODES = ("malformed", "too_large", "version")


@dataclass(frozen=True)
class Heartbeat:
    """Sent on the PUB socket when idle: the service is alive and its latest seq is ``seq`` in ``epoch``."""

    epoch: str
    seq: int
    interval_s: float


@dataclass(frozen=True)
class EndOfStream:
    """Sent on the PUB socket once the stream of ``epoch`` has ended: its final graph is at ``seq`` (time ``t``, s).
    Repeated every heartbeat interval while the service still runs, so late joiners learn it too."""

    epoch: str
    seq: int
    t: float


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


@dataclass(frozen=True)
class WireDelta:
    """A delta as received: full items plus short forms that need the receiver's graph at ``seq - 1``.

    moves:  (entity id, (dx1, dy1, dx2, dy2) box change in 1/BOX_STEPS_PER_PX px steps, new score steps or None)
    scores: (relation key, score steps, uncertainty steps or None = unchanged)
    """

    epoch: str
    seq: int
    t: float
    entities: tuple[Entity, ...] = ()
    moves: tuple[tuple[int, tuple[int, int, int, int], int | None], ...] = ()
    remove_entity_ids: tuple[int, ...] = ()
    relations: tuple[Relation, ...] = ()
    scores: tuple[tuple[RelationKey, int, int | None], ...] = ()
    remove_relations: tuple[RelationKey, ...] = ()

    def resolve(self, base: SceneGraph | None = None, partial: bool = False) -> GraphDelta:
        """The GraphDelta this message means, given ``base``, the receiver's graph at ``seq - 1``.

        A short form for an item ``base`` does not hold raises MissingEntityError (the receiver is out of step:
        resync), or is skipped when ``partial`` (a subtree view, which holds only part of the graph). A move that
        would give a box of negative size raises ValueError.
        """
        ents, rels = list(self.entities), list(self.relations)
        have_e = {} if base is None else base.entities
        have_r = {} if base is None else base.relations
        for i, d, sc in self.moves:
            e = have_e.get(i)
            if e is None:
                if partial:
                    continue
                raise MissingEntityError(f"delta seq {self.seq}: moves entity {i}, which the graph does not hold")
            box = tuple((box_steps(c) + dc) / BOX_STEPS_PER_PX for c, dc in zip(e.box_xyxy, d))
            if box[2] < box[0] or box[3] < box[1]:
                raise ValueError(f"delta seq {self.seq}: move of entity {i} gives a box of negative size {box}")
            ents.append(Entity(i, e.label, e.score if sc is None else sc / SCORE_STEPS, box, e.first_seen))
        for k, sc, unc in self.scores:
            r = have_r.get(k)
            if r is None:
                if partial:
                    continue
                raise MissingEntityError(f"delta seq {self.seq}: rescores relation {k}, which the graph does not "
                                         "hold")
            rels.append(Relation(*k, sc / SCORE_STEPS, r.uncertainty if unc is None else unc / SCORE_STEPS,
                                 r.start_time))
        ents.sort(key=lambda e: e.id)
        rels.sort(key=lambda r: r.key)
        return GraphDelta(self.epoch, self.seq, self.t, tuple(ents), self.remove_entity_ids, tuple(rels),
                          self.remove_relations)


def new_epoch() -> str:
    """A fresh epoch id (UTC start time + 32 random bits), unique per engine start."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + secrets.token_hex(4)


def _pack(body: dict, what: str) -> bytes:
    try:
        return msgpack.packb(body, use_bin_type=True)
    except (TypeError, ValueError, OverflowError) as e:
        raise WireError(f"{what}: cannot be encoded ({e})") from None


def _unpack(payload: bytes, what: str, max_items: int) -> dict:
    """msgpack map with a supported version field, else WireError."""
    return _check_version(_unpack_map(payload, what, max_items), what)


def _no_ext(code: int, data: bytes):
    raise ValueError(f"msgpack ext type {code} is not part of the wire format")


def _unpack_map(payload: bytes, what: str, max_items: int) -> dict:
    try:
        # Limits bound what a hostile peer can make us allocate; ext and bin types are never used, so refused.
        obj = msgpack.unpackb(payload, raw=False, strict_map_key=True, use_list=True, max_str_len=len(payload),
                              max_bin_len=0, max_ext_len=0, max_array_len=max(max_items, 6), max_map_len=16,
                              ext_hook=_no_ext)
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
    return check_int(seq, "seq").to_bytes(8, "big")


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


def encode_delta(delta: GraphDelta, max_items: int, base: SceneGraph | None = None) -> list[bytes]:
    """The 4 frames of a delta. With ``base`` (the graph the delta applies to, i.e. what receivers hold) items that
    ``base`` already has go in their short forms. Raises WireError naming the field when a value is not valid."""
    if not isinstance(delta, GraphDelta):
        raise WireError(f"delta: expected a GraphDelta, got {type(delta).__name__}")
    epoch = check_epoch(delta.epoch, "delta.epoch")
    seq = check_int(delta.seq, "delta.seq", 1)
    have_e = {} if base is None else base.entities
    have_r = {} if base is None else base.relations
    ents, moves, rels, scores = [], [], [], []
    for i, e in enumerate(delta.upsert_entities):
        what = f"delta.ents[{i}]"
        short = entity_move_to_wire(e, have_e[e.id], what) if getattr(e, "id", None) in have_e else None
        (ents if short is None else moves).append(plain(entity_to_wire(e, what) if short is None else short))
    for i, r in enumerate(delta.upsert_relations):
        what = f"delta.rels[{i}]"
        short = relation_score_to_wire(r, have_r[r.key], what) if isinstance(r, Relation) and r.key in have_r \
            else None
        (rels if short is None else scores).append(plain(relation_to_wire(r, what) if short is None else short))
    body = {"v": WIRE_VERSION, "t": plain(delta.t)}
    for k, v in (("ents", ents), ("ents_mv", moves), ("ents_rm", plain(list(delta.remove_entity_ids))),
                 ("rels", rels), ("rels_sc", scores), ("rels_rm", [plain(list(k)) for k in delta.remove_relations])):
        if v:
            body[k] = v
    _delta_from_body(body, epoch, seq, max_items)  # the same checks a receiver runs
    return [TOPIC_DELTA, epoch.encode("ascii"), _seq_frame(seq), _pack(body, "delta")]


def encode_heartbeat(epoch: str, seq: int, interval_s: float) -> list[bytes]:
    body = {"v": WIRE_VERSION, "interval_s": check_number(interval_s, "heartbeat.interval_s", 0.0)}
    return [TOPIC_HEARTBEAT, check_epoch(epoch).encode("ascii"), _seq_frame(seq), _pack(body, "heartbeat")]


def encode_eos(epoch: str, seq: int, t: float) -> list[bytes]:
    body = {"v": WIRE_VERSION, "t": check_number(plain(t), "eos.t")}
    return [TOPIC_EOS, check_epoch(epoch).encode("ascii"), _seq_frame(seq), _pack(body, "eos")]


def encode_request(req: SnapshotRequest) -> list[bytes]:
    body = {"v": WIRE_VERSION, "rid": check_int(req.rid, "request.rid"),
            "subtree": check_subtree(req.subtree, "request.subtree")}
    return [TOPIC_REQUEST, _pack(body, "request")]


def encode_items(epoch: str, seq: int, rid: int, entities: Sequence[Entity], relations: Sequence[Relation],
                 max_items: int) -> list[bytes]:
    body = {"v": WIRE_VERSION, "rid": check_int(rid, "items.rid"),
            "ents": [plain(entity_to_wire(e, f"items.ents[{i}]")) for i, e in enumerate(entities)],
            "rels": [plain(relation_to_wire(r, f"items.rels[{i}]")) for i, r in enumerate(relations)]}
    _items_from_body(body, epoch, seq, max_items)
    return [TOPIC_ITEMS, check_epoch(epoch).encode("ascii"), _seq_frame(seq), _pack(body, "items")]


def encode_end(epoch: str, seq: int, rid: int, t: float, n_entities: int, n_relations: int) -> list[bytes]:
    body = {"v": WIRE_VERSION, "rid": check_int(rid, "end.rid"), "t": check_number(plain(t), "end.t"),
            "n_ents": check_int(n_entities, "end.n_ents"), "n_rels": check_int(n_relations, "end.n_rels")}
    return [TOPIC_END, check_epoch(epoch).encode("ascii"), _seq_frame(seq), _pack(body, "end")]


def encode_error(epoch: str, seq: int, rid: int | None, code: str, reason: str) -> list[bytes]:
    if code not in ERROR_CODES:
        raise WireError(f"error.code: {code!r} is not one of {ERROR_CODES}")
    reason = CONTROL_RE.sub(" ", str(reason))[:MAX_REASON_LEN] or code
    body = {"v": WIRE_VERSION, "rid": None if rid is None else check_int(rid, "error.rid"), "code": code,
            "reason": reason}
    return [TOPIC_ERROR, check_epoch(epoch).encode("ascii"), _seq_frame(seq), _pack(body, "error")]


# --------------------------------------------------------------------------------------------------- decoders


_DELTA_SECTIONS = ("ents", "ents_mv", "ents_rm", "rels", "rels_sc", "rels_rm")


def _delta_from_body(body: Any, epoch: str, seq: int, max_items: int) -> WireDelta:
    if seq < 1:
        raise WireError(f"seq: a delta's seq must be >= 1, got {seq}")
    body = check_map(body, "delta", ("v", "t"), _DELTA_SECTIONS)
    n = sum(len(body[k]) if isinstance(body[k], (list, tuple)) else 0 for k in _DELTA_SECTIONS if k in body)
    check_count(n, "delta", max_items)

    def section(key, one):
        return tuple(one(x, f"delta.{key}[{j}]") for j, x in enumerate(check_array(body.get(key, []),
                                                                                   f"delta.{key}", max_items)))

    ents = entities_from_wire(body.get("ents", []), "delta.ents", max_items)
    moves = section("ents_mv", entity_move_from_wire)
    rm_e = section("ents_rm", check_int)
    rels = relations_from_wire(body.get("rels", []), "delta.rels", max_items)
    scores = section("rels_sc", relation_score_from_wire)
    rm_r = section("rels_rm", relation_key_from_wire)
    check_unique([e.id for e in ents] + [m[0] for m in moves], "delta.ents + delta.ents_mv")
    check_unique([r.key for r in rels] + [sc[0] for sc in scores], "delta.rels + delta.rels_sc")
    check_unique(rm_e, "delta.ents_rm")
    check_unique(rm_r, "delta.rels_rm")
    return WireDelta(epoch, seq, check_number(body["t"], "delta.t"), ents, moves, rm_e, rels, scores, rm_r)


def _items_from_body(body: Any, epoch: str, seq: int, max_items: int) -> SnapshotItems:
    body = check_map(body, "items", ("v", "rid", "ents", "rels"))
    n = sum(len(body[k]) if isinstance(body[k], (list, tuple)) else 0 for k in ("ents", "rels"))
    check_count(n, "items", max_items)
    return SnapshotItems(epoch, seq, check_int(body["rid"], "items.rid"),
                         entities_from_wire(body["ents"], "items.ents", max_items),
                         relations_from_wire(body["rels"], "items.rels", max_items))


def decode_pub(frames: Sequence[bytes], max_bytes: int, max_items: int) -> WireDelta | Heartbeat | EndOfStream:
    """A message received on the SUB socket: a WireDelta (``resolve`` it against the graph at seq - 1), a
    Heartbeat or an EndOfStream. Raises WireError."""
    topic, epoch, seq, payload = _envelope(frames, PUB_TOPICS, max_bytes)
    if topic == TOPIC_DELTA:
        return _delta_from_body(_unpack(payload, "delta", max_items), epoch, seq, max_items)
    if topic == TOPIC_EOS:
        body = check_map(_unpack(payload, "eos", max_items), "eos", ("v", "t"))
        return EndOfStream(epoch, seq, check_number(body["t"], "eos.t"))
    body = check_map(_unpack(payload, "heartbeat", max_items), "heartbeat", ("v", "interval_s"))
    return Heartbeat(epoch, seq, check_number(body["interval_s"], "heartbeat.interval_s", 0.0))


def decode_reply(frames: Sequence[bytes], max_bytes: int, max_items: int) -> SnapshotItems | SnapshotEnd | ErrorReply:
    """A message received on the snapshot (DEALER) socket. Raises WireError."""
    topic, epoch, seq, payload = _envelope(frames, REPLY_TOPICS, max_bytes)
    if topic == TOPIC_ITEMS:
        return _items_from_body(_unpack(payload, "items", max_items), epoch, seq, max_items)
    if topic == TOPIC_END:
        body = check_map(_unpack(payload, "end", max_items), "end", ("v", "rid", "t", "n_ents", "n_rels"))
        return SnapshotEnd(epoch, seq, check_int(body["rid"], "end.rid"), check_number(body["t"], "end.t"),
                           check_int(body["n_ents"], "end.n_ents"), check_int(body["n_rels"], "end.n_rels"))
    body = check_map(_unpack(payload, "error", max_items), "error", ("v", "rid", "code", "reason"))
    rid = None if body["rid"] is None else check_int(body["rid"], "error.rid")
    if body["code"] not in ERROR_CODES:
        raise WireError(f"error.code: {body['code']!r:.40} is not one of {ERROR_CODES}")
    return ErrorReply(epoch, seq, rid, body["code"], check_name(body["reason"], "error.reason", MAX_REASON_LEN))


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
        body = check_map(_check_version(body, "request"), "request", ("v", "rid", "subtree"))
        return SnapshotRequest(check_int(body["rid"], "request.rid"), check_subtree(body["subtree"], "request.subtree"))
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
