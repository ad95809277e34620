"""Parser fuzzing: generated malformed inputs fed to every engine parser in a worker process, one outcome per case.

Outcomes of a case (``OUTCOMES``):

* ``clear``:    a ValueError or TypeError with a message, raised by an explicit check in vsgg's own code (the
                innermost frame of its traceback is a ``raise`` statement under engine/): the input was refused
                with a message written for it;
* ``accepted``: the parser took the input and produced a result (many mutations leave a valid document);
* ``unclear``:  a ValueError or TypeError raised by an operation rather than a check (``int('abc')`` deep in the
                parser: "invalid literal for int()"), or without a message: refused, but not explained;
* ``crash``:    any other exception (RecursionError, KeyError, MemoryError ...), a case that ran longer than the
                per-case limit, or the death of the worker process.

The cases run in a child process (``python -m engine.bench.reliability.fuzz``) under an address-space limit, so a
case that exhausts memory or kills the interpreter is recorded as a crash and the next worker carries on after it.
Cases are regenerated in the worker from (seed, target, index) alone (engine.bench.reliability.mutators).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import select
import subprocess
import sys
import tempfile
import time
import traceback
from collections import Counter
from pathlib import Path

from engine.bench.reliability.mutators import MUTATION_CLASSES, case_class, case_rng, mutate
from engine.bench.reliability.parser_targets import ROOT, TARGETS, preview

OUTCOMES = ("clear", "accepted", "unclear", "crash")
ENGINE_DIR = str(ROOT / "engine")
WORKER_MEMORY_BYTES = 6 << 30   # address-space limit of the worker: a runaway allocation fails there, not here
CASE_TIMEOUT_S = 60.0


def classify(exc: BaseException | None) -> tuple[str, str]:
    """(outcome, short description) of a case that raised ``exc`` (None: it returned)."""
    if exc is None:
        return "accepted", ""
    msg = str(exc).strip()
    what = f"{type(exc).__name__}: {msg[:300]}"
    if isinstance(exc, (ValueError, TypeError)):
        tb = traceback.extract_tb(exc.__traceback__)
        last = tb[-1] if tb else None
        explicit = (last is not None and last.filename.startswith(ENGINE_DIR)
                    and (last.line or "").lstrip().startswith("raise"))
        return ("clear" if explicit and msg else "unclear"), what
    return "crash", what


def case_plan(targets: list[str], cases: int) -> list[tuple[str, int]]:
    """The flat list of (target, index) cases: ``cases`` per target, interleaved so a short run covers all."""
    return [(t, i) for i in range(cases) for t in targets]


def run_case(target: str, index: int, seed: int, workdir: Path) -> dict:
    """Generate and run one case in this process; the record the worker reports."""
    t = TARGETS[target]
    rng = case_rng(seed, target, index)
    cls = case_class(rng)
    data = mutate(t.seed(lambda n: rng.randrange(n)), t.serialize, cls, rng)
    t0 = time.perf_counter()
    try:
        t.run(data, workdir)
        exc = None
    except RecursionError as e:  # re-raised outside the deep stack, where formatting it is safe
        exc = e
    except Exception as e:  # noqa: BLE001 - classifying every failure is the point
        exc = e
    outcome, what = classify(exc)
    return {"target": target, "index": index, "class": cls, "outcome": outcome, "error": what,
            "ms": round((time.perf_counter() - t0) * 1e3, 2), "bytes": len(data),
            "input": preview(data) if outcome in ("crash", "unclear") else ""}


def _worker_main(argv: list[str] | None = None) -> int:
    """Worker process: run the plan from ``--skip`` on, one JSON line before ("start") and after each case."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--cases", type=int, required=True)
    ap.add_argument("--targets", required=True)
    ap.add_argument("--skip", type=int, default=0)
    args = ap.parse_args(argv)
    resource.setrlimit(resource.RLIMIT_AS, (WORKER_MEMORY_BYTES, WORKER_MEMORY_BYTES))
    plan = case_plan(args.targets.split(","), args.cases)
    out = sys.stdout
    with tempfile.TemporaryDirectory(prefix="vsgg-fuzz-") as tmp:
        for k in range(args.skip, len(plan)):
            target, index = plan[k]
            out.write(json.dumps({"start": k}) + "\n")
            out.flush()
            work = Path(tmp) / str(k)
            work.mkdir()
            rec = run_case(target, index, args.seed, work)
            rec["k"] = k
            out.write(json.dumps(rec) + "\n")
            out.flush()
            for f in work.iterdir():
                f.unlink()
            work.rmdir()
    return 0


def _crash_record(plan, k: int, why: str) -> dict:
    target, index = plan[k]
    return {"target": target, "index": index, "class": "?", "outcome": "crash", "error": why, "ms": 0.0,
            "bytes": 0, "input": "", "k": k}


def run_fuzz(targets: list[str] | None, cases: int, seed: int, deadline: float | None = None,
             progress=None) -> list[dict]:
    """Run ``cases`` cases per target (all of TARGETS by default) in worker processes; one record per case run.

    deadline: time.monotonic() after which no new case starts (the rest are not run). progress: optional callable
    taking the number of finished cases (a tqdm ``update``)."""
    targets = list(TARGETS) if targets is None else list(targets)
    unknown = [t for t in targets if t not in TARGETS]
    if unknown:
        raise ValueError(f"targets: unknown {unknown} (known: {', '.join(TARGETS)})")
    if isinstance(cases, bool) or not isinstance(cases, int) or cases < 0:
        raise ValueError(f"cases: expected an integer >= 0, got {cases!r}")
    plan = case_plan(targets, cases)
    records: list[dict] = []
    k = 0
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    while k < len(plan) and (deadline is None or time.monotonic() < deadline):
        # stderr to a file: the parsers' warnings (dropped duplicate lines ...) would fill a pipe and block
        errfile = tempfile.TemporaryFile("w+")
        proc = subprocess.Popen([sys.executable, "-m", "engine.bench.reliability.fuzz", "--seed", str(seed),
                                 "--cases", str(cases), "--targets", ",".join(targets), "--skip", str(k)],
                                cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=errfile, text=True)
        started = None
        try:
            while True:
                if deadline is not None and time.monotonic() >= deadline and started is None:
                    break
                ready, _, _ = select.select([proc.stdout], [], [], CASE_TIMEOUT_S)
                if not ready:
                    proc.kill()
                    records.append(_crash_record(plan, started if started is not None else k,
                                                 f"no result within {CASE_TIMEOUT_S:g} s (hang)"))
                    k = (started if started is not None else k) + 1
                    break
                line = proc.stdout.readline()
                if not line:  # the worker died (or finished)
                    rc = proc.wait()
                    if started is not None:
                        errfile.seek(0)
                        err = errfile.read()[-300:].strip().replace("\n", " | ")
                        records.append(_crash_record(plan, started, f"worker died (exit {rc}): {err}"))
                        k = started + 1
                    else:
                        k = len(plan)
                    break
                msg = json.loads(line)
                if "start" in msg:
                    started = msg["start"]
                    continue
                records.append(msg)
                started, k = None, msg["k"] + 1
                if progress is not None:
                    progress(1)
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            proc.stdout.close()
            errfile.close()
    return records


def summarize(records: list[dict]) -> dict:
    """Counts per target and per mutation class, outcomes per target, and the non-clear failures (up to 20)."""
    by_target: dict[str, Counter] = {}
    by_class: Counter = Counter()
    for r in records:
        by_target.setdefault(r["target"], Counter())[r["outcome"]] += 1
        by_class[r["class"]] += 1
    bad = [r for r in records if r["outcome"] in ("crash", "unclear")]
    return {"cases": len(records),
            "outcomes": {o: sum(c[o] for c in by_target.values()) for o in OUTCOMES},
            "by_target": {t: {o: c[o] for o in OUTCOMES} | {"cases": sum(c.values())}
                          for t, c in sorted(by_target.items())},
            "by_class": {c: by_class[c] for c in (*MUTATION_CLASSES, "?") if by_class[c]},
            "max_case_ms": max((r["ms"] for r in records), default=0.0),
            "failures": [{k: r[k] for k in ("target", "index", "class", "outcome", "error", "input")}
                         for r in bad[:20]]}


if __name__ == "__main__":
    sys.exit(_worker_main())
