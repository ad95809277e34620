"""`vsgg ablate --config FILE [--out DIR] [--only NAME ...]`: the papers' ablation, with ONNX Runtime step latency.

The training, evaluation and table live in ``offline_train.ablate``; this module lives in ``export/`` because the
latency figure needs the ONNX export (``export.to_onnx``), which ``offline_train`` may not import.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np


def onnx_step_latency(checkpoint: Path, work: Path, spec) -> dict:
    """Export ``checkpoint`` to ``work/relation.onnx`` (max pairs = spec.pairs) and time ``forward_step`` through
    onnxruntime on 1 CPU thread at spec.pairs pairs: spec.warmup untimed steps, then spec.steps timed ones on a
    fresh random stream carrying its own state. Returns {'latency_ms': median, 'latency_p95_ms': p95} (ms)."""
    from engine.backends.ort import OrtRelationBackend
    from export.to_onnx import export_onnx
    from export.verify import random_state, random_step
    from offline_train.train import load_model

    model, meta = load_model(checkpoint)
    info = export_onnx(model, meta, Path(work) / "relation.onnx", max_pairs=int(spec.pairs))
    rt = OrtRelationBackend(info, "ort-cpu", threads=1)
    rng = np.random.default_rng(0)
    stream = [random_step(info.num_features, len(info.objects), spec.pairs, rng)
              for _ in range(spec.warmup + spec.steps)]
    state = random_state(info.window, info.d_model, spec.pairs, rng)
    ms = []
    for i, x in enumerate(stream):
        t0 = time.perf_counter()
        _, state = rt.step(x, state)
        if i >= spec.warmup:
            ms.append((time.perf_counter() - t0) * 1e3)
    return {"latency_ms": float(np.median(ms)), "latency_p95_ms": float(np.percentile(ms, 95)),
            "latency_pairs": int(spec.pairs)}


def add_parser(parser: argparse.ArgumentParser):
    parser.description = ("Train every variant of an ablation config (the five papers' components switched on/off), "
                          "evaluate each on its held-out data (MEVA dates, synthetic videos), measure flicker and ONNX "
                          "Runtime step latency, and write ablation.md, ablation.csv and ablation.png. Resumable: "
                          "finished variants are skipped, a partial training run resumes.")
    parser.add_argument("--config", required=True, type=Path, help="ablation YAML (offline_train/ablation/*.yaml)")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: runs/ablation/<config name>)")
    parser.add_argument("--only", nargs="+", default=(), metavar="NAME", help="run only these variants (the table "
                        "still lists every finished one)")
    parser.add_argument("--no-latency", action="store_true", help="skip the ONNX export and latency figure")
    return run


def run(args) -> int:
    from offline_train.ablate import load_ablation_config, run_ablation

    cfg = load_ablation_config(args.config)
    out = args.out or Path("runs") / "ablation" / args.config.stem
    rows = run_ablation(cfg, out, only=tuple(args.only), latency=None if args.no_latency else onnx_step_latency)
    print(f"{len(rows)} rows: {out / 'ablation.md'}, {out / 'ablation.csv'}, {out / 'ablation.png'}")
    return 0
