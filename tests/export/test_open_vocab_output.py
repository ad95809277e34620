"""The optional 'pair_vector' output of an open-vocabulary (UASAN) head and the side-car's 'open_vocab' section:
export, parity of the numpy scores with ONNX and torch (trained and new predicate tables, softmax groups), and the
side-car vs graph checks."""
import json
import types

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from engine.backends import load_relation_backend  # noqa: E402
from engine.backends.ort import OrtRelationBackend  # noqa: E402
from engine.config import RelationBackendConfig  # noqa: E402
from engine.relate.open_vocab import (OpenVocabParams, PredicateScorer, predicate_scorer,  # noqa: E402
                                      switched_groups)
from engine.relate.relation_io import (OPEN_VOCAB_KEYS, OUTPUT_NAMES, ModelFileError, decode_array,  # noqa: E402
                                       read_model_info)
from export.verify import FP32_ATOL, check_parity, random_state, random_step, torch_step_outputs  # noqa: E402
from offline_train.embeddings import EMBED_DIM, MODEL_NAME  # noqa: E402
from offline_train.models.uasan import OpenVocabHead  # noqa: E402
from test_uncertainty_output import copy_model, rewrite  # noqa: E402

WITH_PV = OUTPUT_NAMES + ("pair_vector",)


@pytest.fixture(scope="module")
def backend(uasan_model):
    return OrtRelationBackend(uasan_model.info, "ort-cpu")


def unit_table(n, seed):
    t = np.random.default_rng(seed).standard_normal((n, EMBED_DIM)).astype(np.float32)
    return t / np.linalg.norm(t, axis=1, keepdims=True)


def step(backend, pairs=60, seed=3):
    """One mid-stream step of ``pairs`` random pairs: (inputs, state, the backend's RelationOutputs)."""
    rng = np.random.default_rng(seed)
    info = backend.info
    inputs = random_step(info.num_features, len(info.objects), pairs, rng)
    state = random_state(info.window, info.d_model, pairs, rng)
    return inputs, state, backend.step_outputs(inputs, state)


def test_open_vocab_head_exports_pair_vector_and_its_head(uasan_model, exported):
    info, head = uasan_model.info, uasan_model.model.head
    assert isinstance(head, OpenVocabHead)
    assert info.outputs == WITH_PV and info.sidecar["outputs"] == list(WITH_PV) and info.has_pair_vector
    assert not info.has_uncertainty and info.dims["d_head"] == head.pred_proj.out_features
    out = {o.name: o for o in onnx.load(str(uasan_model.onnx)).graph.output}
    assert list(out) == list(WITH_PV)
    dims = out["pair_vector"].type.tensor_type.shape.dim
    assert dims[0].dim_param == "pairs" and dims[1].dim_value == info.dims["d_head"]
    ov = info.sidecar["open_vocab"]
    assert sorted(ov) == sorted(OPEN_VOCAB_KEYS)
    assert ov["embedding_model"] == MODEL_NAME and ov["embedding_dim"] == EMBED_DIM
    p = OpenVocabParams.from_info(info)
    np.testing.assert_array_equal(p.weight, head.pred_proj.weight.detach().numpy())
    np.testing.assert_array_equal(p.weight_bias, head.pred_proj.bias.detach().numpy())
    np.testing.assert_array_equal(p.context, head.context.detach().numpy())
    assert np.abs(p.context).max() > 0.01   # the fixture's random prompt context travels
    assert p.log_scale == head.log_scale.item() and p.bias == head.bias.item()
    # other heads: no pair_vector, no open_vocab section
    assert not exported.info.has_pair_vector and "open_vocab" not in exported.info.sidecar


def test_pair_vector_matches_torch(uasan_model, backend):
    """ONNX Runtime against torch with carried state, 4 steps per pair count: every output, pair_vector
    included, within FP32_ATOL (1e-4); pair vectors are unit rows."""
    report = check_parity(uasan_model.model, backend, pair_counts=(0, 1, 7, 64, 300), steps=4)
    assert all("pair_vector" in r for r in report.rows)
    _, _, out = step(backend)
    assert out.pair_vector.shape == (60, backend.info.dims["d_head"]) and out.pair_vector.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(out.pair_vector, axis=1), 1.0, atol=1e-5)
    empty = backend.step_outputs(random_step(29, 35, 0, np.random.default_rng(0)), backend.initial_state(0))
    assert empty.pair_vector.shape == (0, backend.info.dims["d_head"])


def test_runtimes_that_skip_empty_steps_give_empty_optional_outputs(uasan_model, bayes_model):
    """TensorRT's path for P = 0 (RelationBackend._skip_empty, no engine run) shapes every optional output like
    a run would; checked here on ONNX Runtime sessions with the flag set, as no GPU is at hand."""
    for m, name in ((uasan_model, "pair_vector"), (bayes_model, "uncertainty")):
        b = OrtRelationBackend(m.info, "ort-cpu")
        b._skip_empty = True
        b._run = None   # must not be called
        out = b.step_outputs(random_step(29, 35, 0, np.random.default_rng(0)), b.initial_state(0))
        ref = OrtRelationBackend(m.info, "ort-cpu").step_outputs(
            random_step(29, 35, 0, np.random.default_rng(0)), b.initial_state(0))
        for got, want in zip(out[2:], ref[2:]):
            assert (got is None) == (want is None) and (got is None or got.shape == want.shape)
        assert getattr(out, name).shape == getattr(ref, name).shape and getattr(out, name).dtype == np.float32


def test_numpy_scores_equal_onnx_and_torch_for_the_trained_vocabulary(uasan_model, backend):
    """Scores from pair_vector + the side-car's head parameters, in numpy, against the graph's own 'scores' output
    and torch's forward_step: max abs difference <= 1e-5, over scores that spread across [0, 1]."""
    inputs, state, out = step(backend)
    scorer = predicate_scorer(backend.info, backend.info.predicates)   # table from the side-car
    got = scorer.scores(out.pair_vector)
    assert got.shape == out.scores.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, out.scores, atol=1e-5, rtol=0)
    ref = torch_step_outputs(uasan_model.model, inputs, state)
    np.testing.assert_allclose(got, ref.scores, atol=1e-5, rtol=0)
    assert out.scores.min() < 0.05 and out.scores.max() > 0.5


def test_numpy_scores_for_a_new_table_equal_torch_set_predicates(uasan_model, backend):
    """A table of names never trained on: the numpy path equals the torch head after OpenVocabHead.set_predicates
    (the documented no-retraining route) on the same pairs."""
    import copy

    inputs, state, out = step(backend, seed=4)
    table = unit_table(9, seed=7)
    model = copy.deepcopy(uasan_model.model).eval()
    model.head.set_predicates(torch.from_numpy(table))
    ref = torch_step_outputs(model, inputs, state)
    got = predicate_scorer(backend.info, [f"novel {i}" for i in range(9)], table).scores(out.pair_vector)
    np.testing.assert_allclose(got, ref.scores, atol=1e-5, rtol=0)


def test_softmax_groups_score_as_the_torch_head():
    """Groups with a 'softmax' group: PredicateScorer equals OpenVocabHead.scores on the same parameters."""
    torch.manual_seed(0)
    groups = (("multi", "sigmoid", (0, 2, 4)), ("attention", "softmax", (1, 3, 5)))
    head = OpenVocabHead(16, torch.from_numpy(unit_table(6, 1)), 8, groups, True, 10.0).eval()
    with torch.no_grad():
        head.context.copy_(torch.randn(EMBED_DIM) * 0.1)
        h = torch.randn(20, 16)
        ref, u = head.scores(head(h)).numpy(), head.pair_vectors(h).numpy()
    params = OpenVocabParams(head.pred_proj.weight.detach().numpy(), head.pred_proj.bias.detach().numpy(),
                             head.context.detach().numpy(), head.log_scale.item(), head.bias.item(), MODEL_NAME,
                             EMBED_DIM)
    got = PredicateScorer(params, tuple("abcdef"), unit_table(6, 1), groups).scores(u)
    np.testing.assert_allclose(got, ref, atol=1e-6, rtol=0)
    np.testing.assert_allclose(got[:, [1, 3, 5]].sum(1), 1.0, atol=1e-6)
    # a new list keeps a trained name's softmax group over the kept members; every other name is a sigmoid
    info = types.SimpleNamespace(predicates=tuple("abcdef"), groups=groups)
    assert switched_groups(info, ("b", "x", "a", "f")) == (("open_vocab", "sigmoid", (1, 2)),
                                                          ("attention", "softmax", (0, 3)))
    assert switched_groups(info, ("x",)) == (("open_vocab", "sigmoid", (0,)),)


def test_sidecar_listing_pair_vector_needs_its_open_vocab_section(uasan_model, tmp_path):
    path = copy_model(uasan_model.onnx, tmp_path / "a")
    rewrite(path, lambda j: j.pop("open_vocab"))
    with pytest.raises(ModelFileError, match="missing field 'open_vocab'"):
        read_model_info(path)
    path = copy_model(uasan_model.onnx, tmp_path / "b")
    rewrite(path, lambda j: j["open_vocab"].pop("log_scale"))
    with pytest.raises(ModelFileError, match=r"open_vocab' lacks \['log_scale'\]"):
        read_model_info(path)
    path = copy_model(uasan_model.onnx, tmp_path / "c")
    rewrite(path, lambda j: j["open_vocab"].__setitem__("d_head", 0))
    with pytest.raises(ModelFileError, match="open_vocab.d_head must be an integer >= 1"):
        read_model_info(path)


def test_corrupt_open_vocab_arrays_are_refused(uasan_model, tmp_path):
    path = copy_model(uasan_model.onnx, tmp_path / "a")
    rewrite(path, lambda j: j["open_vocab"].__setitem__("context", j["open_vocab"]["pred_proj_bias"]))
    info = read_model_info(path)   # structure is valid; the shapes are checked where the arrays are used
    with pytest.raises(ModelFileError, match=r"expected pred_proj_weight \(32, E\)"):
        OpenVocabParams.from_info(info)
    path = copy_model(uasan_model.onnx, tmp_path / "b")
    rewrite(path, lambda j: j["open_vocab"]["pred_proj_bias"].__setitem__("sha256", "0" * 64))
    with pytest.raises(ModelFileError, match="corrupt side-car"):
        OpenVocabParams.from_info(read_model_info(path))
    assert decode_array(uasan_model.info.sidecar["open_vocab"]["pred_proj_bias"], "x").shape == (32,)


def test_graph_and_sidecar_must_agree_on_pair_vector(uasan_model, tmp_path):
    path = copy_model(uasan_model.onnx, tmp_path / "lacks")
    rewrite(path, graph_fn=lambda g: g.output.remove(next(o for o in g.output if o.name == "pair_vector")))
    with pytest.raises(ModelFileError, match="the graph lacks 'pair_vector'"):
        load_relation_backend(RelationBackendConfig(model_path=str(path)))
    path = copy_model(uasan_model.onnx, tmp_path / "unlisted")
    rewrite(path, lambda j: (j.__setitem__("outputs", list(OUTPUT_NAMES)), j.pop("open_vocab")))
    with pytest.raises(ModelFileError, match="the graph has 'pair_vector', which the I/O spec and the side-car's "
                                             "'outputs' do not list"):
        load_relation_backend(RelationBackendConfig(model_path=str(path)))
    path = copy_model(uasan_model.onnx, tmp_path / "d_head")
    rewrite(path, lambda j: j["open_vocab"].__setitem__("d_head", 31))
    with pytest.raises(ModelFileError, match=r"output 'pair_vector' is float32 \[None, 32\].*\['pairs', 31\]"):
        OrtRelationBackend(read_model_info(path), "ort-cpu")
    assert json.loads(path.with_suffix(".json").read_text())["open_vocab"]["d_head"] == 31
