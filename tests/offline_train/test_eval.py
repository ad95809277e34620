"""`vsgg eval`: causal PredCls over VidVRD-format videos, official prediction format, report with baselines."""
import json
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from offline_train.eval_run import run_eval  # noqa: E402
from offline_train.evaluate import MergeConfig, merge_instances  # noqa: E402
from engine.io.vidvrd import load_vidvrd  # noqa: E402
from engine.vocab import Vocabulary  # noqa: E402

VIDOR = "tests/data/vidor/3598080384.json"
MAPS = ["--predicate-map", "tests/data/vidor/predicate_map.yaml", "--category-map", "tests/data/vidor/category_map.yaml"]


@pytest.mark.parametrize("model", ["tiny", "shipped default"])
def test_eval_cli_on_vidor_fixture(tiny_run, tmp_path, model):
    out, _ = tiny_run
    # without --model, vsgg eval runs the shipped default model (its ONNX export, on onnxruntime)
    chosen = ["--model", str(out / "best")] if model == "tiny" else []
    cmd = [sys.executable, "-m", "engine.cli", "eval", *chosen, "--vidvrd", VIDOR,
           "--out", str(tmp_path / "preds.json"), "--report", str(tmp_path / "report.json"), *MAPS]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    preds = json.loads((tmp_path / "preds.json").read_text())
    assert set(preds["results"]) == {"3598080384"}
    for inst in preds["results"]["3598080384"]:
        b, e = inst["duration"]
        assert len(inst["sub_traj"]) == e - b == len(inst["obj_traj"]) and len(inst["triplet"]) == 3
    rep = json.loads((tmp_path / "report.json").read_text())
    for block in (rep["model"], rep["baselines"]["frequency_prior"], rep["baselines"]["world_rules"]):
        assert set(block["relation_detection"]) == {"mAP", "R@50", "R@100"}
        assert set(block["relation_tagging"]) == {"P@1", "P@5", "P@10"}
    assert rep["n_gt"] == 4


def test_unmapped_labels_are_clear_errors(tiny_run, tmp_path):
    out, _ = tiny_run
    with pytest.raises(ValueError, match="adult"):
        run_eval(out / "best", [VIDOR], tmp_path / "p.json", tmp_path / "r.json", progress=False)


def test_malformed_annotation(tiny_run, tmp_path):
    out, _ = tiny_run
    bad = tmp_path / "bad.json"
    bad.write_text('{"video_id": "x"}')
    with pytest.raises(ValueError, match="missing field"):
        run_eval(out / "best", [bad], tmp_path / "p.json", tmp_path / "r.json", progress=False)


def test_merge_instances_spans_and_gaps():
    ann = load_vidvrd(VIDOR)
    preds = Vocabulary("p", ("a", "b"))
    scores = np.full((ann.frame_count, 2, 2), np.nan, np.float32)
    scores[:, :, :] = 0.0
    scores[10:20, 0, 0] = 0.9           # one run
    scores[22:30, 0, 0] = 0.5           # joined across a 2-frame gap
    scores[40:42, 0, 1] = 0.9           # too short (min_frames 3)
    out = merge_instances(scores, np.array([0, 1]), np.array([1, 0]), ann, preds,
                          MergeConfig(threshold=0.3, max_gap=2, min_frames=3))
    assert [(r.triplet[1], r.begin_fid, r.end_fid) for r in out] == [("a", 10, 30)]
    assert out[0].score == pytest.approx((10 * 0.9 + 8 * 0.5 + 2 * 0.0) / 20, rel=1e-5)  # mean over the span
