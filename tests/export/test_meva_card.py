"""The shipped MEVA model's card is written from its release.json, and the card's paragraph on the mAP ratio to the
frequency prior states the ceiling that no method can pass (1 / the prior's mAP)."""
import json
from pathlib import Path

import pytest

pytest.importorskip("torch")

from engine.relate.relation_io import read_model_info  # noqa: E402
from export.model_card import _ratio_lines, write_meva_model_card  # noqa: E402
from offline_train.checkpoint import read_meta  # noqa: E402

MEVA = Path(__file__).resolve().parents[2] / "engine" / "models" / "meva"


def _split(model_map, prior_map, explained, rest, n=(50, 100)):
    return {"model": {"mAP": model_map}, "baselines": {"frequency_prior": {"mAP": prior_map}},
            "clip_kinds": {"explained": {"n_videos": n[0], "n_gt": 300, "model": explained[0],
                                         "frequency_prior": explained[1]},
                           "rest": {"n_videos": n[1], "n_gt": 2000, "model": rest[0], "frequency_prior": rest[1]}}}


def test_shipped_card_is_the_one_its_release_json_writes(tmp_path):
    if not (MEVA / "release.json").is_file():
        pytest.skip(f"no shipped MEVA model at {MEVA}")
    figures = json.loads((MEVA / "release.json").read_text())
    out = write_meva_model_card(tmp_path / "card.md", read_meta(MEVA / "checkpoint"),
                                read_model_info(MEVA / "relation.onnx"), figures)
    assert out.read_text() == (MEVA / "MODEL_CARD.md").read_text()
    assert "**mAP against the frequency prior, and its ceiling.**" in out.read_text()


def test_ratio_paragraph_rows_and_verdicts():
    lines = _ratio_lines(_split(0.727, 0.493, (0.97, 0.95), (0.58, 0.27)),
                         _split(0.708, 0.550, (0.968, 0.950), (0.562, 0.326)))
    text = "\n".join(lines)
    assert "| test | 50 (300 instances) | 0.970 / 0.950 | 100 (2000 instances) | 0.580 / 0.270 | 1.47x | 2.03x |" \
        in text
    assert "| val | 50 (300 instances) | 0.968 / 0.950 | 100 (2000 instances) | 0.562 / 0.326 | 1.29x | 1.82x |" \
        in text
    assert "out of reach of any method on the val date (at most 1.82x)" in text      # 1.82x < 2 on val
    assert "on the test dates it takes mAP 0.986, near-perfect detection on every clip" in text
    assert "the model's mAP is 2.15x the prior's on the test dates and 1.72x the prior's on the val date" in text
    weak = "\n".join(_ratio_lines(_split(0.5, 0.2, (0.9, 0.5), (0.4, 0.1)), _split(0.5, 0.2, (0.9, 0.5), (0.4, 0.1))))
    assert "out of reach" not in weak and "near-perfect" not in weak
    near = "\n".join(_ratio_lines(_split(0.8, 0.48, (1, 1), (0.7, 0.2)), _split(0.8, 0.4, (1, 1), (0.7, 0.2))))
    assert "So twice the prior's mAP is on the test dates it takes mAP 0.960, near-perfect" in near  # val: 2.5x
    assert _ratio_lines({"model": {}}, {}) == []                     # figures from before the clip kinds
    assert _ratio_lines(_split(0.5, 0.0, (0.9, 0.0), (0.4, 0.0)), _split(0.5, 0.2, (0.9, 0.5), (0.4, 0.1))) == []
