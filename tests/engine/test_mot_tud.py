"""MOTChallenge evaluation: the tracker on TUD-Campus public detections (py-motmetrics), and the eval helper itself."""
from pathlib import Path

import numpy as np
import pytest

from engine.boxes import xyxy_to_ltwh
from engine.cli.main import main as vsgg_main
from engine.config import TrackerConfig
from engine.track.mot_eval import evaluate_mot, read_mot_rows
from engine.io.sources import MotDetections
from engine.track.tracker import Tracker

pytest.importorskip("motmetrics")

TUD = Path(__file__).resolve().parents[1] / "data" / "mot15" / "TUD-Campus"
SORT_MOTA = 0.627  # SORT on the same detections (tests/data/README.md)


def track_tud(cfg: TrackerConfig) -> np.ndarray:
    tr, rows = Tracker(cfg), []
    for frame, t, dets in MotDetections(TUD / "det.txt", fps=25.0):
        out = tr.step(dets, t)
        rows.append(np.column_stack([np.full(len(out), frame), out.ids + 1, xyxy_to_ltwh(out.boxes_xyxy), out.scores]))
    return np.concatenate(rows)


def test_tud_campus_mota_and_idf1():
    m = evaluate_mot(track_tud(TrackerConfig()), TUD / "gt.txt")
    print(f"\nTUD-Campus: MOTA {m['mota']:.3f} IDF1 {m['idf1']:.3f} FP {m['num_false_positives']} "
          f"FN {m['num_misses']} IDsw {m['num_switches']} (SORT: MOTA {SORT_MOTA})")
    assert m["num_frames"] == 71 and m["num_objects"] == 359
    assert m["mota"] >= 0.66
    assert m["idf1"] >= 0.70


def test_evaluate_mot_on_ground_truth_itself_and_perturbed():
    gt = read_mot_rows(TUD / "gt.txt")
    perfect = evaluate_mot(gt, TUD / "gt.txt")
    assert perfect["mota"] == pytest.approx(1.0) and perfect["idf1"] == pytest.approx(1.0)
    assert perfect["num_switches"] == 0 and perfect["motp"] == pytest.approx(0.0)
    dropped = evaluate_mot(gt[10:], TUD / "gt.txt")
    assert dropped["num_misses"] == 10 and dropped["mota"] == pytest.approx(1 - 10 / 359)
    shifted = gt.copy()
    shifted[:, 2] += 5000  # moved out of the scene: every box is a miss and a false positive
    s = evaluate_mot(shifted, TUD / "gt.txt")
    assert s["num_misses"] == 359 and s["num_false_positives"] == 359


def test_evaluate_mot_bad_input(tmp_path):
    with pytest.raises(ValueError, match="results"):
        evaluate_mot(np.zeros((3, 4)), TUD / "gt.txt")
    bad = tmp_path / "res.txt"
    bad.write_text("1,1,0,0,10,20,1\n1,2,0,0,x,20,1\n")
    with pytest.raises(ValueError, match=":2:"):
        evaluate_mot(bad, TUD / "gt.txt")
    with pytest.raises(FileNotFoundError, match="gt_path"):
        evaluate_mot(TUD / "gt.txt", tmp_path / "nope.txt")


def test_vsgg_track_cli(tmp_path, capsys):
    out = tmp_path / "res" / "tud.txt"
    rc = vsgg_main(["track", "--mot", str(TUD / "det.txt"), "--out", str(out), "--gt", str(TUD / "gt.txt"),
                    "tracker.max_age=30"])
    assert rc == 0
    lines = out.read_text().splitlines()
    first = lines[0].split(",")
    assert len(first) == 10 and first[0] == "1" and int(first[1]) >= 1 and first[7:] == ["-1", "-1", "-1"]
    printed = capsys.readouterr().out
    assert "71 frames" in printed and "MOTA" in printed
    m = evaluate_mot(out, TUD / "gt.txt")
    assert m["mota"] >= 0.66
    assert vsgg_main(["track", "--mot", str(TUD / "det.txt"), "--out", str(out), "tracker.max_agee=3"]) == 1
    assert "tracker.max_agee" in capsys.readouterr().err
