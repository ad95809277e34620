"""Label vocabularies: ordered category / predicate names and their indices (the single source of truth)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

VOCAB_DIR = Path(__file__).resolve().parent / "vocab"


@dataclass(frozen=True)
class Vocabulary:
    """An ordered, duplicate-free list of names; index i is the integer label used in arrays."""

    name: str
    names: tuple[str, ...]

    def __post_init__(self):
        if len(set(self.names)) != len(self.names):
            dup = sorted({n for n in self.names if self.names.count(n) > 1})
            raise ValueError(f"vocabulary '{self.name}' has duplicate entries: {dup}")
        if any(not n or n != n.strip() for n in self.names):
            raise ValueError(f"vocabulary '{self.name}' has empty or padded names")
        object.__setattr__(self, "_index", {n: i for i, n in enumerate(self.names)})

    def __len__(self) -> int:
        return len(self.names)

    def __contains__(self, name: str) -> bool:
        return name in self._index

    def index(self, name: str) -> int:
        """Index of ``name``; an unknown label raises a ValueError naming it and the vocabulary."""
        try:
            return self._index[name]
        except KeyError:
            raise ValueError(f"unknown label '{name}' for vocabulary '{self.name}' ({len(self)} names)") from None

    def indices(self, names) -> list[int]:
        return [self.index(n) for n in names]

    def label(self, i: int) -> str:
        if not 0 <= int(i) < len(self.names):
            raise ValueError(f"label index {i} out of range for vocabulary '{self.name}' ({len(self)} names)")
        return self.names[int(i)]

    @classmethod
    def from_file(cls, path: str | Path, name: str | None = None) -> "Vocabulary":
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"vocabulary file not found: {p}")
        names = tuple(line.strip() for line in p.read_text().splitlines() if line.strip())
        return cls(name or p.stem, names)


def builtin(name: str) -> Vocabulary:
    """One of the bundled vocabularies: vidvrd_objects, vidvrd_predicates, ag_objects, ag_predicates."""
    path = VOCAB_DIR / f"{name}.txt"
    if not path.is_file():
        known = sorted(p.stem for p in VOCAB_DIR.glob("*.txt"))
        raise ValueError(f"unknown built-in vocabulary '{name}' (known: {known})")
    return Vocabulary.from_file(path, name)
