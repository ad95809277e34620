"""Class maps: which engine object label each detector class becomes, as data files (engine/detect/class_maps/*.yaml).

File format (YAML)::

    version: 1
    source: coco80                 # informative: the detector's class list
    target: vidvrd_objects         # a built-in engine vocabulary (engine/vocab/NAME.txt), or instead
    targets: [person, vehicle]     # the target labels listed inline (exactly one of target / targets)
    map:                           # detector class -> target label, or null = no such object in the target
      person: person
      teddy bear: null

A detector class that is absent from ``map`` also maps to nothing. Built-in maps: ``coco_to_vidvrd`` and
``coco_to_meva`` (the reasoning behind each choice is in the files' comments). Every problem is a ValueError naming
the file and the key.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Mapping

import yaml

from engine.vocab import builtin

CLASS_MAP_DIR = Path(__file__).resolve().parent / "class_maps"
CLASS_MAP_VERSION = 1
_KEYS = {"version", "source", "target", "targets", "map"}


@dataclass(frozen=True)
class ClassMap:
    """A validated class map. ``targets``: the ordered target labels; ``mapping``: detector class -> target or None."""

    name: str
    source: str
    targets: tuple[str, ...]
    mapping: Mapping[str, str | None]

    def target_of(self, detector_class: str) -> str | None:
        """The target label of ``detector_class``; None when the map sends it nowhere or does not list it."""
        return self.mapping.get(detector_class)


def builtin_class_maps() -> list[str]:
    """Names of the class maps shipped in engine/detect/class_maps/."""
    return sorted(p.stem for p in CLASS_MAP_DIR.glob("*.yaml"))


def load_class_map(name_or_path: str | Path) -> ClassMap:
    """A built-in map by name (e.g. "coco_to_vidvrd") or a YAML file by path -> ClassMap; ValueError when invalid."""
    if not isinstance(name_or_path, (str, Path)) or not str(name_or_path):
        raise TypeError(f"class_map: expected a built-in name or a file path, got {name_or_path!r}")
    p = Path(name_or_path)
    if not p.is_file():
        if p.suffix or "/" in str(name_or_path):
            raise ValueError(f"class_map: file not found: '{p}'")
        p = CLASS_MAP_DIR / f"{name_or_path}.yaml"
        if not p.is_file():
            raise ValueError(f"class_map: unknown built-in map '{name_or_path}' (known: {builtin_class_maps()})")
    try:
        data = yaml.safe_load(p.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError, RecursionError) as e:
        raise ValueError(f"{p}: cannot read the class map: {e}") from e
    return parse_class_map(data, p)


def _need(cond: bool, path: Path, msg: str) -> None:
    if not cond:
        raise ValueError(f"{path}: {msg}")


def parse_class_map(data, path: str | Path = "<class map>") -> ClassMap:
    """Validate an already-parsed mapping (the file format above) into a ClassMap."""
    p = Path(path)
    _need(isinstance(data, dict), p, "expected a YAML mapping with keys version, target(s), map")
    unknown = sorted(set(map(str, data)) - _KEYS)
    _need(not unknown, p, f"unknown key(s) {unknown}; expected {sorted(_KEYS)}")
    _need(data.get("version") == CLASS_MAP_VERSION, p,
          f"version: this engine reads version {CLASS_MAP_VERSION}, got {data.get('version')!r}")
    _need(("target" in data) != ("targets" in data), p, "give exactly one of target (a built-in vocabulary) "
          "or targets (a list of labels)")
    if "target" in data:
        _need(isinstance(data["target"], str), p, f"target: expected a vocabulary name, got {data['target']!r}")
        try:
            targets = builtin(data["target"]).names
        except ValueError as e:
            raise ValueError(f"{p}: target: {e}") from None
    else:
        t = data["targets"]
        _need(isinstance(t, list) and t and all(isinstance(x, str) and x and x.strip() == x for x in t), p,
              "targets: expected a non-empty list of label names")
        _need(len(set(t)) == len(t), p, f"targets: duplicate labels in {t}")
        targets = tuple(t)
    source = data.get("source", "")
    _need(isinstance(source, str), p, "source: expected a string")
    m = data.get("map")
    _need(isinstance(m, dict) and m, p, "map: expected a non-empty mapping {detector class: target label or null}")
    mapping = {}
    for k, v in m.items():
        _need(isinstance(k, str) and k.strip() == k and k, p, f"map: detector class {k!r} must be a non-empty, "
              f"unpadded string")
        _need(v is None or (isinstance(v, str) and v in targets), p,
              f"map.{k}: {v!r} is not a target label (targets: {list(targets)}) nor null")
        mapping[k] = v
    return ClassMap(p.stem, source, tuple(targets), MappingProxyType(mapping))
