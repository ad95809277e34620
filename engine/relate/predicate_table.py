"""Predicate list files for ``vsgg run --predicates``: names with their text embeddings (.npz), or names only.

``.npz`` (written by ``vsgg embed-names``, ``write_predicate_table``; plain ``numpy.savez``, read with
``allow_pickle=False``, so no code can ride in it):

    names            (C,)   unicode strings, the predicate names in column order
    table            (C, E) float32 text embeddings, row i = names[i] (all-MiniLM-L6-v2: E = 384, unit rows)
    embedding_model  ()     unicode string, the text embedding model that made ``table``

Any other file is UTF-8 text with one name per line (blank lines skipped, surrounding whitespace stripped): names
the model was trained on, whose embeddings its side-car already holds, so no embedding extra is needed.

Files are read with a size limit (``MAX_FILE_BYTES``, compressed and uncompressed), and the names and table are
checked (``engine.relate.open_vocab``) before the engine changes anything.
"""
from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.vocab import read_text_file

MAX_FILE_BYTES = 16 << 20   # 1,024 names x 384 float32 = 1.5 MB, plus names: ample, and bounded
NPZ_MEMBERS = ("names.npy", "table.npy", "embedding_model.npy")


@dataclass(frozen=True, eq=False)
class PredicateFile:
    """names (C,); table (C, E) float array or None (names only); embedding_model name or None."""

    names: tuple[str, ...]
    table: np.ndarray | None
    embedding_model: str | None


def write_predicate_table(path: str | Path, names, table: np.ndarray, embedding_model: str) -> Path:
    """Write ``names`` (C,) and their float32 ``table`` (C, E) as an .npz predicate table; returns the path."""
    p = Path(path)
    if p.suffix != ".npz":
        raise ValueError(f"--out: a predicate table is an .npz file, got {p}")
    names = [str(n) for n in names]
    table = np.asarray(table, np.float32)
    if table.ndim != 2 or len(table) != len(names):
        raise ValueError(f"table: expected ({len(names)}, E), got {table.shape}")
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".tmp.npz")
    np.savez(tmp, names=np.array(names, dtype=str), table=table, embedding_model=np.array(embedding_model))
    tmp.replace(p)  # atomic: a reader never sees half a table
    return p


def read_predicate_file(path: str | Path) -> PredicateFile:
    """A predicate list (.npz table or a text file of names, module docstring). Structure only: the names and the
    table are checked against the model by ``engine.relate.open_vocab.predicate_scorer``. Raises
    FileNotFoundError, or ValueError naming the file and the problem."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"predicate file not found: {p}")
    size = p.stat().st_size
    if size > MAX_FILE_BYTES:
        raise ValueError(f"predicate file {p}: {size} bytes exceed the limit of {MAX_FILE_BYTES}")
    if p.suffix.lower() != ".npz":
        names = tuple(ln.strip() for ln in read_text_file(p, "predicate file").splitlines() if ln.strip())
        return PredicateFile(names, None, None)
    try:
        with zipfile.ZipFile(p) as z:
            infos = z.infolist()
    except (zipfile.BadZipFile, OSError) as e:
        raise ValueError(f"predicate table {p}: not an .npz file ({e})") from None
    members = {i.filename for i in infos}
    if not {"names.npy", "table.npy"} <= members <= set(NPZ_MEMBERS) or len(members) != len(infos):
        raise ValueError(f"predicate table {p}: expected the arrays names, table (and embedding_model), got "
                         f"{sorted(m.removesuffix('.npy') for m in members)}")
    if sum(i.file_size for i in infos) > MAX_FILE_BYTES:  # a small compressed file may unpack to gigabytes
        raise ValueError(f"predicate table {p}: arrays unpack to more than {MAX_FILE_BYTES} bytes")
    try:
        with np.load(p, allow_pickle=False) as z:
            names, table = z["names"], z["table"]
            model = z["embedding_model"] if "embedding_model" in z.files else None
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as e:  # pickled object arrays are refused here
        raise ValueError(f"predicate table {p}: unreadable ({e})") from None
    if names.ndim != 1 or names.dtype.kind != "U":
        raise ValueError(f"predicate table {p}: 'names' must be a 1-D array of strings, got {names.dtype} "
                         f"{names.shape}")
    if model is not None and (model.ndim != 0 or model.dtype.kind != "U"):
        raise ValueError(f"predicate table {p}: 'embedding_model' must be one string")
    if table.dtype.kind != "f" or table.ndim != 2:
        raise ValueError(f"predicate table {p}: 'table' must be a 2-D float array, got {table.dtype} {table.shape}")
    return PredicateFile(tuple(str(n) for n in names), table, None if model is None else str(model))
