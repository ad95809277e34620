"""`vsgg eval --meva`: a model trained on real MEVA clips (the tests/data/meva fixture), scored with both baselines,
predictions at the annotation's 30 fps frames, the same report from 1 and 2 worker processes, and the CLI."""
import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from engine.cli.main import main  # noqa: E402
from offline_train.config import load_train_config  # noqa: E402
from offline_train.data.meva import load_meva  # noqa: E402
from offline_train.eval_meva import run_eval_meva  # noqa: E402
from offline_train.train import train  # noqa: E402

MEVA = str(Path(__file__).resolve().parents[1] / "data" / "meva")
DATES = ("2018-03-11",)


@pytest.fixture(scope="module")
def meva_model(tmp_path_factory):
    out = tmp_path_factory.mktemp("meva_tiny")
    data = [f"paths=[{MEVA}]", "kind=meva", f"meva_cache_dir={out / 'cache'}", "meva_workers=1"]
    cfg = load_train_config(preset="tiny", overrides=[
        *(f"train_data.{d}" for d in data), *(f"val_data.{d}" for d in data), "train_data.meva_dates=[2018-03-11]",
        "val_data.meva_dates=[2018-03-11]", "train_data.split=", "val_data.split=", "optim.epochs=1",
        "optim.max_pairs=16", "optim.crops_per_video=4", "run.val_window=64", f"run.out_dir={out}",
        "run.progress=false"])
    train(cfg)
    return out


@pytest.fixture(scope="module")
def reports(meva_model, tmp_path_factory):
    out = tmp_path_factory.mktemp("meva_eval")
    cache = str(meva_model / "cache")
    one = run_eval_meva(meva_model / "best", [MEVA], out / "p1.json", out / "r1.json", dates=DATES, workers=1,
                        threshold=0.05, cache_dir=cache, progress=False)
    two = run_eval_meva(meva_model / "best", [MEVA], out / "p2.json", out / "r2.json", dates=DATES, workers=2,
                        threshold=0.05, cache_dir=cache, progress=False)
    return out, one, two, cache


def test_report_has_the_vidvrd_keys_for_the_model_and_both_baselines(reports):
    _, one, _, _ = reports
    assert one["n_videos"] == 3 and one["n_gt"] > 10 and one["model_fps"] == 10.0
    for block in (one["model"], one["baselines"]["frequency_prior"], one["baselines"]["prior_x_proximity"]):
        assert set(block["relation_detection"]) == {"mAP", "R@50", "R@100"}
        assert set(block["relation_tagging"]) == {"P@1", "P@5", "P@10"}
        assert "per_predicate_recall@50" in block
    assert Path(one["chart"]).is_file()
    kinds = one["clip_kinds"]
    assert kinds["explained"]["n_videos"] + kinds["rest"]["n_videos"] == one["n_videos"]
    assert kinds["explained"]["n_gt"] + kinds["rest"]["n_gt"] == one["n_gt"]
    # the kinds' mAPs, weighted by clip count, give the whole report's
    for k in ("model", "frequency_prior"):
        whole = one["model"] if k == "model" else one["baselines"][k]
        parts = [(b["n_videos"], b.get(k, 0.0)) for b in (kinds["explained"], kinds["rest"])]
        assert sum(n * x for n, x in parts) / one["n_videos"] == pytest.approx(whole["relation_detection"]["mAP"])


def test_sharding_over_workers_gives_the_same_report(reports):
    out, one, two, _ = reports
    for k in ("model", "baselines"):
        assert one[k] == two[k]
    assert json.loads((out / "p1.json").read_text()) == json.loads((out / "p2.json").read_text())


def test_predictions_are_written_at_the_annotation_frames(reports):
    out, _, _, cache = reports
    preds = json.loads((out / "p1.json").read_text())["results"]
    clips = {c.name: c for c in load_meva([MEVA], fps=30, dates=DATES, cache_dir=cache, progress=False)}
    n = 0
    for vid, rels in preds.items():
        ann = clips[vid].annotation
        for r in rels:
            b, e = r["duration"]
            assert 0 <= b < e <= ann.frame_count and b % 3 == 0  # model frames are every 3rd annotation frame
            assert len(r["sub_traj"]) == e - b
            n += 1
    assert n > 0


def test_cli_meva_eval(meva_model, tmp_path, capsys):
    rc = main(["eval", "--model", str(meva_model / "best"), "--meva", MEVA, "--dates", *DATES, "--out",
               str(tmp_path / "p.json"), "--report", str(tmp_path / "r.json"), "--max-clips", "1"])
    out = capsys.readouterr().out
    assert rc == 0 and "prior_x_proximity" in out and (tmp_path / "r.png").is_file()
    assert "other clips: 1 (" in out or "clips the prior's first guess explains: 1 (" in out


def test_a_non_meva_model_is_refused(tmp_path, meva_model):
    with pytest.raises(ValueError, match="not in the model's vocabulary"):
        run_eval_meva(None, [MEVA], tmp_path / "p.json", tmp_path / "r.json", dates=DATES,
                      cache_dir=str(meva_model / "cache"), progress=False)


def test_no_clip_for_the_dates_is_a_clear_error(tmp_path, meva_model):
    with pytest.raises(ValueError, match="no MEVA clips"):
        run_eval_meva(meva_model / "best", [MEVA], tmp_path / "p.json", tmp_path / "r.json", dates=("2019-01-01",),
                      cache_dir=str(meva_model / "cache"), progress=False)


def test_threshold_sweep_matches_single_threshold_reports(reports, meva_model):
    from offline_train.eval_meva import sweep_meva
    _, one, _, cache = reports
    table = sweep_meva(meva_model / "best", [MEVA], [0.05, 0.5], dates=DATES, cache_dir=cache, progress=False)
    assert set(table) == {0.05, 0.5}
    got = table[0.05]["model"]
    assert got["mAP"] == one["model"]["relation_detection"]["mAP"]
    assert got["R@50"] == one["model"]["relation_detection"]["R@50"]
    assert got["P@5"] == one["model"]["relation_tagging"]["P@5"]
    assert table[0.05]["frequency_prior"]["mAP"] == one["baselines"]["frequency_prior"]["relation_detection"]["mAP"]


def test_predicate_confusion_counts_each_gt_instance_once(reports, meva_model):
    _, one, _, _ = reports
    conf = one["confusion"]
    gt = one["model"]["gt_predicates"]
    assert {k: sum(v.values()) for k, v in conf.items()} == gt


def test_confusion_names_the_predicate_ranked_first_on_the_gt_pair():
    from engine.io.vidvrd import RelationInstance, VideoAnnotation
    from offline_train.eval_meva import predicate_confusion
    from offline_train.metrics import VideoRelation
    boxes = np.tile(np.array([[[0, 0, 10, 10], [20, 0, 30, 10], [200, 0, 210, 10]]], np.float32), (30, 1, 1))
    ann = VideoAnnotation("v", 30.0, 640, 480, np.array([1, 2, 3]), ("person", "vehicle", "vehicle"), boxes,
                          (RelationInstance(1, "person_opens_vehicle_door", 2, 0, 30),))
    t = lambda k: boxes[:, k].astype(np.float64)  # noqa: E731
    preds = {"v": [VideoRelation(("person", "person_closes_vehicle_door", "vehicle"), 0, 30, t(0), t(1), 0.9),
                   VideoRelation(("person", "person_opens_vehicle_door", "vehicle"), 0, 30, t(0), t(1), 0.5),
                   VideoRelation(("person", "person_enters_vehicle", "vehicle"), 0, 30, t(0), t(2), 0.99)]}
    assert predicate_confusion([ann], preds) == {"person_opens_vehicle_door": {"person_closes_vehicle_door": 1}}
    assert predicate_confusion([ann], {"v": []}) == {"person_opens_vehicle_door": {"none": 1}}


def test_clip_kinds_split_the_clips_the_prior_explains_and_bound_the_ratio():
    from engine.io.vidvrd import RelationInstance, VideoAnnotation
    from engine.vocab import Vocabulary
    from offline_train.eval_meva import clip_kinds, prior_explains
    from offline_train.metrics import VideoRelation
    objects = Vocabulary("objects", ("person", "vehicle"))
    predicates = Vocabulary("predicates", ("talks_to", "opens_door", "closes_door"))
    prior = np.zeros((2, 2, 3), np.float32)
    prior[0, 0] = (0.8, 0.0, 0.0)          # person-person: talks_to first
    prior[0, 1] = (0.0, 0.2, 0.3)          # person-vehicle: closes_door first
    boxes = np.tile(np.array([[[0, 0, 10, 10], [20, 0, 30, 10]]], np.float32), (30, 1, 1))

    def ann(vid, cats, pred):
        return VideoAnnotation(vid, 30.0, 640, 480, np.array([1, 2]), cats, boxes,
                               (RelationInstance(1, pred, 2, 0, 30),))

    a = ann("a", ("person", "person"), "talks_to")                 # the prior's first guess
    b = ann("b", ("person", "vehicle"), "opens_door")              # not its first guess
    c = ann("c", ("person", "vehicle"), "rides")                   # a name outside the vocabulary
    assert prior_explains(a, prior, objects, predicates)
    assert not prior_explains(b, prior, objects, predicates)
    assert not prior_explains(c, prior, objects, predicates)
    t = lambda k: boxes[:, k].astype(np.float64)  # noqa: E731

    def hit(x, p):
        return [VideoRelation((x.categories[0], p, x.categories[1]), 0, 30, t(0), t(1), 0.9)]

    preds = {"model": {"a": hit(a, "talks_to"), "b": hit(b, "opens_door")},
             "frequency_prior": {"a": hit(a, "talks_to"), "b": hit(b, "closes_door")}}
    out = clip_kinds([a, b], preds, prior, objects, predicates)
    assert out == {"explained": {"n_videos": 1, "n_gt": 1, "model": 1.0, "frequency_prior": 1.0},
                   "rest": {"n_videos": 1, "n_gt": 1, "model": 1.0, "frequency_prior": 0.0}}
    assert clip_kinds([b], preds, prior, objects, predicates)["explained"] == {"n_videos": 0, "n_gt": 0}
