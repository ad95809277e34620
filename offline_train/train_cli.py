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
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="config overrides, e.g. optim.epochs=4 train_data.kind=meva")
    return run


def run(args) -> int:
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
