"""The tiny preset trains end to end; checkpoints resume; bad checkpoints and configs give clear errors."""
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from engine.config import ConfigError  # noqa: E402
from engine.vocab import Vocabulary  # noqa: E402
from offline_train.checkpoint import CheckpointError, check_vocabulary, read_meta  # noqa: E402
from offline_train.config import load_train_config  # noqa: E402
from offline_train.train import load_model, train  # noqa: E402


def test_tiny_preset_trains_and_writes_everything(tiny_run):
    out, _ = tiny_run
    for f in ("best/model.safetensors", "best/checkpoint.json", "last/optimizer.safetensors", "last/prior.npy",
              "loss.png", "predicate_recall.png", "history.json"):
        assert (out / f).is_file(), f
    hist = json.loads((out / "history.json").read_text())
    assert len(hist) == 2 and hist[1]["loss"] < hist[0]["loss"]
    assert not list(out.rglob("*.pkl")) and not list(out.rglob("*.pt"))  # no pickle anywhere


def test_resume_continues_the_same_run(tiny_run, tmp_path):
    out, cfg = tiny_run
    run2 = tmp_path / "run"
    shutil.copytree(out, run2)
    cfg3 = load_train_config(preset="tiny", overrides=[f"run.out_dir={run2}", "optim.epochs=3", "run.progress=false"])
    train(cfg3)
    h_old = json.loads((out / "history.json").read_text())
    h_new = json.loads((run2 / "history.json").read_text())
    assert len(h_new) == 3 and h_new[:2] == h_old
    assert h_new[2]["time_s"] > h_old[1]["time_s"]  # cumulative over the resume: the model card's training time


def test_resume_refuses_other_config(tiny_run, tmp_path):
    out, _ = tiny_run
    run2 = tmp_path / "run"
    shutil.copytree(out, run2)
    cfg = load_train_config(preset="tiny", overrides=[f"run.out_dir={run2}", "model.d_model=16", "run.progress=false"])
    with pytest.raises(CheckpointError, match="another config"):
        train(cfg)


def test_load_model_runs_a_step(tiny_run):
    out, _ = tiny_run
    model, meta = load_model(out / "best")
    p = 3
    scores, *state = model.forward_step(torch.randn(p, meta.num_features), torch.zeros(p, dtype=torch.long),
                                        torch.ones(p, dtype=torch.long), *model.initial_state(p))
    assert scores.shape == (p, len(meta.predicates)) and ((scores >= 0) & (scores <= 1)).all()


def test_bad_checkpoints(tiny_run, tmp_path):
    out, _ = tiny_run
    ck = tmp_path / "ck"
    shutil.copytree(out / "best", ck)
    # truncated weights
    w = (ck / "model.safetensors").read_bytes()
    (ck / "model.safetensors").write_bytes(w[: len(w) // 2])
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_model(ck)
    # other feature version
    shutil.copy(out / "best" / "model.safetensors", ck / "model.safetensors")
    meta = json.loads((ck / "checkpoint.json").read_text())
    (ck / "checkpoint.json").write_text(json.dumps({**meta, "feature_version": 999}))
    with pytest.raises(CheckpointError, match="pair-feature version 999"):
        load_model(ck)
    (ck / "checkpoint.json").write_text(json.dumps({**meta, "model_version": 999}))
    with pytest.raises(CheckpointError, match="model version 999"):
        load_model(ck)
    (ck / "checkpoint.json").write_text("{\"format\": ")
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        read_meta(ck)
    (ck / "checkpoint.json").unlink()
    with pytest.raises(CheckpointError, match="missing"):
        load_model(ck)


def test_vocabulary_mismatch(tiny_run):
    out, _ = tiny_run
    meta = read_meta(out / "best")
    objs = Vocabulary("objs", meta.objects)
    with pytest.raises(CheckpointError, match="predicate vocabulary"):
        check_vocabulary(meta, objs, Vocabulary("p", ("a", "b")), "test")
    check_vocabulary(meta, objs, Vocabulary("p", meta.predicates), "test")


def test_unknown_preset_and_key():
    with pytest.raises(ConfigError, match="unknown preset 'huge'"):
        load_train_config(preset="huge")
    with pytest.raises(ConfigError, match="optim.learning_rate"):
        load_train_config(preset="tiny", overrides=["optim.learning_rate=0.1"])
    with pytest.raises(ConfigError, match="model.d_model"):
        load_train_config(overrides=["model.d_model=abc"])


def test_training_is_deterministic(tiny_run, tmp_path):
    out, _ = tiny_run
    cfg = load_train_config(preset="tiny", overrides=[f"run.out_dir={tmp_path}", "optim.epochs=2",
                                                      "run.progress=false"])
    train(cfg)
    a = json.loads((out / "history.json").read_text())
    b = json.loads((tmp_path / "history.json").read_text())
    np.testing.assert_allclose([r["loss"] for r in a], [r["loss"] for r in b], rtol=1e-5)


DATA = Path(__file__).resolve().parents[1] / "data"


@pytest.mark.parametrize("kind", ["action_genome", "vidor"])
def test_real_dataset_formats_train_with_a_config_change(tmp_path, kind):
    """Users with Action Genome or VidVRD/VidOR train by changing train_data/val_data (fixtures stand in for the
    datasets): the run completes, and an Action Genome model carries the grouped heads."""
    if kind == "action_genome":
        data = ["kind=action_genome", f"paths=[{DATA / 'action_genome_fixture'}]", "ag_require_person_box=false",
                "split=''"]  # the fixture's 3 videos for both (its test split is one video)
    else:
        vidor = DATA / "vidor"
        data = ["kind=vidor", f"paths=[{vidor / '3598080384.json'}]", "object_vocab=vidvrd_objects",
                "predicate_vocab=vidvrd_predicates",
                f"category_map={vidor / 'category_map.yaml'}", f"predicate_map={vidor / 'predicate_map.yaml'}"]
    over = [f"{part}.{d}" for part in ("train_data", "val_data") for d in data]
    cfg = load_train_config(preset="tiny", overrides=[*over, f"run.out_dir={tmp_path}", "optim.epochs=1",
                                                      "run.progress=false"])
    out = train(cfg)
    meta = read_meta(out / "best")
    assert (out / "best" / "model.safetensors").is_file() and meta.epoch == 1
    if kind == "action_genome":
        assert {g[0]: g[1] for g in meta.groups} == {"attention": "softmax", "spatial": "sigmoid",
                                                     "contacting": "sigmoid"}
        assert meta.predicates[0] == "lookingat"
    else:
        assert meta.groups == (("all", "sigmoid", tuple(range(132))),) and len(meta.predicates) == 132


def test_a_finished_run_says_it_is_complete_instead_of_resuming(tiny_run, tmp_path, capsys):
    out, _ = tiny_run
    run2 = tmp_path / "run"
    shutil.copytree(out, run2)
    before = (run2 / "history.json").read_text()
    cfg = load_train_config(preset="tiny", overrides=[f"run.out_dir={run2}", "optim.epochs=2", "run.progress=false"])
    train(cfg)
    said = capsys.readouterr().out
    assert "already complete (2 of 2 epochs)" in said and "resuming" not in said
    assert (run2 / "history.json").read_text() == before


def test_weights_are_readable_by_others_as_any_file_this_process_writes(tiny_run):
    import os
    out, _ = tiny_run
    umask = os.umask(0)
    os.umask(umask)
    for f in ("best/model.safetensors", "last/optimizer.safetensors"):
        assert (out / f).stat().st_mode & 0o777 == 0o666 & ~umask, f


def test_loss_plot_has_whole_epoch_ticks_and_a_legend_outside_the_axes():
    from offline_train.plots import loss_figure
    hist = [{"epoch": e, "loss": 1.0 / e, "val_loss": 1.2 / e, "mean_recall@5": 0.1 * e} for e in range(1, 4)]
    fig = loss_figure(hist)
    fig.canvas.draw()
    ax = fig.axes[0]
    ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
    assert ticks and all(float(t).is_integer() for t in ticks)
    assert ax.get_legend() is None and len(fig.legends) == 1
    legend_box = fig.legends[0].get_window_extent()
    for a in fig.axes:
        assert not legend_box.overlaps(a.get_window_extent())


def test_tiny_preset_says_it_is_a_smoke_test(tmp_path, capsys):
    from engine.cli.main import main
    assert main(["train", "--preset", "tiny", f"run.out_dir={tmp_path}", "optim.epochs=1", "run.progress=false",
                 "train_data.synthetic_videos=4", "val_data.synthetic_videos=2"]) == 0
    assert "is a smoke test of the training pipeline" in capsys.readouterr().out
