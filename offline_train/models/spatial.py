"""Spatial encoder: self-attention across the pairs of one frame (post-norm transformer layers)."""
from __future__ import annotations

import torch
from torch import nn

from offline_train.models.attention import Attention, FeedForward


class SpatialLayer(nn.Module):
    def __init__(self, d_model: int, n_heads: int, d_ff: int, dropout: float):
        super().__init__()
        self.att = Attention(d_model, n_heads, dropout)
        self.ff = FeedForward(d_model, d_ff, dropout)
        self.n1, self.n2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, valid: torch.Tensor | None) -> torch.Tensor:
        x = self.n1(x + self.drop(self.att(x, x, valid)))
        return self.n2(x + self.drop(self.ff(x)))


class SpatialEncoder(nn.Module):
    """x (B, P, d) tokens of B frames with P pairs each; valid (B, P) float 1/0 or None (all valid) -> (B, P, d)."""

    def __init__(self, d_model: int, n_heads: int, d_ff: int, n_layers: int, dropout: float = 0.0):
        super().__init__()
        self.layers = nn.ModuleList(SpatialLayer(d_model, n_heads, d_ff, dropout) for _ in range(n_layers))

    def forward(self, x: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x, valid)
        return x
