"""A restricted unpickler for dataset pickles we did not write: plain containers, scalars and numpy arrays only.

``pickle.load`` runs whatever callable a file names (``os.system``, ``builtins.eval``...), so a downloaded dataset
pickle is untrusted input. ``load_safe_pickle`` resolves only the globals below and refuses every other one with an
``UnsafePickleError`` that names the offending ``module.name`` and the file:

* builtin scalar and container types (``bool``, ``int``, ``float``, ``str``, ``bytes``, ``tuple``, ``list``,
  ``dict``, ``set``, ``frozenset``, ``bytearray``, ``complex``, ``slice``, ``range``) and ``collections.OrderedDict``:
  protocol 2 names some of them as globals (e.g. ``__builtin__.bytes`` for empty bytes);
* ``_codecs.encode``: how protocol-2 pickles written by Python 3 store ``bytes`` (e.g. a numpy array's buffer);
* numpy array reconstruction: ``numpy.ndarray``, ``numpy.dtype``, ``numpy._core.multiarray._reconstruct`` and
  ``.scalar``, ``numpy._core.numeric._frombuffer`` (protocol 5). numpy < 2 wrote ``numpy.core.*``; those names are
  read as the same ``numpy._core.*`` functions, so files written with numpy 1.x load without deprecation warnings.

The C unpickler still does the work (only ``find_class`` is overridden), so large files load at normal speed.
Python-2 ``str`` objects are decoded as latin-1, which is what numpy needs for arrays pickled by Python 2.
"""
from __future__ import annotations

import codecs
import collections
import io
import pickle
from pathlib import Path

import numpy as np
from numpy._core import multiarray as _multiarray
from numpy._core import numeric as _numeric

_ALLOWED = {
    **{("builtins", t.__name__): t for t in (bool, int, float, str, bytes, tuple, list, dict)},
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("builtins", "bytearray"): bytearray,
    ("builtins", "complex"): complex,
    ("builtins", "slice"): slice,
    ("builtins", "range"): range,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("_codecs", "encode"): codecs.encode,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("numpy._core.multiarray", "_reconstruct"): _multiarray._reconstruct,
    ("numpy._core.multiarray", "scalar"): _multiarray.scalar,
    ("numpy._core.numeric", "_frombuffer"): _numeric._frombuffer,
}
# Python 2 pickles name the builtins module differently.
_MODULE_ALIASES = {"__builtin__": "builtins", "copy_reg": "copyreg"}


class UnsafePickleError(pickle.UnpicklingError, ValueError):
    """The pickle names a global outside the allow-list (possible code execution) or is not a valid pickle."""


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file, source: str):
        super().__init__(file, encoding="latin1")
        self._source = source

    def find_class(self, module: str, name: str):
        mod = _MODULE_ALIASES.get(module, module)
        if mod == "numpy.core" or mod.startswith("numpy.core."):
            mod = "numpy._core" + mod[len("numpy.core"):]
        obj = _ALLOWED.get((mod, name))
        if obj is None:
            raise UnsafePickleError(
                f"{self._source}: refusing to load global '{module}.{name}' — only builtin containers, scalars and "
                "numpy arrays are allowed in dataset pickles (a pickle naming other callables can run code)")
        return obj

    def persistent_load(self, pid):
        raise UnsafePickleError(f"{self._source}: persistent ids are not allowed in dataset pickles ({pid!r})")


_CORRUPT = (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError,
            UnicodeDecodeError, OverflowError, MemoryError)


def _load(file, source: str):
    try:
        return _RestrictedUnpickler(file, source).load()
    except UnsafePickleError:
        raise
    except _CORRUPT as e:
        raise ValueError(f"{source}: not a valid pickle ({type(e).__name__}: {e})") from e


def load_safe_pickle(path: str | Path):
    """Unpickle ``path`` with the allow-list above. Returns the decoded object (dicts, lists, numpy arrays...).

    Raises FileNotFoundError if ``path`` is not a file, UnsafePickleError (a ValueError) for a refused global, and
    ValueError naming the file for a truncated or corrupt pickle.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"pickle file not found: {p}")
    with p.open("rb") as f:
        return _load(f, str(p))


def loads_safe_pickle(data: bytes, source: str = "<bytes>"):
    """Like ``load_safe_pickle`` for an in-memory pickle; ``source`` names it in error messages."""
    return _load(io.BytesIO(data), source)
