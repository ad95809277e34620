"""Multi-head attention written out by hand, so it exports to ONNX with a dynamic number of pairs.

ENVIRONMENT.md: nn.MultiheadAttention bakes the batch size into reshapes under the legacy exporter and a bare
TransformerEncoderLayer fails to export; reshaping through ``x.shape`` avoids both traps with either exporter.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

MASK_VALUE = -1e9  # additive mask; finite so a row with every key masked gives uniform weights, never NaN


class Attention(nn.Module):
    """Queries (B, Q, d) attend to keys/values (B, K, d); ``key_valid`` (B, K) float 1/0 marks usable keys."""

    def __init__(self, d_model: int, n_heads: int, dropout: float = 0.0):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model {d_model} is not divisible by n_heads {n_heads}")
        self.h, self.dk = n_heads, d_model // n_heads
        self.q, self.k, self.v = (nn.Linear(d_model, d_model) for _ in range(3))
        self.out = nn.Linear(d_model, d_model)
        self.drop = nn.Dropout(dropout)

    def forward(self, x_q: torch.Tensor, x_kv: torch.Tensor, key_valid: torch.Tensor | None = None) -> torch.Tensor:
        b, nq, d = x_q.shape
        nk = x_kv.shape[1]
        q = self.q(x_q).reshape(b, nq, self.h, self.dk).transpose(1, 2)   # (B, h, Q, dk)
        k = self.k(x_kv).reshape(b, nk, self.h, self.dk).transpose(1, 2)  # (B, h, K, dk)
        v = self.v(x_kv).reshape(b, nk, self.h, self.dk).transpose(1, 2)
        att = q @ k.transpose(-1, -2) * (self.dk ** -0.5)                  # (B, h, Q, K)
        if key_valid is not None:
            att = att + (1.0 - key_valid)[:, None, None, :] * MASK_VALUE
        att = self.drop(F.softmax(att, dim=-1))
        y = (att @ v).transpose(1, 2).reshape(b, nq, d)                    # (B, Q, d)
        return self.out(y)


class FeedForward(nn.Module):
    def __init__(self, d_model: int, d_ff: int, dropout: float = 0.0):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(d_model, d_ff), nn.GELU(), nn.Dropout(dropout), nn.Linear(d_ff, d_model))

    def forward(self, x):
        return self.net(x)
