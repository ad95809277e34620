"""The ablation table: rows from every variant's result.json -> ablation.md, ablation.csv and ablation.png."""
from __future__ import annotations

import csv
import json
import math
from pathlib import Path

from offline_train.ablate import METRICS, PAPERS, AblationConfig, result_path

COLUMNS = ("track", "eval", "variant", "paper", "subset", *METRICS, "latency_p95_ms", "toggles", "n_gt", "epochs",
           "train_s", "overrides")
LABELS = {"mAP": "mAP", "R@50": "R@50", "mR@50": "mR@50", "tail_R@50": "tail R@50", "P@5": "P@5",
          "flicker_per_s": "flicker /s", "latency_ms": "step ms"}


def collect_rows(cfg: AblationConfig, out: Path) -> list[dict]:
    """One row per (track, evaluation, variant, subset) found under ``out``, in the config's variant order; a
    frequency-prior row per (track, evaluation) from the first variant that has one."""
    rows = []
    for t in cfg.tracks:
        for ev in ("meva", "synthetic"):
            prior_done = False
            for v in cfg.variants:
                f = result_path(out / t / v.name)
                if t not in v.tracks or not f.is_file():
                    continue
                r = json.loads(f.read_text())
                e = r["evals"].get(ev)
                if e is None:
                    continue
                subsets = {k: s for k, s in e["subsets"].items() if k != "-"} if r["open_vocab"] else e["subsets"]
                for name, s in subsets.items():
                    rows.append({"track": t, "eval": ev, "variant": v.name, "paper": r["paper"], "subset": name,
                                 **{k: s.get(k) for k in METRICS[:5]}, "flicker_per_s": e.get("flicker_per_s"),
                                 "toggles": e.get("toggles"), "latency_ms": r.get("latency_ms"),
                                 "latency_p95_ms": r.get("latency_p95_ms"), "n_gt": s.get("n_gt"),
                                 "epochs": r["epochs"], "train_s": r["train_s"], "overrides": " ".join(r["overrides"])})
                if not prior_done and e.get("baselines", {}).get("frequency_prior"):
                    b = e["baselines"]["frequency_prior"]
                    rows.append({"track": t, "eval": ev, "variant": "frequency prior", "paper": "prior",
                                 "subset": "-", **{k: b.get(k) for k in METRICS[:5]}, "n_gt": b.get("n_gt"),
                                 "overrides": "P(predicate given categories), training data"})
                    prior_done = True
    return rows


def _fmt(x, k: str = "") -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    if isinstance(x, float):
        return f"{x:.2f}" if k in ("flicker_per_s", "latency_ms", "latency_p95_ms") else f"{x:.3f}"
    return str(x)


def write_report(cfg: AblationConfig, rows: list[dict], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "ablation.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, COLUMNS, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in COLUMNS})
    (out / "ablation.md").write_text(markdown(cfg, rows))
    if rows:
        chart(rows, out / "ablation.png")


def markdown(cfg: AblationConfig, rows: list[dict]) -> str:
    lines = [f"# {cfg.title}", "", "Components of the five papers, each switched on or off in the streaming "
             "relation model (`offline_train/models/`), trained with one short schedule and evaluated causally:", ""]
    lines += [f"- {v}" for v in PAPERS.values()]
    lines += ["", "ARN here is the pair-token-level head only; the one-stage image detector of the paper (paired DETR "
              "queries, Hungarian matching over boxes) is not built (no image training data or GPU).", "",
              "Columns: VidVRD-helper relation detection mAP, R@50, mR@50 and tagging P@5; **tail R@50** = mean "
              "per-predicate recall@50 over the least frequent third of the training predicates; **flicker /s** = "
              "toggles of a relation's on/off state per active relation-second of the raw per-frame scores "
              "(`engine.relate.relation_filter` as plain thresholding at the evaluation threshold, before the "
              "engine's smoothing); **step ms** = median ONNX Runtime `forward_step` time (1 CPU thread, "
              f"{cfg.latency.pairs} pairs). Open-vocabulary rows: trained on base names only, scored on base, "
              "novel (a novel predicate or category in the triplet) and all ground truth.", "",
              f"Schedule (every variant): `{' '.join(cfg.schedule) or 'preset defaults'}`.", ""]
    groups: dict = {}
    for r in rows:
        groups.setdefault((r["track"], r["eval"]), []).append(r)
    for (t, ev), rs in groups.items():
        where = {"meva": "held-out MEVA dates (real annotations)", "synthetic": "held-out synthetic videos"}[ev]
        lines += [f"## track `{t}`, {where}", "",
                  "| variant | paper | subset | " + " | ".join(LABELS[k] for k in METRICS) + " | GT | overrides |",
                  "|---|---|---|" + "---:|" * (len(METRICS) + 1) + "---|"]
        for r in rs:
            lines.append(f"| {r['variant']} | {r['paper']} | {r['subset']} | "
                         + " | ".join(_fmt(r.get(k), k) for k in METRICS) + f" | {_fmt(r.get('n_gt'))} | "
                         f"`{(r.get('overrides') or '-').replace('|', '/')}` |")
        lines += [""] + verdict(rs) + [""]
    return "\n".join(lines)


def verdict(rows: list[dict]) -> list[str]:
    """Which rows beat the first (baseline) variant's mR@50 and which did not (one line each)."""
    base = next((r for r in rows if r["paper"] == "baseline" and r["variant"] != "frequency prior"), None)
    if base is None or base.get("mR@50") is None:
        return []
    up, down = [], []
    for r in rows:
        if r is base or r["variant"] == "frequency prior" or r.get("mR@50") is None or r["subset"] not in ("-", "all"):
            continue
        delta = r["mR@50"] - base["mR@50"]
        (up if delta > 0 else down).append(f"{r['variant']} ({delta:+.3f})")
    return [f"mR@50 against `{base['variant']}` ({base['mR@50']:.3f}): higher: {', '.join(up) or 'none'}; "
            f"not higher: {', '.join(down) or 'none'}."]


def chart(rows: list[dict], path: Path) -> Path:
    """One horizontal bar panel per metric, one bar per row (Agg canvas, no pyplot state)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    labels = [f"{r['track']}/{r['eval']}: {r['variant']}" + (f" [{r['subset']}]" if r["subset"] != "-" else "")
              for r in rows]
    fig = Figure(figsize=(3.0 * len(METRICS), 1.5 + 0.28 * len(rows)), dpi=100)
    FigureCanvasAgg(fig)
    for i, k in enumerate(METRICS):
        ax = fig.add_subplot(1, len(METRICS), i + 1)
        vals = [r.get(k) if isinstance(r.get(k), (int, float)) and not math.isnan(r.get(k)) else 0.0 for r in rows]
        ax.barh(range(len(rows)), vals, color=["#888" if r["paper"] in ("baseline", "prior") else "#3a7" for r in rows])
        ax.set_yticks(range(len(rows)))
        ax.set_yticklabels(labels if i == 0 else [""] * len(rows), fontsize=7)
        ax.invert_yaxis()
        ax.set_title(LABELS[k] + (" (lower better)" if k in ("flicker_per_s", "latency_ms") else ""), fontsize=9)
        ax.tick_params(axis="x", labelsize=7)
    fig.tight_layout()
    fig.savefig(path)
    return path
