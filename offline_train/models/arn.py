"""ARN-style association reasoning at the pair-token level: branch decoding, hierarchical attention, max scoring.

ARN (association reasoning for one-stage scene-graph detection) decodes predicates in several branches (one per
predicate group) whose tokens attend to each other, trains with a focal loss and, at inference, keeps for each
triplet the best score over the queries that predict it. As summarised in issue 14, here on the pair token h:

* branches         B branches (the predicate groups, or the actional-only / spatial-only / dual kinds of a DLL
                   pattern map), each with Q query tokens x_bq = MLP_bq(h) + e_b + e_q         (N, B, Q, d)
* hierarchical     level 1: self-attention among the Q queries of a branch; level 2: self-attention among the
  attention        branch summaries s_b = mean_q x_bq, added back to every query of the branch: the association
                   between predicate groups (which relations co-occur) is parsed at the branch level
* classifier       logit_{q,c} = x_{b(c) q} . W_c + bias_c, W (C, d) a free parameter initialised from the
                   predicate names' text embeddings (a random linear projection of MiniLM, scaled to unit rows)
* max-over-triplet logit_c = max_q logit_{q,c}: a pair's (subject, c, object) triplet gets its best query's score
* focal loss       FL = -(1 - p_t)^gamma log p_t on the sigmoid groups (``relation_loss(..., focal_gamma=...)``)

NOT BUILT here: the full one-stage image detector (paired DETR subject/object queries over image features, Hungarian
matching of (subject box, object box, predicate) triplets). It needs image training data and a GPU that this
project does not have; ``OneStageRelationDetector`` below is only the interface such a model would implement, and
nothing in vsgg provides or pretends to provide it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch
from torch import nn

from offline_train.models.attention import Attention
from offline_train.models.dll import load_pattern_map
from offline_train.models.relation_head import RelationHead


@dataclass(frozen=True)
class ArnConfig:
    """ARN head switches (off by default)."""

    enabled: bool = False
    branches: str = "groups"       # 'groups' (the predicate groups) or 'patterns:<vidvrd|meva|path>' (DLL map kinds)
    queries: int = 2               # Q per branch
    focal_gamma: float = 2.0       # for relation_loss when enabled

    def __post_init__(self):
        if self.branches != "groups" and not self.branches.startswith("patterns:"):
            raise ValueError(f"model.arn.branches must be 'groups' or 'patterns:<map>', got {self.branches!r}")
        if self.queries < 1:
            raise ValueError(f"model.arn.queries must be >= 1, got {self.queries!r}")
        if self.focal_gamma < 0:
            raise ValueError(f"model.arn.focal_gamma must be >= 0, got {self.focal_gamma!r}")


def branch_of(cfg: ArnConfig, groups, num_predicates: int) -> tuple[tuple[str, ...], tuple[int, ...]]:
    """(branch names, branch index (C,) of every predicate) for ``cfg.branches``."""
    if cfg.branches == "groups":
        names = tuple(str(g[0]) for g in groups)
        out = [0] * num_predicates
        for b, (_, _, idx) in enumerate(groups):
            for i in idx:
                out[int(i)] = b
        return names, tuple(out)
    pmap = load_pattern_map(cfg.branches.split(":", 1)[1])
    if len(pmap.predicates) != num_predicates:
        raise ValueError(f"model.arn.branches: the map has {len(pmap.predicates)} predicates, the model "
                         f"{num_predicates}")
    kinds = ["dual" if a >= 0 and s >= 0 else "action" if a >= 0 else "spatial" for a, s in zip(pmap.act, pmap.sp)]
    names = tuple(k for k in ("action", "spatial", "dual") if k in kinds)
    return names, tuple(names.index(k) for k in kinds)


class AssociationHead(nn.Module):
    """h (N, d_in) -> logits (N, C) through the branches of the module docstring."""

    def __init__(self, d_in: int, predicate_table: torch.Tensor, d_head: int, n_heads: int, groups,
                 branches: tuple[str, ...], branch_index: tuple[int, ...], queries: int):
        super().__init__()
        c = predicate_table.shape[0]
        if len(branch_index) != c:
            raise ValueError(f"branch_index: {len(branch_index)} entries for {c} predicates")
        self.register_buffer("predicate_table", predicate_table.float())
        self.register_buffer("branch_index", torch.tensor(branch_index, dtype=torch.long))
        self.branches, self.q = tuple(branches), int(queries)
        b = len(self.branches)
        self.inputs = nn.ModuleList(nn.Sequential(nn.Linear(d_in, d_head), nn.GELU(), nn.Linear(d_head, d_head))
                                    for _ in range(b * self.q))
        self.branch_embed = nn.Parameter(torch.randn(b, 1, d_head) * 0.02)
        self.query_embed = nn.Parameter(torch.randn(1, self.q, d_head) * 0.02)
        self.within, self.across = Attention(d_head, n_heads), Attention(d_head, n_heads)
        self.n1, self.n2 = nn.LayerNorm(d_head), nn.LayerNorm(d_head)
        with torch.no_grad():  # text-initialised classifier: related names start with related weight vectors
            proj = torch.randn(predicate_table.shape[1], d_head, generator=torch.Generator().manual_seed(0))
            w = predicate_table.float() @ proj
            w = w / w.norm(dim=1, keepdim=True).clamp(min=1e-6)
        self.weight = nn.Parameter(w)
        self.bias = nn.Parameter(torch.full((c,), -2.0))
        self.groups = tuple((str(n), str(k), tuple(int(i) for i in idx)) for n, k, idx in groups)

    scores = RelationHead.scores

    def query_logits(self, h: torch.Tensor) -> torch.Tensor:
        """(N, Q, C): every query's logit for every predicate, read from the predicate's own branch."""
        n, b, q = h.shape[0], len(self.branches), self.q
        d = self.weight.shape[1]
        x = torch.stack([m(h) for m in self.inputs], dim=1).reshape(n, b, q, d)
        x = x + self.branch_embed[None] + self.query_embed[None]                     # (N, B, Q, d)
        xf = x.reshape(n * b, q, d)
        xf = self.n1(xf + self.within(xf, xf))                                      # level 1: within a branch
        x = xf.reshape(n, b, q, d)
        s = x.mean(2)                                                               # (N, B, d)
        s = self.n2(s + self.across(s, s))                                          # level 2: across branches
        x = x + s[:, :, None, :]
        per = x @ self.weight.T                                                     # (N, B, Q, C)
        ix = self.branch_index[None, None, None, :].expand(n, 1, q, -1)
        return per.gather(1, ix)[:, 0]                                              # (N, Q, C)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        ql = self.query_logits(h)
        out = ql[:, 0]
        for j in range(1, self.q):  # unrolled max: ONNX Runtime's reductions mis-shape an empty batch
            out = torch.maximum(out, ql[:, j])
        return out + self.bias


def build_arn_head(cfg: ArnConfig, d_in: int, predicate_table: torch.Tensor, d_head: int, n_heads: int,
                   groups) -> AssociationHead:
    names, index = branch_of(cfg, groups, predicate_table.shape[0])
    return AssociationHead(d_in, predicate_table, d_head, n_heads, groups, names, index, cfg.queries)


class OneStageRelationDetector(Protocol):
    """NOT BUILT (needs image training data and a GPU): the interface of ARN's full one-stage detector.

    __call__(images (B, 3, H, W) float32 RGB in [0, 1]) -> dict with, per image and per query (Q queries):
      'subject_boxes', 'object_boxes'  (B, Q, 4) float32 xyxy pixels, image frame, origin top-left
      'subject_logits', 'object_logits' (B, Q, C_obj + 1) category logits (last = no object)
      'predicate_logits'                (B, Q, C_pred)
    Training would match queries to ground-truth triplets with the Hungarian algorithm over box, category and
    predicate costs; inference would keep, per (subject, predicate, object) triplet, the max score over queries.
    """

    def __call__(self, images: torch.Tensor) -> dict[str, torch.Tensor]: ...
