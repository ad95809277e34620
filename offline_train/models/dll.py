"""DLL (decoupled label learning, VidVRD): predicates as actional x spatial patterns, decoupled and recombined.

Each predicate is one actional pattern, one spatial pattern, or both (``walk_toward`` = walk + toward; ``taller``,
``watch``, ``bite`` are single-pattern), read from a data file (``data/vidvrd_patterns.txt``,
``data/meva_patterns.txt``: MEVA's verb x target). Equations as summarised in issue 14; where the summary leaves
the form open, the choice made here is stated.

* decouplers and pattern classifiers   h_a = D_a(h), h_s = D_s(h);  a = A(h_a) (N, N_a),  s = S(h_s) (N, N_s)
* Map (patterns -> predicates)         z_c = (a_act(c) + s_sp(c)) / 2 for a dual-pattern predicate, else its one
                                       pattern's logit;  z = [a, s] @ Map^T,  Map (C, N_a + N_s)
* mutual calibration                   p <- eta * p + (1 - eta) * Map^-1(Map(p)), ``calibration_steps`` times, on
                                       the pattern probabilities p = sigmoid([a, s]); Map^-1 (N_a + N_s, C) gives a
                                       pattern the mean over the predicates that contain it, so an action pattern
                                       is pulled towards the spatial patterns it co-occurs with and back
* adversarial disentanglement          N_a2s(GRL(h_a)) predicts the spatial pattern distribution, N_s2a(GRL(h_s))
                                       the actional one; L_adv = KL(sg(softmax s) || N_a2s) + KL(sg(softmax a) ||
                                       N_s2a). The gradient reversal layer (GRL: identity forward, -lambda * grad
                                       backward) makes D_a remove what predicts the spatial pattern, and vice versa
* knowledge decoupling                 M (C, C) learnable, initialised to I; m_c = softmax of row c over the
                                       predicates sharing a pattern with c (mask); update loss
                                       L_M = KL(sg(softmax_mask(c)(z)) || m_c) over the positives (r, c)
* head-to-tail transfer                a tail predicate c (least frequent ``tail_fraction``) learns from src(c), the
                                       most frequent non-tail predicate sharing a pattern with it: the soft target
                                       y~_c = max(y_c, alpha_i * m_src(c)[c] * y_src(c)), alpha_i = min(1, alpha_0 +
                                       beta * i) growing with the step i; L_T = gamma_i * BCE(z_tail, y~_tail), gamma_i
                                       ramping linearly from 0 to ``transfer`` over the first ``transfer_warmup`` of
                                       training (this code's schedule).

Only the decouplers, pattern classifiers, Map and calibration are in ``forward`` (and so in the exported graph);
GRL, the adversaries, M and the transfer are training-only (``aux_losses``).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from offline_train.models.relation_head import RelationHead

PATTERN_DIR = Path(__file__).with_name("data")
NONE = "-"


@dataclass(frozen=True)
class DllConfig:
    """DLL switches and weights (off by default)."""

    enabled: bool = False
    patterns: str = "vidvrd"        # 'vidvrd' / 'meva' (data/<name>_patterns.txt) or a path to such a file
    calibration_steps: int = 1
    eta: float = 0.5
    pattern_weight: float = 1.0     # BCE of the pattern classifiers against patterns derived from the labels
    adversarial: float = 0.1        # weight of L_adv
    grl_lambda: float = 1.0
    correlation: float = 0.1        # weight of L_M
    transfer: float = 0.5           # gamma at the end of its ramp (0 = no head-to-tail transfer)
    transfer_warmup: float = 0.3    # fraction of training over which gamma ramps up
    alpha0: float = 0.0
    beta: float = 1e-4
    tail_fraction: float = 1 / 3

    def __post_init__(self):
        if self.calibration_steps < 0:
            raise ValueError(f"model.dll.calibration_steps must be >= 0, got {self.calibration_steps!r}")
        if not 0.0 <= self.eta <= 1.0:
            raise ValueError(f"model.dll.eta must be in [0, 1], got {self.eta!r}")
        for name in ("pattern_weight", "adversarial", "grl_lambda", "correlation", "transfer", "alpha0", "beta"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"model.dll.{name} must be >= 0, got {getattr(self, name)!r}")
        if not 0.0 < self.transfer_warmup <= 1.0:
            raise ValueError(f"model.dll.transfer_warmup must be in (0, 1], got {self.transfer_warmup!r}")
        if not 0.0 < self.tail_fraction < 1.0:
            raise ValueError(f"model.dll.tail_fraction must be in (0, 1), got {self.tail_fraction!r}")


@dataclass(frozen=True)
class PatternMap:
    """predicates (C,) names; actions / spatials pattern names; act / sp (C,) int pattern index or -1."""

    predicates: tuple[str, ...]
    actions: tuple[str, ...]
    spatials: tuple[str, ...]
    act: tuple[int, ...]
    sp: tuple[int, ...]

    @property
    def num_patterns(self) -> int:
        return len(self.actions) + len(self.spatials)

    def incidence(self) -> np.ndarray:
        """(C, N_a + N_s) float32 1 where the predicate contains the pattern."""
        out = np.zeros((len(self.predicates), self.num_patterns), np.float32)
        for c, (a, s) in enumerate(zip(self.act, self.sp)):
            if a >= 0:
                out[c, a] = 1.0
            if s >= 0:
                out[c, len(self.actions) + s] = 1.0
        return out

    def map_matrix(self) -> np.ndarray:
        """Map (C, N_a + N_s): each predicate's row averages its patterns (0.5 / 0.5, or 1 for a single one)."""
        inc = self.incidence()
        return inc / inc.sum(1, keepdims=True)

    def inverse_matrix(self) -> np.ndarray:
        """Map^-1 (N_a + N_s, C): each pattern's row averages the predicates that contain it."""
        inc = self.incidence().T
        return inc / np.maximum(inc.sum(1, keepdims=True), 1.0)

    def share_mask(self) -> np.ndarray:
        """(C, C) bool: predicates i and j share a pattern (the diagonal is True)."""
        inc = self.incidence()
        return (inc @ inc.T) > 0

    def check(self, predicate_names) -> None:
        """ValueError unless the map lists exactly ``predicate_names`` in the same order."""
        if tuple(predicate_names) != self.predicates:
            missing = sorted(set(predicate_names) - set(self.predicates))[:5]
            raise ValueError(f"patterns: the map's {len(self.predicates)} predicates are not the model's "
                             f"{len(tuple(predicate_names))} in order (missing e.g. {missing})")


def load_pattern_map(spec: str) -> PatternMap:
    """'vidvrd', 'meva' or a file path -> PatternMap. File: '#' comment lines, a header line, then
    'predicate<TAB>action<TAB>spatial' with '-' for no pattern."""
    path = PATTERN_DIR / f"{spec}_patterns.txt" if spec in ("vidvrd", "meva") else Path(spec)
    if not path.is_file():
        raise ValueError(f"model.dll.patterns: no pattern map {spec!r} (expected 'vidvrd', 'meva' or a file)")
    preds, acts, sps = [], [], []
    lines = [(i, ln) for i, ln in enumerate(path.read_text().splitlines(), 1) if ln.strip() and ln[0] != "#"]
    for i, ln in lines[1:]:
        parts = ln.split("\t")
        if len(parts) != 3 or not all(p.strip() for p in parts):
            raise ValueError(f"{path}:{i}: expected 'predicate<TAB>action<TAB>spatial', got {ln!r}")
        p, a, s = (x.strip() for x in parts)
        if a == NONE and s == NONE:
            raise ValueError(f"{path}:{i}: predicate {p!r} has neither an actional nor a spatial pattern")
        if p in preds:
            raise ValueError(f"{path}:{i}: predicate {p!r} listed twice")
        preds.append(p)
        acts.append(a)
        sps.append(s)
    actions = tuple(sorted({a for a in acts if a != NONE}))
    spatials = tuple(sorted({s for s in sps if s != NONE}))
    if not preds or not actions or not spatials:
        raise ValueError(f"{path}: needs at least one predicate, one actional and one spatial pattern")
    return PatternMap(tuple(preds), actions, spatials, tuple(actions.index(a) if a != NONE else -1 for a in acts),
                      tuple(spatials.index(s) if s != NONE else -1 for s in sps))


def mutual_calibration(p: torch.Tensor, map_matrix: torch.Tensor, inverse: torch.Tensor, eta: float,
                       steps: int) -> torch.Tensor:
    """p (N, N_a + N_s) pattern probabilities -> p <- eta * p + (1 - eta) * Map^-1(Map(p)), ``steps`` times."""
    for _ in range(steps):
        p = eta * p + (1.0 - eta) * (p @ map_matrix.T) @ inverse.T
    return p


class _GradientReversal(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, lam):
        ctx.lam = lam
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return -ctx.lam * grad, None


def grad_reverse(x: torch.Tensor, lam: float = 1.0) -> torch.Tensor:
    """GRL: identity in the forward pass, gradient multiplied by -lam in the backward pass."""
    return _GradientReversal.apply(x, float(lam))


def transfer_sources(counts, share_mask: np.ndarray, tail_fraction: float) -> np.ndarray:
    """(C,) int64: for a tail predicate (the ``tail_fraction`` least frequent by ``counts``), the most frequent
    non-tail predicate sharing a pattern with it; -1 for the others and for tails with no such predicate."""
    counts = np.asarray(counts, np.float64)
    c = len(counts)
    order = np.argsort(counts, kind="stable")                     # least frequent first
    tail = np.zeros(c, bool)
    tail[order[:int(np.floor(c * tail_fraction))]] = True
    src = np.full(c, -1, np.int64)
    for i in np.flatnonzero(tail):
        cand = np.flatnonzero(share_mask[i] & ~tail)
        if len(cand):
            src[i] = cand[np.argmax(counts[cand])]
    return src


def transfer_schedule(step: int, total: int, cfg: DllConfig) -> tuple[float, float]:
    """(alpha_i, gamma_i) at optimizer step ``step`` of ``total``."""
    alpha = min(1.0, cfg.alpha0 + cfg.beta * step)
    gamma = cfg.transfer * min(1.0, step / max(1.0, cfg.transfer_warmup * total))
    return alpha, gamma


class DecoupledRelationHead(nn.Module):
    """h (N, d_in) -> predicate logits (N, C) through the pattern decomposition of the module docstring.

    Pattern classifier vectors come from text: a pattern's vector is the mean MiniLM embedding of the predicates
    that contain it, projected to d_head (as RelationHead does for predicates)."""

    def __init__(self, d_in: int, predicate_table: torch.Tensor, d_head: int, groups, pmap: PatternMap,
                 cfg: DllConfig):
        super().__init__()
        c = predicate_table.shape[0]
        if len(pmap.predicates) != c:
            raise ValueError(f"model.dll.patterns: the map has {len(pmap.predicates)} predicates, the model {c}")
        self.cfg, self.n_act = cfg, len(pmap.actions)
        self.register_buffer("predicate_table", predicate_table.float())
        self.register_buffer("map_matrix", torch.from_numpy(pmap.map_matrix()))
        self.register_buffer("inverse", torch.from_numpy(pmap.inverse_matrix()))
        self.register_buffer("incidence", torch.from_numpy(pmap.incidence()))
        self.register_buffer("share", torch.from_numpy(pmap.share_mask()))
        self.register_buffer("transfer_src", torch.full((c,), -1, dtype=torch.long))
        self.d_a = nn.Sequential(nn.Linear(d_in, d_head), nn.GELU(), nn.Linear(d_head, d_head))
        self.d_s = nn.Sequential(nn.Linear(d_in, d_head), nn.GELU(), nn.Linear(d_head, d_head))
        self.proj_a = nn.Linear(predicate_table.shape[1], d_head)
        self.proj_s = nn.Linear(predicate_table.shape[1], d_head)
        self.pattern_bias = nn.Parameter(torch.full((pmap.num_patterns,), -2.0))
        self.bias = nn.Parameter(torch.zeros(c))
        self.a2s = nn.Linear(d_head, len(pmap.spatials))
        self.s2a = nn.Linear(d_head, self.n_act)
        self.correlation = nn.Parameter(torch.eye(c))
        self.groups = tuple((str(n), str(k), tuple(int(i) for i in idx)) for n, k, idx in groups)
        self.alpha, self.gamma = transfer_schedule(0, 1, cfg)

    scores = RelationHead.scores

    def pattern_logits(self, h: torch.Tensor):
        """(h_a, h_s, pattern logits [a, s] (N, N_a + N_s))."""
        t = self.inverse @ self.predicate_table                                    # (N_a + N_s, E)
        ha, hs = self.d_a(h), self.d_s(h)
        a = ha @ self.proj_a(t[:self.n_act]).T
        s = hs @ self.proj_s(t[self.n_act:]).T
        return ha, hs, torch.cat([a, s], dim=-1) + self.pattern_bias

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        z = self.pattern_logits(h)[2]
        if self.cfg.calibration_steps:
            p = mutual_calibration(torch.sigmoid(z), self.map_matrix, self.inverse, self.cfg.eta,
                                   self.cfg.calibration_steps)
            z = torch.logit(p.clamp(1e-6, 1.0 - 1e-6))
        return z @ self.map_matrix.T + self.bias

    def set_counts(self, counts) -> None:
        """Training-set positive counts (C,) per predicate -> the head-to-tail transfer sources."""
        src = transfer_sources(counts, self.share.cpu().numpy(), self.cfg.tail_fraction)
        self.transfer_src.copy_(torch.from_numpy(src))

    def set_progress(self, step: int, total: int) -> None:
        """Call at every optimizer step: sets alpha_i and gamma_i of the transfer."""
        self.alpha, self.gamma = transfer_schedule(step, total, self.cfg)

    def correlation_rows(self, rows: torch.Tensor) -> torch.Tensor:
        """m_c for predicates ``rows`` (K,): softmax of M's rows over each predicate's pattern-sharing mask (K, C)."""
        return torch.softmax(self.correlation[rows].masked_fill(~self.share[rows], -1e9), dim=-1)

    def aux_losses(self, h, logits, targets) -> dict[str, torch.Tensor]:
        """h (N, d_in), logits (N, C), targets (N, C) bool of the present pair-frames -> the weighted DLL losses."""
        cfg, y = self.cfg, targets.float()
        ha, hs, z = self.pattern_logits(h)
        if len(h) == 0:
            zero = z.sum() * 0.0 + logits.sum() * 0.0 + self.correlation.sum() * 0.0
            return {k: zero for k in ("loss_dll_pattern", "loss_dll_adv", "loss_dll_corr", "loss_dll_transfer")}
        y_pat = (y @ self.incidence > 0).float()
        out = {"loss_dll_pattern": cfg.pattern_weight * F.binary_cross_entropy_with_logits(
            z, y_pat, reduction="none").sum(1).mean()}
        pa = torch.softmax(z[:, :self.n_act], -1).detach()
        ps = torch.softmax(z[:, self.n_act:], -1).detach()
        q_s = torch.log_softmax(self.a2s(grad_reverse(ha, cfg.grl_lambda)), -1)
        q_a = torch.log_softmax(self.s2a(grad_reverse(hs, cfg.grl_lambda)), -1)
        out["loss_dll_adv"] = cfg.adversarial * (F.kl_div(q_s, ps, reduction="batchmean")
                                                 + F.kl_div(q_a, pa, reduction="batchmean"))
        r, c = torch.nonzero(targets, as_tuple=True)
        if len(r):
            mask = self.share[c]                                                  # (K, C)
            t = torch.softmax(logits[r].detach().masked_fill(~mask, -1e9), -1)
            m = self.correlation_rows(c)
            kl_m = (t * (torch.log(t.clamp(min=1e-12)) - torch.log(m.clamp(min=1e-12)))).sum(-1).mean()
            out["loss_dll_corr"] = cfg.correlation * kl_m
        else:
            out["loss_dll_corr"] = self.correlation.sum() * 0.0
        tails = torch.nonzero(self.transfer_src >= 0).flatten()
        if len(tails) and self.gamma > 0:
            src = self.transfer_src[tails]
            w = self.correlation_rows(src).gather(1, tails[:, None])[:, 0].detach()   # m_src(c)[c]
            soft = torch.maximum(y[:, tails], self.alpha * w[None] * y[:, src])
            out["loss_dll_transfer"] = self.gamma * F.binary_cross_entropy_with_logits(
                logits[:, tails], soft, reduction="none").sum(1).mean()
        else:
            out["loss_dll_transfer"] = logits.sum() * 0.0
        return out


def build_dll_head(cfg: DllConfig, d_in: int, predicate_table: torch.Tensor, d_head: int,
                   groups) -> DecoupledRelationHead:
    return DecoupledRelationHead(d_in, predicate_table, d_head, groups, load_pattern_map(cfg.patterns), cfg)


def set_training_progress(model: nn.Module, step: int, total: int) -> None:
    """Tell every part of ``model`` with a step schedule (DLL's transfer) the optimizer step; no-op otherwise."""
    for m in model.modules():
        if m is not model and hasattr(m, "set_progress"):
            m.set_progress(step, total)
