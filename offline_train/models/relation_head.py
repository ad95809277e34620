"""Predicate head: pair representation -> one logit per predicate, scored against predicate text embeddings.

Classifier weights are a learned projection of the predicate names' MiniLM embeddings plus a per-predicate bias,
so related predicates ('walk_toward', 'run_toward') start close and share what they learn.
Groups: each predicate belongs to one group, activated with 'sigmoid' (multi-label) or 'softmax' (exactly one of
the group, e.g. Action Genome's attention relations).
"""
from __future__ import annotations

import torch
from torch import nn


class RelationHead(nn.Module):
    """h (N, d_in) -> logits (N, P). ``groups``: tuple of (name, kind, predicate indices)."""

    def __init__(self, d_in: int, predicate_table: torch.Tensor, d_head: int, groups):
        super().__init__()
        self.register_buffer("predicate_table", predicate_table.float())   # (P, E)
        self.pair_proj = nn.Sequential(nn.Linear(d_in, d_head), nn.GELU(), nn.Linear(d_head, d_head))
        self.pred_proj = nn.Linear(predicate_table.shape[1], d_head)
        self.bias = nn.Parameter(torch.full((predicate_table.shape[0],), -2.0))  # rare positives: start low
        self.groups = tuple((str(n), str(k), tuple(int(i) for i in idx)) for n, k, idx in groups)
        covered = sorted(i for _, _, idx in self.groups for i in idx)
        if covered != list(range(predicate_table.shape[0])):
            raise ValueError("predicate groups must cover every predicate exactly once")
        for name, kind, _ in self.groups:
            if kind not in ("sigmoid", "softmax"):
                raise ValueError(f"group {name!r}: kind must be 'sigmoid' or 'softmax', got {kind!r}")

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.pair_proj(h) @ self.pred_proj(self.predicate_table).T + self.bias

    def scores(self, logits: torch.Tensor) -> torch.Tensor:
        """Probabilities (N, P): sigmoid per predicate, or softmax within a 'softmax' group."""
        if all(kind == "sigmoid" for _, kind, _ in self.groups):
            return torch.sigmoid(logits)
        out = torch.sigmoid(logits)
        for _, kind, idx in self.groups:
            if kind == "softmax":
                ix = torch.tensor(idx, dtype=torch.long, device=logits.device)
                out = out.index_copy(-1, ix, torch.softmax(logits.index_select(-1, ix), dim=-1))
        return out
