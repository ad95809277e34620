"""UASAN-style open vocabulary: a context-encoded pair token and predicate scores by scaled cosine to text.

UASAN (open-vocabulary VidVRD / VidOR) scores a relation against the text embeddings of predicate names, so names
never trained on can be scored. As summarised in issue 14, at the pair-token level of this model:

* tokens          subject, object (box + own motion, with the category's text embedding), union (relative
                  geometry of the two boxes) and motion (relative motion): four tokens per pair, each an MLP of its
                  group of ``engine.relate.features.FEATURE_NAMES`` plus a learned type embedding
* context encoder self-attention over the four tokens (post-norm transformer layers)
* relation token  a learned query attends to the encoded tokens: the pair token (N, d) the rest of the model sees
* predicate score logit_c = exp(s) * cos(P(h), W(t_c + ctx)) + b: s a learned log-scale, t_c the predicate's
                  MiniLM embedding, ctx an optional learned prompt context added in embedding space (a linear
                  stand-in for CoOp-style context tokens: the text encoder itself is not in the graph), b one bias
                  shared by every predicate, so a new name needs nothing learned per predicate
* categories      through their text embeddings already (PairTokenizer's and this tokenizer's label table), so
                  ``set_objects`` swaps in unseen names the same way ``set_predicates`` does for predicates.

Base / novel protocol: train with the base vocabulary's tables, then ``set_predicates`` / ``set_objects`` with the
full tables to score novel and all (``split_vocabulary`` draws the split).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from engine.relate.features import FEATURE_NAMES
from offline_train.models.attention import Attention, FeedForward
from offline_train.models.relation_head import RelationHead
from offline_train.models.spatial import SpatialLayer

TOKEN_FEATURES = {
    "subject": ("s_cx", "s_cy", "s_w", "s_h", "s_vx", "s_vy", "s_vscale", "s_speed"),
    "object": ("o_cx", "o_cy", "o_w", "o_h", "o_vx", "o_vy", "o_vscale", "o_speed"),
    "union": ("dx", "dy", "log_w_ratio", "log_h_ratio", "iou", "inter_over_s", "inter_over_o", "bottom_dy",
              "log_dist"),
    "motion": ("dist_rate", "approach_rate", "rel_speed", "motion_valid"),
}


@dataclass(frozen=True)
class UasanConfig:
    """Open-vocabulary tokenizer + head (off by default)."""

    enabled: bool = False
    context_layers: int = 1
    prompt_context: bool = False
    logit_scale: float = 10.0      # initial exp(s)

    def __post_init__(self):
        if self.context_layers < 0:
            raise ValueError(f"model.uasan.context_layers must be >= 0, got {self.context_layers!r}")
        if not self.logit_scale > 0:
            raise ValueError(f"model.uasan.logit_scale must be > 0, got {self.logit_scale!r}")


class ContextTokenizer(nn.Module):
    """features (N, F) float, subject/object labels (N,) int64 -> pair tokens (N, d), as PairTokenizer but through
    four tokens, a context encoder and a relation-token decoder. Same buffers as PairTokenizer (label_table,
    feat_mean, feat_std), so training and export treat it the same way."""

    def __init__(self, num_features: int, label_table: torch.Tensor, d_model: int, n_heads: int, d_ff: int,
                 context_layers: int, dropout: float = 0.0):
        super().__init__()
        if num_features != len(FEATURE_NAMES):
            raise ValueError(f"num_features: the context tokenizer needs the {len(FEATURE_NAMES)} pair features "
                             f"of engine.relate.features, got {num_features}")
        self.register_buffer("label_table", label_table.float())
        self.register_buffer("feat_mean", torch.zeros(num_features))
        self.register_buffer("feat_std", torch.ones(num_features))
        for name, cols in TOKEN_FEATURES.items():
            self.register_buffer(f"idx_{name}", torch.tensor([FEATURE_NAMES.index(c) for c in cols]))
        self.label_proj = nn.Linear(label_table.shape[1], d_model)

        def mlp(n_in):
            return nn.Sequential(nn.Linear(n_in, d_model), nn.GELU(), nn.Linear(d_model, d_model))

        self.subject = mlp(len(TOKEN_FEATURES["subject"]) + d_model)
        self.object = mlp(len(TOKEN_FEATURES["object"]) + d_model)
        self.union = mlp(len(TOKEN_FEATURES["union"]))
        self.motion = mlp(len(TOKEN_FEATURES["motion"]))
        self.type_embed = nn.Parameter(torch.randn(4, d_model) * 0.02)
        self.context = nn.ModuleList(SpatialLayer(d_model, n_heads, d_ff, dropout) for _ in range(context_layers))
        self.query = nn.Parameter(torch.randn(1, 1, d_model) * 0.02)
        self.att = Attention(d_model, n_heads, dropout)
        self.ff = FeedForward(d_model, d_ff, dropout)
        self.n1, self.norm = nn.LayerNorm(d_model), nn.LayerNorm(d_model)

    def forward(self, feats: torch.Tensor, subj_label: torch.Tensor, obj_label: torch.Tensor) -> torch.Tensor:
        f = (feats - self.feat_mean) / self.feat_std
        table = self.label_proj(self.label_table)                                       # (C, d)
        tokens = torch.stack([
            self.subject(torch.cat([f.index_select(1, self.idx_subject), table[subj_label]], -1)),
            self.object(torch.cat([f.index_select(1, self.idx_object), table[obj_label]], -1)),
            self.union(f.index_select(1, self.idx_union)),
            self.motion(f.index_select(1, self.idx_motion)),
        ], dim=1) + self.type_embed                                                     # (N, 4, d)
        for layer in self.context:
            tokens = layer(tokens, None)
        q = self.query.expand(feats.shape[0], 1, self.query.shape[-1])                 # (N, 1, d)
        x = self.n1(q + self.att(q, tokens))
        return self.norm(x + self.ff(x))[:, 0]


class OpenVocabHead(nn.Module):
    """h (N, d_in) -> logits (N, C) = exp(s) * cos(pair_proj(h), pred_proj(t_c + ctx)) + b (module docstring)."""

    def __init__(self, d_in: int, predicate_table: torch.Tensor, d_head: int, groups, prompt_context: bool,
                 logit_scale: float):
        super().__init__()
        self.register_buffer("predicate_table", predicate_table.float())
        self.pair_proj = nn.Sequential(nn.Linear(d_in, d_head), nn.GELU(), nn.Linear(d_head, d_head))
        self.pred_proj = nn.Linear(predicate_table.shape[1], d_head)
        if prompt_context:
            self.context = nn.Parameter(torch.zeros(predicate_table.shape[1]))
        self.log_scale = nn.Parameter(torch.tensor(math.log(logit_scale)))
        self.bias = nn.Parameter(torch.tensor(-2.0))
        self.groups = _check_groups(groups, predicate_table.shape[0])

    scores = RelationHead.scores

    def class_vectors(self) -> torch.Tensor:
        t = self.predicate_table + self.context if hasattr(self, "context") else self.predicate_table
        return F.normalize(self.pred_proj(t), dim=-1)                                   # (C, d_head)

    def pair_vectors(self, h: torch.Tensor) -> torch.Tensor:
        """h (N, d_in) -> u (N, d_head), unit length: the pair side of the cosine (the exported ``pair_vector``)."""
        return F.normalize(self.pair_proj(h), dim=-1)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        u = self.pair_vectors(h)                                                        # (N, d_head)
        return self.log_scale.exp() * (u @ self.class_vectors().T) + self.bias

    def set_predicates(self, table: torch.Tensor, groups=None) -> None:
        """Replace the predicate text table (C', E) (and the groups; default one sigmoid group); no retraining."""
        table = torch.as_tensor(table, dtype=torch.float32)
        if table.ndim != 2 or table.shape[1] != self.predicate_table.shape[1] or len(table) == 0:
            raise ValueError(f"table: expected (C, {self.predicate_table.shape[1]}) with C >= 1, got "
                             f"{tuple(table.shape)}")
        groups = _check_groups(groups or (("all", "sigmoid", tuple(range(len(table)))),), len(table))
        self.predicate_table = table.to(self.predicate_table.device)
        self.groups = groups


def _check_groups(groups, n: int) -> tuple:
    out = tuple((str(g), str(k), tuple(int(i) for i in idx)) for g, k, idx in groups)
    if sorted(i for _, _, idx in out for i in idx) != list(range(n)):
        raise ValueError("groups: predicate groups must cover every predicate exactly once")
    for g, k, _ in out:
        if k not in ("sigmoid", "softmax"):
            raise ValueError(f"groups: group {g!r} kind must be 'sigmoid' or 'softmax', got {k!r}")
    return out


def set_predicates(model: nn.Module, table, groups=None) -> None:
    """Score ``model`` (with an OpenVocabHead) against another predicate vocabulary's text table (C', E)."""
    if not isinstance(model.head, OpenVocabHead):
        raise TypeError(f"{type(model.head).__name__} is not open-vocabulary (model.uasan.enabled builds one)")
    model.head.set_predicates(table, groups)


def set_objects(model: nn.Module, table) -> None:
    """Replace the object category text table (C_obj', E) of ``model``'s tokenizer (labels index the new table)."""
    old = model.tokenizer.label_table
    table = torch.as_tensor(table, dtype=torch.float32)
    if table.ndim != 2 or table.shape[1] != old.shape[1] or len(table) == 0:
        raise ValueError(f"table: expected (C, {old.shape[1]}) with C >= 1, got {tuple(table.shape)}")
    model.tokenizer.label_table = table.to(old.device)


def split_vocabulary(names, fraction: float, seed: int, novel=()) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(base indices, novel indices) of ``names``: the names in ``novel`` plus round(fraction * len(names)) others
    drawn with ``seed`` are novel (fewer when ``novel`` already holds that many). Both sorted, both non-empty."""
    names = tuple(names)
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"fraction: must be in [0, 1), got {fraction!r}")
    unknown = [n for n in novel if n not in names]
    if unknown:
        raise ValueError(f"novel: {unknown} not in the vocabulary")
    forced = {names.index(n) for n in novel}
    rest = np.array([i for i in range(len(names)) if i not in forced])
    extra = max(0, int(round(fraction * len(names))) - len(forced))
    drawn = np.random.default_rng(seed).permutation(rest)[:extra] if len(rest) else rest
    nov = tuple(sorted(forced | {int(i) for i in drawn}))
    base = tuple(i for i in range(len(names)) if i not in nov)
    if not base or not nov:
        raise ValueError(f"split: {len(base)} base and {len(nov)} novel names; both must be non-empty")
    return base, nov
