"""`vsgg demo` (what `make demo` runs after installing): tracker score, then the engine with the shipped default
model publishing over ZeroMQ to `vsgg watch` in a second process, overlay and delta log written."""
import re
import subprocess
import sys
from pathlib import Path

import cv2

ROOT = Path(__file__).resolve().parents[2]


def test_vsgg_demo_end_to_end(tmp_path):
    out = tmp_path / "demo"
    p = subprocess.run([sys.executable, "-m", "engine.cli", "demo", "--out", str(out)], cwd=ROOT,
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    mota = re.search(r"\[1/2\] tracker on TUD-Campus \(71 frames\): MOTA ([\d.]+)  IDF1 ([\d.]+)", p.stdout)
    assert mota and float(mota.group(1)) >= 0.66
    assert re.search(r"^scene graph at t=[\d.]+s \(epoch \w+, seq 71\): \d+ entities, \d+ relations", p.stdout, re.M)
    assert re.search(r"71 frames in [\d.]+ s", p.stdout) and re.search(r"^  total ", p.stdout, re.M)
    watched = re.search(r"watcher received (\d+) graph changes", p.stdout)
    assert watched and int(watched.group(1)) > 10, p.stdout[-1500:]
    assert p.stdout.rstrip().endswith(f"overlay video: {out / 'overlay.mp4'}")
    assert len((out / "deltas.jsonl").read_text().splitlines()) == 71
    cap = cv2.VideoCapture(str(out / "overlay.mp4"))
    n = 0
    while cap.read()[0]:
        n += 1
    assert n == 71
