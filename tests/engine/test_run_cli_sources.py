"""`vsgg run` on every file source kind, with the live status line, the final summary and the overlay: the VidOR
fixture (vidvrd:), the synthetic world (synthetic:), and a video file through an ONNX detector (video:)."""
import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from engine.cli.main import main
from engine.config import load_engine_config

ROOT = Path(__file__).resolve().parents[2]
VIDOR = ROOT / "tests" / "data" / "vidor"
STATUS = re.compile(r"frame +\d+ +[\d.]+ fps +entities +\d+ +relations +\d+ +p95 +[\d.]+ ms")


def frame_count(path) -> int:
    cap = cv2.VideoCapture(str(path))
    n = 0
    while cap.read()[0]:
        n += 1
    cap.release()
    return n


def test_vidvrd_source_with_the_vidvrd_model_status_line_summary_and_overlay(tmp_path, capsys):
    overlay = tmp_path / "o.mp4"
    rc = main(["run", "--source", f"vidvrd:{VIDOR / '3598080384.json'}", "--category-map",
               str(VIDOR / "category_map.yaml"), "--overlay", str(overlay), "--max-frames", "120",
               "--model", str(Path(__file__).resolve().parents[2] / "engine" / "models" / "default")])
    out, err = capsys.readouterr()
    assert rc == 0
    assert STATUS.search(err), f"no live status line in stderr: {err[-500:]!r}"
    assert re.search(r"120 frames in [\d.]+ s \([\d.]+ fps\); relations started \d+, updated \d+, ended \d+", out)
    assert re.search(r"^  total +[\d.]+ +[\d.]+$", out, re.M) and "flicker rate" in out
    assert f"overlay written to {overlay} (120 frames)" in out
    assert frame_count(overlay) == 120


def test_synthetic_source_with_a_yaml_config(tmp_path, capsys):
    cfg = tmp_path / "engine.yaml"
    cfg.write_text("tracker:\n  max_age: 7\nfilter:\n  enter: 0.55\n  exit: 0.35\n")
    rc = main(["run", "--source", "synthetic:5", "--config", str(cfg), "--max-frames", "60", "--quiet",
               "--jsonl", str(tmp_path / "d.jsonl")])
    out, err = capsys.readouterr()
    assert rc == 0 and not STATUS.search(err)
    assert "60 frames in" in out
    assert len((tmp_path / "d.jsonl").read_text().splitlines()) == 60
    loaded = load_engine_config(str(cfg), ["filter.enter=0.6"])  # what --config gives, overrides on top
    assert loaded.tracker.max_age == 7 and loaded.filter.exit == 0.35 and loaded.filter.enter == 0.6
    cfg.write_text("tracker:\n  max_agee: 7\n")
    rc = main(["run", "--source", "synthetic:5", "--config", str(cfg), "--max-frames", "5", "--quiet"])
    assert rc != 0 and "unknown config key 'tracker.max_agee'" in capsys.readouterr().err


def test_video_source_through_an_onnx_detector(tmp_path, capsys):
    """A real video file (written here) read by OpenCV, a YOLO-layout detector built with onnx.helper that always
    sees the same two people: the engine tracks them (two entities) from the detector's output."""
    pytest.importorskip("onnx")
    from test_detector import save_model, yolov8_output
    video = tmp_path / "v.mp4"
    w = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (320, 320))
    for k in range(30):
        w.write(np.full((320, 320, 3), 40 + k, np.uint8))
    w.release()
    model = save_model(tmp_path / "det.onnx", yolov8_output([(80, 160, 40, 120, 0, 0.9), (220, 160, 40, 110, 0, 0.8)]))
    classes = tmp_path / "classes.txt"
    classes.write_text("person\ncar\ndog\n")
    jsonl = tmp_path / "d.jsonl"
    rc = main(["run", "--source", f"video:{video}", "--detector", model, "--classes", str(classes), "--quiet",
               "--jsonl", str(jsonl), "--overlay", str(tmp_path / "o.mp4")])
    out, _ = capsys.readouterr()
    assert rc == 0 and "30 frames in" in out
    assert frame_count(tmp_path / "o.mp4") == 30
    last = [json.loads(line) for line in jsonl.read_text().splitlines()]
    ents = {}
    for d in last:
        for e in d["upsert_entities"]:
            ents[e["id"]] = e
        for i in d["remove_entity_ids"]:
            ents.pop(i, None)
    assert len(ents) == 2 and {e["label"] for e in ents.values()} == {"person"}
    xs = sorted(round(e["box_xyxy"][0]) for e in ents.values())
    assert xs == [60, 200]  # cx - w/2 in the 320x320 image: the detector's boxes, mapped back
