"""`vsgg export` (checkpoint -> ONNX + side-car, parity line, TensorRT refusal without a GPU) and `vsgg bench model`."""
import importlib.util
import json
import subprocess
import sys

import pytest

pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

from engine.backends.cuda_driver import cuda_device_count  # noqa: E402
from engine.relate.relation_io import read_model_info  # noqa: E402

CAN_BUILD_TRT = cuda_device_count() > 0 and importlib.util.find_spec("tensorrt") is not None


def vsgg(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "engine.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)


def test_export_writes_model_checks_parity_and_refuses_tensorrt_without_gpu(exported, tmp_path):
    """One export run covers: files written, the parity line, --max-pairs below the 300-pair parity case, and
    --tensorrt on a machine that cannot build an engine (exit 1, clear message, ONNX kept)."""
    out = tmp_path / "out" / "relation.onnx"
    r = vsgg("export", "--checkpoint", exported.checkpoint, "--onnx", out, "--max-pairs", 100,
             "--tensorrt", tmp_path / "out" / "relation.engine")
    assert "ONNX model: " in r.stdout and "0..100 pairs" in r.stdout, r.stdout + r.stderr
    parity = next(line for line in r.stdout.splitlines() if line.startswith("parity torch vs onnxruntime: "))
    assert "over 4 steps" in parity and "0: 0.0e+00" in parity and "100: " in parity and "300:" not in parity
    diff = float(parity.split("max abs diff ")[1].split()[0])
    assert diff <= 1e-4
    info = read_model_info(out)  # hash, versions and vocabularies of what the command wrote
    assert info.max_pairs == 100 and info.objects == exported.info.objects
    assert out.with_suffix(".json").is_file()
    if CAN_BUILD_TRT:
        assert r.returncode == 0, r.stderr
        assert "parity torch vs TensorRT" in r.stdout
    else:
        assert r.returncode == 1, r.stdout + r.stderr
        assert "vsgg export: cannot build a TensorRT engine here: " in r.stderr
        assert "The ONNX model was written" in r.stderr and "Traceback" not in r.stderr
        assert not (tmp_path / "out" / "relation.engine").exists()


@pytest.mark.parametrize("args, message", [
    (["--fp16"], "--fp16 applies to the TensorRT engine; add --tensorrt OUT.engine"),
    (["--max-pairs", "0"], "--max-pairs must be >= 1"),
])
def test_export_argument_errors(exported, tmp_path, args, message):
    r = vsgg("export", "--checkpoint", exported.checkpoint, "--onnx", tmp_path / "relation.onnx", *args, timeout=60)
    assert r.returncode == 1 and f"vsgg export: error: {message}" in r.stderr, r.stderr
    assert not (tmp_path / "relation.onnx").exists()


def test_export_of_a_missing_checkpoint(tmp_path):
    r = vsgg("export", "--checkpoint", tmp_path / "nope", "--onnx", tmp_path / "relation.onnx", timeout=120)
    assert r.returncode == 1 and "vsgg export: error:" in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_bench_model_figures(exported, tmp_path, capsys):
    """In-process (torch is already loaded) to keep the suite fast; the command is the same entry point."""
    from engine.cli.main import main

    out = tmp_path / "bench.json"
    rc = main(["bench", "model", "--checkpoint", str(exported.checkpoint), "--steps", "3", "--pairs", "10", "90",
               "--json", str(out)])
    text = capsys.readouterr().out
    assert rc == 0
    f = json.loads(out.read_text())
    assert f["device"] == "cpu" and f["steps"] == 3 and f["model"] == str(exported.checkpoint)
    for p in (10, 90):
        row = f[f"pairs{p}"]
        for rt in ("torch", "ort"):
            assert 0 < row[f"{rt}_median_ms"] <= row[f"{rt}_p95_ms"]
            assert row[f"{rt}_pairs_per_s"] == pytest.approx(p / (row[f"{rt}_median_ms"] / 1e3))
        assert row["ort_speedup"] == pytest.approx(row["torch_median_ms"] / row["ort_median_ms"])
    assert "speed-up vs torch" in text and "figures written to" in text


def test_bench_model_bad_arguments(exported):
    import argparse

    from export.bench_model import add_parser

    parser = argparse.ArgumentParser()
    run = add_parser(parser)
    for bad in (["--steps", "0"], ["--pairs", "0"], ["--threads", "0"]):
        with pytest.raises(ValueError, match="must be >= 1"):
            run(parser.parse_args(["--checkpoint", str(exported.checkpoint), *bad]))


@pytest.mark.parametrize("extra, message", [
    ([], "--figures-only re-measures a MEVA model: give --meva DIR"),
    (["--meva", "nowhere"], "--figures-only: --checkpoint must be "),
])
def test_release_figures_only_argument_errors(exported, tmp_path, extra, message):
    """--figures-only keeps a released model's ONNX file: it refuses anything but that folder's own checkpoint."""
    r = vsgg("release", "--checkpoint", exported.checkpoint, "--out", tmp_path / "model", "--figures-only", *extra,
             timeout=120)
    assert r.returncode == 1 and message in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert not (tmp_path / "model").exists()
