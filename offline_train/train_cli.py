"""`vsgg train --config FILE [--preset NAME] [key=value ...]`: train the relation model."""
from __future__ import annotations

import argparse


def add_parser(parser: argparse.ArgumentParser):
    parser.description = ("Train the streaming relation model. Settings: preset < --config YAML < key=value overrides "
                          "(e.g. optim.epochs=3 run.out_dir=runs/x). Writes checkpoints (safetensors + JSON), "
                          "history.json, loss.png and predicate_recall.png under run.out_dir.")
    parser.add_argument("--config", default=None, help="YAML file with TrainConfig keys")
    parser.add_argument("--preset", default=None, help="named preset: tiny (a smoke test of the pipeline, about a "
                        "minute; its model is not useful), default (the shipped synthetic model, ~25 min), meva "
                        "(real MEVA relations); default: default")
    parser.add_argument("--no-resume", action="store_true", help="start over even if run.out_dir has a checkpoint")
    parser.add_argument("--nproc", type=int, default=1, help="data-parallel processes (torchrun; gloo on CPU, nccl on "
                        "GPU): each takes a share of every step's videos, same global batch")
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="config overrides, e.g. optim.epochs=4 train_data.kind=meva")
    return run


def run(args) -> int:
    import os
    import subprocess
    import sys

    if args.nproc < 1:
        raise ValueError(f"--nproc must be >= 1, got {args.nproc}")
    if args.nproc > 1 and "WORLD_SIZE" not in os.environ:
        # relaunch this same command under torchrun; each worker runs it with WORLD_SIZE/RANK set
        argv = ["train", *(["--config", args.config] if args.config else []),
                *(["--preset", args.preset] if args.preset else []), *(["--no-resume"] if args.no_resume else []),
                *args.overrides]
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={args.nproc}",
               "-m", "engine.cli", *argv]
        return subprocess.call(cmd)
    from offline_train.config import load_train_config
    from offline_train.train import train

    if args.config is None and args.preset is None:
        args.preset = "default"
    cfg = load_train_config(args.config, args.overrides, args.preset)
    if args.preset == "tiny":
        print("preset 'tiny' is a smoke test of the training pipeline: its model is not meant to be used")
    out = train(cfg, resume=not args.no_resume)
    print(f"done: checkpoints in {out / 'best'} and {out / 'last'}; plots {out / 'loss.png'}, "
          f"{out / 'predicate_recall.png'}")
    return 0
