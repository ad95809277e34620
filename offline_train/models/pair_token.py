"""Pair token: geometry/motion features of a (subject, object) pair plus both categories' text embeddings."""
from __future__ import annotations

import torch
from torch import nn


class PairTokenizer(nn.Module):
    """features (N, F) float, subject/object labels (N,) int64 -> tokens (N, d).

    The label embedding table (C, 384) is a frozen buffer (MiniLM text embeddings of the category names); a learned
    projection maps it to d. Features are standardised with statistics measured on the training set (buffers).
    """

    def __init__(self, num_features: int, label_table: torch.Tensor, d_model: int, dropout: float = 0.0):
        super().__init__()
        self.register_buffer("label_table", label_table.float())                 # (C, E)
        self.register_buffer("feat_mean", torch.zeros(num_features))
        self.register_buffer("feat_std", torch.ones(num_features))
        self.label_proj = nn.Linear(label_table.shape[1], d_model)
        self.mlp = nn.Sequential(nn.Linear(num_features + 2 * d_model, 2 * d_model), nn.GELU(), nn.Dropout(dropout),
                                 nn.Linear(2 * d_model, d_model))
        self.norm = nn.LayerNorm(d_model)

    def forward(self, feats: torch.Tensor, subj_label: torch.Tensor, obj_label: torch.Tensor) -> torch.Tensor:
        f = (feats - self.feat_mean) / self.feat_std
        # Project the (C, E) table, then gather: the projection is a constant the ONNX runtime folds once.
        table = self.label_proj(self.label_table)            # (C, d)
        es, eo = table[subj_label], table[obj_label]         # (N, d)
        return self.norm(self.mlp(torch.cat([f, es, eo], dim=-1)))
