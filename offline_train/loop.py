"""train_one_epoch and evaluate over lists of VideoClip. No argument parsing, no globals."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from offline_train.clips import VideoClip
from offline_train.config import OptimConfig
from offline_train.losses import relation_loss
from offline_train.models.dll import set_training_progress


@dataclass(frozen=True)
class LossSpec:
    """How predicates are scored: groups ((name, 'sigmoid' | 'softmax', predicate indices), ...) and the sigmoid
    groups' positive weight (a number, or a (C,) tensor per predicate; offline_train.losses.relation_loss)."""

    groups: tuple
    pos_weight: float | torch.Tensor = 1.0
    focal_gamma: float = 0.0     # > 0: focal loss on sigmoid groups (ARN)


def clip_tensors(c: VideoClip, device="cpu"):
    return (torch.from_numpy(c.feats).to(device), torch.from_numpy(c.subj_label).to(device),
            torch.from_numpy(c.obj_label).to(device), torch.from_numpy(c.present).to(device),
            torch.from_numpy(c.targets).to(device))


def lr_at(step: int, total: int, base: float, warmup: int) -> float:
    """Linear warm-up then cosine decay to 5 % of ``base``."""
    if step < warmup:
        return base * (step + 1) / warmup
    frac = (step - warmup) / max(1, total - warmup)
    return base * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(frac, 1.0))))


def train_one_epoch(model, clips: list[VideoClip], optimizer, rng: np.random.Generator, optim: OptimConfig,
                    loss: LossSpec, step: int, total_steps: int, epoch: int, progress: bool = True,
                    rank: int = 0, world: int = 1) -> tuple[dict, int]:
    """One pass over ``clips`` in random order, a random crop of ``optim.clip_len`` frames each,
    ``optim.videos_per_step`` videos per optimizer step; the learning rate follows ``lr_at`` from global ``step`` of
    ``total_steps``. Returns (mean losses, new global step).

    Data parallel (``world`` > 1, torch.distributed initialised): every rank draws the same crops from the same
    ``rng`` and computes the videos j of each step with j % world == rank; the gradients are summed over ranks, so
    a step is the same as one process's with the same global batch (up to float summation order)."""
    clip_len, videos_per_step = optim.clip_len, optim.videos_per_step
    model.train()
    order = rng.permutation(np.repeat(np.arange(len(clips)), optim.crops_per_video))
    sums: dict[str, float] = {}
    n = 0
    bar = tqdm(range(0, len(order), videos_per_step), desc=f"epoch {epoch}", disable=not progress, leave=False)
    for b in bar:
        for g in optimizer.param_groups:
            g["lr"] = lr_at(step, total_steps, optim.lr, optim.warmup_steps)
        set_training_progress(model, step, total_steps)  # DLL's head-to-tail schedules; a no-op otherwise
        optimizer.zero_grad(set_to_none=True)
        batch = [clips[i] for i in order[b:b + videos_per_step]]
        for j, c in enumerate(batch):
            start = int(rng.integers(0, max(1, c.num_frames - clip_len + 1)))  # drawn on every rank: same stream
            start = _crop_with_pairs(c, start, clip_len)
            if start is None or j % world != rank:
                continue  # no frame of this video has two entities at once: nothing to learn from
            feats, sl, ol, present, targets = clip_tensors(c.crop(start, clip_len, optim.max_pairs))
            logits, aux = model.forward_train(feats, sl, ol, present, targets)
            losses = relation_loss(logits, targets, present, loss.groups, loss.pos_weight, aux=aux,
                                   focal_gamma=loss.focal_gamma)
            (losses["loss"] / len(batch)).backward()
            for k, v in losses.items():
                sums[k] = sums.get(k, 0.0) + float(v.detach())
            n += 1
        if world > 1:
            _sum_gradients(model)
        torch.nn.utils.clip_grad_norm_(model.parameters(), optim.grad_clip)
        optimizer.step()
        step += 1
        if n:
            bar.set_postfix(loss=f"{sums['loss'] / n:.4f}")
    if world > 1:
        sums, n = _sum_counts(sums, n, sorted(set(sums) | {"loss"} | {f"loss_{g[0]}" for g in loss.groups}))
    if n == 0:
        raise ValueError(f"epoch {epoch}: none of the {len(clips)} training videos has a frame where two entities are "
                         "present together, so there is no pair to train on (check the dataset's boxes and splits)")
    return {k: v / n for k, v in sums.items()}, step


def _sum_gradients(model) -> None:
    """All-reduce (sum) every gradient over the ranks, one flat buffer (missing gradients count as zeros)."""
    import torch.distributed as dist
    params = [p for p in model.parameters() if p.requires_grad]
    flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in params])
    dist.all_reduce(flat)
    k = 0
    for p in params:
        p.grad = flat[k:k + p.numel()].view_as(p).clone()
        k += p.numel()


def _sum_counts(sums: dict, n: int, keys: list[str]) -> tuple[dict, int]:
    """Loss sums and item counts of this epoch added over the ranks (for the logged means); ``keys`` the same on
    every rank, also on one that computed nothing."""
    import torch.distributed as dist
    t = torch.tensor([float(n)] + [sums.get(k, 0.0) for k in keys], dtype=torch.float64)
    dist.all_reduce(t)
    return {k: float(v) for k, v in zip(keys, t[1:])}, int(t[0])


def _crop_with_pairs(c: VideoClip, start: int, clip_len: int) -> int | None:
    """``start`` if the crop [start, start + clip_len) holds a frame with a present pair; else the start of the
    crop centred on the nearest such frame (deterministic: the random stream, hence seeded runs, is unchanged);
    None when the video has no such frame. Videos where entities rarely co-occur (real annotations) would otherwise
    lose most of their crops."""
    has = c.frames_with_pairs()
    if has[start:start + clip_len].any():
        return start
    frames = np.flatnonzero(has)
    if len(frames) == 0:
        return None
    f = int(frames[np.argmin(np.abs(frames - start))])
    return int(np.clip(f - clip_len // 2, 0, max(0, c.num_frames - clip_len)))


@torch.no_grad()
def evaluate(model, clips: list[VideoClip], loss: LossSpec, k: int = 5, window: int = 256, max_pairs: int = 0) -> dict:
    """Validation loss and a frame-level ranking metric on whole videos.

    mean_recall@k: for each predicate, the fraction of its positive (pair, frame)s where it is among the pair's
    top-k predicted predicates, averaged over predicates that occur. precision@1: fraction of labelled
    (pair, frame)s whose top-1 predicted predicate is a true one. The official VidVRD metrics are in `vsgg eval`.
    Long videos (SparseClip) are scored in consecutive windows of ``window`` frames of at most ``max_pairs`` pairs,
    each from an empty model state; short ones (VideoClip) whole.
    """
    model.eval()
    loss_sum, n = 0.0, 0
    hits = None
    counts = None
    p1_hit = p1_n = 0
    for c in (w for clip in clips for w in clip.windows(window, max_pairs)):
        feats, sl, ol, present, targets = clip_tensors(c)
        if not present.any():
            continue
        logits = model.forward_clip(feats, sl, ol, present)
        loss_sum += float(relation_loss(logits, targets, present, loss.groups, loss.pos_weight)["loss"])
        n += 1
        lg, tg = logits[present], targets[present]                 # (N, C)
        if hits is None:
            hits = torch.zeros(tg.shape[1])
            counts = torch.zeros(tg.shape[1])
        topk = lg.topk(min(k, lg.shape[1]), dim=1).indices
        in_top = torch.zeros_like(tg).scatter_(1, topk, True)
        hits += (in_top & tg).sum(0).float()
        counts += tg.sum(0).float()
        labelled = tg.any(1)
        p1_hit += int(tg[labelled].gather(1, lg[labelled].argmax(1, keepdim=True)).sum())
        p1_n += int(labelled.sum())
    occurring = counts > 0 if counts is not None else torch.zeros(0, dtype=torch.bool)
    per_pred = (hits[occurring] / counts[occurring]) if occurring.any() else torch.zeros(0)
    return {"val_loss": loss_sum / max(n, 1), f"mean_recall@{k}": float(per_pred.mean()) if len(per_pred) else 0.0,
            "precision@1": p1_hit / max(p1_n, 1),
            "per_predicate_recall": {int(i): float(hits[i] / counts[i]) for i in torch.nonzero(occurring).flatten()}}
