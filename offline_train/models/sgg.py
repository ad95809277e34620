"""StreamingRelationModel: pair tokens -> spatial encoder (per frame) -> causal temporal decoder -> predicate head.

Two entry points compute the same function:

* ``forward_clip`` for training: a whole clip of one video at once, (T, P) pairs with a presence mask.
* ``forward_step`` for streaming/export: one frame, the pairs present in it, and explicit state tensors per pair.

State of one pair (all tensors row-aligned with the pairs of the step):
  window        (P, L-1, d)  spatial tokens of the pair's previous observations, oldest first
  window_valid  (P, L-1)     1.0 where the window slot holds a token, 0.0 before the pair has L-1 observations
  prev_out      (P, d)       temporal decoder output at the pair's previous observation (zeros at the first)
A new pair starts from zeros. A pair's state only advances on frames where the pair is observed.
"""
from __future__ import annotations

import torch
from torch import nn

from offline_train.models.pair_token import PairTokenizer
from offline_train.models.relation_head import RelationHead
from offline_train.models.spatial import SpatialEncoder
from offline_train.models.temporal import ShortTermMessage, TemporalDecoder


class StreamingRelationModel(nn.Module):
    def __init__(self, tokenizer: PairTokenizer, spatial: SpatialEncoder, temporal: TemporalDecoder,
                 message: ShortTermMessage, head: RelationHead, guidance: nn.Module | None = None):
        super().__init__()
        self.tokenizer, self.spatial, self.temporal, self.message, self.head = tokenizer, spatial, temporal, message, head
        if guidance is not None:  # registered only when given: the default model's state dict keeps its keys
            self.guidance = guidance
        self.window = temporal.window
        self.d_model = int(tokenizer.norm.normalized_shape[0])

    # ------------------------------------------------------------------------------------------ streaming
    def forward_step(self, feats, subj_label, obj_label, window, window_valid, prev_out):
        """One frame. feats (P, F) float32, subj_label/obj_label (P,) int64, state as in the module docstring.

        Returns scores (P, C) probabilities and the new state (window, window_valid, prev_out)."""
        logits, new_window, new_valid, e_t = self.step_logits(feats, subj_label, obj_label, window, window_valid,
                                                              prev_out)
        return self.head.scores(logits), new_window, new_valid, e_t

    def step_logits(self, feats, subj_label, obj_label, window, window_valid, prev_out):
        h, new_window, new_valid, e_t = self.step_features(feats, subj_label, obj_label, window, window_valid, prev_out)
        return self.head(h), new_window, new_valid, e_t

    def step_features(self, feats, subj_label, obj_label, window, window_valid, prev_out):
        """The predicate head's input h (P, D) of one frame, and the new state (window, window_valid, prev_out)."""
        s = self.spatial(self.tokenizer(feats, subj_label, obj_label)[None])[0]          # (P, d)
        full = torch.cat([window, s[:, None, :]], dim=1)                                   # (P, L, d)
        valid = torch.cat([window_valid, torch.ones_like(window_valid[:, :1])], dim=1)    # (P, L)
        e_t = self.temporal(full, valid)                                                    # (P, d)
        return self.message(e_t, prev_out), full[:, 1:], valid[:, 1:], e_t

    def step_uncertainty(self, feats, subj_label, obj_label, window, window_valid, prev_out):
        """A head with an uncertainty output (FReMuRe's Bayesian head): its (P, C) per-predicate uncertainty at this
        step, same inputs as forward_step. Other heads raise TypeError."""
        if not hasattr(self.head, "uncertainty"):
            raise TypeError(f"{type(self.head).__name__} has no uncertainty output (model.fremure.head='bayes' has)")
        return self.head.uncertainty(self.step_features(feats, subj_label, obj_label, window, window_valid,
                                                        prev_out)[0])

    @property
    def has_uncertainty(self) -> bool:
        """True when the head has an exported uncertainty output (FReMuRe's Bayesian head)."""
        return hasattr(self.head, "published_uncertainty")

    def forward_step_uncertainty(self, feats, subj_label, obj_label, window, window_valid, prev_out):
        """forward_step's four outputs plus a fifth, the head's ``published_uncertainty`` (P, C) in [0, 1): what
        the exported graph's optional ``uncertainty`` output computes. Heads without one raise TypeError."""
        if not self.has_uncertainty:
            raise TypeError(f"{type(self.head).__name__} has no uncertainty output (model.fremure.head='bayes' has)")
        h, new_window, new_valid, e_t = self.step_features(feats, subj_label, obj_label, window, window_valid, prev_out)
        return self.head.scores(self.head(h)), new_window, new_valid, e_t, self.head.published_uncertainty(h)

    def initial_state(self, num_pairs: int):
        d, w = self.d_model, self.window - 1
        z = torch.zeros
        return z(num_pairs, w, d), z(num_pairs, w), z(num_pairs, d)

    # ------------------------------------------------------------------------------------------ training
    def forward_clip(self, feats, subj_label, obj_label, present):
        """A clip of one video. feats (T, P, F), subj_label/obj_label (P,) int64, present (T, P) bool.

        Returns logits (T, P, C); rows where ``present`` is False are meaningless and must be masked by the caller."""
        h = self.clip_relation_features(feats, subj_label, obj_label, present)
        t_len, p, _ = h.shape
        return self.head(h.reshape(t_len * p, -1)).reshape(t_len, p, -1)

    def forward_train(self, feats, subj_label, obj_label, present, targets):
        """forward_clip plus the switched-on components' training-only losses (each already weighted).

        targets (T, P, C) bool. Returns (logits (T, P, C), {'loss_<name>': scalar tensor}); the dict is empty for
        the default model. Pass the dict as ``relation_loss(..., aux=...)`` so it joins the total."""
        h = self.clip_relation_features(feats, subj_label, obj_label, present)           # (T, P, D)
        t_len, p, _ = h.shape
        flat = h.reshape(t_len * p, -1)
        logits = self.head(flat).reshape(t_len, p, -1)
        aux = {}
        if hasattr(self.head, "aux_losses"):
            m = present.reshape(-1)
            aux.update(self.head.aux_losses(flat[m], logits.reshape(t_len * p, -1)[m],
                                            targets.reshape(t_len * p, -1)[m]))
        if hasattr(self, "guidance"):
            aux.update(self.guidance.aux_losses(h, subj_label, obj_label, targets, present))
        return logits, aux

    def clip_relation_features(self, feats, subj_label, obj_label, present):
        """The predicate head's input for every (frame, pair) of a clip: (T, P, D), D = the head's d_in."""
        t_len, p, _ = feats.shape
        d, w = self.d_model, self.window
        tok = self.tokenizer(feats.reshape(t_len * p, -1), subj_label.repeat(t_len), obj_label.repeat(t_len))
        s = self.spatial(tok.reshape(t_len, p, d), present.float())                        # (T, P, d)

        # Each pair's observations compacted in time order: rank r = how many times it was seen before.
        rank = present.long().cumsum(0) - 1                                                 # (T, P)
        pair_ix = torch.arange(p, device=feats.device)[None].expand(t_len, p)
        flat = (pair_ix * t_len + rank.clamp(min=0))                                        # (T, P) -> compact slot
        compact = torch.zeros(p * t_len, d, dtype=s.dtype, device=s.device)
        sel = present.reshape(-1)
        compact = compact.index_copy(0, flat.reshape(-1)[sel], s.reshape(-1, d)[sel])
        offs = torch.arange(-(w - 1), 1, device=feats.device)                              # (L,)
        wrank = rank[..., None] + offs                                                       # (T, P, L)
        wvalid = (wrank >= 0) & present[..., None]
        widx = pair_ix[..., None] * t_len + wrank.clamp(min=0)
        win = compact[widx.reshape(-1)].reshape(t_len * p, w, d)
        e = self.temporal(win, wvalid.reshape(t_len * p, w).float()).reshape(t_len, p, d)  # (T, P, d)

        # e_{t-1}: decoder output at the pair's previous observation.
        ce = torch.zeros(p * t_len, d, dtype=e.dtype, device=e.device)
        ce = ce.index_copy(0, flat.reshape(-1)[sel], e.reshape(-1, d)[sel])
        prev_idx = pair_ix * t_len + (rank - 1).clamp(min=0)
        prev = ce[prev_idx.reshape(-1)].reshape(t_len, p, d) * (rank >= 1)[..., None].float()
        return self.message(e.reshape(-1, d), prev.reshape(-1, d)).reshape(t_len, p, -1)
