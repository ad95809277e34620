"""Command-line cases: `vsgg run` / `vsgg track` on the inputs the hardening issue probed, and on fuzzed det.txt files.

Outcome of one CLI run: ``crash`` (killed by a signal), ``traceback`` (stderr shows a Python traceback), ``clear``
(non-zero exit with an ``error:`` line and no traceback), ``unclear`` (non-zero exit without one) or ``accepted``
(exit 0). Each probe (``probes``) states the outcome it must have; an ``accepted`` probe may also state that its final
graph must equal the graph of a clean input (duplicate lines and zero-area boxes are dropped, not published).
A probe with another outcome than expected is ``silently_wrong`` when it was accepted, else ``unexpected``.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable

from engine.bench.reliability.mutators import case_class, case_rng, mutate
from engine.bench.reliability.parser_targets import TARGETS, det_rows, lines_bytes, vidvrd_doc
from engine.bench.reliability.processes import Child, vsgg

SEQINFO = "[Sequence]\nname=cli\nframeRate=30\nseqLength=25\nimWidth=640\nimHeight=480\n"
Probe = tuple[str, Callable[[Path], list[str]], str, bool]  # name, argv builder, expected outcome, compare graphs


def outcome(rc: int | None, stderr: str) -> str:
    if rc is None or rc < 0:
        return "crash"
    if "Traceback (most recent call last)" in stderr:
        return "traceback"
    if rc == 0:
        return "accepted"
    return "clear" if "error" in stderr.lower() else "unclear"


def _mot(folder: Path, name: str, rows: list, seqinfo: bool = True) -> Path:
    d = folder / name
    d.mkdir(parents=True, exist_ok=True)
    (d / "det.txt").write_bytes(lines_bytes(rows))
    if seqinfo:
        (d / "seqinfo.ini").write_text(SEQINFO)
    return d / "det.txt"


def _run(det: Path, *extra: str) -> list[str]:
    return vsgg("run", "--source", f"mot:{det}", "--model", "none", "--quiet", *extra)


def _vidvrd_with(folder: Path, name: str, edit: Callable[[dict], None]) -> list[str]:
    doc = vidvrd_doc(None)
    edit(doc)
    p = folder / f"{name}.json"
    p.write_text(json.dumps(doc))
    return vsgg("run", "--source", f"vidvrd:{p}", "--model", "none", "--quiet")


def _file(folder: Path, name: str, data: bytes) -> Path:
    p = folder / name
    p.write_bytes(data)
    return p


def probes() -> list[Probe]:
    rows = det_rows(None)
    good = lambda f: _mot(f, "good", rows)  # noqa: E731
    deep = b"[" * 100_000 + b"]" * 100_000
    return [
        ("fps_zero", lambda f: _run(good(f), "--fps", "0"), "clear", False),
        ("max_frames_negative", lambda f: _run(good(f), "--max-frames", "-5"), "clear", False),
        ("zmq_garbage", lambda f: _run(good(f), "--zmq", "garbage"), "clear", False),
        ("zmq_port_not_numeric", lambda f: _run(good(f), "--zmq", "tcp://127.0.0.1:http"), "clear", False),
        ("camera_not_an_index", lambda f: vsgg("run", "--source", "camera:abc", "--model", "none"), "clear", False),
        ("image_size_0x0", lambda f: _run(_mot(f, "noinfo", rows, False), "--image-size", "0x0"), "clear", False),
        ("mot_source_is_a_folder", lambda f: _run(good(f).parent), "clear", False),
        ("frame_300000000", lambda f: _run(_mot(f, "huge", rows + [[300000000, -1, 5, 5, 20, 20, 0.9]])),
         "clear", False),
        ("binary_det_txt", lambda f: _run(_file(f / "good", "bin.txt", bytes(range(256)) * 8)), "clear", False),
        ("duplicate_det_lines", lambda f: _run(_mot(f, "dup", [r for r in rows for _ in (0, 1)])), "accepted",
         True),
        ("zero_area_box", lambda f: _run(_mot(f, "zero", rows + [[3, -1, 100, 100, 0, 40, 0.9]])), "accepted",
         True),
        ("vidvrd_nan_box", lambda f: _vidvrd_with(f, "nan", lambda d: d["trajectories"][2][0]["bbox"].update(
            xmin=float("nan"))), "clear", False),
        ("vidvrd_float_tid", lambda f: _vidvrd_with(f, "ftid", lambda d: d["trajectories"][1][0].update(tid=0.7)),
         "clear", False),
        ("vidvrd_duplicate_tid", lambda f: _vidvrd_with(f, "dtid", lambda d: d["trajectories"][1].append(
            dict(d["trajectories"][1][0]))), "clear", False),
        ("vidvrd_fps_text", lambda f: _vidvrd_with(f, "fps", lambda d: d.update(fps="fast")), "clear", False),
        ("category_map_c1_control", lambda f: _vidvrd_with(f, "cm", lambda d: None) + [
            "--category-map", str(_file(f, "cm.json", json.dumps({"person": "per\x9bson"}).encode()))], "clear",
         False),
        ("category_map_bidi", lambda f: _vidvrd_with(f, "cm2", lambda d: None) + [
            "--category-map", str(_file(f, "cm2.yaml", "dog: \"\u202edog\"\n".encode()))], "clear", False),
        ("category_map_deeply_nested", lambda f: _vidvrd_with(f, "cm3", lambda d: None) + [
            "--category-map", str(_file(f, "cm3.json", deep))], "clear", False),
        ("config_deeply_nested", lambda f: _run(good(f), "--config", str(_file(f, "deep.yaml", deep))), "clear",
         False),
        ("config_binary", lambda f: _run(good(f), "--config", str(_file(f, "bin.yaml", bytes(range(256))))),
         "clear", False),
        ("track_frame_300000000", lambda f: vsgg("track", "--mot", str(_mot(f, "huge2", rows + [
            [300000000, -1, 5, 5, 20, 20, 0.9]])), "--out", str(f / "res.txt")), "clear", False),
    ]


def _graph_without_epoch(path: Path) -> dict | None:
    try:
        g = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    g.pop("epoch", None)
    return g


def _run_child(folder: Path, name: str, argv: list[str], timeout: float = 120.0) -> tuple[str, str]:
    c = Child(name, argv, folder)
    rc = c.wait(timeout)
    err = c.stderr()
    c.stop()
    return outcome(rc, err), err


def run_cli_cases(folder: Path, fuzz_cases: int, seed: int, deadline: float | None = None, progress=None) -> dict:
    """The probes, then ``fuzz_cases`` mutated det.txt files through `vsgg run`; outcomes and failures."""
    folder.mkdir(parents=True, exist_ok=True)
    reference = folder / "reference_final.json"
    _run_child(folder, "reference", _run(_mot(folder, "good", det_rows(None)), "--final-graph", str(reference)))
    ref = _graph_without_epoch(reference)
    results = []
    for name, build, expect, compare in probes():
        if deadline is not None and time.monotonic() > deadline:
            break
        argv = build(folder)
        final = folder / f"{name}_final.json"
        if compare:
            argv += ["--final-graph", str(final)]
        got, err = _run_child(folder, name, argv)
        ok = got == expect and (not compare or (ref is not None and _graph_without_epoch(final) == ref))
        verdict = "as_expected" if ok else ("silently_wrong" if got == "accepted" else "unexpected")
        results.append({"probe": name, "expected": expect, "outcome": got, "verdict": verdict,
                        "message": (err.strip().splitlines() or [""])[-1][:200]})
        if progress is not None:
            progress(1)
    fuzz = {k: 0 for k in ("clear", "accepted", "unclear", "traceback", "crash")}
    failures = []
    target = TARGETS["mot_det_txt"]
    for i in range(fuzz_cases):
        if deadline is not None and time.monotonic() > deadline:
            break
        rng = case_rng(seed, "cli_mot", i)
        cls = case_class(rng)
        d = folder / f"fuzz{i}"
        d.mkdir(exist_ok=True)
        (d / "det.txt").write_bytes(mutate(target.seed(None), target.serialize, cls, rng))
        (d / "seqinfo.ini").write_text(SEQINFO)
        got, err = _run_child(folder, f"fuzz{i}", _run(d / "det.txt"))
        fuzz[got] += 1
        if got in ("traceback", "crash", "unclear"):
            failures.append({"case": i, "class": cls, "outcome": got, "stderr": err[-300:]})
        if progress is not None:
            progress(1)
    return {"probes": results, "fuzz": {"cases": sum(fuzz.values()), **fuzz}, "failures": failures[:10]}
