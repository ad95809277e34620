"""Causal temporal decoder over a pair's last L tokens, plus TR²'s short-term message token.

The current token queries a window of the pair's own L most recent tokens (itself included); each key carries a
learned embedding of its age (0 = now, L-1 = oldest), so the decoder sees order without absolute time. Only the past
is in the window, which is what makes the model causal and lets ``forward_step`` carry the window as state.

Short-term message (TR²): m = sigmoid(g([e_t, e_{t-1}])) and the output is [e_t, e_{t-1} * m], where e_{t-1} is the
decoder output at the pair's previous observation (zeros at its first).
"""
from __future__ import annotations

import torch
from torch import nn

from offline_train.models.attention import Attention, FeedForward


class TemporalDecoder(nn.Module):
    """window (N, L, d) oldest..current, valid (N, L) float 1/0 -> e_t (N, d)."""

    def __init__(self, d_model: int, n_heads: int, d_ff: int, window: int, dropout: float = 0.0):
        super().__init__()
        self.window = window
        self.age = nn.Parameter(torch.zeros(window, d_model))   # index 0 = current token
        nn.init.normal_(self.age, std=0.02)
        self.att = Attention(d_model, n_heads, dropout)
        self.ff = FeedForward(d_model, d_ff, dropout)
        self.n1, self.n2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.drop = nn.Dropout(dropout)

    def forward(self, window: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        cur = window[:, -1:, :]                                   # (N, 1, d)
        keys = window + self.age.flip(0)[None]                    # oldest key gets age L-1
        x = self.n1(cur + self.drop(self.att(cur + self.age[0], keys, valid)))
        return self.n2(x + self.drop(self.ff(x)))[:, 0]


class ShortTermMessage(nn.Module):
    """(e_t, e_prev) (N, d) each -> (N, 2d) = [e_t, e_prev * sigmoid(g([e_t, e_prev]))]."""

    def __init__(self, d_model: int):
        super().__init__()
        self.g = nn.Linear(2 * d_model, d_model)

    def forward(self, e_t: torch.Tensor, e_prev: torch.Tensor) -> torch.Tensor:
        m = torch.sigmoid(self.g(torch.cat([e_t, e_prev], dim=-1)))
        return torch.cat([e_t, e_prev * m], dim=-1)
