"""Shared engine fixtures: one random-weight relation model exported to ONNX per test session (about 10 s)."""
import pytest


@pytest.fixture(scope="session")
def random_model_dir(tmp_path_factory):
    """A folder with relation.onnx + relation.json of a random-weight model (default architecture, VidVRD
    vocabularies, max_pairs 512). Its sigmoid scores sit in a narrow band around 0.12, so tests that need
    relations set the filter thresholds from the scores they observe."""
    pytest.importorskip("torch")
    pytest.importorskip("onnxscript")
    from export.to_onnx import export_checkpoint
    from export.verify import random_checkpoint

    root = tmp_path_factory.mktemp("random_relation_model")
    ckpt = random_checkpoint(root / "checkpoint")
    export_checkpoint(ckpt, root / "model" / "relation.onnx", max_pairs=512)
    return root / "model"
