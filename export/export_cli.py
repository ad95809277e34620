"""`vsgg export --checkpoint DIR --onnx OUT.onnx [--tensorrt OUT.engine [--fp16]]`: checkpoint -> ONNX (-> TensorRT).

After writing the ONNX model and its side-car, the export is checked against torch with onnxruntime (random
inputs, 0..300 pairs, state carried over 4 steps, max abs diff <= 1e-4) unless ``--no-verify``. A TensorRT engine
needs an NVIDIA GPU with TensorRT installed; without one the command says so and exits 1 (the ONNX file is kept).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def add_parser(parser: argparse.ArgumentParser):
    parser.description = ("Export a relation-model checkpoint to ONNX (plus side-car), verify it against torch, and "
                          "optionally build a TensorRT engine.")
    parser.add_argument("--checkpoint", required=True, type=Path, help="checkpoint directory (checkpoint.json + "
                                                                       "model.safetensors)")
    parser.add_argument("--onnx", required=True, type=Path, help="output .onnx file (side-car .json next to it)")
    parser.add_argument("--max-pairs", type=int, default=2048, help="largest pair count per step the model accepts")
    parser.add_argument("--no-verify", action="store_true", help="skip the torch vs onnxruntime parity check")
    parser.add_argument("--tensorrt", type=Path, default=None, metavar="OUT.engine",
                        help="also build a TensorRT engine (needs an NVIDIA GPU and TensorRT)")
    parser.add_argument("--fp16", action="store_true", help="TensorRT: allow FP16 kernels")
    parser.add_argument("--opt-pairs", type=int, default=None,
                        help="TensorRT: pair count the kernels are tuned for (default: 380, or --max-pairs if smaller)")
    parser.add_argument("--timing-cache", type=Path, default=None, help="TensorRT: timing cache file (read + update)")
    return run


def run(args) -> int:
    if args.fp16 and args.tensorrt is None:
        raise ValueError("--fp16 applies to the TensorRT engine; add --tensorrt OUT.engine")
    if args.max_pairs < 1:
        raise ValueError("--max-pairs must be >= 1")
    from engine.backends.base import BackendUnavailable
    from engine.backends.ort import OrtRelationBackend
    from export.to_onnx import export_checkpoint
    from export.verify import ParityError, check_parity, parity_pairs

    t0 = time.time()
    info, model = export_checkpoint(args.checkpoint, args.onnx, args.max_pairs)
    print(f"ONNX model: {info.path} + {info.path.with_suffix('.json').name} ({info.path.stat().st_size / 1e6:.1f} "
          f"MB, {len(info.objects)} objects, {len(info.predicates)} predicates, window {info.window}, d_model "
          f"{info.d_model}, 0..{info.max_pairs} pairs; {time.time() - t0:.1f} s)")
    if not args.no_verify:
        try:
            report = check_parity(model, OrtRelationBackend(info, "ort-cpu"),
                                  pair_counts=parity_pairs(info.max_pairs))
        except ParityError as e:
            print(f"vsgg export: {e}", file=sys.stderr)
            return 1
        print(f"parity torch vs onnxruntime: {report.summary()}")
    if args.tensorrt is not None:
        from export.to_tensorrt import build_tensorrt_engine
        opt_pairs = min(380, info.max_pairs) if args.opt_pairs is None else args.opt_pairs
        try:
            trt_info = build_tensorrt_engine(info.path, args.tensorrt, fp16=args.fp16, opt_pairs=opt_pairs,
                                             timing_cache=args.timing_cache)
        except BackendUnavailable as e:
            print(f"vsgg export: cannot build a TensorRT engine here: {e}. The ONNX model was written; build the "
                  "engine on the target machine.", file=sys.stderr)
            return 1
        meta = trt_info.sidecar["tensorrt"]
        print(f"TensorRT engine: {trt_info.path} (TensorRT {meta['version']}, {meta['gpu_name']}, "
              f"fp16={meta['fp16']}, pairs {meta['profile']})")
        if not args.no_verify:
            from engine.backends.trt import TrtRelationBackend
            backend = TrtRelationBackend(trt_info.path, info)
            try:  # FP16 keeps ~3 significant digits; FP32 engines use TF32 on Ampere+ by default
                report = check_parity(model, backend, atol=2e-2 if args.fp16 else 1e-3,
                                      pair_counts=parity_pairs(backend.max_pairs))
            except ParityError as e:
                print(f"vsgg export: {e}", file=sys.stderr)
                return 1
            finally:
                backend.close()
            print(f"parity torch vs TensorRT: {report.summary()}")
    return 0
