"""The reliability suite's verdict against the issue's targets, and its printed table."""
from __future__ import annotations

from engine.bench.reliability.soak import TARGET_MB_PER_100K


def verdict(fig: dict) -> dict:
    """Counts that the targets are about and whether each is met (phases that did not run are left out).

    Targets: 0 crashes, 0 tracebacks, 0 silently wrong outputs among the probes, every fault recovered to an equal
    graph, RSS growth <= 1 MB per 100k frames for the engine, the service and a subscriber."""
    out: dict = {}
    crashes = 0
    if "fuzz" in fig:
        crashes += fig["fuzz"]["outcomes"]["crash"]
        out["unclear_errors"] = fig["fuzz"]["outcomes"]["unclear"]
    if "wire" in fig:
        crashes += fig["wire"]["router"]["crash"] + fig["wire"]["subscriber"]["crash"]
        out["wire_recovered"] = fig["wire"]["subscriber"]["recovered"] and fig["wire"]["router"]["service_alive"]
    tracebacks = 0
    if "cli" in fig:
        crashes += fig["cli"]["fuzz"]["crash"]
        tracebacks += fig["cli"]["fuzz"]["traceback"] + sum(p["outcome"] == "traceback" for p in fig["cli"]["probes"])
        out["silently_wrong"] = sum(p["verdict"] == "silently_wrong" for p in fig["cli"]["probes"])
        out["probes_as_expected"] = all(p["verdict"] == "as_expected" for p in fig["cli"]["probes"])
    if "faults" in fig:
        tracebacks += sum(len(f["tracebacks"]) for f in fig["faults"])
        out["faults_recovered"] = sum(f["recovered"] for f in fig["faults"])
        out["faults_total"] = len(fig["faults"])
    if "soak" in fig:
        tracebacks += len(fig["soak"]["tracebacks"])
        g = fig["soak"]["max_growth_mb_per_100k_frames"]
        out["max_rss_growth_mb_per_100k_frames"] = g
        out["soak_equal_graph"] = fig["soak"]["subscriber_equal_graph"]
    out["crashes"], out["tracebacks"] = crashes, tracebacks
    met = crashes == 0 and tracebacks == 0 and out.get("silently_wrong", 0) == 0
    met = met and out.get("faults_recovered", 0) == out.get("faults_total", 0) and out.get("wire_recovered", True)
    if "soak" in fig:
        g = out["max_rss_growth_mb_per_100k_frames"]
        met = met and out["soak_equal_graph"] and g is not None and g <= TARGET_MB_PER_100K
    out["targets_met"] = bool(met)
    return out


def _row(cells, widths) -> str:
    return "  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))


def table(fig: dict) -> str:
    """A plain-text summary of the figures (one section per phase that ran)."""
    lines = []
    if "fuzz" in fig:
        f = fig["fuzz"]
        lines.append(f"parser fuzzing: {f['cases']} cases, seed {fig['seed']} (outcomes per parser)")
        w = (24, 7, 7, 9, 8, 6)
        lines.append(_row(("parser", "cases", "clear", "accepted", "unclear", "crash"), w))
        for t, c in f["by_target"].items():
            lines.append(_row((t, c["cases"], c["clear"], c["accepted"], c["unclear"], c["crash"]), w))
        o = f["outcomes"]
        lines.append(_row(("all", f["cases"], o["clear"], o["accepted"], o["unclear"], o["crash"]), w))
        lines.append("cases per mutation class: " + ", ".join(f"{k} {v}" for k, v in f["by_class"].items()))
        for x in f["failures"][:5]:
            lines.append(f"  {x['outcome'].upper()} {x['target']} #{x['index']} ({x['class']}): {x['error'][:120]}")
    if "wire" in fig:
        r, s = fig["wire"]["router"], fig["wire"]["subscriber"]
        lines.append(f"live wire: ROUTER {r['cases']} requests: {r['clear']} error replies, {r['accepted']} "
                     f"snapshots, {r['dropped']} dropped connections, {r['crash']} crash; service alive: "
                     f"{r['service_alive']}")
        lines.append(f"           SUB {s['cases']} messages: {s['clear']} counted malformed, {s['accepted']} accepted, "
                     f"{s['filtered']} filtered by topic, {s['crash']} crash; recovered to the final graph: "
                     f"{s['recovered']}")
    if "cli" in fig:
        c = fig["cli"]
        ok = sum(p["verdict"] == "as_expected" for p in c["probes"])
        lines.append(f"CLI probes: {ok}/{len(c['probes'])} as expected")
        for p in c["probes"]:
            if p["verdict"] != "as_expected":
                lines.append(f"  {p['verdict'].upper()} {p['probe']}: expected {p['expected']}, got {p['outcome']}: "
                             f"{p['message'][:100]}")
        fz = c["fuzz"]
        lines.append(f"CLI fuzz (vsgg run on mutated det.txt): {fz['cases']} cases: {fz['clear']} clear, "
                     f"{fz['accepted']} accepted, {fz['unclear']} unclear, {fz['traceback']} traceback, "
                     f"{fz['crash']} crash")
    if "faults" in fig:
        lines.append("injected faults (watcher's final graph vs the service's):")
        w = (24, 10, 9, 9, 7, 11)
        lines.append(_row(("fault", "recovered", "entities", "relations", "resyncs", "reconnects"), w))
        for f in fig["faults"]:
            lines.append(_row((f["fault"], "yes" if f["recovered"] else "NO", f["graph"]["entities"],
                               f["graph"]["relations"], f["watcher"].get("resyncs", "-"),
                               f["watcher"].get("reconnects", "-")), w))
    if "soak" in fig:
        s = fig["soak"]
        lines.append(f"soak {s['seconds']:g} s, {s['model']}: RSS growth per 100k frames (linear fit after warm-up)")
        w = (12, 9, 10, 10, 10, 14)
        lines.append(_row(("process", "frames", "start MB", "end MB", "peak MB", "MB/100k frames"), w))
        for k in ("engine", "service", "subscriber"):
            p = s[k]
            lines.append(_row((k, p["frames"], p["rss_start_mb"], p["rss_end_mb"], p["rss_peak_mb"],
                               p["growth_mb_per_100k_frames"]), w))
        lines.append(f"subscriber's final graph equals the service's: {s['subscriber_equal_graph']}")
    v = fig["verdict"]
    lines.append("targets: " + ", ".join(f"{k}={v[k]}" for k in v))
    return "\n".join(lines)
