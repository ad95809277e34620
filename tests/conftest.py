"""Shared fixtures: one tiny relation model trained per test session (the `tiny` preset, about 10 s)."""
import pytest


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    pytest.importorskip("torch")
    from offline_train.config import load_train_config
    from offline_train.train import train

    out = tmp_path_factory.mktemp("tiny")
    cfg = load_train_config(preset="tiny", overrides=[f"run.out_dir={out}", "optim.epochs=2", "run.progress=false"])
    train(cfg)
    return out, cfg
