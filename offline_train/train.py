"""Training entry point: config -> data -> model -> epochs -> checkpoints, metrics and plots. Resumable."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from engine.config import from_dict, to_dict
from engine.vocab import Vocabulary
from offline_train.checkpoint import (CheckpointError, CheckpointMeta, load_optimizer_state, load_weights, read_meta,
                                      save_checkpoint)
from offline_train.clips import feature_stats, make_clip, predicate_pos_weights
from offline_train.config import TrainConfig
from offline_train.data.registry import dataset_vocabularies, load_dataset, predicate_groups
from offline_train.embeddings import EMBED_DIM, embed_names
from offline_train.loop import LossSpec, evaluate, train_one_epoch
from offline_train.models import MODEL_VERSION, build_model
from offline_train.models.training_data import attach_training_data
from offline_train.sparse_clips import clip_prior, make_sparse_clip
from offline_train.plots import plot_losses, plot_predicate_recall


def head_groups(data_cfg):
    """((name, kind, indices), ...) covering every predicate once: one sigmoid group, or AG's groups with a
    softmax over attention (exactly one attention label per pair) and sigmoids for spatial and contacting."""
    _, predicates = dataset_vocabularies(data_cfg)
    groups = predicate_groups(data_cfg)
    if not groups:
        return (("all", "sigmoid", tuple(range(len(predicates)))),)
    return tuple((name, "softmax" if name == "attention" else "sigmoid", tuple(idx)) for name, idx in groups.items())


def build_clips(anns, objects: Vocabulary, predicates: Vocabulary, lag: int, desc: str, progress: bool,
                sparse: bool = False):
    """Training clips of ``anns``: dense VideoClips, or SparseClips (present pair-frames only) for long videos."""
    make = make_sparse_clip if sparse else make_clip
    return [make(a, objects, predicates, lag) for a in tqdm(anns, desc=desc, disable=not progress, leave=False)]


def uses_sparse_clips(cfg: TrainConfig) -> bool:
    return cfg.clip_store == "sparse" or (cfg.clip_store == "auto" and cfg.train_data.kind == "meva")


def train(cfg: TrainConfig, resume: bool = True) -> Path:
    """Train with ``cfg``; writes ``<out_dir>/last`` and ``<out_dir>/best`` checkpoints, history.json and PNG plots.

    With ``resume`` and a ``last`` checkpoint of the same config in out_dir, training continues from its epoch.
    Started by torchrun (WORLD_SIZE > 1, ``vsgg train --nproc N``), every rank trains on its share of each step's
    videos and the gradients are summed (gloo on CPU); rank 0 alone validates, writes and prints."""
    rank, world = _init_distributed()
    main = rank == 0
    out = Path(cfg.run.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if cfg.run.threads:
        torch.set_num_threads(cfg.run.threads)
    torch.manual_seed(cfg.run.seed)
    t0 = time.time()

    objects, predicates = dataset_vocabularies(cfg.train_data)
    vo, vp = dataset_vocabularies(cfg.val_data)
    if vo.names != objects.names or vp.names != predicates.names:
        raise ValueError("train_data and val_data use different vocabularies")
    lag, prog = cfg.feature_lag, cfg.run.progress and main
    train_anns = load_dataset(cfg.train_data, prog)
    sparse = uses_sparse_clips(cfg)
    train_clips = build_clips(train_anns, objects, predicates, lag, "features (train)", prog, sparse)
    val_clips = build_clips(load_dataset(cfg.val_data, prog), objects, predicates, lag, "features (val)", prog,
                            sparse)
    if not train_clips or not val_clips:
        raise ValueError("train_data and val_data must each hold at least one video")
    groups = head_groups(cfg.train_data)
    loss_spec = LossSpec(groups, torch.from_numpy(predicate_pos_weights(train_clips, cfg.optim.pos_weight,
                                                                       cfg.optim.balance)))

    prior = clip_prior(train_clips, len(objects), len(predicates))  # the baseline `vsgg eval` compares against
    model = build_model(cfg.model, train_clips[0].feats.shape[-1], embed_names(objects.names),
                        embed_names(predicates.names), groups)
    mean, std = feature_stats(train_clips)
    model.tokenizer.feat_mean.copy_(torch.from_numpy(mean))
    model.tokenizer.feat_std.copy_(torch.from_numpy(std))
    if cfg.run.init_from:
        copied = init_weights(model, cfg.run.init_from)
        if main:
            print(f"initialised {len(copied)} of {len(model.state_dict())} tensors from {cfg.run.init_from}")
    attach_training_data(model, cfg.model, train_clips, objects.names, predicates.names)  # papers' components
    if cfg.model.arn.enabled:
        loss_spec = LossSpec(loss_spec.groups, loss_spec.pos_weight, cfg.model.arn.focal_gamma)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay)

    cfg_dict = to_dict(cfg)
    meta = CheckpointMeta(config=cfg_dict, objects=objects.names, predicates=predicates.names, groups=groups,
                          model_version=MODEL_VERSION)
    start_epoch, step, best = 0, 0, -1.0
    if resume and (out / "last" / "checkpoint.json").is_file():
        old = read_meta(out / "last")
        # the old config read back through today's dataclasses, so fields added since (with defaults) still match
        if _without_epochs(to_dict(from_dict(TrainConfig, old.config))) != _without_epochs(cfg_dict):
            raise CheckpointError(f"{out / 'last'} was trained with another config (only optim.epochs may change "
                                  "on resume); use a new run.out_dir or resume=False")
        model.load_state_dict(load_weights(out / "last"))
        state = load_optimizer_state(out / "last", old)
        if state is not None:
            opt.load_state_dict(state)
        start_epoch, step, meta.history = old.epoch, old.step, old.history
        # time_s stays the run's cumulative wall time (this process's data generation included)
        t0 -= old.history[-1].get("time_s", 0.0) if old.history else 0.0
        best = max((h.get(f"mean_recall@{cfg.run.eval_k}", -1.0) for h in old.history), default=-1.0)
        if start_epoch >= cfg.optim.epochs:
            _finish_distributed(world)
            if not main:
                return out
            print(f"{out} is already complete ({start_epoch} of {cfg.optim.epochs} epochs): nothing to do. Train more "
                  f"with optim.epochs=N (N > {start_epoch}), or start over with --no-resume")
            return out
        if main:
            print(f"resuming from {out / 'last'} at epoch {start_epoch} of {cfg.optim.epochs}")

    steps_per_epoch = -(-len(train_clips) // cfg.optim.videos_per_step)
    total = steps_per_epoch * cfg.optim.epochs
    for epoch in range(start_epoch, cfg.optim.epochs):
        rng = np.random.default_rng([cfg.run.seed, epoch])  # per-epoch stream: resuming replays the same order
        losses, step = train_one_epoch(model, train_clips, opt, rng, cfg.optim, loss_spec, step, total, epoch + 1,
                                       progress=prog, rank=rank, world=world)
        if not main:
            continue
        ev = evaluate(model, val_clips, loss_spec, k=cfg.run.eval_k, window=cfg.run.val_window,
                      max_pairs=cfg.optim.max_pairs)
        per_pred = {predicates.names[i]: v for i, v in ev.pop("per_predicate_recall").items()}
        row = {"epoch": epoch + 1, "step": step, "time_s": round(time.time() - t0, 1), **losses, **ev}
        meta.history.append(row)
        meta.epoch, meta.step, meta.metrics = epoch + 1, step, {**ev, "per_predicate_recall": per_pred}
        print(f"epoch {epoch + 1}/{cfg.optim.epochs}  loss {losses.get('loss', 0):.4f}  val_loss "
              f"{ev['val_loss']:.4f}  val mR@{cfg.run.eval_k} {ev[f'mean_recall@{cfg.run.eval_k}']:.3f}  "
              f"val P@1 {ev['precision@1']:.3f}  ({row['time_s']:.0f} s)")
        save_checkpoint(out / "last", model, meta, opt)
        np.save(out / "last" / "prior.npy", prior)
        score = ev[f"mean_recall@{cfg.run.eval_k}"]
        if score > best:
            best = score
            save_checkpoint(out / "best", model, meta)
            np.save(out / "best" / "prior.npy", prior)
        plot_losses(meta.history, out / "loss.png")
        plot_predicate_recall(per_pred, out / "predicate_recall.png",
                              f"val per-predicate recall@{cfg.run.eval_k} (epoch {epoch + 1})")
    if main:
        (out / "history.json").write_text(json.dumps(meta.history, indent=1))
    _finish_distributed(world)
    return out


def _init_distributed() -> tuple[int, int]:
    """(rank, world size): (0, 1) for a plain process; under torchrun, the process group is joined (gloo on CPU,
    nccl when CUDA is available)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1
    import torch.distributed as dist
    if not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return dist.get_rank(), world


def _finish_distributed(world: int) -> None:
    if world > 1:
        import torch.distributed as dist
        dist.barrier()
        dist.destroy_process_group()


# Buffers that belong to the new data, never to the checkpoint a run starts from: the label / predicate text
# embedding tables (other vocabularies) and the feature normalisation (other cameras, other motion).
_DATA_BUFFERS = ("tokenizer.label_table", "tokenizer.feat_mean", "tokenizer.feat_std", "head.predicate_table")


def init_weights(model, path: str | Path) -> list[str]:
    """Copy into ``model`` every tensor of checkpoint ``path`` whose name and shape match, except the data buffers;
    returns the names copied. A checkpoint of another model version, or one sharing no tensor, is refused."""
    meta = read_meta(path)
    if meta.model_version != MODEL_VERSION:
        raise CheckpointError(f"{path}: model version {meta.model_version}, this code builds version {MODEL_VERSION}")
    src = load_weights(path)
    own = model.state_dict()
    copied = [k for k, v in src.items() if k in own and k not in _DATA_BUFFERS and own[k].shape == v.shape]
    if not copied:
        raise CheckpointError(f"{path}: no tensor matches this model's names and shapes (another model config?)")
    model.load_state_dict({**own, **{k: src[k] for k in copied}})
    return copied


def _without_epochs(cfg: dict) -> dict:
    """The config minus what may change on resume: more epochs, a moved run folder, threads, progress bars."""
    c = json.loads(json.dumps(cfg))
    c.get("optim", {}).pop("epochs", None)
    for k in ("out_dir", "progress", "threads"):
        c.get("run", {}).pop(k, None)
    return c


def load_model(path: str | Path, device: str = "cpu"):
    """(model in eval mode, CheckpointMeta) from a checkpoint directory; version/format problems raise CheckpointError."""
    meta = read_meta(path)
    if meta.model_version != MODEL_VERSION:
        raise CheckpointError(f"{path}: model version {meta.model_version}, this code builds version {MODEL_VERSION}")
    cfg = from_dict(TrainConfig, meta.config)
    n_obj, n_pred = len(meta.objects), len(meta.predicates)
    model = build_model(cfg.model, meta.num_features, torch.zeros(n_obj, EMBED_DIM), torch.zeros(n_pred, EMBED_DIM),
                        meta.groups)
    try:
        model.load_state_dict(load_weights(path))
    except RuntimeError as e:
        raise CheckpointError(f"{path}: weights do not match the model in its config: {e}") from e
    return model.to(device).eval(), meta
