"""Shared fixtures: one tiny relation model trained per test session (the `tiny` preset, about 10 s), and two
random-weight models exported to ONNX (about 10 s each): FReMuRe's Bayesian head ('uncertainty' output) and UASAN's
open-vocabulary head ('pair_vector' output)."""
from pathlib import Path
from typing import NamedTuple

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


class ExportedModel(NamedTuple):
    checkpoint: Path   # offline_train checkpoint directory
    onnx: Path         # relation.onnx (side-car relation.json next to it), with the fixture's optional output
    info: object       # engine.relate.relation_io.ModelInfo of the file
    model: object      # the torch StreamingRelationModel it was exported from (eval mode)


@pytest.fixture(scope="session")
def bayes_model(tmp_path_factory):
    """The `tiny` preset's model sizes with model.fremure.head=bayes, random weights, VidVRD vocabularies, exported
    with max_pairs 512. Training starts the variance projection at zero (the same sigma^2 for every pair); here it
    and the per-predicate variance bias are drawn at random, so the uncertainty output differs between pairs and
    predicates (about 0.001 to 0.9, median 0.15)."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnxscript")
    import dataclasses

    from export.to_onnx import export_checkpoint
    from export.verify import random_checkpoint
    from offline_train.checkpoint import save_checkpoint
    from offline_train.config import load_train_config
    from offline_train.models.fremure import FremureConfig
    from offline_train.train import load_model

    root = tmp_path_factory.mktemp("bayes_relation_model")
    cfg = dataclasses.replace(load_train_config(preset="tiny").model, fremure=FremureConfig(head="bayes"))
    ckpt = random_checkpoint(root / "checkpoint", model_cfg=cfg)
    model, meta = load_model(ckpt)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        w = model.head.var_proj[2].weight
        w.copy_(torch.randn(w.shape, generator=g) * 0.3)
        model.head.var_bias.copy_(torch.randn(model.head.var_bias.shape, generator=g) * 1.5)
    save_checkpoint(ckpt, model, meta)
    info, model = export_checkpoint(ckpt, root / "model" / "relation.onnx", max_pairs=512)
    return ExportedModel(ckpt, info.path, info, model)


@pytest.fixture(scope="session")
def uasan_model(tmp_path_factory):
    """The `tiny` preset's model sizes with UASAN's open-vocabulary head (model.uasan.enabled=true, with a prompt
    context), random weights, VidVRD vocabularies (random unit text tables), exported with max_pairs 512: the file
    has the optional 'pair_vector' output and the side-car's 'open_vocab' section. The prompt context (zeros at
    the start of training) is drawn at random, so a test notices when the numpy path leaves it out. Scores spread
    over about 0.002 to 0.9."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnxscript")
    import dataclasses

    from export.to_onnx import export_checkpoint
    from export.verify import random_checkpoint
    from offline_train.checkpoint import save_checkpoint
    from offline_train.config import load_train_config
    from offline_train.models.uasan import UasanConfig
    from offline_train.train import load_model

    root = tmp_path_factory.mktemp("uasan_relation_model")
    cfg = dataclasses.replace(load_train_config(preset="tiny").model,
                              uasan=UasanConfig(enabled=True, prompt_context=True))
    ckpt = random_checkpoint(root / "checkpoint", model_cfg=cfg)
    model, meta = load_model(ckpt)
    with torch.no_grad():
        model.head.context.copy_(torch.randn(model.head.context.shape, generator=torch.Generator().manual_seed(2))
                                 * 0.05)
    save_checkpoint(ckpt, model, meta)
    info, model = export_checkpoint(ckpt, root / "model" / "relation.onnx", max_pairs=512)
    return ExportedModel(ckpt, info.path, info, model)
