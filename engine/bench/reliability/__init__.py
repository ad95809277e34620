"""`vsgg bench reliability`: fuzz every parser and the wire, inject faults, soak; crashes, recoveries, RSS growth.

A bounded, loopback-only, self-stopping suite (issue 13), in five phases (``--phases``):

1. ``fuzz``:   ``--cases`` generated malformed inputs per engine parser (engine.bench.reliability.parser_targets:
               det.txt, seqinfo.ini, VidVRD JSON, vocabulary files, category maps, class maps, engine YAML
               config, relation-model and detector side-cars, and the SUB / snapshot-reply / ROUTER wire
               decoders) in worker processes; outcome per case: clear error / accepted / unclear / crash;
2. ``wire``:   ``--cases`` mutated snapshot requests to a live service's ROUTER and mutated PUB messages to a
               live subscriber (engine.bench.reliability.wire_live);
3. ``cli``:    the hardening issue's probes through `vsgg run` / `vsgg track`, and ``--cases / 10`` mutated
               det.txt files through `vsgg run`; a Python traceback on stderr is an outcome of its own;
4. ``faults``: kill -9 and restart, a dropping/reordering proxy, a silent service, slow and never-reading
               subscribers, oversized subscriptions; the watcher's final graph must equal the service's;
5. ``soak``:   engine, service and subscriber processes for ``--seconds``; RSS growth per 100k frames.

The baseline of the figures is the issue's targets (this suite measures defects, not speed): 0 crashes, 0
tracebacks, 0 silently wrong probes, recovery to an equal graph after every fault, RSS growth <= 1 MB per 100k
frames. Everything runs on 127.0.0.1 and in a temporary folder that is removed afterwards (``--keep`` keeps it).
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

PHASES = ("fuzz", "wire", "cli", "faults", "soak")


def add_parser(parser: argparse.ArgumentParser):
    parser.add_argument("--seconds", type=float, default=120.0, help="soak duration in seconds")
    parser.add_argument("--cases", type=int, default=200, help="fuzz cases per parser and per live wire socket; "
                        "the CLI fuzz runs a tenth of it")
    parser.add_argument("--seed", type=int, default=0, help="seed of every generator (a run is reproducible)")
    parser.add_argument("--phases", default=",".join(PHASES), help="comma-separated subset of " + ", ".join(PHASES))
    parser.add_argument("--fault-frames", type=int, default=300, help="frames of the stream replayed per fault")
    parser.add_argument("--fault-fps", type=float, default=60.0, help="frame rate of that stream")
    parser.add_argument("--fault-model", default="default", help="relation model of the fault services: "
                        "'default' (the shipped model) or 'none' (tracker-only graphs)")
    parser.add_argument("--keep", default="", metavar="DIR", help="work in DIR and keep it (logs, graphs)")
    return run


def check_args(args) -> list[str]:
    """The phases to run; ValueError naming the option for a bad value."""
    phases = [p.strip() for p in args.phases.split(",") if p.strip()]
    bad = [p for p in phases if p not in PHASES]
    if bad or not phases:
        raise ValueError(f"--phases: expected a comma-separated subset of {', '.join(PHASES)}, got {args.phases!r}")
    if not args.seconds > 0:
        raise ValueError(f"--seconds must be > 0, got {args.seconds}")
    if args.cases < 0:
        raise ValueError(f"--cases must be >= 0, got {args.cases}")
    if args.fault_frames < 30 or not args.fault_fps > 0:
        raise ValueError("--fault-frames must be >= 30 and --fault-fps > 0")
    if args.fault_model not in ("default", "none"):
        raise ValueError(f"--fault-model must be 'default' or 'none', got {args.fault_model!r}")
    return phases


def run(args) -> dict:
    from tqdm import tqdm

    from engine.bench.reliability.cli_cases import probes, run_cli_cases
    from engine.bench.reliability.faults import FAULTS, run_faults
    from engine.bench.reliability.fuzz import run_fuzz, summarize
    from engine.bench.reliability.parser_targets import TARGETS
    from engine.bench.reliability.report import table, verdict
    from engine.bench.reliability.soak import run_soak
    from engine.bench.reliability.wire_live import fuzz_router, fuzz_subscriber

    phases = check_args(args)
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="vsgg-reliability-"))
    work.mkdir(parents=True, exist_ok=True)
    cli_fuzz = max(4, args.cases // 10)
    steps = {"fuzz": args.cases * len(TARGETS), "wire": 2, "cli": len(probes()) + cli_fuzz,
             "faults": len(FAULTS), "soak": int(args.seconds)}
    fig: dict = {"seed": args.seed, "cases_per_parser": args.cases, "phases": phases}
    t0 = time.monotonic()
    try:
        with tqdm(total=sum(steps[p] for p in phases), desc="reliability", unit="step", file=sys.stderr) as bar:
            if "fuzz" in phases:
                fig["fuzz"] = summarize(run_fuzz(None, args.cases, args.seed, progress=bar.update))
            if "wire" in phases:
                fig["wire"] = {"router": fuzz_router(args.cases, args.seed)}
                bar.update(1)
                fig["wire"]["subscriber"] = fuzz_subscriber(args.cases, args.seed)
                bar.update(1)
            if "cli" in phases:
                fig["cli"] = run_cli_cases(work / "cli", cli_fuzz, args.seed, progress=bar.update)
            if "faults" in phases:
                fig["faults"] = run_faults(work / "faults", FAULTS, args.fault_frames, args.fault_fps, args.seed,
                                           args.fault_model, progress=bar.update)
            if "soak" in phases:
                fig["soak"] = run_soak(work / "soak", args.seconds, args.seed, progress=bar.update)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    fig["wall_s"] = round(time.monotonic() - t0, 1)
    fig["verdict"] = verdict(fig)
    print(table(fig))
    return fig
