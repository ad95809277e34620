"""``vsgg bench engine``: per-stage latency of the live engine with its ONNX relation model, delta size and flicker.

Three measurements, all in one process on CPU with onnxruntime (``ort-cpu``):

* **Latency** of ``Engine.step`` on a seeded synthetic scene of N entities (boxes bouncing around a 1280x720 image
  at constant velocity, 1 % box jitter, labels drawn from the model's object vocabulary, every entity detected in
  every frame), for each N of ``--entities``: median and p95 milliseconds per stage (``engine.runtime.STAGES``),
  ``other`` (the bookkeeping between the named stages: track eviction, held entities, motion history, reading the
  active relations) and ``total``. The baseline is the same engine without a relation model (tracker + graph
  only) on the same scene; the ratio is total(full) / total(baseline), i.e. what the relation pipeline costs.
* **Delta size** on a MOTChallenge det.txt (default: the bundled TUD-Campus): the mean size of the encoded wire
  messages of a delta (``engine.transport.wire.encode_delta``) over the mean size of the snapshot reply of the
  graph after the same frame (``encode_items`` batches + ``encode_end``, as ``GraphPublisher`` sends it).
* **Flicker** (``RelationFilter.flicker_rate``: toggles per active relation-second) with the configured filter and
  with the unfiltered baseline ``passthrough_filter`` (one threshold, no smoothing, no minimum duration), on the
  same streams.

Targets from the issue: p95 <= 15 ms at 20 entities, <= 33 ms at 50; delta <= 20 % of the snapshot.
"""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from engine.config import EngineConfig, FilterConfig, load_engine_config
from engine.runtime import STAGES, Engine
from engine.types import Detections, GraphDelta, SceneGraph
from engine.vocab import Vocabulary

TUD_CAMPUS = Path(__file__).resolve().parents[2] / "tests" / "data" / "mot15" / "TUD-Campus" / "det.txt"
IMAGE_WH = (1280, 720)
FPS = 30.0
TARGET_P95_MS = {20: 15.0, 50: 33.0}
TARGET_DELTA_FRACTION = 0.20
STAGE_KEYS = (*STAGES, "other", "total")


def moving_scene(n: int, frames: int, num_labels: int, seed: int = 0,
                 image_wh: tuple[int, int] = IMAGE_WH) -> list[Detections]:
    """``frames`` Detections of ``n`` boxes moving at constant velocity (bouncing off the image border).

    Boxes 40-120 x 60-200 px, speeds ~N(0, 3) px per frame, centre jitter 1 % of the box size, scores in
    [0.75, 1] (all above the tracker's new-track score), labels uniform in [0, num_labels). xyxy float32 pixels.
    """
    rng = np.random.default_rng(seed)
    w, h = image_wh
    size = np.column_stack([rng.uniform(40, 120, n), rng.uniform(60, 200, n)])
    pos = rng.uniform([0, 0], [w, h], (n, 2))
    vel = rng.normal(0, 3, (n, 2))
    labels = rng.integers(0, num_labels, n).astype(np.int32)
    out = []
    for _ in range(frames):
        pos += vel
        vel[(pos < 0) | (pos > [w, h])] *= -1
        c = pos + rng.normal(0, 0.01, (n, 2)) * size
        boxes = np.concatenate([c - size / 2, c + size / 2], 1).astype(np.float32)
        out.append(Detections(boxes, rng.uniform(0.75, 1.0, n).astype(np.float32), labels))
    return out


def passthrough_filter(cfg: FilterConfig) -> FilterConfig:
    """The unfiltered baseline of ``cfg``: plain thresholding at the middle of its hysteresis band."""
    mid = 0.5 * (cfg.enter + cfg.exit)
    return FilterConfig(tau_s=0.0, enter=mid, exit=mid, min_duration_s=0.0)


def delta_wire_bytes(delta: GraphDelta, max_items: int, base: SceneGraph | None = None) -> int:
    """Bytes of the 4 frames ``GraphPublisher`` sends for ``delta`` applied to ``base`` (the graph before it)."""
    from engine.transport import wire
    return sum(len(f) for f in wire.encode_delta(delta, max_items, base=base))


def snapshot_wire_bytes(graph: SceneGraph, batch_items: int, max_items: int) -> int:
    """Bytes of the snapshot reply for ``graph``: item batches then the end message, batched as the publisher does
    (entities first, ``batch_items`` items per message; the ROUTER identity frame is not counted)."""
    from engine.transport import wire
    ents = [graph.entities[i] for i in sorted(graph.entities)]
    rels = [graph.relations[k] for k in sorted(graph.relations)]
    n_e, total = len(ents), 0
    for start in range(0, n_e + len(rels), batch_items):
        stop = start + batch_items
        msg = wire.encode_items(graph.epoch, graph.seq, 0, ents[start:stop],
                                rels[max(start - n_e, 0):max(stop - n_e, 0)], max_items)
        total += sum(len(f) for f in msg)
    return total + sum(len(f) for f in wire.encode_end(graph.epoch, graph.seq, 0, graph.t, n_e, len(rels)))


def _flicker(engine: Engine) -> dict:
    f = engine.filter
    return {"flicker_rate": f.flicker_rate(), "toggles": f.toggles, "active_relation_s": round(f.active_seconds, 3)}


def time_engine(engine: Engine, scene: list[Detections], warm_frames: int, fps: float = FPS) -> dict:
    """Step ``engine`` through ``scene`` (t = i / fps s); the first ``warm_frames`` are not timed.
    Returns {stage: (T,) ms array} for STAGE_KEYS, plus "pairs" (T,) and the flicker figures of the whole run."""
    rows = []
    pairs = []
    for i, dets in enumerate(scene):
        res = engine.step(dets, i / fps)
        if i >= warm_frames:
            rows.append([res.timings_ms[s] for s in STAGES] + [res.timings_ms["total"]])
            pairs.append(res.num_pairs)
    a = np.array(rows, np.float64).reshape(-1, len(STAGES) + 1)
    out = {s: a[:, k] for k, s in enumerate(STAGES)}
    out["total"] = a[:, -1]
    out["other"] = np.maximum(a[:, -1] - a[:, :-1].sum(1), 0.0)
    out["num_pairs"] = np.array(pairs)
    out.update(_flicker(engine))
    return out


def measure_stream(engine: Engine, frames, cfg: EngineConfig) -> dict:
    """Delta and snapshot wire sizes and flicker of ``engine`` over ``frames`` ((index, t, Detections) items)."""
    tc = cfg.transport
    d_bytes, s_bytes, n_ent, n_rel = [], [], [], []
    for _, t, dets in frames:
        base = engine.published
        res = engine.step(dets, t)
        d_bytes.append(delta_wire_bytes(res.delta, tc.max_items, base))
        s_bytes.append(snapshot_wire_bytes(res.graph, tc.snapshot_batch_items, tc.max_items))
        n_ent.append(len(res.graph.entities))
        n_rel.append(len(res.graph.relations))
    out = {"frames": len(d_bytes), "delta_bytes_mean": float(np.mean(d_bytes)),
           "snapshot_bytes_mean": float(np.mean(s_bytes)), "entities_mean": float(np.mean(n_ent)),
           "relations_mean": float(np.mean(n_rel))}
    out["delta_fraction"] = out["delta_bytes_mean"] / out["snapshot_bytes_mean"]
    out.update(_flicker(engine))
    return out


def load_backend(model: str | None, threads: int):
    """The relation model on onnxruntime CPU. Raises ModelFileError (a ValueError) when it is missing or bad."""
    from engine.backends import load_relation_backend
    from engine.config import RelationBackendConfig
    return load_relation_backend(RelationBackendConfig(model_path=model or "", backend="ort-cpu", threads=threads))


def run_benchmark(backend, cfg: EngineConfig, sizes=(5, 20, 50), frames: int = 300, warm_frames: int = 30,
                  seed: int = 0, mot_path: Path | None = TUD_CAMPUS) -> dict:
    """All figures (see the module docstring). ``mot_path`` None or missing: no delta-size block."""
    from tqdm import tqdm

    objects = Vocabulary("model_objects", tuple(backend.info.objects))
    cfg_raw = replace(cfg, filter=passthrough_filter(cfg.filter))
    figures: dict = {"model": str(backend.info.path), "backend": backend.name, "frames": frames,
                     "warmup_frames": warm_frames, "max_pairs": cfg.pairs.max_pairs,
                     "baseline": "same engine without a relation model (tracker + graph only), same scene"}
    jobs = [(n, kind) for n in sizes for kind in ("full", "baseline", "unfiltered")]
    has_mot = mot_path is not None and Path(mot_path).is_file()
    bar = tqdm(total=len(jobs) + 2 * has_mot, desc="bench engine", unit="run", file=sys.stderr)
    for n in sizes:
        scene = moving_scene(n, frames + warm_frames, len(objects), seed)
        runs = {}
        for kind, c, b in (("full", cfg, backend), ("baseline", cfg, None), ("unfiltered", cfg_raw, backend)):
            eng = Engine(c, objects, b, image_wh=IMAGE_WH)
            eng.warmup()
            runs[kind] = time_engine(eng, scene, warm_frames)
            bar.update()
        full, base = runs["full"], runs["baseline"]
        fig = {"pairs_median": float(np.median(full["num_pairs"]))}
        for s in STAGE_KEYS:
            fig[f"{s}_ms_median"] = float(np.median(full[s]))
            fig[f"{s}_ms_p95"] = float(np.percentile(full[s], 95))
        fig["baseline_total_ms_median"] = float(np.median(base["total"]))
        fig["baseline_total_ms_p95"] = float(np.percentile(base["total"], 95))
        fig["ratio_total_median"] = fig["total_ms_median"] / max(fig["baseline_total_ms_median"], 1e-9)
        if n in TARGET_P95_MS:
            fig["target_p95_ms"] = TARGET_P95_MS[n]
            fig["meets_target"] = bool(fig["total_ms_p95"] <= TARGET_P95_MS[n])
        for kind in ("full", "unfiltered"):
            tag = "filtered" if kind == "full" else "unfiltered"
            for k in ("flicker_rate", "toggles", "active_relation_s"):
                fig[f"{k}_{tag}"] = runs[kind][k]
        figures[f"n{n}"] = fig
    if has_mot:
        from engine.io.streams import open_stream
        block = {"source": str(mot_path)}
        for tag, c in (("filtered", cfg), ("unfiltered", cfg_raw)):
            stream = open_stream(f"mot:{mot_path}", objects)
            eng = Engine(c, objects, backend, image_wh=stream.image_wh)
            eng.warmup()
            m = measure_stream(eng, stream.frames, c)
            bar.update()
            if tag == "filtered":
                block.update({k: v for k, v in m.items() if k not in ("flicker_rate", "toggles", "active_relation_s")})
                block["target_delta_fraction"] = TARGET_DELTA_FRACTION
                block["meets_target"] = bool(m["delta_fraction"] <= TARGET_DELTA_FRACTION)
            for k in ("flicker_rate", "toggles", "active_relation_s"):
                block[f"{k}_{tag}"] = m[k]
        figures["mot"] = block
    bar.close()
    return figures


def _target_cell(f: dict) -> str:
    if "target_p95_ms" not in f:
        return "-"
    return f"p95 <= {f['target_p95_ms']:.0f}: {'met' if f['meets_target'] else 'MISSED'}"


def _print(figures: dict, sizes, cfg: EngineConfig, threads: int) -> None:
    cols = [figures[f"n{n}"] for n in sizes]
    w = 20  # one column per scene size

    def row(name: str, cells) -> None:
        print(f"{name:16s}" + "".join(f"{c:>{w}s}" for c in cells))

    print(f"vsgg engine step on CPU, onnxruntime ({threads or 'default'} intra-op thread(s)), model "
          f"{figures['model']}; {figures['frames']} timed frames per size after {figures['warmup_frames']} "
          f"warm-up frames; at most {figures['max_pairs']} pairs scored per frame")
    row("ms per frame", [f"{n} entities" for n in sizes])
    row("", ["median      p95" for _ in sizes])
    for s in STAGE_KEYS:
        row(s, [f"{f[f'{s}_ms_median']:8.3f} {f[f'{s}_ms_p95']:8.3f}" for f in cols])
    row("target", [_target_cell(f) for f in cols])
    row("pairs scored", [f"{f['pairs_median']:.0f}" for f in cols])
    print(f"baseline: {figures['baseline']}")
    row("baseline total", [f"{f['baseline_total_ms_median']:8.3f} {f['baseline_total_ms_p95']:8.3f}" for f in cols])
    row("full / baseline", [f"{f['ratio_total_median']:.1f}x (median)" for f in cols])
    raw = passthrough_filter(cfg.filter)
    print(f"flicker = toggles per active relation-second (active relation-seconds in brackets); configured "
          f"{cfg.filter}; unfiltered = one threshold at {raw.enter:.3f}, no smoothing, no minimum duration")
    for tag in ("filtered", "unfiltered"):
        row(f"flicker {tag}", [f"{f[f'flicker_rate_{tag}']:.3f} ({f[f'active_relation_s_{tag}']:.0f})" for f in cols])
    m = figures.get("mot")
    if m is None:
        print("delta size: skipped (no MOT det.txt; pass --mot PATH)")
        return
    print(f"delta size on {m['source']} ({m['frames']} frames, mean {m['entities_mean']:.1f} entities, "
          f"{m['relations_mean']:.1f} relations): delta {m['delta_bytes_mean']:.0f} B / snapshot "
          f"{m['snapshot_bytes_mean']:.0f} B = {100 * m['delta_fraction']:.1f} % (target <= "
          f"{100 * TARGET_DELTA_FRACTION:.0f} %: {'met' if m['meets_target'] else 'MISSED'}; graph tolerances: box "
          f"{cfg.graph.box_tolerance_px} px, score {cfg.graph.score_tolerance})")
    print(f"flicker on it: filtered {m['flicker_rate_filtered']:.3f} ({m['active_relation_s_filtered']:.1f} "
          f"relation-s active), unfiltered {m['flicker_rate_unfiltered']:.3f} "
          f"({m['active_relation_s_unfiltered']:.1f} relation-s active)")
    if all(f[f"active_relation_s_{tag}"] == 0 for f in (*cols, m) for tag in ("filtered", "unfiltered")):
        print("note: no relation was ever active, so every flicker rate is 0 by definition (a random-weight model "
              "scores below the filter thresholds; pass filter.enter=... filter.exit=... to probe the filter)")


def add_parser(parser: argparse.ArgumentParser):
    parser.description = ("Engine step latency per stage (CPU, onnxruntime) for synthetic scenes of N entities, "
                          "against the tracker-only engine; delta/snapshot wire size and flicker on TUD-Campus.")
    parser.add_argument("--model", default="", help="relation model (.onnx or its folder); default: the shipped "
                        "engine/models/default")
    parser.add_argument("--entities", type=int, nargs="+", default=[5, 20, 50], help="entities per scene")
    parser.add_argument("--frames", type=int, default=300, help="timed frames per scene")
    parser.add_argument("--warmup", type=int, default=30, help="untimed frames before the timed ones")
    parser.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads (0 = one per core)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the moving test scenes")
    parser.add_argument("--mot", type=Path, default=TUD_CAMPUS, help="MOTChallenge det.txt for the delta size")
    parser.add_argument("--config", default=None, help="EngineConfig YAML")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="EngineConfig overrides")
    return run


def run(args) -> dict:
    if args.frames < 1 or args.warmup < 0 or args.threads < 0 or not args.entities or \
            any(n < 1 for n in args.entities):
        raise ValueError("--frames and --entities must be >= 1, --warmup and --threads >= 0")
    cfg = load_engine_config(args.config, args.overrides)
    from engine.relate.relation_io import ModelFileError
    try:
        backend = load_backend(args.model or None, args.threads)
    except ModelFileError as e:
        hint = ("" if args.model else " No model was given and the shipped default model is missing: pass "
                "--model PATH (an exported relation.onnx or its folder), or make one with `vsgg export`.")
        raise SystemExit(f"vsgg bench engine: error: {e}.{hint}") from None
    t0 = time.perf_counter()
    figures = run_benchmark(backend, cfg, tuple(args.entities), args.frames, args.warmup, args.seed, args.mot)
    figures["wall_s"] = round(time.perf_counter() - t0, 2)
    figures["threads"] = args.threads
    _print(figures, args.entities, cfg, args.threads)
    return figures
