"""`vsgg train --nproc 2`: data parallel over 2 processes (torchrun, gloo on CPU) reaches the same weights as one
process with the same global batch (dropout off, so both runs see exactly the same computation up to float
summation order)."""
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from safetensors.numpy import load_file  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
SETTINGS = ["model.dropout=0", "optim.epochs=2", "optim.videos_per_step=4", "run.progress=false",
            "train_data.synthetic_videos=16", "val_data.synthetic_videos=4", "run.threads=1"]
TOLERANCE = 1e-4  # max |w_1proc - w_2proc| after 8 steps; float sums in another order differ by ~1e-7 per step


def train(out: Path, nproc: int) -> float:
    t = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "engine.cli", "train", "--preset", "tiny", "--nproc", str(nproc),
                        f"run.out_dir={out}", *SETTINGS], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    return time.monotonic() - t


def test_two_processes_reach_the_weights_of_one(tmp_path):
    t1 = train(tmp_path / "one", 1)
    t2 = train(tmp_path / "two", 2)
    a = load_file(str(tmp_path / "one" / "last" / "model.safetensors"))
    b = load_file(str(tmp_path / "two" / "last" / "model.safetensors"))
    assert a.keys() == b.keys()
    diff = max(float(np.abs(a[k] - b[k]).max()) for k in a)
    moved = max(float(np.abs(a[k] - load_file(str(tmp_path / "one" / "best" / "model.safetensors"))[k]).max())
                for k in a)
    print(f"1 process {t1:.1f} s, 2 processes {t2:.1f} s (speed-up {t1 / t2:.2f}x); max weight difference {diff:.2e}")
    assert diff < TOLERANCE
    h1 = json.loads((tmp_path / "one" / "history.json").read_text())
    h2 = json.loads((tmp_path / "two" / "history.json").read_text())
    assert [h["step"] for h in h1] == [h["step"] for h in h2]
    assert abs(h1[-1]["loss"] - h2[-1]["loss"]) < 1e-4
    assert moved >= 0  # best may equal last


def test_nproc_must_be_positive(capsys):
    from engine.cli.main import main
    assert main(["train", "--preset", "tiny", "--nproc", "0"]) == 1
    assert "--nproc must be >= 1" in capsys.readouterr().err
