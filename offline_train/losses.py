"""Relation loss: binary cross-entropy for 'sigmoid' predicate groups, cross-entropy for 'softmax' groups."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def relation_loss(logits: torch.Tensor, targets: torch.Tensor, present: torch.Tensor, groups,
                  pos_weight: float | torch.Tensor = 1.0,
                  aux: dict[str, torch.Tensor] | None = None, focal_gamma: float = 0.0) -> dict[str, torch.Tensor]:
    """logits (T, P, C), targets (T, P, C) bool, present (T, P) bool -> {'loss', 'loss_<group>'...}.

    Only present pair-frames count. A softmax group contributes only on rows with exactly one positive in the group
    (Action Genome's attention: exactly one label per labelled pair). ``pos_weight`` (a number, or (C,) per predicate)
    > 1 up-weights the rare positives of sigmoid groups. ``aux``: the model's training-only losses
    (``StreamingRelationModel.forward_train``), already weighted: each joins the total and is reported by name.
    ``focal_gamma`` > 0: the focal loss -(1 - p_t)^gamma log p_t in place of the plain cross-entropy (ARN).
    """
    if not focal_gamma >= 0:
        raise ValueError(f"focal_gamma: must be >= 0, got {focal_gamma!r}")
    m = present.reshape(-1)
    lg = logits.reshape(-1, logits.shape[-1])[m]
    tg = targets.reshape(-1, targets.shape[-1])[m].float()
    out = {}
    total = lg.new_zeros(())
    for name, kind, idx in groups:
        ix = torch.as_tensor(idx, dtype=torch.long, device=lg.device)
        gl, gt = lg.index_select(1, ix), tg.index_select(1, ix)
        if len(gl) == 0:
            loss = gl.sum() * 0.0
        elif kind == "sigmoid":
            pw = pos_weight[ix] if torch.is_tensor(pos_weight) else torch.full((len(idx),), float(pos_weight))
            w = torch.where(gt > 0, pw.to(gt).expand_as(gt), torch.ones_like(gt))
            # sum over predicates, mean over pair-frames: each pair-frame weighs the same whatever C is
            bce = F.binary_cross_entropy_with_logits(gl, gt, weight=w, reduction="none")
            if focal_gamma > 0:
                p = torch.sigmoid(gl)
                bce = bce * (1.0 - (p * gt + (1.0 - p) * (1.0 - gt))) ** focal_gamma
            loss = (bce.sum(1)).mean()
        else:
            rows = gt.sum(1) == 1
            if not rows.any():
                loss = gl.sum() * 0.0
            elif focal_gamma > 0:
                logp = torch.log_softmax(gl[rows], 1).gather(1, gt[rows].argmax(1, keepdim=True))[:, 0]
                loss = (-(1.0 - logp.exp()) ** focal_gamma * logp).mean()
            else:
                loss = F.cross_entropy(gl[rows], gt[rows].argmax(1))
        out[f"loss_{name}"] = loss.detach()
        total = total + loss
    for name, loss in (aux or {}).items():
        if not name.startswith("loss_") or name in out:
            raise ValueError(f"aux: loss names must start with 'loss_' and not repeat a group's, got {name!r}")
        out[name] = loss.detach()
        total = total + loss
    out["loss"] = total
    return out
