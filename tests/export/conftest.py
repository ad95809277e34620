"""Export fixtures: one random-weight checkpoint exported to ONNX once per test session (about 12 s)."""
import shutil
from pathlib import Path
from typing import NamedTuple

import pytest

MAX_PAIRS = 400  # above the 300-pair parity case, small enough to run a full batch in a test


class Exported(NamedTuple):
    checkpoint: Path   # offline_train checkpoint directory
    onnx: Path         # relation.onnx (side-car relation.json next to it)
    info: object       # engine.relate.relation_io.ModelInfo of the file
    model: object      # the torch StreamingRelationModel it was exported from (eval mode)


@pytest.fixture(scope="session")
def exported(tmp_path_factory):
    """Random-weight default-architecture model with the VidVRD vocabularies, exported with max_pairs 400."""
    pytest.importorskip("torch")
    pytest.importorskip("onnxscript")
    from export.to_onnx import export_checkpoint
    from export.verify import random_checkpoint

    root = tmp_path_factory.mktemp("export_random")
    ckpt = random_checkpoint(root / "checkpoint")
    info, model = export_checkpoint(ckpt, root / "model" / "relation.onnx", max_pairs=MAX_PAIRS)
    return Exported(ckpt, info.path, info, model)


@pytest.fixture
def model_copy(exported, tmp_path):
    """A private copy of the exported relation.onnx + relation.json to corrupt; returns the .onnx path."""
    dst = tmp_path / "model"
    dst.mkdir()
    for src in (exported.onnx, exported.onnx.with_suffix(".json")):
        shutil.copy(src, dst / src.name)
    return dst / exported.onnx.name
