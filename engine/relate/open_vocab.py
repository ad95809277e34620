"""Open-vocabulary predicate scoring in numpy: an exported open-vocabulary head's pair vectors against any table.

A model whose head is UASAN's ``OpenVocabHead`` exports the optional output ``pair_vector`` u (P, d_head) =
normalize(pair_proj(h)) and, in its side-car's ``open_vocab`` section, the rest of the head: W (d_head, E),
b_w (d_head,), the prompt context ctx (E,) (zeros when the model has none), log_scale s and bias b. A predicate
table T (C', E) of the names' text embeddings (all-MiniLM-L6-v2, E = 384, unit rows) then scores as the torch
head does::

    V      = normalize((T + ctx) W^T + b_w)       (C', d_head), once per table
    logits = exp(s) * u V^T + b                   (P, C')
    scores = sigmoid(logits), softmax within a 'softmax' group      (P, C') in [0, 1]

so ``Engine.set_predicates`` replaces the predicate list at run time without retraining and without torch. Groups
of a new list: a name the model was trained on keeps its group's kind (a 'softmax' group is renormalised over its
members that are kept); every other name is scored on its own with a sigmoid (multi-label), as
``OpenVocabHead.set_predicates`` does by default.

A list holds at most ``MAX_PREDICATES`` names: the relation filter keeps about 50 bytes per (pair row, predicate),
so 1,024 names x the default 4,096 pair rows is about 200 MB; lower ``pairs.max_pair_states`` for long lists.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from engine.relate.relation_io import ModelFileError, ModelInfo, decode_array
from engine.vocab import MAX_NAME_LEN, Vocabulary

MAX_PREDICATES = 1024
NOT_OPEN_VOCAB = ("not an open-vocabulary model (its file has no 'pair_vector' output): train with "
                  "model.uasan.enabled=true and export it with this vsgg (vsgg export)")


@dataclass(frozen=True, eq=False)
class OpenVocabParams:
    """The side-car's ``open_vocab`` section, decoded: weight (d_head, E), weight_bias (d_head,), context (E,)
    float32; log_scale, bias floats; the text embedding model's name and dimension E."""

    weight: np.ndarray
    weight_bias: np.ndarray
    context: np.ndarray
    log_scale: float
    bias: float
    embedding_model: str
    embedding_dim: int

    @classmethod
    def from_info(cls, info: ModelInfo) -> "OpenVocabParams":
        """Decode and check ``info``'s open_vocab section; ValueError(NOT_OPEN_VOCAB) for a model without one."""
        if not info.has_pair_vector:
            raise ValueError(f"{info.path}: {NOT_OPEN_VOCAB}")
        ov, where = info.sidecar["open_vocab"], f"{info.path}: open_vocab"
        w = decode_array(ov["pred_proj_weight"], f"{where}.pred_proj_weight")
        wb = decode_array(ov["pred_proj_bias"], f"{where}.pred_proj_bias")
        ctx = decode_array(ov["context"], f"{where}.context")
        d, e = info.dims["d_head"], ov["embedding_dim"]
        nums = [ov["log_scale"], ov["bias"]]
        if (type(e) is not int or w.shape != (d, e) or wb.shape != (d,) or ctx.shape != (e,)
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in nums)
                or not all(np.isfinite(a).all() for a in (w, wb, ctx)) or not isinstance(ov["embedding_model"], str)):
            raise ModelFileError(f"{where}: expected pred_proj_weight ({d}, E), pred_proj_bias ({d},), context "
                                 f"(E,) with E = embedding_dim, finite log_scale and bias, an embedding_model name")
        return cls(w, wb, ctx, float(nums[0]), float(nums[1]), ov["embedding_model"], e)


class PredicateScorer:
    """Scores pair vectors (P, d_head) against one predicate list: ``names`` (C',), their text ``table`` (C', E)
    and ``groups`` ((name, 'sigmoid'|'softmax', indices), ...) covering every index once (module docstring)."""

    def __init__(self, params: OpenVocabParams, names: tuple[str, ...], table: np.ndarray, groups: tuple):
        self.names, self.groups, self.params = tuple(names), tuple(groups), params
        t = table.astype(np.float64) + params.context                                  # (C', E)
        v = t @ params.weight.T.astype(np.float64) + params.weight_bias                # (C', d_head)
        v /= np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)               # torch F.normalize's eps
        self.class_vectors = v.astype(np.float32)
        self._scale = np.float32(math.exp(params.log_scale))
        self._softmax = [np.asarray(idx, np.int64) for _, kind, idx in self.groups if kind == "softmax"]

    def logits(self, pair_vector: np.ndarray) -> np.ndarray:
        """(P, d_head) float32 unit rows -> (P, C') float32 logits."""
        u = np.asarray(pair_vector, np.float32)
        if u.ndim != 2 or u.shape[1] != self.class_vectors.shape[1]:
            raise ValueError(f"pair_vector: expected (pairs, {self.class_vectors.shape[1]}), got {u.shape}")
        return self._scale * (u @ self.class_vectors.T) + np.float32(self.params.bias)

    def scores(self, pair_vector: np.ndarray) -> np.ndarray:
        """(P, d_head) -> (P, C') float32 probabilities in [0, 1]."""
        z = self.logits(pair_vector)
        out = (0.5 * (1.0 + np.tanh(0.5 * z))).astype(np.float32)   # sigmoid without overflow warnings
        for ix in self._softmax:
            g = z[:, ix] - z[:, ix].max(axis=1, keepdims=True)
            e = np.exp(g)
            out[:, ix] = e / e.sum(axis=1, keepdims=True)
        return out


def check_names(names) -> tuple[str, ...]:
    """``names`` as a tuple: 1..MAX_PREDICATES distinct printable label names of at most the wire's MAX_NAME_LEN
    characters (engine.vocab.check_name). ValueError (TypeError for a non-string) names the problem."""
    if isinstance(names, str) or not hasattr(names, "__len__"):
        raise TypeError(f"names: expected a sequence of predicate names, got {type(names).__name__}")
    names = tuple(str(n) if isinstance(n, str) else n for n in names)  # numpy's str_ -> str
    if not 1 <= len(names) <= MAX_PREDICATES:
        raise ValueError(f"names: a predicate list holds 1 to {MAX_PREDICATES} names, got {len(names)}")
    long = next((n for n in names if isinstance(n, str) and len(n) > MAX_NAME_LEN), None)
    if long is not None:
        raise ValueError(f"names: {long[:40]!r}... has {len(long)} characters; the wire carries at most "
                         f"{MAX_NAME_LEN}")
    return Vocabulary("predicates", names).names  # printable, no surrounding whitespace, no duplicates


def check_table(table, rows: int, dim: int) -> np.ndarray:
    """``table`` as a (rows, dim) float32 array of finite values, else ValueError naming what is wrong."""
    a = np.asarray(table)
    if a.dtype.kind not in "fiu" or a.dtype == np.bool_:
        raise ValueError(f"table: expected float text embeddings, got dtype {a.dtype}")
    if a.ndim != 2 or a.shape[1] != dim:
        raise ValueError(f"table: expected ({rows}, {dim}) text embeddings ({dim} = the model's embedding "
                         f"dimension), got shape {a.shape}")
    if a.shape[0] != rows:
        raise ValueError(f"table: {a.shape[0]} rows for {rows} names; one embedding row per name")
    a = a.astype(np.float32)
    if not np.isfinite(a).all():
        bad = int(np.flatnonzero(~np.isfinite(a).all(axis=1))[0])
        raise ValueError(f"table: row {bad} holds NaN or inf")
    return a


def lookup_table(info: ModelInfo, names: tuple[str, ...]) -> np.ndarray:
    """The rows of the model's own predicate text table (side-car ``embedding_tables.predicates``) for ``names``,
    (C', E) float32; a name the model was not trained on raises ValueError saying how to embed it."""
    unknown = [n for n in names if n not in info.predicates]
    if unknown:
        raise ValueError(f"names: {unknown[:5]}{' ...' if len(unknown) > 5 else ''} are not among the model's "
                         f"{len(info.predicates)} trained predicates, so it holds no text embedding for them; "
                         "pass their table (`vsgg embed-names NAME... --out table.npz`, which needs the embedding "
                         "extra: pip install 'vsgg[embed]')")
    table = info.embedding_table("predicates")
    return table[[info.predicates.index(n) for n in names]]


def switched_groups(info: ModelInfo, names: tuple[str, ...]) -> tuple:
    """Groups of a new predicate list (module docstring): trained softmax groups restricted to the kept names,
    every other name in one sigmoid group."""
    softmax_of = {info.predicates[i]: g for g, kind, idx in info.groups if kind == "softmax" for i in idx}
    sig, soft = [], {}
    for j, n in enumerate(names):
        (soft.setdefault(softmax_of[n], []) if n in softmax_of else sig).append(j)
    return (((("open_vocab", "sigmoid", tuple(sig)),) if sig else ())
            + tuple((g, "softmax", tuple(ix)) for g, ix in soft.items()))


def predicate_scorer(info: ModelInfo, names, table=None, embedding_model: str | None = None) -> PredicateScorer:
    """Check a new predicate list against the model and build its scorer; nothing is changed on error.

    names: 1..MAX_PREDICATES predicate names. table: (C', E) float text embeddings of ``names`` (row i = name i),
    or None to take the rows of names the model was trained on from its side-car. embedding_model: the name of the
    embedding model that made ``table`` (checked against the model's where given).
    """
    params = OpenVocabParams.from_info(info)
    names = check_names(names)
    if embedding_model is not None and embedding_model != params.embedding_model:
        raise ValueError(f"table: made with the text embedding model {embedding_model!r}; {info.path} was trained "
                         f"with {params.embedding_model!r}")
    table = lookup_table(info, names) if table is None else check_table(table, len(names), params.embedding_dim)
    return PredicateScorer(params, names, table, switched_groups(info, names))
