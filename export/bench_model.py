"""``vsgg bench model``: relation-model step latency, torch eager vs the exported model, in one process.

The model is a checkpoint (``--checkpoint``; default: the shipped default model's checkpoint when present, else a
random-weight model of the default architecture and the VidVRD vocabulary — latency does not depend on weights).
It is exported to ONNX in a temporary directory and run through the engine's backends. Each pair count gets its
own stream: fresh random features every step, each runtime carrying its own state, as the engine does; runtimes
are timed in alternating blocks so that load from other processes hits all of them alike. Timed: numpy inputs in,
numpy outputs out (host <-> device copies included on the GPU), backend input validation included.

--device cpu:  torch eager (torch threads = --threads) vs onnxruntime CPU (intra-op threads = --threads).
--device cuda: torch eager, torch CUDA graphs, onnxruntime CUDA (if onnxruntime-gpu), TensorRT (if installed).
Figures per pair count: median / p95 ms per step and pairs/s for each runtime, and the speed-up of each runtime
over torch eager (ratio of medians).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

DEFAULT_PAIRS = (10, 90, 380, 1000)  # 380 = 20 entities, all ordered pairs


def _load(checkpoint: Path | None, work: Path):
    from offline_train.train import load_model
    from export.verify import random_checkpoint

    default = Path(__file__).resolve().parents[1] / "engine" / "models" / "default" / "checkpoint"
    if checkpoint is None and (default / "checkpoint.json").is_file():
        checkpoint = default
    if checkpoint is None:
        checkpoint, source = random_checkpoint(work / "random_checkpoint"), "random weights, default architecture"
    else:
        source = str(checkpoint)
    model, meta = load_model(checkpoint)
    return model, meta, source


class _TorchEager:
    def __init__(self, model, device: str):
        import torch
        self.torch, self.model, self.device = torch, model.to(device).eval(), device

    def step(self, inputs, state):
        torch, dev = self.torch, self.device
        with torch.inference_mode():
            args = [torch.from_numpy(a).to(dev, non_blocking=True) for a in (*inputs, *state)]
            out = self.model.forward_step(*args)
            out = [o.cpu().numpy() for o in out]  # .cpu() synchronises the stream
        return out[0], tuple(out[1:])


class _TorchCudaGraph:
    """forward_step captured once per pair count in a CUDA graph; inputs copied into its static buffers."""

    def __init__(self, model):
        import torch
        self.torch, self.model, self.graphs = torch, model.cuda().eval(), {}

    def _graph(self, p, inputs, state):
        torch = self.torch
        static = [torch.from_numpy(np.ascontiguousarray(a)).cuda() for a in (*inputs, *state)]
        s = torch.cuda.Stream()
        s.wait_stream(torch.cuda.current_stream())
        with torch.inference_mode(), torch.cuda.stream(s):
            for _ in range(3):  # warm-up on a side stream, as graph capture requires
                self.model.forward_step(*static)
        torch.cuda.current_stream().wait_stream(s)
        g = torch.cuda.CUDAGraph()
        with torch.inference_mode(), torch.cuda.graph(g):
            out = self.model.forward_step(*static)
        self.graphs[p] = (g, static, out)
        return self.graphs[p]

    def step(self, inputs, state):
        p = len(inputs[0])
        g, static, out = self.graphs.get(p) or self._graph(p, inputs, state)
        for buf, a in zip(static, (*inputs, *state)):
            buf.copy_(self.torch.from_numpy(np.ascontiguousarray(a)), non_blocking=True)
        g.replay()
        res = [o.cpu().numpy() for o in out]
        return res[0], tuple(res[1:])


def _runtimes(model, info, device: str, threads: int, work: Path) -> tuple[dict, list[str]]:
    """name -> object with step(inputs, state); plus notes on runtimes that could not run."""
    from engine.backends.base import BackendUnavailable
    from engine.backends.ort import OrtRelationBackend

    notes = []
    if device == "cpu":
        return {"torch": _TorchEager(model, "cpu"), "ort": OrtRelationBackend(info, "ort-cpu", threads)}, notes
    import torch
    if not torch.cuda.is_available():
        raise ValueError("--device cuda: torch sees no CUDA device")
    rts = {"torch": _TorchEager(model, "cuda"), "cuda_graph": _TorchCudaGraph(model)}
    try:
        rts["ort_cuda"] = OrtRelationBackend(info, "ort-cuda", threads)
    except (BackendUnavailable, ValueError, RuntimeError) as e:
        notes.append(f"onnxruntime CUDA not run: {e}")
    try:
        from engine.backends.trt import TrtRelationBackend
        from export.to_tensorrt import build_tensorrt_engine
        engine = build_tensorrt_engine(info.path, work / "relation.engine", max_pairs=info.max_pairs,
                                       opt_pairs=min(380, info.max_pairs))
        rts["tensorrt"] = TrtRelationBackend(engine.path, info)
    except (BackendUnavailable, ValueError, RuntimeError) as e:
        notes.append(f"TensorRT not run: {e}")
    return rts, notes


def run_benchmark(checkpoint: Path | None = None, pairs=DEFAULT_PAIRS, steps: int = 200, warmup: int = 20,
                  device: str = "cpu", threads: int = 1, seed: int = 0, blocks: int = 5) -> dict:
    """Median / p95 ms per step and pairs/s of every runtime at each pair count (see the module docstring)."""
    import torch
    from tqdm import tqdm

    from export.to_onnx import export_onnx
    from export.verify import random_state, random_step

    torch.set_num_threads(max(threads, 1))
    with tempfile.TemporaryDirectory(prefix="vsgg_bench_model_") as tmp:
        work = Path(tmp)
        model, meta, source = _load(checkpoint, work)
        info = export_onnx(model, meta, work / "relation.onnx", max_pairs=max(max(pairs), 1))
        runtimes, notes = _runtimes(model, info, device, threads, work)
        figures = {"device": device, "threads": threads, "model": source, "d_model": info.d_model,
                   "window": info.window, "num_predicates": len(info.predicates), "steps": steps, "notes": notes}
        rng = np.random.default_rng(seed)
        for p in tqdm(pairs, desc="bench model", unit="size", file=sys.stderr):
            stream = [random_step(info.num_features, len(info.objects), p, rng) for _ in range(warmup + steps)]
            state0 = random_state(info.window, info.d_model, p, rng)
            states = {name: state0 for name in runtimes}
            times = {name: [] for name in runtimes}
            for name, rt in runtimes.items():  # warm-up: allocation, kernel selection, graph capture
                for x in stream[:warmup]:
                    _, states[name] = rt.step(x, states[name])
            per_block = -(-steps // blocks)
            for b in range(blocks):
                chunk = stream[warmup + b * per_block: warmup + min((b + 1) * per_block, steps)]
                for name, rt in runtimes.items():
                    for x in chunk:
                        t0 = time.perf_counter()
                        _, states[name] = rt.step(x, states[name])
                        times[name].append((time.perf_counter() - t0) * 1e3)
            fig = {}
            for name, ms in times.items():
                med = float(np.median(ms))
                fig[f"{name}_median_ms"] = med
                fig[f"{name}_p95_ms"] = float(np.percentile(ms, 95))
                fig[f"{name}_pairs_per_s"] = p / (med / 1e3) if p else 0.0
            for name in runtimes:
                if name != "torch":
                    fig[f"{name}_speedup"] = fig["torch_median_ms"] / fig[f"{name}_median_ms"]
            figures[f"pairs{p}"] = fig
        for rt in runtimes.values():
            if hasattr(rt, "close"):
                rt.close()
    return figures


def add_parser(parser: argparse.ArgumentParser):
    parser.description = "Relation-model step latency: torch eager vs the exported model (onnxruntime / TensorRT)."
    parser.add_argument("--checkpoint", type=Path, default=None,
                        help="checkpoint directory; default: the shipped model's checkpoint, else random weights")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                        help="where torch and ONNX Runtime run (cuda needs a GPU and onnxruntime-gpu)")
    parser.add_argument("--pairs", type=int, nargs="+", default=list(DEFAULT_PAIRS), help="pairs per step")
    parser.add_argument("--steps", type=int, default=200, help="timed steps per pair count")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads for torch and onnxruntime")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random pair inputs")
    return run


def run(args) -> dict:
    if args.steps < 1 or args.threads < 1 or any(p < 1 for p in args.pairs):
        raise ValueError("--steps, --threads and --pairs must be >= 1")
    f = run_benchmark(args.checkpoint, tuple(args.pairs), args.steps, device=args.device, threads=args.threads,
                      seed=args.seed)
    names = [k[: -len("_median_ms")] for k in f[f"pairs{args.pairs[0]}"] if k.endswith("_median_ms")]
    print(f"relation model ({f['model']}; d_model {f['d_model']}, window {f['window']}, {f['num_predicates']} "
          f"predicates) on {f['device']}, {f['threads']} thread(s), {f['steps']} steps per size")
    for note in f["notes"]:
        print(f"  note: {note}")
    print(f"{'pairs':>6} | " + " | ".join(f"{n + ' median':>17} {'p95':>7} {'pairs/s':>9}" for n in names)
          + " | speed-up vs torch (median)")
    for p in args.pairs:
        r = f[f"pairs{p}"]
        cols = " | ".join(f"{r[n + '_median_ms']:14.3f} ms {r[n + '_p95_ms']:7.3f} {r[n + '_pairs_per_s']:9.0f}"
                          for n in names)
        ups = ", ".join(f"{n} {r[n + '_speedup']:.2f}x" for n in names if n != "torch")
        print(f"{p:>6} | {cols} | {ups}")
    return f
