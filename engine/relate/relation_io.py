"""The relation model's file contract: tensor I/O spec, model side-car schema, and validation of a model file.

One spec, imported by ``export/`` (which writes models) and ``engine/backends`` (which runs them).

Tensors of one ``forward_step`` (one frame; P = the pairs scored in it, 0 <= P <= max_pairs):

    inputs                                          outputs
    feats         (pairs, num_features) float32     scores             (pairs, num_predicates) float32
    subj_label    (pairs,)              int64       next_window        (pairs, history, d_model) float32
    obj_label     (pairs,)              int64       next_window_valid  (pairs, history)          float32
    window        (pairs, history, d_model) f32     next_prev_out      (pairs, d_model)          float32
    window_valid  (pairs, history)      float32
    prev_out      (pairs, d_model)      float32

``feats`` are ``engine.relate.features.pair_features`` rows; labels index the model's object vocabulary; ``scores`` are
probabilities in [0, 1] indexed by its predicate vocabulary. ``history`` = window - 1. The three state tensors are
per pair and carried by the caller: feed a pair's ``next_*`` outputs back as its inputs the next time the pair is
scored; a new pair starts from zeros (``initial_state``).

Optional output (I/O version 2), present only where the side-car's ``outputs`` lists it:

    uncertainty        (pairs, num_predicates)   float32, dimensionless in [0, 1): how much the model's own
                       spread flattens each score; 0 = none. FReMuRe's Bayesian head writes
                       u = 1 - 1/sqrt(1 + pi sigma^2 / 8) (sigma^2: the logit's variance; definition and reason in
                       ``offline_train.models.fremure.BayesianRelationHead.published_uncertainty``).
    pair_vector        (pairs, d_head)           float32, unit length (dimensionless): an open-vocabulary head's
                       normalised pair projection u = normalize(pair_proj(h)). With the side-car's ``open_vocab``
                       parameters it scores *any* predicate text table in numpy (``engine.relate.open_vocab``):
                       logit_c = exp(log_scale) * u . normalize(W (t_c + ctx) + b_w) + bias. UASAN's head
                       (``offline_train.models.uasan.OpenVocabHead``) writes it; ``d_head`` is the side-car's
                       ``open_vocab.d_head``.

Versions: this code writes I/O version 2 and reads 1 and 2. A version-1 file has the four outputs above and no
``outputs`` field; a version-2 side-car must list its graph's outputs in ``outputs`` (the four, optionally followed
by ``uncertainty`` and/or ``pair_vector``, in that order), and ``check_io_signature`` refuses a graph whose outputs
differ from that list. A side-car listing ``pair_vector`` carries an ``open_vocab`` section (``OPEN_VOCAB_KEYS``).

A model file ``relation.onnx`` (or a TensorRT ``*.engine``) travels with a JSON side-car (``relation.json``,
``relation.engine.json``) that names the model, its vocabularies, embedding tables, training config, the versions
that made it and the SHA-256 of the file. The same JSON minus the hash is stored in the ONNX ``metadata_props``
under ``METADATA_KEY``, so a side-car can be matched to its model. ``read_model_info`` refuses anything that does
not fit this code (feature version, I/O version, vocabulary, hash) with a ``ModelFileError``.
"""
from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.file_hash import sha256_file
from engine.relate.features import FEATURE_VERSION, NUM_FEATURES

IO_VERSION = 2                        # bump when names, shapes, dtypes or meaning of the tensors below change
READ_IO_VERSIONS = (1, 2)             # 2: optional outputs ('uncertainty', 'pair_vector'); version 1 still runs
SIDECAR_FORMAT = "vsgg-relation-model"
SIDECAR_VERSION = 1
METADATA_KEY = "vsgg.relation_model"  # ONNX metadata_props key holding the side-car JSON (without the file hash)
DEFAULT_MODEL_DIR = Path(__file__).resolve().parents[1] / "models" / "default"
ONNX_NAME = "relation.onnx"
PAIRS = "pairs"                       # the one dynamic dimension


class ModelFileError(ValueError):
    """A relation model file or side-car that is missing, truncated, corrupt, or made for other code/vocabulary."""


@dataclass(frozen=True)
class TensorSpec:
    """One graph tensor: name, dims (ints or symbols resolved by ``ModelInfo.dims``), numpy dtype name."""

    name: str
    dims: tuple[str | int, ...]
    dtype: str

    def shape(self, sizes: dict[str, int]) -> tuple[int, ...]:
        """Concrete shape with every symbol replaced from ``sizes`` (must include 'pairs')."""
        return tuple(d if isinstance(d, int) else int(sizes[d]) for d in self.dims)


INPUTS = (
    TensorSpec("feats", (PAIRS, "num_features"), "float32"),
    TensorSpec("subj_label", (PAIRS,), "int64"),
    TensorSpec("obj_label", (PAIRS,), "int64"),
    TensorSpec("window", (PAIRS, "history", "d_model"), "float32"),
    TensorSpec("window_valid", (PAIRS, "history"), "float32"),
    TensorSpec("prev_out", (PAIRS, "d_model"), "float32"),
)
OUTPUTS = (
    TensorSpec("scores", (PAIRS, "num_predicates"), "float32"),
    TensorSpec("next_window", (PAIRS, "history", "d_model"), "float32"),
    TensorSpec("next_window_valid", (PAIRS, "history"), "float32"),
    TensorSpec("next_prev_out", (PAIRS, "d_model"), "float32"),
)
UNCERTAINTY = TensorSpec("uncertainty", (PAIRS, "num_predicates"), "float32")
PAIR_VECTOR = TensorSpec("pair_vector", (PAIRS, "d_head"), "float32")
OPTIONAL_OUTPUTS = (UNCERTAINTY, PAIR_VECTOR)  # after OUTPUTS, in this order, where the side-car lists them
# The side-car's 'open_vocab' section (with 'pair_vector'): arrays as encode_array, the rest JSON numbers/strings.
OPEN_VOCAB_KEYS = ("d_head", "pred_proj_weight", "pred_proj_bias", "context", "log_scale", "bias",
                   "embedding_model", "embedding_dim")
INPUT_NAMES = tuple(s.name for s in INPUTS)
OUTPUT_NAMES = tuple(s.name for s in OUTPUTS)   # the outputs every model has
STEP_INPUTS = INPUTS[:3]   # per-frame inputs: feats, subj_label, obj_label
STATE_INPUTS = INPUTS[3:]  # state in: window, window_valid, prev_out
STATE_OUTPUTS = OUTPUTS[1:]  # state out, same order as STATE_INPUTS


@dataclass(frozen=True, eq=False)
class ModelInfo:
    """The validated content of a model side-car. Vocabularies are tuples of names in index order."""

    path: Path                     # the model file (relation.onnx or a TensorRT engine)
    model_version: int             # architecture version (offline_train.models.MODEL_VERSION at export)
    feature_version: int
    num_features: int
    feature_lag: int               # BoxHistory lag the features were trained with (observations)
    window: int                    # L: tokens the temporal decoder sees; state holds L - 1
    d_model: int
    max_pairs: int                 # largest P the file was exported for
    objects: tuple[str, ...]
    predicates: tuple[str, ...]
    groups: tuple                  # ((name, 'sigmoid'|'softmax', (predicate indices...)), ...)
    sidecar: dict                  # the whole side-car JSON (training config, versions, tables, hashes)
    io_version: int = IO_VERSION
    outputs: tuple[str, ...] = OUTPUT_NAMES   # the graph's outputs in order: OUTPUT_NAMES + optional ones

    @property
    def output_specs(self) -> tuple[TensorSpec, ...]:
        return OUTPUTS + tuple(s for s in OPTIONAL_OUTPUTS if s.name in self.outputs)

    @property
    def has_uncertainty(self) -> bool:
        """True when the model file has the optional ``uncertainty`` output."""
        return UNCERTAINTY.name in self.outputs

    @property
    def has_pair_vector(self) -> bool:
        """True when the model file has the optional ``pair_vector`` output (an open-vocabulary head)."""
        return PAIR_VECTOR.name in self.outputs

    @property
    def dims(self) -> dict[str, int]:
        """Sizes of the spec's symbols except 'pairs' ('d_head' only for a model with ``pair_vector``)."""
        d = {"num_features": self.num_features, "history": self.window - 1, "d_model": self.d_model,
             "num_predicates": len(self.predicates)}
        if self.has_pair_vector:
            d["d_head"] = int(self.sidecar["open_vocab"]["d_head"])
        return d

    def shapes(self, pairs: int) -> dict[str, tuple[int, ...]]:
        """Concrete shape of every input and output tensor for ``pairs`` pairs."""
        sizes = {**self.dims, PAIRS: pairs}
        return {s.name: s.shape(sizes) for s in INPUTS + self.output_specs}

    def initial_state(self, pairs: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Zero state of ``pairs`` new pairs: window (P, L-1, d), window_valid (P, L-1), prev_out (P, d) float32."""
        sh = self.shapes(pairs)
        return tuple(np.zeros(sh[s.name], np.float32) for s in STATE_INPUTS)

    @property
    def train_config(self) -> dict:
        return self.sidecar.get("train_config", {})

    def embedding_table(self, which: str) -> np.ndarray:
        """'objects' (C_obj, E) or 'predicates' (C_pred, E) float32 text-embedding table the model was built with."""
        return decode_array(self.sidecar["embedding_tables"][which], f"embedding_tables.{which}")


# ------------------------------------------------------------------------------------------ encoding helpers


def encode_array(a: np.ndarray) -> dict:
    """A float32 array as JSON: shape, dtype, sha256 and little-endian bytes in base64."""
    a = np.ascontiguousarray(a, dtype="<f4")
    raw = a.tobytes()
    return {"shape": list(a.shape), "dtype": "float32", "sha256": hashlib.sha256(raw).hexdigest(),
            "base64": base64.b64encode(raw).decode("ascii")}


def decode_array(d: dict, where: str) -> np.ndarray:
    try:
        raw = base64.b64decode(d["base64"], validate=True)
        shape = tuple(int(s) for s in d["shape"])
    except (KeyError, TypeError, ValueError, OverflowError) as e:
        raise ModelFileError(f"{where}: malformed array ({e})") from e
    if hashlib.sha256(raw).hexdigest() != d.get("sha256") or len(raw) != 4 * int(np.prod(shape)):
        raise ModelFileError(f"{where}: array bytes do not match their recorded shape/sha256 (corrupt side-car)")
    return np.frombuffer(raw, "<f4").reshape(shape).astype(np.float32)


def sidecar_path(model_path: str | Path) -> Path:
    """relation.onnx -> relation.json; relation.engine -> relation.engine.json."""
    p = Path(model_path)
    return p.with_suffix(".json") if p.suffix == ".onnx" else p.with_name(p.name + ".json")


def resolve_model_path(path: str | Path | None) -> Path:
    """A model file, or a directory holding relation.onnx; None or '' = the shipped default model."""
    p = Path(path) if path else DEFAULT_MODEL_DIR / ONNX_NAME
    return p / ONNX_NAME if p.is_dir() else p


def metadata_json(sidecar: dict) -> str:
    """The canonical JSON stored in the ONNX metadata: the side-car without file hashes."""
    return json.dumps(_without_hashes(sidecar), sort_keys=True, separators=(",", ":"))


def _without_hashes(sidecar: dict) -> dict:
    d = {k: v for k, v in sidecar.items() if k not in ("onnx_sha256", "tensorrt")}
    return json.loads(json.dumps(d))


# ------------------------------------------------------------------------------------------ reading


def _field(j: dict, key: str, typ, where: str):
    if key not in j:
        raise ModelFileError(f"{where}: missing field '{key}'")
    v = j[key]
    if typ is int and (isinstance(v, bool) or not isinstance(v, int)):
        raise ModelFileError(f"{where}: field '{key}' must be an integer, got {v!r}")
    if typ is list and not (isinstance(v, list) and all(isinstance(x, str) and x for x in v)):
        raise ModelFileError(f"{where}: field '{key}' must be a list of names")
    if typ is dict and not isinstance(v, dict):
        raise ModelFileError(f"{where}: field '{key}' must be a mapping")
    return v


def _groups(raw, n_pred: int, where: str) -> tuple:
    try:
        groups = tuple((str(n), str(k), tuple(int(i) for i in idx)) for n, k, idx in raw)
    except (TypeError, ValueError, OverflowError) as e:  # OverflowError: int(inf)
        raise ModelFileError(f"{where}: field 'groups' must be [[name, kind, [indices]], ...] ({e})") from e
    if sorted(i for _, _, idx in groups for i in idx) != list(range(n_pred)) or any(
            k not in ("sigmoid", "softmax") for _, k, _ in groups):
        raise ModelFileError(f"{where}: field 'groups' must cover every predicate once with kind sigmoid/softmax")
    return groups


def parse_sidecar(j, path: Path, where: str) -> ModelInfo:
    """Validate a side-car mapping against this code (format, I/O and feature versions, field types)."""
    if not isinstance(j, dict) or j.get("format") != SIDECAR_FORMAT:
        raise ModelFileError(f"{where}: not a {SIDECAR_FORMAT} side-car")
    if j.get("format_version") != SIDECAR_VERSION:
        raise ModelFileError(f"{where}: side-car format version {j.get('format_version')!r}; this vsgg reads "
                             f"version {SIDECAR_VERSION}. Re-export the model with this vsgg (vsgg export).")
    iov = j.get("io_version")
    if type(iov) is not int or iov not in READ_IO_VERSIONS:  # type(): True and 1.0 equal 1 but are no version
        newer = type(iov) is int and iov > IO_VERSION
        raise ModelFileError(f"{where}: model I/O version {iov!r}; this engine runs versions "
                             f"{' and '.join(map(str, READ_IO_VERSIONS))}. " + (
                                 "The model was made by a newer vsgg: upgrade vsgg, or re-export it with this one."
                                 if newer else "Re-export the model with this vsgg (vsgg export)."))
    fv, nf = _field(j, "feature_version", int, where), _field(j, "num_features", int, where)
    if fv != FEATURE_VERSION or nf != NUM_FEATURES:
        raise ModelFileError(f"{where}: model made for pair-feature version {fv} ({nf} features); this engine "
                             f"computes version {FEATURE_VERSION} ({NUM_FEATURES} features). Retrain the model or use "
                             "the vsgg version it was made with.")
    objects, predicates = _field(j, "objects", list, where), _field(j, "predicates", list, where)
    for name, names in (("objects", objects), ("predicates", predicates)):
        if not names or len(set(names)) != len(names):
            raise ModelFileError(f"{where}: field '{name}' must be a non-empty list of distinct names")
    ints = {k: _field(j, k, int, where) for k in ("model_version", "feature_lag", "window", "d_model", "max_pairs")}
    if ints["window"] < 2 or ints["d_model"] < 1 or ints["feature_lag"] < 1 or ints["max_pairs"] < 1:
        raise ModelFileError(f"{where}: need window >= 2, d_model >= 1, feature_lag >= 1, max_pairs >= 1, got "
                             f"{ints}")
    _field(j, "train_config", dict, where)
    tables = _field(j, "embedding_tables", dict, where)
    for which, n in (("objects", len(objects)), ("predicates", len(predicates))):
        t = tables.get(which)
        if not isinstance(t, dict) or not isinstance(t.get("shape"), list) or len(t["shape"]) != 2 or \
                t["shape"][0] != n:
            raise ModelFileError(f"{where}: embedding_tables.{which} must be a ({n}, E) array")
    return ModelInfo(path=path, objects=tuple(objects), predicates=tuple(predicates),
                     groups=_groups(j.get("groups"), len(predicates), where),
                     feature_version=fv, num_features=nf, sidecar=j, io_version=iov,
                     outputs=_outputs(j, iov, where), **ints)


def _outputs(j: dict, iov: int, where: str) -> tuple[str, ...]:
    """The graph outputs a side-car declares: version 1 has the fixed four, version 2 lists them in 'outputs'."""
    if iov == 1:
        if "outputs" in j:
            raise ModelFileError(f"{where}: field 'outputs' belongs to I/O version 2, the side-car says version 1")
        return OUTPUT_NAMES
    names = _field(j, "outputs", list, where)
    known = OUTPUT_NAMES + tuple(s.name for s in OPTIONAL_OUTPUTS)
    canonical = tuple(n for n in known if n in names)
    if len(set(names)) != len(names) or set(names) - set(known) or canonical[:len(OUTPUT_NAMES)] != OUTPUT_NAMES:
        raise ModelFileError(f"{where}: field 'outputs' {names} must hold {list(OUTPUT_NAMES)} plus any of "
                             f"{[s.name for s in OPTIONAL_OUTPUTS]}, each once")
    if PAIR_VECTOR.name in canonical:  # the numbers that turn pair vectors into scores must travel with them
        ov = _field(j, "open_vocab", dict, where)
        missing = [k for k in OPEN_VOCAB_KEYS if k not in ov]
        if missing:
            raise ModelFileError(f"{where}: field 'open_vocab' lacks {missing} (needed with output 'pair_vector')")
        d = ov["d_head"]
        if type(d) is not int or d < 1:
            raise ModelFileError(f"{where}: open_vocab.d_head must be an integer >= 1, got {d!r}")
    return canonical


def read_model_info(path: str | Path | None, *, objects=None, predicates=None, check_hash: bool = True) -> ModelInfo:
    """Validate a model file and its side-car; return its ModelInfo.

    path: a .onnx file, a TensorRT engine file, a directory holding relation.onnx, or None for the default model.
    objects / predicates: optional ``engine.vocab.Vocabulary`` (or name sequences) the caller's labels use; a model
    with other vocabularies is refused. check_hash: compare the file's SHA-256 with the side-car's (catches
    truncated or swapped files; costs a few ms per MB).
    Raises ModelFileError naming the file and what to do.
    """
    p = resolve_model_path(path)
    if not p.is_file() and (p.parent / "checkpoint.json").is_file():
        raise ModelFileError(f"{p.parent} is a training checkpoint, not a model the engine runs: export it with "
                             f"`vsgg export --checkpoint {p.parent} --onnx OUT/relation.onnx` (or `vsgg release`) "
                             "and pass --model OUT")
    if not p.is_file():
        raise ModelFileError(f"relation model not found: {p}" + (
            " (the shipped default model is missing; export one with `vsgg export`)" if not path else ""))
    sc = sidecar_path(p)
    if not sc.is_file():
        raise ModelFileError(f"{p}: side-car {sc.name} is missing; it is written next to the model by "
                             "`vsgg export` and must travel with it")
    try:
        j = json.loads(sc.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError, OSError, RecursionError) as e:
        raise ModelFileError(f"{sc}: corrupt or truncated side-car ({e})") from e
    info = parse_sidecar(j, p, str(sc))
    if check_hash:
        is_onnx = p.suffix == ".onnx"
        want = j.get("onnx_sha256") if is_onnx else (j.get("tensorrt") or {}).get("engine_sha256")
        key = "onnx_sha256" if is_onnx else "tensorrt.engine_sha256"
        if not isinstance(want, str):
            raise ModelFileError(f"{sc}: missing field '{key}'")
        if sha256_file(p) != want:
            raise ModelFileError(f"{p}: file does not match its side-car (SHA-256 differs: truncated, corrupt, or "
                                 f"the side-car belongs to another model); re-export or copy both files again")
    check_vocabularies(info, objects, predicates)
    return info


def _names(v) -> tuple[str, ...]:
    return tuple(getattr(v, "names", v))


def check_vocabularies(info: ModelInfo, objects=None, predicates=None) -> None:
    """Refuse a model whose object/predicate vocabularies differ from the caller's (None = not checked)."""
    for what, mine, theirs in (("object", objects, info.objects), ("predicate", predicates, info.predicates)):
        if mine is None:
            continue
        mine_t = _names(mine)
        if mine_t != theirs:
            diff = next((i for i, (a, b) in enumerate(zip(mine_t, theirs)) if a != b), min(len(mine_t), len(theirs)))
            raise ModelFileError(f"{info.path}: the model's {what} vocabulary ({len(theirs)} names) differs from "
                                 f"'{getattr(mine, 'name', what + 's')}' ({len(mine_t)} names), first at index "
                                 f"{diff}; use the model trained for this vocabulary")


def check_metadata(info: ModelInfo, metadata: dict[str, str] | None) -> None:
    """The ONNX metadata_props (as a dict) must hold this side-car's JSON: catches a side-car of another export."""
    raw = (metadata or {}).get(METADATA_KEY)
    if raw is None:
        raise ModelFileError(f"{info.path}: the ONNX file carries no '{METADATA_KEY}' metadata; it was not written "
                             "by `vsgg export`")
    try:
        embedded = json.loads(raw)
    except json.JSONDecodeError as e:
        raise ModelFileError(f"{info.path}: corrupt '{METADATA_KEY}' metadata ({e})") from e
    if embedded != _without_hashes(info.sidecar):
        raise ModelFileError(f"{info.path}: side-car {sidecar_path(info.path).name} does not belong to this model "
                             "(it differs from the copy inside the ONNX file)")


def check_io_signature(inputs: dict, outputs: dict, info: ModelInfo, where: str) -> None:
    """Graph I/O against the spec and the side-car's optional outputs. inputs/outputs: {name: (shape with None/str
    for dynamic dims, numpy dtype)}."""
    for kind, specs, got in (("input", INPUTS, inputs), ("output", info.output_specs, outputs)):
        names = {s.name for s in specs}
        if set(got) != names:
            src = "the I/O spec" + (" and the side-car's 'outputs'" if kind == "output" else "")
            why = [f"the graph lacks {n!r}" for n in sorted(names - set(got))] + [
                f"the graph has {n!r}, which {src} do not list" for n in sorted(set(got) - names)]
            raise ModelFileError(f"{where}: graph {kind}s {sorted(got)} do not match {src} "
                                 f"{[s.name for s in specs]} (I/O version {info.io_version}): " + "; ".join(why))
        sizes = info.dims
        for s in specs:
            shape, dtype = got[s.name]
            want = tuple(None if d == PAIRS else sizes[d] for d in s.dims)
            ok = len(shape) == len(want) and all(w is None or g == w for g, w in zip(shape, want))
            if not ok or np.dtype(dtype) != np.dtype(s.dtype):
                raise ModelFileError(f"{where}: {kind} '{s.name}' is {np.dtype(dtype)} {list(shape)}, the spec and "
                                     f"side-car say {s.dtype} {[w if w is not None else PAIRS for w in want]}")
