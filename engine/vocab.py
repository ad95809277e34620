"""Label vocabularies: ordered category / predicate names and their indices (the single source of truth).

Label names reach terminals, logs, overlays and the wire, so every name that enters vsgg (vocabulary files, model
vocabularies, VidVRD JSON categories and predicates, category / class map files) passes ``check_name``: a
non-empty ``str`` without leading or trailing whitespace whose characters are all printable. That refuses C0/C1
control characters (``\\x1b``, ``\\x9b``: terminal escape sequences), bidirectional overrides and other format
characters (U+202E, U+2066, zero-width joiners), line and paragraph separators, and unassigned code points.
Errors show a rejected name with ``repr`` so the message itself carries no control character.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

VOCAB_DIR = Path(__file__).resolve().parent / "vocab"
MAX_NAME_LEN = 128  # longest label / predicate name the ZeroMQ wire carries (engine.transport.fields)


def name_problem(name) -> str | None:
    """Why ``name`` is not an acceptable label name, or None when it is (see the module docstring)."""
    if not isinstance(name, str):
        return f"expected a string, got {type(name).__name__}"
    if not name:
        return "empty name"
    if name != name.strip():
        return "leading or trailing whitespace"
    bad = next((c for c in name if not c.isprintable()), None)
    if bad is not None:
        return f"non-printable character U+{ord(bad):04X} (control, format or bidirectional character)"
    return None


def check_name(name, where: str) -> str:
    """Return ``name`` if it is an acceptable label name, else raise ValueError (TypeError for a non-string) saying
    ``where`` it came from, showing the name with ``repr``."""
    problem = name_problem(name)
    if problem is None:
        return name
    err = TypeError if not isinstance(name, str) else ValueError
    raise err(f"{where}: label name {name!r} is not allowed ({problem})")


def read_text_file(path: str | Path, what: str) -> str:
    """The UTF-8 text of ``path``; a binary or non-UTF-8 file raises ValueError naming ``what``, the file and the
    byte offset (instead of a bare UnicodeDecodeError)."""
    p = Path(path)
    data = p.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"{what} {p}: not UTF-8 text (undecodable byte at offset {e.start}); "
                         "is it a binary file?") from None


@dataclass(frozen=True)
class Vocabulary:
    """An ordered, duplicate-free list of names; index i is the integer label used in arrays."""

    name: str
    names: tuple[str, ...]

    def __post_init__(self):
        names = tuple(self.names)
        for i, n in enumerate(names):
            check_name(n, f"vocabulary '{self.name}' entry {i}")
        if len(set(names)) != len(names):
            dup = sorted({a for a, b in zip(sorted(names), sorted(names)[1:]) if a == b})  # O(n log n)
            raise ValueError(f"vocabulary '{self.name}' has duplicate entries: {dup}")
        object.__setattr__(self, "names", names)
        object.__setattr__(self, "_index", {n: i for i, n in enumerate(names)})

    def __len__(self) -> int:
        return len(self.names)

    def __contains__(self, name: str) -> bool:
        return name in self._index

    def index(self, name: str) -> int:
        """Index of ``name``; an unknown label raises a ValueError naming it and the vocabulary."""
        try:
            return self._index[name]
        except (KeyError, TypeError):
            raise ValueError(f"unknown label {name!r} for vocabulary '{self.name}' ({len(self)} names)") from None

    def indices(self, names) -> list[int]:
        return [self.index(n) for n in names]

    def label(self, i: int) -> str:
        if not 0 <= int(i) < len(self.names):
            raise ValueError(f"label index {i} out of range for vocabulary '{self.name}' ({len(self)} names)")
        return self.names[int(i)]

    @classmethod
    def from_file(cls, path: str | Path, name: str | None = None) -> "Vocabulary":
        """One name per line (UTF-8; blank lines ignored, surrounding whitespace stripped). Errors name the file."""
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"vocabulary file not found: {p}")
        names = tuple(line.strip() for line in read_text_file(p, "vocabulary file").splitlines() if line.strip())
        try:
            return cls(name or p.stem, names)
        except ValueError as e:
            raise ValueError(f"{p}: {e}") from None


def load_name_map(path: str | Path, what: str = "map file") -> dict[str, str | None]:
    """A ``{name: label or null}`` map file (``.json`` read as JSON, anything else as YAML), e.g. ``vsgg run
    --category-map`` / ``--class-map``. Keys and values pass ``check_name``; a missing file is FileNotFoundError;
    binary content, bad syntax, nesting too deep to parse, a non-mapping or a non-string entry raise ValueError
    naming ``what`` and the file. Numbers as keys are refused too (a YAML ``1: person`` is almost always a typo)."""
    import yaml

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{what} not found: {p}")
    text = read_text_file(p, what)
    try:
        data = json.loads(text) if p.suffix.lower() == ".json" else yaml.safe_load(text)
    except RecursionError:
        raise ValueError(f"{what} {p}: nested too deeply to parse") from None
    except (json.JSONDecodeError, yaml.YAMLError) as e:
        raise ValueError(f"{what} {p}: not valid {'JSON' if p.suffix.lower() == '.json' else 'YAML'} ({e})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"{what} {p}: expected a mapping {{name: label}}, got {type(data).__name__}")
    out = {}
    for k, v in data.items():
        if not isinstance(k, str) or not (v is None or isinstance(v, str)):
            raise ValueError(f"{what} {p}: entries must be 'name: label' or 'name: null', got {k!r}: {v!r}")
        check_name(k, f"{what} {p}")
        out[k] = None if v is None else check_name(v, f"{what} {p} (value of {k!r})")
    return out


def builtin(name: str) -> Vocabulary:
    """One of the bundled vocabularies: vidvrd_objects, vidvrd_predicates, ag_objects, ag_predicates, meva_*."""
    path = VOCAB_DIR / f"{name}.txt"
    if not path.is_file():
        known = sorted(p.stem for p in VOCAB_DIR.glob("*.txt"))
        raise ValueError(f"unknown built-in vocabulary '{name}' (known: {known})")
    return Vocabulary.from_file(path, name)
