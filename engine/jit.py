"""Where numba stores the compiled engine kernels: a configurable cache directory for read-only installs.

What numba 0.68 actually does (read from ``numba/core/caching.py`` and ``config.py``, checked by
``tests/engine/test_jit.py``):

* ``NUMBA_CACHE_DIR`` is read into ``numba.core.config.CACHE_DIR`` when numba is imported, and again only when
  ``numba.core.config.reload_config()`` runs (the compiler calls it) *and* some ``NUMBA_*`` variable changed.
* The cache location of an ``@njit(cache=True)`` function is fixed when it is **decorated**, i.e. when its module
  is imported: ``UserProvidedCacheLocator`` (``CACHE_DIR``) if set, else ``__pycache__`` next to the source if it
  is writable, else the user-wide cache (``~/.cache/numba``); if none is writable, the import itself fails.
  Setting the environment variable once numba is imported (even before the engine modules) therefore changes
  nothing by itself: the kernels still cache to ``__pycache__``.
* Cache entries are invalidated by the source file of the cached function only; a change in a kernel it calls
  from another file is not noticed (numba issue #1833).

``use_numba_cache_dir`` handles all three: it sets the variable, reloads numba's config, re-points every engine
kernel that is already imported (``Dispatcher.enable_caching()`` picks the locator again) and uses a
sub-directory named after a digest of all engine kernel sources, so changing any kernel file starts a fresh cache.
Call it before the first kernel runs (before ``Tracker.warmup``); overloads compiled earlier stay in memory and
are not written to the new place. For an install where even importing fails (nothing writable, no home
directory), set ``NUMBA_CACHE_DIR`` in the environment before starting Python.
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
import tempfile
from pathlib import Path

#: Modules that define ``@njit(cache=True)`` kernels of the engine (their sources make up the cache digest).
KERNEL_MODULES = ("engine.boxes", "engine.track.kalman", "engine.track.assign", "engine.track.track_state",
                  "engine.track.tracker")


def kernel_source_digest() -> str:
    """SHA-256 (hex, first 16 chars) over the source files of ``KERNEL_MODULES``, read without importing them."""
    h = hashlib.sha256()
    for name in KERNEL_MODULES:
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.origin:
            raise RuntimeError(f"cannot locate the source of kernel module {name}")
        h.update(name.encode())
        h.update(Path(spec.origin).read_bytes())
    return h.hexdigest()[:16]


def use_numba_cache_dir(path: str | os.PathLike) -> Path:
    """Cache compiled engine kernels under ``path/vsgg-<digest>``; returns that directory.

    Raises ValueError naming ``numba_cache_dir`` when the directory cannot be created or written.
    Affects the whole process (numba's configuration is global), including modules imported later.
    """
    if not str(path):
        raise ValueError("numba_cache_dir: empty path")
    target = Path(path).expanduser().resolve() / f"vsgg-{kernel_source_digest()}"
    try:
        target.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=target).close()
    except OSError as e:
        raise ValueError(f"numba_cache_dir: cannot write to {target}: {e}") from e

    import numba.core.config
    from numba.core.caching import FunctionCache
    from numba.core.dispatcher import Dispatcher

    os.environ["NUMBA_CACHE_DIR"] = str(target)
    numba.core.config.reload_config()
    for name, module in list(sys.modules.items()):
        if module is None or not (name == "engine" or name.startswith("engine.")):
            continue
        for obj in list(vars(module).values()):
            if isinstance(obj, Dispatcher) and isinstance(getattr(obj, "_cache", None), FunctionCache):
                obj.enable_caching()  # picks the locator again, now UserProvidedCacheLocator(target)
    return target


def kernel_cache_files(directory: str | os.PathLike) -> list[Path]:
    """The numba cache files (``*.nbi`` index and ``*.nbc`` code) below ``directory``, sorted."""
    d = Path(directory)
    return sorted(p for p in d.rglob("*") if p.suffix in (".nbi", ".nbc"))
