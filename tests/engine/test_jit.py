"""engine.jit: numba writes the engine kernel cache into the configured directory (checked in fresh processes)."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine.jit import kernel_cache_files, kernel_source_digest, use_numba_cache_dir

ROOT = Path(__file__).resolve().parents[2]


def run_py(code: str, env_extra: dict | None = None) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NUMBA_")}
    env.update(env_extra or {})
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_use_numba_cache_dir_after_import_repoints_kernels(tmp_path):
    # engine.track.tracker is imported (kernels decorated with numba's default locator) *before* the directory is set
    out = run_py(
        "import engine.track.tracker as T\n"
        "from engine.jit import use_numba_cache_dir\n"
        f"d = use_numba_cache_dir({str(tmp_path)!r})\n"
        "T.Tracker().warmup()\n"
        "print(d)\n")
    target = Path(out.strip())
    assert target.parent == tmp_path.resolve() and target.name == f"vsgg-{kernel_source_digest()}"
    names = {p.name.split("-")[0] for p in kernel_cache_files(target)}
    for kernel in ("tracker._track_step", "assign.assign_gated", "kalman.kalman_update", "boxes.iou_xyxy"):
        assert kernel in names, sorted(names)
    assert any(p.suffix == ".nbi" for p in kernel_cache_files(target))
    assert any(p.suffix == ".nbc" for p in kernel_cache_files(target))


def test_numba_cache_dir_environment_variable(tmp_path):
    run_py("import numpy as np\nfrom engine.boxes import xyxy_to_ltwh\nxyxy_to_ltwh(np.zeros((1, 4)))\n",
           {"NUMBA_CACHE_DIR": str(tmp_path)})
    assert any(p.name.startswith("boxes.xyxy_to_ltwh") for p in kernel_cache_files(tmp_path))


def test_unwritable_cache_dir_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(ValueError, match="numba_cache_dir"):
        use_numba_cache_dir(blocker / "cache")
    with pytest.raises(ValueError, match="numba_cache_dir"):
        use_numba_cache_dir("")
    assert os.environ.get("NUMBA_CACHE_DIR", "") != str(blocker / "cache")
