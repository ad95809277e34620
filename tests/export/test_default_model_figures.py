"""The shipped default model, re-measured: on the held-out synthetic videos it reaches the issue's targets
(relation tagging P@1 >= 0.9, per-predicate mean recall@50 >= 0.7, clearly above the frequency prior), and the
figures its release.json and model card state are the ones measured here."""
import json
from pathlib import Path

import pytest

pytest.importorskip("torch")

from export.release import _figures, heldout_videos  # noqa: E402
from offline_train.checkpoint import read_meta  # noqa: E402
from offline_train.eval_run import run_eval  # noqa: E402

DEFAULT = Path(__file__).resolve().parents[2] / "engine" / "models" / "default"


def test_shipped_model_meets_targets_on_heldout_videos_and_its_card_is_true(tmp_path):
    if not (DEFAULT / "release.json").is_file():
        pytest.skip(f"no shipped default model at {DEFAULT} (make it with `vsgg release`)")
    stated = json.loads((DEFAULT / "release.json").read_text())["heldout_synthetic"]
    meta = read_meta(DEFAULT / "checkpoint")
    heldout_videos(meta.config, stated["videos"], tmp_path / "heldout")
    rep = run_eval(str(DEFAULT / "relation.onnx"), [str(tmp_path / "heldout")], tmp_path / "p.json",
                   tmp_path / "r.json", progress=False)
    model, prior = _figures(rep["model"]), _figures(rep["baselines"]["frequency_prior"])
    assert model["P@1"] >= 0.9 and model["mR@50"] >= 0.7, model
    assert model["mR@50"] > prior["mR@50"] + 0.3 and model["mAP"] > prior["mAP"] + 0.3, (model, prior)
    assert rep["n_gt"] == stated["n_gt"]
    for k, v in model.items():
        assert v == pytest.approx(stated["model"][k], abs=1e-4), k
    card = (DEFAULT / "MODEL_CARD.md").read_text()
    assert f"| this model | {model['P@1']:.3f} | {model['P@5']:.3f} | {model['P@10']:.3f} | {model['mR@50']:.3f} |" \
        in card
