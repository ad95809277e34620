"""Frozen configuration dataclasses for every engine component, YAML loading and validated dotted overrides.

A config file is a YAML mapping whose nesting mirrors the dataclasses, e.g.::

    tracker:
      max_age: 30
    graph:
      box_tolerance_px: 2.0

Overrides are ``"tracker.max_age=30"`` strings; the value is parsed as YAML (so ``true``, ``0.5``, ``[1, 2]`` work).
An unknown key, at any depth, raises a ``ConfigError`` naming the full dotted key, as does a value of the wrong type.
"""
from __future__ import annotations

import dataclasses
import datetime
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")


class ConfigError(ValueError):
    """A config file or override that does not match the dataclasses (unknown key, wrong type, bad value)."""


@dataclass(frozen=True)
class TrackerConfig:
    """Two-stage (ByteTrack-style) IoU tracker with a constant-velocity Kalman filter. Units: frames, pixels."""

    high_score: float = 0.5          # detections at or above this go to the first association stage
    low_score: float = 0.1           # detections below this are dropped; in between go to the second stage
    new_track_score: float = 0.7     # an unmatched high detection starts a track only at or above this score
    match_iou_high: float = 0.3      # minimum IoU to accept a first-stage match
    match_iou_low: float = 0.5       # minimum IoU to accept a second-stage (low score) match
    match_iou_tentative: float = 0.5 # minimum IoU to match a tentative track with the leftover high detections
    min_hits: int = 3                # consecutive matched frames before a tentative track is confirmed
    max_age: int = 30                # frames a confirmed track may go unmatched before it is removed
    max_tracks: int = 1024           # hard cap on live tracks (tentative + confirmed + lost)
    class_gating: bool = True        # only match detections and tracks with the same label
    confirm_first_frame: bool = True # tracks born in the first frame of a stream skip the tentative phase
    # Kalman noise std as fractions of the box size (width for x terms, height for y terms); only ratios matter.
    std_weight_position: float = 1.0 / 20     # process noise of the box centre per frame
    std_weight_velocity: float = 1.0 / 120    # process noise of the centre velocity per frame
    size_noise_ratio: float = 0.5             # process noise of w, h (and rates) relative to the centre's
    std_weight_measurement: float = 1.0 / 10  # detector box noise

    def __post_init__(self):
        _check(0.0 <= self.low_score <= self.high_score <= 1.0, "tracker: need 0 <= low_score <= high_score <= 1")
        for name in ("match_iou_high", "match_iou_low", "match_iou_tentative"):
            _check(0.0 <= getattr(self, name) <= 1.0, f"tracker.{name} must be in [0, 1]")
        _check(self.min_hits >= 1, "tracker.min_hits must be >= 1")
        _check(self.max_age >= 0, "tracker.max_age must be >= 0")
        _check(self.max_tracks >= 1, "tracker.max_tracks must be >= 1")
        _check(0.0 <= self.new_track_score <= 1.0, "tracker.new_track_score must be in [0, 1]")
        for name in ("std_weight_position", "std_weight_velocity", "size_noise_ratio", "std_weight_measurement"):
            _check(0.0 < getattr(self, name) < float("inf"), f"tracker.{name} must be a positive number")


@dataclass(frozen=True)
class GraphConfig:
    """How the scene graph is published. Tolerances make deltas small: an entity is re-sent only when its box moved
    more than ``box_tolerance_px`` (any corner, pixels) or its score changed more than ``score_tolerance``; a relation
    only when its score or its uncertainty changed more than ``score_tolerance``. 0 means every change is sent. The
    defaults keep a subscriber's boxes within 2 px and scores within 0.05 of the engine's (detector noise is larger
    than that)."""

    box_tolerance_px: float = 2.0
    score_tolerance: float = 0.05

    def __post_init__(self):
        _check(self.box_tolerance_px >= 0 and self.score_tolerance >= 0, "graph tolerances must be >= 0")


@dataclass(frozen=True)
class DetectorConfig:
    """ONNX object detector in the common YOLO export layout (engine.detect.detector.OnnxDetector). Units: pixels.

    An empty ``model_path`` is a valid config (external detections need no detector); building an OnnxDetector
    from it raises. ``providers`` are tried in order: "cpu", "cuda", "tensorrt" or a full onnxruntime name such as
    "CUDAExecutionProvider"; ones this onnxruntime build lacks are skipped with a warning, and CPU is always last.
    """

    model_path: str = ""                        # .onnx file
    classes_file: str = ""                      # text file, one class name per line, in the model's class order
    input_size: tuple[int, int] | None = None   # model input (height, width); None = the model's fixed input shape
    score_threshold: float = 0.25               # keep candidates whose best class score is > this
    iou_threshold: float = 0.7                  # NMS: suppress when IoU > this (Ultralytics' predict default)
    max_detections: int = 300                   # kept after NMS, highest scores first
    class_agnostic: bool = False                # NMS across classes (True) or within each class (False)
    providers: tuple[str, ...] = ("cpu",)
    input_order: str = "bgr"                    # channel order of images given to detect(): "bgr" (OpenCV) or "rgb"
    output_layout: str = "auto"                 # "auto", "yolov8", "yolov8_transposed" or "yolov5"
    max_candidates: int = 30000                 # top-scoring candidates passed to NMS; bounds its worst case
    intra_op_threads: int = 0                   # onnxruntime intra-op threads; 0 = its default
    # onnxruntime's pool threads busy-wait for work between ops (True, its default) or sleep (False). At 30 Hz the
    # detector idles between frames, and spinning threads took the CPU from the DDS, ZeroMQ and executor threads
    # beside it: with them, scene_graph_node's delta publish took 0.9 ms instead of 0.2 (vsgg bench ros, 2 cores)
    allow_spinning: bool = False

    def __post_init__(self):
        if self.input_size is not None:
            _check(len(self.input_size) == 2 and all(int(v) >= 1 for v in self.input_size),
                   f"detector.input_size must be (height, width) >= 1, got {self.input_size}")
        _check(0.0 <= self.score_threshold <= 1.0, "detector.score_threshold must be in [0, 1]")
        _check(0.0 <= self.iou_threshold <= 1.0, "detector.iou_threshold must be in [0, 1]")
        _check(self.max_detections >= 1, "detector.max_detections must be >= 1")
        _check(self.max_candidates >= 1, "detector.max_candidates must be >= 1")
        _check(self.intra_op_threads >= 0, "detector.intra_op_threads must be >= 0")
        _check(len(self.providers) >= 1, "detector.providers must not be empty")
        for p in self.providers:
            _check(p in ("cpu", "cuda", "tensorrt") or str(p).endswith("ExecutionProvider"),
                   f"detector.providers: unknown provider '{p}' (use cpu, cuda, tensorrt or an onnxruntime name)")
        _check(self.input_order in ("bgr", "rgb"), f"detector.input_order must be 'bgr' or 'rgb', got "
                                                   f"'{self.input_order}'")
        _check(self.output_layout in ("auto", "yolov8", "yolov8_transposed", "yolov5"),
               f"detector.output_layout must be auto, yolov8, yolov8_transposed or yolov5, got '{self.output_layout}'")


@dataclass(frozen=True)
class ClassMapConfig:
    """Detector classes -> engine object labels (engine.detect.mapped_detector.MappedDetector).

    class_map: "" = a detector class is the object label of the same name; a built-in map name
    (engine/detect/class_maps/NAME.yaml, e.g. "coco_to_vidvrd", "coco_to_meva") or a YAML file path.
    keep_unknown: keep detections of classes with no object label as entities without relations (else dropped;
    either way each such class is logged once).
    """

    class_map: str = ""
    keep_unknown: bool = False


@dataclass(frozen=True)
class FilterConfig:
    """Relation smoothing with hysteresis (see engine.relate.relation_filter). Times in seconds, scores in [0, 1]."""

    tau_s: float = 0.3            # EMA time constant; 0 = no smoothing
    enter: float = 0.6            # smoothed score at or above which a relation may start
    exit: float = 0.4             # smoothed score below which an active relation ends
    min_duration_s: float = 0.3   # a relation starts only after staying above `enter` this long

    def __post_init__(self):
        _check(self.tau_s >= 0 and self.min_duration_s >= 0, "filter: tau_s and min_duration_s must be >= 0")
        _check(0.0 <= self.exit <= self.enter <= 1.0, "filter: need 0 <= exit <= enter <= 1")


@dataclass(frozen=True)
class PairsConfig:
    """Which ordered entity pairs the relation model scores, and how much per-pair state is kept."""

    max_pairs: int = 380           # all ordered pairs up to this many; above it, the nearest pairs are kept
    max_pair_states: int = 4096    # per-pair model + filter state rows; least recently seen rows are evicted
    max_entities: int = 256        # entities with motion history (and in the graph) at once

    def __post_init__(self):
        _check(self.max_pairs >= 0 and self.max_pair_states >= max(self.max_pairs, 1) and self.max_entities >= 1,
               "pairs: need max_pairs >= 0, max_pair_states >= max_pairs, max_entities >= 1")


@dataclass(frozen=True)
class TransportConfig:
    """ZeroMQ graph service (engine.transport.GraphPublisher, protocol in msgs/zmq/WIRE.md). Units: seconds, bytes.

    Endpoints are ZeroMQ addresses the service *binds*; a port of ``*`` picks a free one (read the bound address
    back from the publisher). Both default to loopback: serving other hosts is an explicit choice, and should come
    with CURVE. CURVE is on when ``curve_secret_key_file`` is set (a zmq.auth ``*.key_secret`` certificate file);
    clients are then authenticated against the public-key certificates in ``curve_authorized_keys_dir``, or any
    client with a valid CURVE handshake is accepted when that is empty (encryption without authentication).
    """

    pub_endpoint: str = "tcp://127.0.0.1:5556"       # PUB: deltas and heartbeats
    snapshot_endpoint: str = "tcp://127.0.0.1:5557"  # ROUTER: snapshot requests and replies
    heartbeat_s: float = 1.0                # a heartbeat goes out when nothing was published for this long
    max_message_bytes: int = 1 << 20        # ZMQ_MAXMSGSIZE of receiving sockets; larger deltas are not sent
    max_request_bytes: int = 4096           # a larger snapshot request gets a "too_large" error reply
    max_items: int = 100_000                # entities + relations in one message and in one snapshot
    snapshot_batch_items: int = 256         # items per snapshot reply message
    send_hwm: int = 1000                    # ZMQ_SNDHWM of the PUB and ROUTER sockets (messages per peer)
    queue_size: int = 1000                  # deltas waiting for the service thread; beyond it they are dropped
    max_subscription_bytes: int = 256 * 1024  # subscriptions all PUB peers may hold; beyond: drop every PUB peer
    curve_secret_key_file: str = ""         # server certificate with its secret key; empty = no CURVE
    curve_authorized_keys_dir: str = ""     # directory of authorised client public-key certificates

    def __post_init__(self):
        for name in ("pub_endpoint", "snapshot_endpoint"):
            v = getattr(self, name)
            _check(isinstance(v, str) and v.split("://", 1)[0] in ("tcp", "ipc", "inproc") and "://" in v
                   and len(v.split("://", 1)[1]) > 0,
                   f"transport.{name} must be a ZeroMQ endpoint such as tcp://127.0.0.1:5556, got {v!r}")
        _check(self.pub_endpoint != self.snapshot_endpoint or self.pub_endpoint.endswith(":*"),
               "transport.pub_endpoint and transport.snapshot_endpoint must differ (or both pick a free port, :*)")
        _check(0.01 <= self.heartbeat_s <= 3600, "transport.heartbeat_s must be in [0.01, 3600]")
        _check(self.max_message_bytes >= 65536, "transport.max_message_bytes must be >= 65536")
        _check(256 <= self.max_request_bytes <= self.max_message_bytes,
               "transport.max_request_bytes must be in [256, max_message_bytes]")
        _check(self.max_items >= 1, "transport.max_items must be >= 1")
        _check(1 <= self.snapshot_batch_items <= min(self.max_items, 4096),
               "transport.snapshot_batch_items must be in [1, min(max_items, 4096)]")
        _check(self.send_hwm >= 1 and self.queue_size >= 1, "transport.send_hwm and transport.queue_size must be >= 1")
        _check(self.max_subscription_bytes >= 1024, "transport.max_subscription_bytes must be >= 1024")
        _check(not self.curve_authorized_keys_dir or self.curve_secret_key_file,
               "transport.curve_authorized_keys_dir needs transport.curve_secret_key_file (CURVE is off without it)")

    @property
    def curve(self) -> bool:
        return bool(self.curve_secret_key_file)


@dataclass(frozen=True)
class SubscriberConfig:
    """Client of the graph service (engine.transport.GraphSubscriber, ``vsgg watch``). Units: seconds, bytes.

    The endpoints are the service's *bound* addresses (its PUB and ROUTER). ``subtree`` is a Clone-pattern key
    prefix ("" = the whole graph; msgs/zmq/WIRE.md §4); the subscriber checks its characters. CURVE is on when both
    key files are given: the server's public certificate and this client's ``*.key_secret`` certificate.
    """

    pub_endpoint: str = "tcp://127.0.0.1:5556"       # the service's PUB: deltas and heartbeats
    snapshot_endpoint: str = "tcp://127.0.0.1:5557"  # the service's ROUTER: snapshots
    subtree: str = ""                       # key prefix of the view to keep ("" = everything)
    heartbeat_timeout_s: float = 3.0        # nothing valid heard for this long: reconnect and resync
    snapshot_timeout_s: float = 2.0         # snapshot request unanswered for this long: ask again on a new socket
    max_message_bytes: int = 1 << 20        # ZMQ_MAXMSGSIZE of both sockets, and the per-message check
    max_items: int = 100_000                # entities + relations in one message and in one snapshot
    max_pending: int = 10_000               # deltas buffered while waiting for a snapshot (oldest dropped first)
    max_pending_bytes: int = 64 << 20       # and their wire bytes: whichever limit is reached first
    resync_backoff_s: float = 0.05          # a repeated snapshot request waits this long, doubling per failure
    resync_backoff_max_s: float = 2.0       # up to this (each wait times a random 0.5-1 against lock-step storms)
    curve_server_key_file: str = ""         # server public-key certificate; empty = no CURVE
    curve_client_key_file: str = ""         # this client's secret-key certificate

    def __post_init__(self):
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            _coerce(getattr(self, f.name), hints[f.name], f"subscriber.{f.name}")
        for name in ("pub_endpoint", "snapshot_endpoint"):
            v = getattr(self, name)
            _check(v.split("://", 1)[0] in ("tcp", "ipc", "inproc") and "://" in v and len(v.split("://", 1)[1]) > 0,
                   f"subscriber.{name} must be a ZeroMQ endpoint such as tcp://127.0.0.1:5556, got {v!r}")
        for name in ("heartbeat_timeout_s", "snapshot_timeout_s", "max_message_bytes", "max_items", "max_pending",
                     "resync_backoff_s"):
            _check(getattr(self, name) > 0, f"subscriber.{name} must be > 0, got {getattr(self, name)!r}")
        _check(self.max_pending_bytes >= self.max_message_bytes,
               f"subscriber.max_pending_bytes must be >= max_message_bytes ({self.max_message_bytes}), "
               f"got {self.max_pending_bytes!r}")
        _check(self.resync_backoff_max_s >= self.resync_backoff_s,
               f"subscriber.resync_backoff_max_s must be >= resync_backoff_s, got {self.resync_backoff_max_s!r}")
        _check(bool(self.curve_server_key_file) == bool(self.curve_client_key_file),
               "subscriber.curve_server_key_file and subscriber.curve_client_key_file: give both or neither")

    @property
    def curve(self) -> bool:
        return bool(self.curve_server_key_file)


def _check(cond: bool, msg: str) -> None:
    if not cond:
        raise ConfigError(msg)


@dataclass(frozen=True)
class RelationBackendConfig:
    """Which runtime executes the relation model (engine.backends.load_relation_backend).

    backend: "auto" tries TensorRT, then onnxruntime with CUDA, then onnxruntime on CPU; naming one starts the
    same chain at that step (a step that cannot run here is logged and skipped; CPU always runs).
    """

    model_path: str = ""         # relation.onnx or its directory; empty = the shipped engine/models/default
    backend: str = "auto"        # "auto", "tensorrt", "ort-cuda" or "ort-cpu"
    tensorrt_engine: str = ""    # TensorRT engine file; empty = relation.engine next to the ONNX model, if present
    threads: int = 1             # onnxruntime intra-op threads on CPU; 0 = one per physical core
    max_pairs: int = 0           # largest pair count per step; 0 = the model file's maximum

    def __post_init__(self):
        _check(self.backend in ("auto", "tensorrt", "ort-cuda", "ort-cpu"),
               f"relation.backend must be auto, tensorrt, ort-cuda or ort-cpu, got '{self.backend}'")
        _check(self.threads >= 0, "relation.threads must be >= 0")
        _check(self.max_pairs >= 0, "relation.max_pairs must be >= 0")


@dataclass(frozen=True)
class EngineConfig:
    """Top-level engine config, composed of one slice per component."""

    tracker: TrackerConfig = field(default_factory=TrackerConfig)
    graph: GraphConfig = field(default_factory=GraphConfig)
    pairs: PairsConfig = field(default_factory=PairsConfig)
    filter: FilterConfig = field(default_factory=FilterConfig)
    detector: DetectorConfig = field(default_factory=DetectorConfig)
    transport: TransportConfig = field(default_factory=TransportConfig)
    relation: RelationBackendConfig = field(default_factory=RelationBackendConfig)
    numba_cache_dir: str = ""  # empty: numba's default (__pycache__ next to the code); set for read-only installs


# --------------------------------------------------------------------------------------------- generic loading


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check/convert one leaf value against a dataclass field type; raise ConfigError naming ``key``."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(value, a, key)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(f"{key}: {value!r} matches none of {tp}")
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        args = typing.get_args(tp)
        inner = args[0] if args else Any
        out = [_coerce(v, inner, f"{key}[{i}]") for i, v in enumerate(value)]
        return tuple(out) if origin is tuple else out
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        return dict(value)
    if tp is Any:
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true/false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if isinstance(value, datetime.date):  # YAML reads an unquoted 2018-03-11 as a date; the field wants text
            return value.isoformat()
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return value
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, prefix=key)
    return value


def from_dict(cls: type[T], data: dict | None, prefix: str = "") -> T:
    """Build dataclass ``cls`` from a nested mapping; unknown keys and wrong types raise ConfigError."""
    if data is None:
        data = {}
    if isinstance(data, cls):
        return data
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix or cls.__name__}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs = {}
    for k, v in data.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        if k not in names:
            raise ConfigError(f"unknown config key '{key}' (valid keys here: {', '.join(sorted(names))})")
        kwargs[k] = _coerce(v, hints[k], key)
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{prefix or cls.__name__}: {e}") from e


def to_dict(cfg) -> dict:
    """Nested plain dict of a config dataclass (tuples become lists), suitable for YAML or JSON."""
    def conv(v):
        if dataclasses.is_dataclass(v):
            return {f.name: conv(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if isinstance(v, (list, tuple)):
            return [conv(x) for x in v]
        return v
    return conv(cfg)


def apply_overrides(data: dict, overrides: list[str] | tuple[str, ...]) -> dict:
    """Return a copy of nested ``data`` with ``"a.b.c=value"`` overrides merged in (value parsed as YAML)."""
    out = _deep_copy(data)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override '{item}' is not of the form key=value")
        key, raw = item.split("=", 1)
        key = key.strip().lstrip("-")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError as e:
            raise ConfigError(f"override '{item}': value is not valid YAML ({e})") from e
        node = out
        parts = key.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override '{item}': '{p}' is not a section")
        node[parts[-1]] = value
    return out


def _deep_copy(d: dict) -> dict:
    return {k: _deep_copy(v) if isinstance(v, dict) else v for k, v in d.items()}


def load_yaml(path: str | Path | None) -> dict:
    """Read a YAML mapping; a missing or non-mapping file raises ConfigError naming the path."""
    if path is None:
        return {}
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file not found: {p}")
    try:
        data = yaml.safe_load(p.read_text())
    except (yaml.YAMLError, UnicodeDecodeError, RecursionError) as e:  # binary or too deeply nested: say so
        raise ConfigError(f"config file {p} is not valid YAML: {e}") from e
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {p}: top level must be a mapping, got {type(data).__name__}")
    return data


def load_config(cls: type[T], path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> T:
    """Load ``cls`` from an optional YAML file plus dotted ``key=value`` overrides."""
    return from_dict(cls, apply_overrides(load_yaml(path), overrides))


def load_engine_config(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> EngineConfig:
    return load_config(EngineConfig, path, overrides)
