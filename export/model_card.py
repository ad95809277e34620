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
              "Scoring: " + figures.get("scoring", "ground truth scored as annotated") + ". Until the fix of",
              "2026-12-06, `vsgg eval` merged touching same-triplet ground-truth instances; on this model's",
              "synthetic held-out set the figures are identical either way (the generator writes maximal runs).", "",
              "## Limits", "",
              "- Trained on a simulated world: its motion, occlusion and labelling rules are simpler than real video;",
              "  expect much lower figures on real data (the VidOR row above).",
              "- Geometry and motion only, no appearance: predicates that need pixels (e.g. holding, watching) are",
              "  out of reach.",
              "- Categories come from the tracker's labels; a detector with other class names needs a class map.", ""]
    p = Path(path)
    p.write_text("\n".join(lines))
    return p


MEVA_ATTRIBUTION = ("Trained on annotations from **MEVA** (Multiview Extended Video with Activities), Kitware Inc. and "
                    "IARPA (DIVA program), licensed under CC BY 4.0 (https://creativecommons.org/licenses/by/4.0/). "
                    "Only the annotations (box tracks and activities) were used; no video frames.")

# What boxes alone cannot tell apart, and why (checked against the per-predicate recall on the val and test dates).
MEVA_LIMITS = (
    "- **Open vs close** (vehicle door, trunk): the same person standing at the same place by the same car; the",
    "  door's state is in the pixels, not in the boxes. Expect the two to be confused with each other.",
    "- **Picks up vs puts down** an object: both are a person bending over a small box that is then near the hand;",
    "  only the order of 'object on the ground' and 'object moving with the person' separates them, and the",
    "  annotated object track usually covers just the activity.",
    "- **Enters vs exits** a vehicle: the person track starts (exits) or ends (enters) at the vehicle; a causal",
    "  model sees a track's start at once but its end only after the fact, so 'enters' is scored late.",
    "- **Transfers object**, **hand interacts with person**, **embraces**: short contacts between two people that",
    "  look like talking at box level; talks_to (100x more frequent) dominates their pairs.",
    "- Categories come from the tracker: with the shipped COCO detector, `coco_to_meva` maps car/bus/truck/",
    "  motorcycle to vehicle, backpack/handbag/suitcase to bag and hand-held props to other.",
)


def _ratio_lines(t: dict, v: dict) -> list[str]:
    """The card's paragraph on the mAP ratio to the frequency prior and its ceiling, 1 / the prior's mAP (``offline_
    train.eval_meva.clip_kinds``); empty for figures measured before the clip kinds existed."""
    if not t.get("clip_kinds") or not v.get("clip_kinds") or not all(
            f["baselines"]["frequency_prior"]["mAP"] > 0 for f in (t, v)):
        return []
    lines = ["", "**mAP against the frequency prior, and its ceiling.** mAP is the mean of per-clip AP, and a clip "
             "whose every instance is the prior's first guess for its category pair (on MEVA: people who only "
             "talk) is one that the constant prior already scores well on (table below). No method can score above 1, "
             "so the highest mAP ratio to the prior that any method can reach is 1 / (the prior's mAP):", "",
             "| dates | clips the prior explains | their mAP, model / prior | other clips | their mAP, model / prior "
             "| mAP ratio, model / prior | highest ratio possible |", "|---|---:|---:|---:|---:|---:|---:|"]

    def both(b: dict) -> str:
        return f"{b['model']:.3f} / {b['frequency_prior']:.3f}" if b["n_videos"] else "–"

    ceiling, rest = {}, []
    for name, f in (("test", t), ("val", v)):
        e, r = f["clip_kinds"]["explained"], f["clip_kinds"]["rest"]
        prior_map = f["baselines"]["frequency_prior"]["mAP"]
        ceiling[name] = 1 / prior_map
        lines.append(f"| {name} | {e['n_videos']} ({e['n_gt']} instances) | {both(e)} | {r['n_videos']} "
                     f"({r['n_gt']} instances) | {both(r)} | {f['model']['mAP'] / prior_map:.2f}x | "
                     f"{ceiling[name]:.2f}x |")
        if r["n_videos"] and r["frequency_prior"] > 0:
            dates = "the test dates" if name == "test" else "the val date"
            rest.append(f"{r['model'] / r['frequency_prior']:.2f}x the prior's on {dates}")
    need = 2 / ceiling["test"]
    verdict = []
    if ceiling["val"] < 2.0:
        verdict.append(f"out of reach of any method on the val date (at most {ceiling['val']:.2f}x)")
    if need > 1.0:
        verdict.append("out of reach of any method on the test dates")
    elif need > 0.9:
        verdict.append(f"on the test dates it takes mAP {need:.3f}, near-perfect detection on every clip")
    if verdict:
        lines += ["", f"So twice the prior's mAP is {'; '.join(verdict)}. This model: "
                  f"{t['model']['mAP'] * ceiling['test']:.2f}x on the test dates."]
    if rest:
        lines += ["On the clips the prior does not explain, the model's mAP is " + " and ".join(rest) + "."]
    return lines


def write_meva_model_card(path: str | Path, meta: CheckpointMeta, info: ModelInfo, figures: dict) -> Path:
    """Write the card of a model trained on MEVA; ``figures`` is release.json's content (meva_test, meva_val)."""
    cfg = meta.config
    m, o, d = cfg["model"], cfg["optim"], cfg["train_data"]
    hist = meta.history or []
    train_s = hist[-1]["time_s"] if hist else None
    t, v = figures["meva_test"], figures["meva_val"]
    mg = t["merge"]
    lines = [
        "# vsgg MEVA relation model (real relations)",
        "",
        MEVA_ATTRIBUTION,
        "",
        "The streaming relation model of the default model (pair tokens from geometry/motion features and MiniLM",
        "category embeddings, spatial self-attention, a causal temporal decoder, TR²'s message token, a multi-label",
        "predicate head), trained on MEVA's real person/vehicle/object activities between tracked boxes. Per ordered",
        "pair of tracked entities and per frame it says which of MEVA's 19 multi-actor activities holds, from the",
        "present and the past only.",
        "",
        "## Files",
        "",
        "| file | what |",
        "|---|---|",
        f"| `relation.onnx` + `relation.json` | `forward_step`, 0..{info.max_pairs} pairs per call, and its side-car |",
        "| `checkpoint/` | the torch checkpoint and `prior.npy`, the training dates' frequency prior (eval baseline) |",
        "| `release.json` | every figure on this card |",
        "| `loss.png`, `predicate_recall.png` | training curves, last per-predicate val recall (frame level) |",
        "| `meva_test_recall.png`, `meva_val_recall.png` | per-predicate recall@50 of the model and both baselines |",
        "",
        "## Training",
        "",
        f"- Data: MEVA KPF annotations from `{d.get('paths')}`, split by recording date (clips of one day share",
        f"  scenes and people): train split '{d.get('split')}' (dates other than val/test, "
        "`offline_train.data.meva.DEFAULT_SPLITS`), checkpoint chosen on the val date, figures below on the test",
        f"  dates, which neither training nor selection saw. The model runs at {d.get('meva_fps')} fps (one "
        f"annotated frame in {int(round(30 / d.get('meva_fps', 10)))}); predictions are written at the annotation's",
        "  30 fps frame indices.",
        f"- Pairs as the engine builds them: every ordered pair of co-present tracks; training crops of "
        f"{o['clip_len']} frames keep the {o['max_pairs'] or 'all'} nearest pairs; pairs without an activity are the",
        "  negatives. Person-person activities (talks to, embraces, transfers, hand interacts) count in both",
        "  directions. Class balance: per-predicate positive weights (median count / count)^"
        f"{o['balance']}.",
        f"- Model: d_model {m['d_model']}, {m['n_heads']} heads, window L = {m['window']}; optimiser AdamW lr "
        f"{o['lr']}, {o['epochs']} epochs of {o['crops_per_video']} crops per clip, {o['videos_per_step']} crops "
        "per step" + (f"; started from `{cfg['run'].get('init_from')}`" if cfg["run"].get("init_from") else
                      "; from scratch") + ".",
        f"- Selected checkpoint: epoch {meta.epoch}." + (f" Training took {train_s / 60:.1f} min on the project's "
                                                         "2-core CPU machine (shared)." if train_s else ""),
        "",
        "## Measured figures (real annotations, dates the model never saw)",
        "",
        f"`vsgg eval --meva` (PredCls: annotated tracks in, run causally). Per-frame scores become instances by "
        f"the merge rules chosen on the val date (`offline_train.evaluate.MEVA_MERGE`, model frames): threshold "
        f"{mg['threshold']}, runs up to {mg['max_gap']} frames apart joined, at least {mg['min_frames']} frames, "
        f"score = mean x (1 - exp(-length / {mg.get('length_tau', 0)})), a triplet named in a clip only if its best "
        f"instance scores >= {mg.get('triplet_min_score', 0)}; the baselines' scores go through the same rules. "
        f"Test dates: {t['n_videos']} clips with relations, {t['n_gt']} ground-truth instances:",
        "",
    ]
    lines += _table([("this model", t["model"])] + [(f"baseline: {k.replace('_', ' ')}", x)
                                                    for k, x in t["baselines"].items()])
    for name, c in t.get("merge_compare", {}).items():
        lines += ["", f"The same scores merged by the {name} ({c['merge']['threshold']}; the rule before the val-date "
                  "choice), test dates:", ""]
        lines += _table([(("this model" if k == "model" else f"baseline: {k.replace('_', ' ')}"), x)
                         for k, x in c.items() if k != "merge"])
    if figures.get("compare"):
        lines += ["", "Other training runs, same test dates and evaluation:", ""]
        lines += _table([(f"{k} (epoch {c.get('epoch')}" + (f", {c['train_minutes']} min)" if c.get("train_minutes")
                                                             else ")"), c["model"])
                         for k, c in figures["compare"].items()])
    lines += ["", f"Val date ({v['n_videos']} clips, {v['n_gt']} instances), for reference:", ""]
    lines += _table([("this model", v["model"])] + [(f"baseline: {k.replace('_', ' ')}", x)
                                                    for k, x in v["baselines"].items()])
    lines += _ratio_lines(t, v)
    rec, gt = t["per_predicate_recall@50"], t["gt_predicates"]
    prior = t["baseline_per_predicate_recall@50"].get("frequency_prior", {})
    lines += ["", "Per-predicate recall@50 on the test dates (ground-truth instances; frequency prior):", "",
              "| predicate | GT | model | prior |", "|---|---:|---:|---:|"]
    lines += [f"| {p} | {gt[p]} | {rec.get(p, 0.0):.3f} | {prior.get(p, 0.0):.3f} |"
              for p in sorted(gt, key=lambda k: -gt[k])]
    conf = t.get("confusion", {})
    if conf:
        lines += ["", "What the model ranks first on the pair and span of each test instance (box-level confusion; "
                  "'none': no prediction localises the pair):", "",
                  "| ground truth | instances | ranked first (share) |", "|---|---:|---|"]
        for p in sorted(conf, key=lambda k: -sum(conf[k].values())):
            n = sum(conf[p].values())
            top = sorted(conf[p].items(), key=lambda kv: -kv[1])[:3]
            lines.append(f"| {p} | {n} | " + ", ".join(f"{k} {v / n:.0%}" for k, v in top) + " |")
    lines += ["", f"Export parity: torch vs ONNX Runtime step outputs max abs diff "
              f"{figures['step_parity_max_abs_diff']:.1e}; eval report on 8 test clips from torch and from ONNX "
              f"differ by at most {figures['torch_vs_onnx_report_max_abs_diff']:.1e}. {figures['scoring']}.", "",
              "## What boxes alone cannot tell apart", "", *MEVA_LIMITS, "",
              "Reproduce: `make meva-model` (trains the `meva` preset, then `vsgg release --meva`).", ""]
    p = Path(path)
    p.write_text("\n".join(lines))
    return p
