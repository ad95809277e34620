"""FReMuRe's frequency guidance: frequency gate, dual-branch predicate embedding, Bayesian and GMM-Plus heads.

FReMuRe (frequency-guided relation recognition on Action Genome) conditions the classifier side of the model on how
often each predicate occurs in the training set. Equations as summarised in issue 14 (the forms this code fixes
where the summary leaves a choice are stated next to each class):

* frequency gate        g(f) = sigma(W * log(1/f + eps) + b)
                        x'   = g(f) * LN(x) + (1 - g(f)) * x            (LN: LayerNorm without parameters)
* dual-branch embedding e_c  = (1 - G_c) * B_head(t_c) + G_c * B_tail(t_c),  G_c a learned frequency gate
* Bayesian head         z_c ~ N(mu_c(h), sigma_c^2(h)); Monte-Carlo sampling in training, the mean probability
                        at inference, sigma_c^2 as the uncertainty output
* GMM-Plus head         p(h | c) = sum_k pi_ck N(h; mu_ck, diag(s_ck)),  pi_c = softmax(a_c),
                        s_ck = clamp(softplus(rho_ck) + s_min, s_min, s_max), frequency-aware regulariser on s.

f is a predicate's relative frequency among the positive (pair, frame) labels of the training set, (C,) float in
(0, 1]. It is held as the buffer ``log_inv_freq`` = log(1/f + eps) (C,) float32, so it travels with the checkpoint
and the exported graph folds it; ``set_predicate_frequency`` writes it after ``build_model``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from offline_train.models.relation_head import RelationHead

HEADS = ("linear", "bayes", "gmm")


@dataclass(frozen=True)
class FremureConfig:
    """Switches and sizes of the FReMuRe components (all off by default: the plain TR² head)."""

    gate: bool = False              # frequency-gated LayerNorm of the predicate classifier vectors
    dual_branch: bool = False       # head/tail predicate embedding branches fused by a frequency gate
    head: str = "linear"            # 'linear' (RelationHead), 'bayes' or 'gmm'
    freq_eps: float = 1e-3          # eps of log(1/f + eps)
    bayes_samples: int = 4          # Monte-Carlo samples per training forward
    gmm_components: int = 3         # K Gaussians per predicate
    gmm_var_floor: float = 0.05     # s_min
    gmm_var_max: float = 20.0       # s_max
    gmm_reg: float = 0.01           # weight of the frequency-aware variance regulariser

    def __post_init__(self):
        if self.head not in HEADS:
            raise ValueError(f"model.fremure.head must be one of {HEADS}, got {self.head!r}")
        if not self.freq_eps > 0:
            raise ValueError(f"model.fremure.freq_eps must be > 0, got {self.freq_eps!r}")
        if self.bayes_samples < 1:
            raise ValueError(f"model.fremure.bayes_samples must be >= 1, got {self.bayes_samples!r}")
        if self.gmm_components < 1:
            raise ValueError(f"model.fremure.gmm_components must be >= 1, got {self.gmm_components!r}")
        if not 0 < self.gmm_var_floor < self.gmm_var_max:
            raise ValueError("model.fremure.gmm_var_floor must be > 0 and below model.fremure.gmm_var_max, got "
                             f"{self.gmm_var_floor!r} / {self.gmm_var_max!r}")
        if self.gmm_reg < 0:
            raise ValueError(f"model.fremure.gmm_reg must be >= 0, got {self.gmm_reg!r}")

    @property
    def active(self) -> bool:
        return self.gate or self.dual_branch or self.head != "linear"


def log_inverse_frequency(counts, eps: float) -> torch.Tensor:
    """counts (C,) positive-label counts per predicate -> log(1/f + eps) (C,) float32, f = count / total.

    A predicate never seen gets f = 0.5 / total (half an occurrence), so its gate is the largest but finite."""
    c = torch.as_tensor(np.asarray(counts, np.float64))
    if c.ndim != 1 or len(c) == 0:
        raise ValueError(f"counts: expected a non-empty (C,) vector, got shape {tuple(c.shape)}")
    if not torch.isfinite(c).all() or (c < 0).any():
        raise ValueError("counts: must be finite and >= 0")
    total = float(c.sum())
    if total <= 0:
        raise ValueError("counts: at least one predicate must occur")
    f = c.clamp(min=0.5) / total
    return torch.log(1.0 / f + eps).float()


class FrequencyGate(nn.Module):
    """g(f) = sigmoid(W * log(1/f + eps) + b) per predicate, W kept > 0 (softplus) so g grows as f falls.

    forward(x (C, D)) -> g * LN(x) + (1 - g) * x (C, D); ``gate()`` -> (C,) the g of each predicate. W starts at
    softplus(0) * 0.5 and b at -log(1/0.05): with the typical log-inverse frequencies (2..8) the gate starts
    mostly open for the tail and nearly shut for the head."""

    def __init__(self, num_predicates: int):
        super().__init__()
        self.register_buffer("log_inv_freq", torch.zeros(num_predicates))
        self.w_raw = nn.Parameter(torch.tensor(-0.43))    # softplus(-0.43) ~ 0.5
        self.b = nn.Parameter(torch.tensor(-3.0))

    def gate(self) -> torch.Tensor:
        return torch.sigmoid(F.softplus(self.w_raw) * self.log_inv_freq + self.b)        # (C,)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g = self.gate()[:, None]                                                          # (C, 1)
        return g * F.layer_norm(x, x.shape[-1:]) + (1.0 - g) * x


class DualBranchEmbedding(nn.Module):
    """Predicate text table t (C, E) -> classifier vectors (C, D): e = (1 - G) * B_head(t) + G * B_tail(t).

    B_head is a linear map (the plain head's projection); B_tail an MLP, the capacity the tail predicates get;
    G a FrequencyGate's gate, so the rarer the predicate, the more of B_tail it uses."""

    def __init__(self, embed_dim: int, d_head: int, fuse: FrequencyGate):
        super().__init__()
        self.head_branch = nn.Linear(embed_dim, d_head)
        self.tail_branch = nn.Sequential(nn.Linear(embed_dim, d_head), nn.GELU(), nn.Linear(d_head, d_head))
        self.fuse = fuse

    def forward(self, table: torch.Tensor) -> torch.Tensor:
        g = self.fuse.gate()[:, None]                                                     # (C, 1)
        return (1.0 - g) * self.head_branch(table) + g * self.tail_branch(table)


class GatedPredicateEmbedding(nn.Module):
    """embed (table (C, E) -> (C, D)) followed by a FrequencyGate on the resulting classifier vectors."""

    def __init__(self, embed: nn.Module, gate: FrequencyGate):
        super().__init__()
        self.embed, self.gate = embed, gate

    def forward(self, table: torch.Tensor) -> torch.Tensor:
        return self.gate(self.embed(table))


class BayesianRelationHead(RelationHead):
    """Logits as Gaussians: mu = RelationHead's logit, log sigma^2 = a second pair projection against the same
    predicate vectors plus a bias (starting at sigma^2 = e^-4).

    Training (``self.training``): S reparameterised samples z_s = mu + sigma * eps_s; the returned logits are those
    of the Monte-Carlo mean probability, logit(mean_s sigmoid(z_s)) for sigmoid groups and log(mean_s softmax(z_s))
    for softmax groups, so the unchanged relation loss is the loss of the mean predictive probability.
    Inference: the mean probability by the probit approximation E[sigmoid(z)] ~ sigmoid(mu / sqrt(1 + pi sigma^2 / 8))
    (deterministic, exportable); ``uncertainty(h)`` -> sigma^2 (N, C); ``published_uncertainty(h)`` -> the
    exported ``uncertainty`` output in [0, 1) (N, C)."""

    def __init__(self, d_in: int, predicate_table: torch.Tensor, d_head: int, groups, samples: int,
                 pred_embed: nn.Module | None = None):
        super().__init__(d_in, predicate_table, d_head, groups)
        if pred_embed is not None:
            self.pred_proj = pred_embed
        self.samples = int(samples)
        self.var_proj = nn.Sequential(nn.Linear(d_in, d_head), nn.GELU(), nn.Linear(d_head, d_head))
        nn.init.zeros_(self.var_proj[2].weight)
        nn.init.zeros_(self.var_proj[2].bias)
        self.var_bias = nn.Parameter(torch.full((predicate_table.shape[0],), -4.0))

    def moments(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """h (N, d_in) -> mu (N, C), log sigma^2 (N, C) (clamped to [-10, 6] so exp stays finite)."""
        w = self.pred_proj(self.predicate_table)                                        # (C, D)
        mu = self.pair_proj(h) @ w.T + self.bias
        logvar = (self.var_proj(h) @ w.T + self.var_bias).clamp(-10.0, 6.0)
        return mu, logvar

    def uncertainty(self, h: torch.Tensor) -> torch.Tensor:
        return self.moments(h)[1].exp()

    def published_uncertainty(self, h: torch.Tensor) -> torch.Tensor:
        """h (N, d_in) -> u (N, C) float, dimensionless in [0, 1): u = 1 - 1 / sqrt(1 + pi sigma^2 / 8).

        1 - u is the factor by which the logit's variance sigma^2 (logit units squared) shrinks the mean logit in
        the published probability, sigmoid(mu (1 - u)) (the probit approximation ``forward`` uses at inference).
        Chosen because it reads directly against the score: u = 0, the score is the plain sigmoid(mu); u -> 1, the
        variance has pulled the score to 0.5, whatever mu says. It grows monotonically with sigma^2 alone, like
        1 - exp(-sigma^2), but means something about the published score, and unlike the predictive std of the
        probability it needs no second approximation (the probability's closeness to 0.5 is the score's to say).
        With log sigma^2 clamped to [-10, 6], u lies in [8.9e-6, 0.921]; u = 0.5 at sigma^2 = 24 / pi ~ 7.6."""
        return 1.0 - torch.rsqrt(1.0 + (math.pi / 8.0) * self.uncertainty(h))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        mu, logvar = self.moments(h)
        if not self.training:
            return mu / torch.sqrt(1.0 + (math.pi / 8.0) * logvar.exp())
        z = mu[None] + (0.5 * logvar).exp()[None] * torch.randn((self.samples, *mu.shape), dtype=mu.dtype,
                                                                  device=mu.device)     # (S, N, C)
        log_s = math.log(self.samples)
        out = torch.logsumexp(F.logsigmoid(z), 0) - torch.logsumexp(F.logsigmoid(-z), 0)
        for _, kind, idx in self.groups:
            if kind == "softmax":
                ix = torch.tensor(idx, dtype=torch.long, device=h.device)
                lp = torch.logsumexp(torch.log_softmax(z.index_select(-1, ix), -1), 0) - log_s
                out = out.index_copy(-1, ix, lp)
        return out


class GMMRelationHead(RelationHead):
    """GMM-Plus: each predicate a mixture of K diagonal Gaussians over the projected pair vector u (N, D).

    logit_c = scale * (1/D) * log sum_k pi_ck exp(l_ck) + bias_c, l_ck = -1/2 sum_j [(u_j - mu_ckj)^2 / s_ckj
    + log s_ckj]. Means start at the predicate's text vector (the plain head's projection) plus a learned offset per
    component; s_ckj = clamp(softplus(rho_ckj) + s_min, s_min, s_max). The quadratic form is expanded into matmuls
    (u^2 @ (1/s)^T - 2 u @ (mu/s)^T + sum mu^2/s) so memory is O(N * C * K), not O(N * C * K * D).

    ``aux_losses`` adds the frequency-aware regulariser R = gmm_reg * sum_c w_c * mean_kj relu(-log s_ckj), with
    w_c = log(1/f_c + eps) normalised to mean 1: the rarer the predicate, the more a variance shrinking below 1
    (a mixture collapsing onto its few training points) costs."""

    def __init__(self, d_in: int, predicate_table: torch.Tensor, d_head: int, groups, cfg: FremureConfig,
                 freq: FrequencyGate, pred_embed: nn.Module | None = None):
        super().__init__(d_in, predicate_table, d_head, groups)
        if pred_embed is not None:
            self.pred_proj = pred_embed
        c, k = predicate_table.shape[0], cfg.gmm_components
        self.k, self.var_floor, self.var_max, self.reg = k, cfg.gmm_var_floor, cfg.gmm_var_max, cfg.gmm_reg
        self.offset = nn.Parameter(torch.randn(c, k, d_head) * 0.1)
        self.rho = nn.Parameter(torch.full((c, k, d_head), math.log(math.e - 1.0)))    # softplus(rho) = 1
        self.mix = nn.Parameter(torch.zeros(c, k))
        self.scale = nn.Parameter(torch.tensor(4.0))
        self.freq = freq

    def variances(self) -> torch.Tensor:
        """s (C, K, D), every entry in [var_floor, var_max]."""
        return (F.softplus(self.rho) + self.var_floor).clamp(self.var_floor, self.var_max)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        u = self.pair_proj(h)                                                             # (N, D)
        c, k, d = self.offset.shape
        mu = (self.pred_proj(self.predicate_table)[:, None, :] + self.offset).reshape(c * k, d)
        inv = 1.0 / self.variances().reshape(c * k, d)                                    # (CK, D)
        quad = (u * u) @ inv.T - 2.0 * u @ (mu * inv).T + (mu * mu * inv).sum(-1)         # (N, CK)
        ll = -0.5 * (quad + torch.log(inv).neg().sum(-1))                                 # (N, CK)
        ll = ll.reshape(u.shape[0], c, k) + torch.log_softmax(self.mix, -1)               # (N, C, K)
        # log-sum-exp over the K components, unrolled: ONNX Runtime's ReduceLogSumExp mis-shapes an empty batch
        out = ll[..., 0]
        for j in range(1, k):
            out = torch.logaddexp(out, ll[..., j])
        return self.scale * out / d + self.bias

    def aux_losses(self, h, logits, targets) -> dict[str, torch.Tensor]:
        w = self.freq.log_inv_freq
        w = w / w.mean().clamp(min=1e-6)
        r = (w[:, None, None] * F.relu(-torch.log(self.variances()))).mean()
        return {"loss_gmm_reg": self.reg * r}


def set_predicate_frequency(model: nn.Module, counts, eps: float) -> int:
    """Training-set positive counts (C,) per predicate into every part that uses them: log(1/f + eps) into each
    FrequencyGate, the counts into each part with ``set_counts`` (DLL's head-to-tail transfer). Returns how many
    parts were set; nothing is written when ``counts`` is refused."""
    v = log_inverse_frequency(counts, eps)
    parts = [m for m in model.modules() if isinstance(m, FrequencyGate) or hasattr(m, "set_counts")]
    for m in parts:
        n = len(m.log_inv_freq) if isinstance(m, FrequencyGate) else len(m.predicate_table)
        if n != len(v):
            raise ValueError(f"counts: {len(v)} predicates, the model has {n}")
    with torch.no_grad():
        for m in parts:
            if isinstance(m, FrequencyGate):
                m.log_inv_freq.copy_(v)
            else:
                m.set_counts(np.asarray(counts, np.float64))
    return len(parts)


def build_fremure_head(cfg: FremureConfig, d_in: int, predicate_table: torch.Tensor, d_head: int,
                       groups) -> RelationHead:
    """The predicate head with the switched-on FReMuRe parts (``cfg.active`` must be True)."""
    n = predicate_table.shape[0]
    embed = None
    if cfg.dual_branch:
        embed = DualBranchEmbedding(predicate_table.shape[1], d_head, FrequencyGate(n))
    if cfg.gate:
        embed = GatedPredicateEmbedding(embed or nn.Linear(predicate_table.shape[1], d_head), FrequencyGate(n))
    if cfg.head == "bayes":
        return BayesianRelationHead(d_in, predicate_table, d_head, groups, cfg.bayes_samples, embed)
    if cfg.head == "gmm":
        return GMMRelationHead(d_in, predicate_table, d_head, groups, cfg, FrequencyGate(n), embed)
    head = RelationHead(d_in, predicate_table, d_head, groups)
    head.pred_proj = embed  # the head computes its classifier vectors as pred_proj(predicate_table)
    return head
