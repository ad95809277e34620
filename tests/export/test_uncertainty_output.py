"""The optional 'uncertainty' output (I/O version 2): export of a Bayesian-head model, parity with torch, side-car
vs graph checks, and the version rule (version-1 files still run, unknown versions are refused)."""
import json
import shutil

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from engine.backends import load_relation_backend  # noqa: E402
from engine.backends.ort import OrtRelationBackend  # noqa: E402
from engine.config import RelationBackendConfig  # noqa: E402
from engine.relate.relation_io import (DEFAULT_MODEL_DIR, IO_VERSION, METADATA_KEY, OUTPUT_NAMES,  # noqa: E402
                                       ModelFileError, metadata_json, read_model_info, sha256_file, sidecar_path)
from export.verify import FP32_ATOL, ParityError, check_parity, random_step, torch_step_outputs  # noqa: E402

WITH_U = OUTPUT_NAMES + ("uncertainty",)


def rewrite(onnx_path, sidecar_fn=None, graph_fn=None):
    """Edit a model file consistently, as an exporter would have written it: the side-car JSON (``sidecar_fn``),
    the copy of it inside the ONNX metadata, the graph (``graph_fn`` on the GraphProto) and the file hash."""
    sc = sidecar_path(onnx_path)
    j = json.loads(sc.read_text())
    m = onnx.load(str(onnx_path))
    if sidecar_fn:
        sidecar_fn(j)
    if graph_fn:
        graph_fn(m.graph)
    onnx.helper.set_model_props(m, {METADATA_KEY: metadata_json(j)})
    onnx.save(m, str(onnx_path))
    j["onnx_sha256"] = sha256_file(onnx_path)
    sc.write_text(json.dumps(j))


def copy_model(src_onnx, dst_dir):
    dst_dir.mkdir()
    for f in (src_onnx, sidecar_path(src_onnx)):
        shutil.copy(f, dst_dir / f.name)
    return dst_dir / src_onnx.name


@pytest.fixture(scope="module")
def backend(bayes_model):
    return OrtRelationBackend(bayes_model.info, "ort-cpu")


def test_bayesian_head_exports_the_uncertainty_output(bayes_model, exported):
    info = bayes_model.info
    assert info.io_version == IO_VERSION == 2 and info.outputs == WITH_U and info.has_uncertainty
    assert info.sidecar["outputs"] == list(WITH_U)
    out = {o.name: o for o in onnx.load(str(bayes_model.onnx)).graph.output}
    assert list(out) == list(WITH_U)
    dims = out["uncertainty"].type.tensor_type.shape.dim
    assert dims[0].dim_param == "pairs" and dims[1].dim_value == len(info.predicates)
    # a head without one: version 2 all the same, the four outputs only, listed
    assert exported.info.io_version == 2 and exported.info.outputs == OUTPUT_NAMES
    assert exported.info.sidecar["outputs"] == list(OUTPUT_NAMES) and not exported.info.has_uncertainty


def test_uncertainty_output_matches_torch(bayes_model, backend):
    """ONNX Runtime against the torch model's published_uncertainty, state carried 4 steps per pair count:
    max abs difference <= FP32_ATOL (1e-4) on every output, the uncertainty included."""
    report = check_parity(bayes_model.model, backend, pair_counts=(0, 1, 7, 64, 300), steps=4)
    assert all("uncertainty" in r for r in report.rows)
    assert max(r["uncertainty"] for r in report.rows) <= FP32_ATOL
    # the values themselves: in [0, 1), spread over pairs and predicates, equal to torch from a fresh state
    rng = np.random.default_rng(5)
    inputs = random_step(bayes_model.info.num_features, len(bayes_model.info.objects), 40, rng)
    got = backend.step_outputs(inputs, backend.initial_state(40))
    ref = torch_step_outputs(bayes_model.model, inputs, backend.initial_state(40))
    np.testing.assert_allclose(got.uncertainty, ref.uncertainty, atol=FP32_ATOL, rtol=0)
    u = got.uncertainty
    assert u.shape == (40, len(bayes_model.info.predicates)) and u.dtype == np.float32
    assert (u >= 0).all() and (u < 1).all() and u.std() > 0.05
    # u = 1 - 1/sqrt(1 + pi sigma^2 / 8): the shrink factor of the mean logit in the published score
    with torch.inference_mode():
        sigma2 = bayes_model.model.step_uncertainty(*(torch.from_numpy(np.asarray(a)) for a in
                                                      (*inputs, *backend.initial_state(40))))
    np.testing.assert_allclose(u, 1 - 1 / np.sqrt(1 + np.pi / 8 * sigma2.numpy()), atol=1e-5, rtol=0)
    assert backend.step(inputs, backend.initial_state(40))[0].shape == u.shape  # step() keeps its two results


def test_parity_refuses_a_file_without_the_torch_models_uncertainty(bayes_model, tmp_path):
    path = copy_model(bayes_model.onnx, tmp_path / "m")
    rewrite(path, lambda j: j.__setitem__("outputs", list(OUTPUT_NAMES)),
            lambda g: g.output.remove(next(o for o in g.output if o.name == "uncertainty")))
    b = OrtRelationBackend(read_model_info(path), "ort-cpu")  # consistent file without the output: it runs
    assert b.step_outputs(random_step(b.info.num_features, 3, 2, np.random.default_rng(0)),
                          b.initial_state(2)).uncertainty is None
    with pytest.raises(ParityError, match="output 'uncertainty': torch has it, the model file lacks it"):
        check_parity(bayes_model.model, b, pair_counts=(1,), steps=1)


def test_sidecar_claiming_an_output_the_graph_lacks_is_refused(bayes_model, tmp_path):
    path = copy_model(bayes_model.onnx, tmp_path / "m")
    rewrite(path, graph_fn=lambda g: g.output.remove(next(o for o in g.output if o.name == "uncertainty")))
    info = read_model_info(path)   # the side-car alone is valid
    with pytest.raises(ModelFileError, match="the graph lacks 'uncertainty'") as e:
        OrtRelationBackend(info, "ort-cpu")
    assert "relation.onnx" in str(e.value) and "side-car's 'outputs'" in str(e.value)
    with pytest.raises(ModelFileError, match="the graph lacks 'uncertainty'"):  # refused, not a fallback
        load_relation_backend(RelationBackendConfig(model_path=str(path)))


def test_graph_output_the_sidecar_does_not_list_is_refused(bayes_model, tmp_path):
    path = copy_model(bayes_model.onnx, tmp_path / "m")
    rewrite(path, lambda j: j.__setitem__("outputs", list(OUTPUT_NAMES)))
    with pytest.raises(ModelFileError, match="the graph has 'uncertainty', which the I/O spec and the side-car's "
                                             "'outputs' do not list"):
        load_relation_backend(RelationBackendConfig(model_path=str(path)))


@pytest.mark.parametrize("model", ["default", "meva"])
def test_shipped_io_version_1_models_still_run(model):
    """The shipped models are I/O version 1 files (not re-exported; read_model_info checks their SHA-256)."""
    path = DEFAULT_MODEL_DIR.parent / model
    info = read_model_info(path)
    assert info.io_version == 1 and info.outputs == OUTPUT_NAMES and "outputs" not in info.sidecar
    b = load_relation_backend(RelationBackendConfig(model_path=str(path), backend="ort-cpu"))
    out = b.step_outputs(random_step(info.num_features, len(info.objects), 5, np.random.default_rng(0)),
                         b.initial_state(5))
    assert out.uncertainty is None and out.scores.shape == (5, len(info.predicates))


def test_version_1_file_of_this_exporter_runs(exported, tmp_path):
    """A version-1 side-car (no 'outputs') over the four-output graph: read as before version 2 existed."""
    path = copy_model(exported.onnx, tmp_path / "m")
    rewrite(path, lambda j: (j.__setitem__("io_version", 1), j.pop("outputs")))
    b = load_relation_backend(RelationBackendConfig(model_path=str(path), backend="ort-cpu"))
    assert b.info.io_version == 1 and not b.info.has_uncertainty
