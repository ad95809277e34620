"""Torch vs onnxruntime parity of the exported relation model: 0..300 pairs, state carried over several steps."""
import copy
import dataclasses

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from engine.backends.ort import OrtRelationBackend  # noqa: E402
from engine.relate.relation_io import INPUTS, OUTPUT_NAMES, PAIRS  # noqa: E402
from export.to_onnx import export_onnx  # noqa: E402
from export.verify import (FP32_ATOL, PARITY_PAIRS, ParityError, check_parity, parity_pairs, random_state,  # noqa: E402
                           random_step, step_parity, torch_step)

MAX_PAIRS = 400  # the session fixture's export (tests/export/conftest.py)


@pytest.fixture(scope="module")
def backend(exported):
    return OrtRelationBackend(exported.info, "ort-cpu")


def test_step_parity_all_pair_counts_with_carried_state(exported, backend):
    report = check_parity(exported.model, backend, pair_counts=(0, 1, 7, 64, 300), steps=5)
    assert [(r["pairs"], r["step"]) for r in report.rows] == [(p, k) for p in (0, 1, 7, 64, 300) for k in range(5)]
    assert report.max_abs_diff <= FP32_ATOL
    for r in report.rows:
        assert set(OUTPUT_NAMES) <= set(r) and all(r[n] <= FP32_ATOL for n in OUTPUT_NAMES)
    assert "over 5 steps" in report.summary() and "300:" in report.summary()


def test_parity_from_zero_state_of_new_pairs(exported, backend):
    """Pairs that start fresh (the engine's initial_state) and then keep their own state."""
    rng = np.random.default_rng(3)
    ref = got = backend.initial_state(20)
    for _ in range(6):
        inputs = random_step(exported.info.num_features, len(exported.info.objects), 20, rng)
        ref_scores, ref = torch_step(exported.model, inputs, ref)
        got_scores, got = backend.step(inputs, got)
        np.testing.assert_allclose(got_scores, ref_scores, atol=FP32_ATOL, rtol=0)
        for a, b in zip(ref, got):
            np.testing.assert_allclose(b, a, atol=FP32_ATOL, rtol=0)
    assert got.window_valid.sum() > 0  # the state really filled up, so it was carried


def test_state_changes_the_scores(exported, backend):
    """Carried state is not ignored by the graph: the same frame with two different states scores differently."""
    rng = np.random.default_rng(1)
    inputs = random_step(exported.info.num_features, len(exported.info.objects), 16, rng)
    a, _ = backend.step(inputs, backend.initial_state(16))
    b, _ = backend.step(inputs, random_state(exported.info.window, exported.info.d_model, 16, rng))
    assert np.abs(a - b).max() > 1e-3


def test_a_different_model_fails_parity(exported, backend):
    wrong = copy.deepcopy(exported.model)
    with torch.no_grad():
        for p in wrong.parameters():
            p.add_(torch.randn_like(p) * 0.05, alpha=1.0)
    with pytest.raises(ParityError, match="differs from torch beyond 0.0001"):
        check_parity(wrong, backend, pair_counts=(7,), steps=2)
    report = step_parity(wrong, backend, pair_counts=(7,), steps=2)
    assert report.max_abs_diff > 1e-3


def test_graph_has_one_dynamic_pairs_axis(exported):
    assert exported.info.max_pairs == MAX_PAIRS
    m = onnx.load(str(exported.onnx))
    for vi in list(m.graph.input) + list(m.graph.output):
        dims = vi.type.tensor_type.shape.dim
        assert dims[0].dim_param == PAIRS, vi.name
        assert all(d.dim_value > 0 for d in dims[1:]), vi.name


@pytest.mark.parametrize("pairs", [0, 1, MAX_PAIRS])
def test_raw_onnxruntime_session_runs_any_pair_count(exported, pairs):
    """The file itself (no backend validation) takes 0 and max_pairs pairs: no size was baked in at export."""
    sess = ort.InferenceSession(str(exported.onnx), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(pairs)
    shapes = exported.info.shapes(pairs)
    feed = {s.name: (rng.integers(0, len(exported.info.objects), shapes[s.name]) if s.dtype == "int64"
                     else rng.standard_normal(shapes[s.name])).astype(s.dtype) for s in INPUTS}
    out = sess.run(list(OUTPUT_NAMES), feed)
    assert [o.shape for o in out] == [shapes[n] for n in OUTPUT_NAMES]
    if pairs:
        assert 0.0 <= out[0].min() and out[0].max() <= 1.0


def test_more_pairs_than_max_pairs_is_refused(exported, backend):
    rng = np.random.default_rng(0)
    n = MAX_PAIRS + 1
    inputs = random_step(exported.info.num_features, len(exported.info.objects), n, rng)
    with pytest.raises(ValueError, match=f"{n} pairs exceed this backend's max_pairs {MAX_PAIRS}"):
        backend.step(inputs, backend.initial_state(n))
    with pytest.raises(ValueError, match="max_pairs: must be in"):
        OrtRelationBackend(exported.info, "ort-cpu", max_pairs=MAX_PAIRS + 1)
    small = OrtRelationBackend(exported.info, "ort-cpu", max_pairs=8)
    with pytest.raises(ValueError, match="9 pairs exceed"):
        small.step(tuple(a[:9] for a in inputs), small.initial_state(9))
    with pytest.raises(ValueError, match="64 pairs exceed"):  # why `vsgg export` verifies with parity_pairs
        check_parity(exported.model, small)
    report = check_parity(exported.model, small, pair_counts=parity_pairs(small.max_pairs), steps=2)
    assert sorted({r["pairs"] for r in report.rows}) == [0, 1, 7, 8]


def test_parity_pairs_fit_small_models():
    assert parity_pairs(2048) == PARITY_PAIRS
    assert parity_pairs(300) == PARITY_PAIRS
    assert parity_pairs(100) == (0, 1, 7, 64, 100)
    assert parity_pairs(7) == (0, 1, 7)
    assert parity_pairs(1) == (0, 1)


def test_export_refuses_bad_arguments(exported, tmp_path):
    from offline_train.checkpoint import read_meta

    meta = read_meta(exported.checkpoint)
    with pytest.raises(ValueError, match="out_path: expected a .onnx"):
        export_onnx(exported.model, meta, tmp_path / "relation.pt")
    with pytest.raises(ValueError, match="max_pairs: must be an integer >= 1"):
        export_onnx(exported.model, meta, tmp_path / "relation.onnx", max_pairs=0)
    with pytest.raises(ValueError, match="do not match the model's embedding tables"):
        export_onnx(exported.model, dataclasses.replace(meta, objects=meta.objects[:-1]), tmp_path / "relation.onnx")
    assert not list(tmp_path.iterdir())  # nothing written for refused arguments
