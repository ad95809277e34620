"""MODEL_CARD.md for a released relation model: what it was trained on, how, and its measured figures.

Written by `vsgg release` from the checkpoint's meta (training config, history), the export's ModelInfo and the
figures `vsgg release` measured (release.json), so the card never states a number that was not measured.
"""
from __future__ import annotations

from pathlib import Path

from engine.relate.relation_io import ModelInfo
from offline_train.checkpoint import CheckpointMeta

_COLS = ("P@1", "P@5", "P@10", "mR@50", "mAP", "R@50", "R@100")


def _table(rows: list[tuple[str, dict]]) -> list[str]:
    lines = ["| | " + " | ".join(_COLS) + " |", "|---|" + "---:|" * len(_COLS)]
    lines += [f"| {name} | " + " | ".join(f"{f[c]:.3f}" for c in _COLS) + " |" for name, f in rows]
    return lines


def _data_line(d: dict) -> str:
    if d.get("kind") != "synthetic":
        return f"{d.get('kind')} from {d.get('paths')} (split {d.get('split') or 'all'})"
    s = d.get("synthetic", {})
    return (f"{d['synthetic_videos']} synthetic videos (split '{d.get('split') or 'train'}', seed "
            f"{d.get('synthetic_seed', 0)}), {s.get('frames')} frames at {s.get('fps')} fps, "
            f"{s.get('min_agents')}-{s.get('max_agents')} agents")


def write_model_card(path: str | Path, meta: CheckpointMeta, info: ModelInfo, figures: dict) -> Path:
    """Write the card to ``path``; ``figures`` is release.json's content."""
    cfg = meta.config
    m, o = cfg["model"], cfg["optim"]
    hist = meta.history or []
    train_s = hist[-1]["time_s"] if hist else None
    lines = [
        "# vsgg default relation model",
        "",
        "A streaming relation model after TR² (pair tokens from geometry/motion features and MiniLM category",
        "embeddings, spatial self-attention across the pairs of a frame, a causal temporal decoder over each pair's",
        "last L tokens, TR²'s short-term message token, a multi-label predicate head). It predicts, per ordered pair",
        "of tracked entities and per frame, which predicates hold, from the present and the past only.",
        "",
        "## Files",
        "",
        "| file | what |",
        "|---|---|",
        f"| `relation.onnx` | `forward_step`, 0..{info.max_pairs} pairs per call, opset "
        f"{info.sidecar.get('exporter', {}).get('opset')}; what the engine runs (ONNX Runtime / TensorRT) |",
        "| `relation.json` | side-car: vocabularies, embedding tables, versions, training config, SHA-256 |",
        "| `checkpoint/` | the torch checkpoint (safetensors + JSON) it was exported from, and `prior.npy`: the "
        "(objects, objects, predicates) frequency prior of the training data (the eval baseline) |",
        "| `release.json` | every figure on this card, machine-readable |",
        "| `loss.png`, `predicate_recall.png` | the training run's curves and last per-predicate val recall |",
        "",
        "## Training",
        "",
        "- **Data: generated only.** The synthetic trajectory world (`offline_train/synthetic`): agents of the",
        "  VidVRD object vocabulary on a ground plane seen by a pinhole camera, labelled by documented per-pattern",
        "  rules. No real video was used.",
        f"- Train: {_data_line(cfg['train_data'])}.",
        f"- Validation (checkpoint selection): {_data_line(cfg['val_data'])}.",
        f"- Model: d_model {m['d_model']}, {m['n_heads']} heads, d_ff {m['d_ff']}, {m['spatial_layers']} spatial "
        f"layer(s), window L = {m['window']}, dropout {m['dropout']}; feature lag {cfg['feature_lag']} observations "
        f"(pair-feature version {info.feature_version}, {info.num_features} features).",
        f"- Optimiser: AdamW lr {o['lr']}, weight decay {o['weight_decay']}, {o['epochs']} epochs, "
        f"{o['videos_per_step']} clips of {o['clip_len']} frames per step, seed {cfg['run']['seed']}.",
        f"- Selected checkpoint: epoch {meta.epoch} (step {meta.step}), best validation mean recall@"
        f"{cfg['run']['eval_k']}." + (f" It was reached after {train_s / 60:.1f} min of training on the "
                                      "project's 2-core CPU machine." if train_s else ""),
        f"- Vocabularies: {len(info.objects)} object categories, {len(info.predicates)} predicates (VidVRD).",
        "",
        "Reproduce: `make default-model` (trains the `default` preset, then runs `vsgg release`).",
        "",
        "## Measured figures",
        "",
        "`vsgg eval` semantics (PredCls: ground-truth trajectories in, run causally frame by frame, per-frame scores",
        "merged into relation instances; VidVRD relation detection and tagging, per-predicate mean recall@50).",
        "",
    ]
    h = figures.get("heldout_synthetic")
    if h:
        lines += [f"**Held-out synthetic videos** ({h['videos']} videos of split 'test', {h['n_gt']} ground-truth "
                  f"relation instances, {len(h['gt_predicates'])} distinct predicates):", ""]
        lines += _table([("this model", h["model"])] + [(f"baseline: {k.replace('_', ' ')}", v)
                                                        for k, v in h["baselines"].items()])
        worst = sorted(h["per_predicate_recall@50"].items(), key=lambda kv: kv[1])[:8]
        lines += ["", "Lowest per-predicate recall@50 (ground-truth count): " + ", ".join(
            f"{p} {r:.2f} ({h['gt_predicates'].get(p, 0)})" for p, r in worst) + ".", ""]
    v = figures["vidor_fixture"]
    lines += [f"**Real VidOR fixture** (`{v['file']}`, {v['n_gt']} ground-truth instances, VidOR names mapped with "
              "`tests/data/vidor/*_map.yaml`). Real footage the model never saw; no target, reported as is:", ""]
    lines += _table([("this model", v["model"])] + [(f"baseline: {k.replace('_', ' ')}", x)
                                                    for k, x in v["baselines"].items()])
    lines += ["", f"Export parity: torch vs ONNX Runtime step outputs max abs diff "
              f"{figures['step_parity_max_abs_diff']:.1e} (0..300 pairs, state carried 4 steps); the VidOR eval "
              f"report from torch and from ONNX differ by at most {v['torch_vs_onnx_report_max_abs_diff']:.1e}.", "",
              "## Limits", "",
              "- Trained on a simulated world: its motion, occlusion and labelling rules are simpler than real video;",
              "  expect much lower figures on real data (the VidOR row above).",
              "- Geometry and motion only, no appearance: predicates that need pixels (e.g. holding, watching) are",
              "  out of reach.",
              "- Categories come from the tracker's labels; a detector with other class names needs a class map.", ""]
    p = Path(path)
    p.write_text("\n".join(lines))
    return p
