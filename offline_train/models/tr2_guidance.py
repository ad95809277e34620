"""TR²'s time-variant relation guidance (a training-only loss) and the switches of its Table IV ablation.

TR² (time-variant relation guidance on Action Genome) aligns how a pair's relation feature changes from frame to
frame with how the text of its relation changes. Equations as summarised in issue 14, CLIP's text encoder replaced
by all-MiniLM-L6-v2 (``offline_train.embeddings``):

    s_t      = mean over the predicates c holding at t of T("a photo of a {subject} {c} {object}")   (384,)
    r_t      = P(h_t)   the relation feature h_t (the predicate head's input) projected to the text space
    L_guide  = mean over adjacent frames (t-1, t) where the pair is present and labelled at both of
               || (r_t - r_{t-1}) - (s_t - s_{t-1}) ||^2 / 384

The loss exists only in ``forward_train``; the exported ``forward_step`` has no guidance node, so it costs nothing
at inference. Sentences are embedded once for the (subject, predicate, object) triplets of the training set and
held as non-persistent buffers (``set_sentences``): they are training data, not model weights.

Ablation switches (``Tr2Config.spatial`` / ``temporal`` / ``message``): with the spatial encoder off the pair tokens go
straight to the temporal decoder; with the temporal decoder off e_t is the pair's current token (the window state is
still carried, so the I/O contract is unchanged); with the message token off the head sees e_t alone.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

SENTENCE_TEMPLATE = "a photo of a {subject} {predicate} {object}"


@dataclass(frozen=True)
class Tr2Config:
    """TR² ablation switches (all on = the default model) and the guidance loss weight (0 = off)."""

    spatial: bool = True
    temporal: bool = True
    message: bool = True
    guidance: float = 0.0

    def __post_init__(self):
        if not self.guidance >= 0:
            raise ValueError(f"model.tr2.guidance must be >= 0, got {self.guidance!r}")


class CurrentToken(nn.Module):
    """The temporal decoder switched off: window (N, L, d), valid (N, L) -> the current token window[:, -1] (N, d)."""

    def __init__(self, window: int):
        super().__init__()
        self.window = window

    def forward(self, window: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        return window[:, -1]


class NoMessage(nn.Module):
    """The short-term message switched off: (e_t, e_prev) (N, d) each -> e_t (N, d)."""

    def forward(self, e_t: torch.Tensor, e_prev: torch.Tensor) -> torch.Tensor:
        return e_t


def triplet_sentence(subject: str, predicate: str, obj: str) -> str:
    """The TR² sentence; a predicate name that already starts with the subject's name (MEVA's 'person_opens_trunk')
    is not repeated after it."""
    s, p, o = (x.replace("_", " ").replace("/", " or ").strip() for x in (subject, predicate, obj))
    if p.startswith(s + " "):
        p = p[len(s) + 1:]
    return SENTENCE_TEMPLATE.format(subject=s, predicate=p, object=o)


def triplet_keys(subj: torch.Tensor, pred: torch.Tensor, obj: torch.Tensor, n_pred: int, n_obj: int) -> torch.Tensor:
    """int64 key of (subject label, predicate, object label): (s * n_pred + p) * n_obj + o (any broadcast shape)."""
    return (subj * n_pred + pred) * n_obj + obj


def training_triplets(clips) -> np.ndarray:
    """(N, 3) int64 distinct (subject label, predicate, object label) positives over VideoClip/SparseClip ``clips``."""
    seen = set()
    for c in clips:
        if hasattr(c, "row_pair"):
            sl, ol, tg = c.subj_label[c.row_pair], c.obj_label[c.row_pair], c.targets
        else:
            t_idx, p_idx = np.nonzero(c.present)
            sl, ol, tg = c.subj_label[p_idx], c.obj_label[p_idx], c.targets[t_idx, p_idx]
        r, k = np.nonzero(tg)
        seen.update(zip(sl[r].tolist(), k.tolist(), ol[r].tolist()))
    return np.array(sorted(seen), np.int64).reshape(-1, 3)


def sentence_table(objects, predicates, triplets: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """(keys (N,) int64 sorted, embeddings (N, 384) float32) of the triplets' sentences (MiniLM, unit norm)."""
    from offline_train.embeddings import embed_names

    triplets = np.asarray(triplets, np.int64).reshape(-1, 3)
    sentences = [triplet_sentence(objects[s], predicates[p], objects[o]) for s, p, o in triplets]
    keys = triplet_keys(*(torch.from_numpy(triplets[:, i]) for i in range(3)), len(predicates), len(objects))
    emb = torch.from_numpy(embed_names(sentences))
    order = torch.argsort(keys)
    return keys[order], emb[order]


class RelationGuidance(nn.Module):
    """P: relation feature (N, d_in) -> text space (N, E), and the guidance loss of the module docstring."""

    def __init__(self, d_in: int, num_objects: int, num_predicates: int, weight: float, embed_dim: int = 384):
        super().__init__()
        self.proj = nn.Linear(d_in, embed_dim)
        self.weight, self.n_obj, self.n_pred = float(weight), int(num_objects), int(num_predicates)
        self.register_buffer("keys", torch.zeros(0, dtype=torch.long), persistent=False)
        self.register_buffer("sentences", torch.zeros(0, embed_dim), persistent=False)

    def set_sentences(self, keys: torch.Tensor, sentences: torch.Tensor) -> None:
        """keys (N,) int64 sorted ascending (``triplet_keys``), sentences (N, E) float32."""
        keys, sentences = torch.as_tensor(keys, dtype=torch.long), torch.as_tensor(sentences, dtype=torch.float32)
        if keys.ndim != 1 or sentences.shape != (len(keys), self.proj.out_features):
            raise ValueError(f"sentences: expected keys (N,) and sentences (N, {self.proj.out_features}), got "
                             f"{tuple(keys.shape)} and {tuple(sentences.shape)}")
        if len(keys) > 1 and not (keys[1:] > keys[:-1]).all():
            raise ValueError("keys: must be strictly increasing (distinct triplets, sorted)")
        self.keys, self.sentences = keys.to(self.keys.device), sentences.to(self.sentences.device)

    def targets(self, subj: torch.Tensor, obj: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """subj/obj (P,) labels, labels (T, P, C) bool -> s (T, P, E) mean sentence of the holding predicates and
        known (T, P) bool: at least one holding predicate has a sentence in the table."""
        p, c = labels.shape[1], labels.shape[2]
        k = triplet_keys(subj[:, None], torch.arange(c, device=subj.device)[None], obj[:, None], self.n_pred,
                         self.n_obj)                                                    # (P, C)
        if len(self.keys) == 0:
            return labels.new_zeros((*labels.shape[:2], self.sentences.shape[1]), dtype=torch.float32), \
                labels.new_zeros(labels.shape[:2])
        pos = torch.searchsorted(self.keys, k).clamp(max=len(self.keys) - 1)
        found = self.keys[pos] == k                                                     # (P, C)
        emb = self.sentences[pos] * found[..., None]                                    # (P, C, E)
        w = labels.float() * found[None].float()                                        # (T, P, C)
        n = w.sum(-1)                                                                   # (T, P)
        s = torch.einsum("tpc,pce->tpe", w, emb) / n.clamp(min=1.0)[..., None]
        return s, n > 0

    def loss(self, h: torch.Tensor, s: torch.Tensor, ok: torch.Tensor) -> torch.Tensor:
        """h (T, P, d_in) relation features, s (T, P, E) sentence targets, ok (T, P) bool usable -> weighted loss."""
        r = self.proj(h)                                                                # (T, P, E)
        both = ok[1:] & ok[:-1]                                                         # (T-1, P)
        if not both.any():
            return r.sum() * 0.0
        d = (r[1:] - r[:-1]) - (s[1:] - s[:-1])                                         # (T-1, P, E)
        return self.weight * (d[both] ** 2).mean()

    def aux_losses(self, h, subj, obj, labels, present) -> dict[str, torch.Tensor]:
        s, known = self.targets(subj, obj, labels)
        return {"loss_guidance": self.loss(h, s, known & present)}
