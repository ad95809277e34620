"""`vsgg demo` (what `make demo` runs after installing): tracker score on TUD-Campus, then the engine on real footage
(bikes.mp4, shipped NanoDet, default relation model) publishing over ZeroMQ to `vsgg watch` in a second process
whose final graph must equal the engine's; overlay (H.264, real frames) and delta log written."""
import json
import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[2]


def test_vsgg_demo_end_to_end(tmp_path):
    out = tmp_path / "demo"
    p = subprocess.run([sys.executable, "-m", "engine.cli", "demo", "--out", str(out), "--max-frames", "80"],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout[-1500:] + p.stderr[-2000:]
    mota = re.search(r"\[1/2\] tracker on TUD-Campus \(71 frames\): MOTA ([\d.]+)  IDF1 ([\d.]+)", p.stdout)
    assert mota and float(mota.group(1)) >= 0.66
    assert "[2/2] engine on real footage (bikes.mp4)" in p.stdout
    assert re.search(r"^scene graph at t=[\d.]+s \(epoch \w+, seq 80\): \d+ entities, \d+ relations", p.stdout, re.M)
    assert re.search(r"80 frames in [\d.]+ s \([\d.]+ fps\)", p.stdout) and re.search(r"^  detector ", p.stdout, re.M)
    assert re.search(r"watcher \(exit 0\) printed \d+ graph changes; its final graph equals the engine's", p.stdout)
    assert json.loads((out / "watch_graph.json").read_text()) == json.loads((out / "engine_graph.json").read_text())
    assert p.stdout.count("publishing on") + p.stderr.count("publishing on") == 1
    assert p.stdout.rstrip().endswith(f"overlay video: {out / 'overlay.mp4'}")
    assert len((out / "deltas.jsonl").read_text().splitlines()) == 80
    cap = cv2.VideoCapture(str(out / "overlay.mp4"))
    assert cap.get(cv2.CAP_PROP_FRAME_WIDTH) == 640 and cap.get(cv2.CAP_PROP_FRAME_HEIGHT) == 272
    frames = []
    while True:
        ok, f = cap.read()
        if not ok:
            break
        frames.append(f)
    assert len(frames) == 80
    assert float(np.std(frames[40])) > 30  # real footage under the overlay, not a flat canvas
