"""`vsgg ablate`: the tiny config end to end (synthetic + MEVA tracks, an open-vocabulary variant), resume without
retraining, bad configs refused, and the flicker / tail definitions on hand-computed cases."""
import csv
import json
from pathlib import Path

import numpy as np
import pytest
import yaml

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

from engine.config import ConfigError  # noqa: E402
from export.ablate_cli import onnx_step_latency  # noqa: E402
from offline_train import ablation_run  # noqa: E402
from offline_train.ablate import flicker, load_ablation_config, run_ablation, tail_predicates  # noqa: E402
from offline_train.sparse_clips import SparseClip  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "offline_train" / "ablation" / "tiny.yaml"
MEVA = str(ROOT / "tests" / "data" / "meva")


def tiny_yaml(tmp: Path) -> Path:
    """tiny.yaml with absolute MEVA paths and a private MEVA cache (nothing written under ~/.cache)."""
    raw = yaml.safe_load(TINY.read_text())
    cache = tmp / "meva_cache"
    tr = raw["tracks"]["meva"]
    tr["overrides"] = [o.replace("[tests/data/meva]", f"[{MEVA}]") for o in tr["overrides"]]
    tr["overrides"] += [f"train_data.meva_cache_dir={cache}", f"val_data.meva_cache_dir={cache}"]
    tr["meva"].update(paths=[MEVA], cache_dir=str(cache))
    p = tmp / "tiny.yaml"
    p.write_text(yaml.safe_dump(raw))
    return p


@pytest.fixture(scope="module")
def ablation(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ablate")
    cfg = load_ablation_config(tiny_yaml(tmp))
    rows = run_ablation(cfg, tmp / "out", latency=onnx_step_latency, progress=False)
    return cfg, tmp / "out", rows


def test_tiny_config_writes_the_table_chart_and_csv(ablation):
    cfg, out, rows = ablation
    md = (out / "ablation.md").read_text()
    for paper in ("DLL", "FReMuRe", "TR²", "UASAN", "ARN", "decoupled label learning", "frequency guidance",
                  "time-variant relation guidance", "open vocabulary", "association reasoning"):
        assert paper in md
    assert (out / "ablation.png").stat().st_size > 10_000
    with open(out / "ablation.csv") as fh:
        table = list(csv.DictReader(fh))
    keys = {(r["track"], r["eval"], r["variant"], r["subset"]) for r in table}
    assert {("synthetic", "synthetic", "baseline", "-"), ("meva", "meva", "baseline", "-"),
            ("meva", "meva", "frequency prior", "-")} <= keys
    assert {("meva", "meva", "uasan_open_vocab", s) for s in ("base", "novel", "all")} <= keys
    model_rows = [r for r in table if r["variant"] != "frequency prior"]
    assert all(float(r["latency_ms"]) > 0 for r in model_rows)
    assert all(r["flicker_per_s"] != "" for r in model_rows)
    meva = {r["variant"] + r["subset"]: r for r in table if r["track"] == "meva"}
    assert 0 < float(meva["baseline-"]["mR@50"]) <= 1 and float(meva["baseline-"]["toggles"]) > 0
    ov = {s: int(meva["uasan_open_vocab" + s]["n_gt"]) for s in ("base", "novel", "all")}
    assert ov["base"] + ov["novel"] == ov["all"] and ov["novel"] > 0 and ov["all"] == int(meva["baseline-"]["n_gt"])


def test_open_vocab_variant_trains_on_base_names_and_is_scored_with_all(ablation):
    cfg, out, _ = ablation
    d = out / "meva" / "uasan_open_vocab"
    res = json.loads((d / "result.json").read_text())
    assert "bicycle" in res["novel_objects"] and "person_rides_bicycle" in res["novel_predicates"]
    assert len(res["novel_predicates"]) == round(19 / 3)
    trained = json.loads((d / "run" / "last" / "checkpoint.json").read_text())
    scored = json.loads((d / "open_vocab" / "checkpoint.json").read_text())
    assert "bicycle" not in trained["objects"] and not set(res["novel_predicates"]) & set(trained["predicates"])
    assert len(scored["predicates"]) == 19 and "bicycle" in scored["objects"]
    assert np.load(d / "open_vocab" / "prior.npy").shape == (5, 5, 19)


def test_resume_skips_finished_variants_and_does_not_retrain_a_complete_run(ablation, monkeypatch):
    cfg, out, rows = ablation

    def no_training(*a, **k):
        raise AssertionError("a complete run was trained again")

    monkeypatch.setattr("offline_train.train.train", no_training)
    before = {p: p.stat().st_mtime_ns for p in out.rglob("result.json")}
    assert len(before) == 3
    victim = out / "synthetic" / "baseline" / "result.json"
    victim.unlink()   # evaluation lost, training complete: re-evaluated without training
    again = run_ablation(cfg, out, only=("baseline",), latency=None, progress=False)
    assert victim.is_file()
    for p, t in before.items():
        if p != victim:
            assert p.stat().st_mtime_ns == t, f"{p} was redone"
    assert len(again) == len(rows)


def test_partial_run_is_resumed(tmp_path):
    """A variant whose training stopped after epoch 1 of 2 continues from epoch 1, keeping epoch 1's history."""
    from offline_train.ablate import variant_train_config
    from offline_train.train import train

    path = tiny_yaml(tmp_path)
    cfg = load_ablation_config(path)
    v, d = cfg.variants[0], tmp_path / "out" / "synthetic" / "baseline"
    tc = variant_train_config(cfg, "synthetic", v, d)
    assert not ablation_run.run_complete(d / "run", tc)
    train(tc)
    assert ablation_run.run_complete(d / "run", tc)
    first = json.loads((d / "run" / "last" / "checkpoint.json").read_text())["history"]
    raw = yaml.safe_load(path.read_text())
    raw["schedule"] = ["optim.epochs=2", "run.progress=false"]
    path.write_text(yaml.safe_dump(raw))
    cfg2 = load_ablation_config(path)
    assert not ablation_run.run_complete(d / "run", variant_train_config(cfg2, "synthetic", v, d))
    res = ablation_run.run_variant(cfg2, "synthetic", v, d, None, False)
    history = json.loads((d / "run" / "last" / "checkpoint.json").read_text())["history"]
    assert res["epochs"] == 2 and len(history) == 2 and history[0] == first[0]


def test_a_run_of_another_config_is_refused_not_credited_to_the_variant(ablation):
    from offline_train.ablate import Variant
    from offline_train.checkpoint import CheckpointError

    cfg, out, _ = ablation
    changed = Variant("baseline", ("model.tr2.message=false",), False, ("synthetic",))
    with pytest.raises(CheckpointError, match="another config"):
        ablation_run.run_variant(cfg, "synthetic", changed, out / "synthetic" / "baseline", None, False)


def _write(tmp: Path, text: str) -> Path:
    p = tmp / "bad.yaml"
    p.write_text(text)
    return p


TRACK = "tracks: {s: {preset: tiny, synthetic: {videos: 2}}}\n"


@pytest.mark.parametrize("text, match", [
    (TRACK + "variants: {v: [model.no_such_key=1]}", "variant 'v' on track 's'.*no_such_key"),
    (TRACK + "variants: {v: [model.dll.enabled=true, model.uasan.enabled=true]}", "variant 'v'.*switch all but one"),
    (TRACK + "variants: {v: [optim.epochs]}", "variant 'v'.*key=value"),
    (TRACK + "variants: {v: {overrides: [model.uasan.enabled=true], open_vocab: true}}", "no open_vocab split"),
    (TRACK + "variants: {v: {overrides: [], tracks: [nope]}}", "unknown track"),
    (TRACK + "variants: {v: {overrides: [], colour: red}}", "unknown key.*colour"),
    (TRACK + "variants: {v: model.tr2.spatial=false}", "list of 'key=value'"),
    (TRACK + "variants: {}", "at least one variant"),
    ("tracks: {s: {preset: tiny}}\nvariants: {v: []}", "at least one evaluation"),
    ("tracks: {s: {preset: nope, synthetic: {}}}\nvariants: {v: []}", "unknown preset"),
    (TRACK + "variants: {v: []}\nepochs: 3", "unknown key.*epochs"),
    (TRACK + "variants: {v: []}\nlatency: {pairs: 0}", "latency"),
    ("tracks: {s: {preset: tiny, synthetic: {threshold: 1.5}}}\nvariants: {v: []}", "synthetic.threshold"),
    ("tracks: {s: {preset: tiny, synthetic: {videos: 0}}}\nvariants: {v: []}", "synthetic.videos"),
    ("tracks: {s: {preset: tiny, meva: {split: test, dates: [2018-03-11]}}}\nvariants: {v: []}", "not both"),
    ("tracks: {s: {preset: tiny, meva: {workers: 0}}}\nvariants: {v: []}", "workers"),
    ("tracks: {s: {preset: tiny, meva: {flicker_clips: -1}}}\nvariants: {v: []}", "flicker_clips"),
    ("tracks: {s: {preset: tiny, meva: {colour: red}}}\nvariants: {v: []}", "colour"),
    ("tracks: {s: {preset: tiny, synthetic: {videos: 2}, open_vocab: {novel_objects: [unicorn]}}}\n"
     "variants: {v: {overrides: [model.uasan.enabled=true], open_vocab: true}}", "unicorn"),
])
def test_bad_config_is_refused(tmp_path, text, match):
    with pytest.raises(ConfigError, match=match):
        load_ablation_config(_write(tmp_path, text))


def test_unknown_only_name_is_refused_before_anything_runs(tmp_path):
    cfg = load_ablation_config(_write(tmp_path, TRACK + "variants: {v: []}"))
    with pytest.raises(ConfigError, match="unknown variant.*'w'"):
        run_ablation(cfg, tmp_path / "out", only=("w",), progress=False)
    assert not (tmp_path / "out").exists()


def test_tail_is_the_least_frequent_third_of_the_predicates_seen_in_training():
    counts = {"a": 50, "b": 3, "c": 7, "d": 0, "e": 9, "f": 1, "g": 40}
    assert tail_predicates(counts) == ("f", "b")          # 6 trained predicates -> 2; 'd' never trained
    assert tail_predicates({"a": 0}) == ()


class _FixedStepper:
    """Replays a fixed (N rows, C) score table row by row, as a stepper of offline_train.stepper would score."""

    def __init__(self, scores):
        self.scores, self.predicates, self.at = np.asarray(scores, np.float32), ("p",), 0

    def init_state(self, p):
        return (np.zeros((p, 1), np.float32),)

    def step(self, feats, sl, ol, state):
        out = self.scores[self.at:self.at + len(feats)]
        self.at += len(feats)
        return out, state


def test_flicker_counts_toggles_per_active_relation_second():
    # one pair, one predicate, frames 0..5 at 1 fps: on, on, off, on, on, on -> toggles: start@0, end@2, start@3;
    # active relation-seconds: 0-1, 1-2, 3-4, 4-5 = 4 s -> 3 / 4
    n = 6
    clip = SparseClip("v", n, np.array([0]), np.array([1]), np.array([0]), np.array([0]), np.zeros(n, np.int32),
                      np.arange(n, dtype=np.int32), np.zeros((n, 3), np.float32), np.zeros((n, 1), bool),
                      np.zeros(n, np.float32))
    f = flicker(_FixedStepper([[0.9], [0.9], [0.1], [0.9], [0.9], [0.9]]), [(clip, 1.0)], threshold=0.5)
    assert f["toggles"] == 3 and f["active_relation_s"] == 4.0 and f["flicker_per_s"] == pytest.approx(0.75)
    steady = flicker(_FixedStepper([[0.9]] * n), [(clip, 2.0)], threshold=0.5)
    assert steady["toggles"] == 1 and steady["flicker_per_s"] == pytest.approx(1 / 2.5)


def test_meva_config_has_a_row_per_component_and_the_open_vocabulary_split():
    from offline_train.ablate import open_vocab_split, variant_train_config

    cfg = load_ablation_config(ROOT / "offline_train" / "ablation" / "meva.yaml")
    meva = [v for v in cfg.variants if "meva" in v.tracks]
    assert {v.paper for v in meva} == {"baseline", "TR²", "FReMuRe", "DLL", "UASAN", "ARN"}
    switched = {o for v in meva for o in v.overrides}
    assert {"model.tr2.spatial=false", "model.tr2.temporal=false", "model.tr2.message=false"} <= switched
    ov = next(v for v in meva if v.open_vocab)
    tc = variant_train_config(cfg, "meva", ov, Path("/nonexistent"))
    assert tc.train_data.unknown_predicate == "drop" and tc.train_data.kind == "meva"
    base_p, novel_p, base_o, novel_o = open_vocab_split(cfg.tracks["meva"], variant_train_config(
        cfg, "meva", cfg.variants[0], Path("/nonexistent")).train_data)
    assert len(novel_p) == 6 and len(base_p) == 13 and "person_rides_bicycle" in novel_p and novel_o == ("bicycle",)
