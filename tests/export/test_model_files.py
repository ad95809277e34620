"""Bad relation model files and side-cars: each is a ModelFileError naming the problem, never a crash or fallback."""
import json

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

from engine.backends import load_relation_backend  # noqa: E402
from engine.backends.ort import OrtRelationBackend  # noqa: E402
from engine.config import RelationBackendConfig  # noqa: E402
from engine.relate.relation_io import (IO_VERSION, METADATA_KEY, ModelFileError, check_io_signature,  # noqa: E402
                                check_metadata, read_model_info, sha256_file, sidecar_path)
from engine.vocab import Vocabulary, builtin  # noqa: E402


def edit_sidecar(onnx_path, fn):
    sc = sidecar_path(onnx_path)
    j = json.loads(sc.read_text())
    fn(j)
    sc.write_text(json.dumps(j))


def _set(key, value):
    def fn(j):
        j[key] = value
    return fn


def _drop(key):
    def fn(j):
        del j[key]
    return fn


def _objects(j):
    j["objects"][1] = j["objects"][0]


def _groups(j):
    j["groups"][0][2] = j["groups"][0][2][:-1]


def _table(j):
    j["embedding_tables"]["objects"]["shape"] = [3, 384]


SIDECAR_CASES = [
    ("format", _set("format", "something-else"), "not a vsgg-relation-model side-car"),
    ("format_version", _set("format_version", 99), "side-car format version 99; this vsgg reads version 1"),
    ("io_version", _set("io_version", IO_VERSION + 1),
     f"model I/O version {IO_VERSION + 1}; this engine runs versions 1 and 2. The model was made by a newer vsgg"),
    ("io_version 0", _set("io_version", 0), "model I/O version 0; this engine runs versions 1 and 2. Re-export"),
    ("io_version bool", _set("io_version", True), "model I/O version True; this engine runs versions 1 and 2"),
    ("io_version float", _set("io_version", 2.0), "model I/O version 2.0; this engine runs versions 1 and 2"),
    ("io_version missing", _drop("io_version"), "model I/O version None"),
    ("outputs missing", _drop("outputs"), "missing field 'outputs'"),
    ("outputs unknown", _set("outputs", ["scores", "next_window", "next_window_valid", "next_prev_out", "variance"]),
     r"field 'outputs' .* must hold \['scores', .*\] plus any of \['uncertainty', 'pair_vector'\], each once"),
    ("outputs lacking", _set("outputs", ["scores", "next_window", "next_window_valid", "uncertainty"]),
     "field 'outputs'"),
    ("outputs twice", _set("outputs", ["scores", "next_window", "next_window_valid", "next_prev_out", "scores"]),
     "each once"),
    ("outputs in version 1", _set("io_version", 1), "field 'outputs' belongs to I/O version 2"),
    ("feature_version", _set("feature_version", 0), "pair-feature version 0"),
    ("num_features", _set("num_features", 3), r"\(3 features\); this engine computes"),
    ("model_version type", _set("model_version", "1"), "field 'model_version' must be an integer"),
    ("model_version missing", _drop("model_version"), "missing field 'model_version'"),
    ("window", _set("window", 1), "need window >= 2"),
    ("max_pairs", _set("max_pairs", True), "field 'max_pairs' must be an integer"),
    ("objects", _objects, "field 'objects' must be a non-empty list of distinct names"),
    ("predicates", _set("predicates", []), "field 'predicates' must be a non-empty list"),
    ("groups", _groups, "field 'groups' must cover every predicate once"),
    ("groups shape", _set("groups", [["all", "sigmoid"]]), r"field 'groups' must be \[\[name, kind"),
    ("embedding table", _table, r"embedding_tables.objects must be a \(35, E\) array"),
    ("train_config", _set("train_config", []), "field 'train_config' must be a mapping"),
    ("hash missing", _drop("onnx_sha256"), "missing field 'onnx_sha256'"),
    ("hash wrong", _set("onnx_sha256", "0" * 64), "SHA-256 differs"),
]


@pytest.mark.parametrize("fn, message", [c[1:] for c in SIDECAR_CASES], ids=[c[0] for c in SIDECAR_CASES])
def test_bad_sidecar_field(model_copy, fn, message):
    edit_sidecar(model_copy, fn)
    with pytest.raises(ModelFileError, match=message) as e:
        read_model_info(model_copy)
    assert "relation.json" in str(e.value) or "relation.onnx" in str(e.value)  # names the file
    with pytest.raises(ModelFileError, match=message):  # the loader refuses too, rather than falling back
        load_relation_backend(RelationBackendConfig(model_path=str(model_copy)))


def test_good_copy_loads(model_copy, exported):
    info = read_model_info(model_copy.parent)  # a directory holding relation.onnx works too
    assert info.path == model_copy and info.objects == exported.info.objects
    assert info.embedding_table("objects").shape == (len(info.objects), 384)


def test_missing_sidecar(model_copy):
    sidecar_path(model_copy).unlink()
    with pytest.raises(ModelFileError, match="side-car relation.json is missing"):
        read_model_info(model_copy)


def test_missing_model_file(tmp_path):
    with pytest.raises(ModelFileError, match="relation model not found"):
        read_model_info(tmp_path / "nope.onnx")
    with pytest.raises(ModelFileError, match="relation model not found"):  # a directory without relation.onnx
        read_model_info(tmp_path)


@pytest.mark.parametrize("content", [b'{"format": "vsgg-relation-model", "form', b"\xff\xfe\x00garbage", b""])
def test_corrupt_sidecar_json(model_copy, content):
    sidecar_path(model_copy).write_bytes(content)
    with pytest.raises(ModelFileError, match="corrupt or truncated side-car"):
        read_model_info(model_copy)


def test_sidecar_not_a_mapping(model_copy):
    sidecar_path(model_copy).write_text("[1, 2, 3]")
    with pytest.raises(ModelFileError, match="not a vsgg-relation-model side-car"):
        read_model_info(model_copy)


def test_truncated_onnx_is_caught_by_the_hash(model_copy):
    data = model_copy.read_bytes()
    model_copy.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError, match="truncated, corrupt"):
        read_model_info(model_copy)


@pytest.mark.parametrize("keep", [0.5, 0.999, 0.0])
def test_truncated_onnx_without_hash_check_is_a_clean_error(model_copy, keep):
    data = model_copy.read_bytes()
    model_copy.write_bytes(data[: int(len(data) * keep)])
    info = read_model_info(model_copy, check_hash=False)
    with pytest.raises(ModelFileError, match="onnxruntime cannot load the model"):
        OrtRelationBackend(info, "ort-cpu")


def test_sidecar_of_another_export(model_copy):
    """A side-car whose hash fits the file but whose content came from another export (here: other epoch)."""
    edit_sidecar(model_copy, lambda j: j["checkpoint"].__setitem__("epoch", 12345))
    info = read_model_info(model_copy)  # versions, vocabularies and hash all fit
    with pytest.raises(ModelFileError, match="does not belong to this model"):
        OrtRelationBackend(info, "ort-cpu")
    with pytest.raises(ModelFileError, match="does not belong to this model"):
        load_relation_backend(RelationBackendConfig(model_path=str(model_copy), backend="auto"))


def test_onnx_without_vsgg_metadata(model_copy):
    m = onnx.load(str(model_copy))
    del m.metadata_props[:]
    onnx.save(m, str(model_copy))
    edit_sidecar(model_copy, _set("onnx_sha256", sha256_file(model_copy)))
    with pytest.raises(ModelFileError, match=f"carries no '{METADATA_KEY}' metadata"):
        OrtRelationBackend(read_model_info(model_copy), "ort-cpu")


def test_check_metadata_corrupt_json(exported):
    with pytest.raises(ModelFileError, match=f"corrupt '{METADATA_KEY}' metadata"):
        check_metadata(exported.info, {METADATA_KEY: "{not json"})
    with pytest.raises(ModelFileError, match="carries no"):
        check_metadata(exported.info, None)


def test_io_signature_mismatch(exported):
    sess = OrtRelationBackend(exported.info, "ort-cpu")._session
    sig = {k: {a.name: (tuple(d if isinstance(d, int) else None for d in a.shape),
                        np.float32 if a.type == "tensor(float)" else np.int64) for a in args}
           for k, args in (("in", sess.get_inputs()), ("out", sess.get_outputs()))}
    check_io_signature(sig["in"], sig["out"], exported.info, "m")  # the real graph fits
    renamed = dict(sig["in"])
    renamed["features"] = renamed.pop("feats")
    with pytest.raises(ModelFileError, match="graph inputs .* do not match the I/O spec"):
        check_io_signature(renamed, sig["out"], exported.info, "m")
    int32 = {**sig["in"], "subj_label": (sig["in"]["subj_label"][0], np.int32)}
    with pytest.raises(ModelFileError, match="input 'subj_label' is int32"):
        check_io_signature(int32, sig["out"], exported.info, "m")
    wide = {**sig["out"], "scores": ((None, 7), np.float32)}
    with pytest.raises(ModelFileError, match="output 'scores' is float32 \\[None, 7\\]"):
        check_io_signature(sig["in"], wide, exported.info, "m")


def test_corrupt_embedding_table(model_copy):
    edit_sidecar(model_copy, lambda j: j["embedding_tables"]["predicates"].__setitem__("base64", "AAAA"))
    info = read_model_info(model_copy)
    with pytest.raises(ModelFileError, match="embedding_tables.predicates: array bytes do not match"):
        info.embedding_table("predicates")


def test_wrong_vocabulary(exported):
    path = exported.onnx
    read_model_info(path, objects=builtin("vidvrd_objects"), predicates=builtin("vidvrd_predicates"))
    read_model_info(path, objects=exported.info.objects)  # plain name sequences work too
    with pytest.raises(ModelFileError, match=r"object vocabulary \(35 names\) differs from 'ag_objects'"):
        read_model_info(path, objects=builtin("ag_objects"))
    with pytest.raises(ModelFileError, match="predicate vocabulary .* first at index 0"):
        read_model_info(path, predicates=builtin("ag_predicates"))
    shorter = Vocabulary("mine", exported.info.objects[:-1])
    with pytest.raises(ModelFileError, match=r"differs from 'mine' \(34 names\), first at index 34"):
        load_relation_backend(RelationBackendConfig(model_path=str(path)), objects=shorter)


def test_max_pairs_above_the_models(exported):
    with pytest.raises(ValueError, match="relation.max_pairs 401 exceeds the model file's maximum 400"):
        load_relation_backend(RelationBackendConfig(model_path=str(exported.onnx), max_pairs=401))
    b = load_relation_backend(RelationBackendConfig(model_path=str(exported.onnx), max_pairs=400, backend="ort-cpu"))
    assert b.max_pairs == 400


def test_cli_reports_a_bad_model_as_one_line(model_copy, capsys):
    """`vsgg eval` with a truncated model: exit 1 and a one-line error, not a traceback."""
    from engine.cli.main import main

    model_copy.write_bytes(model_copy.read_bytes()[:1000])
    rc = main(["eval", "--model", str(model_copy), "--vidvrd", "tests/data/vidor/3598080384.json",
               "--out", str(model_copy.parent / "p.json"), "--report", str(model_copy.parent / "r.json")])
    err = capsys.readouterr().err
    assert rc == 1
    assert "vsgg eval: error:" in err and "SHA-256 differs" in err and "Traceback" not in err
