"""Seeded generators of malformed inputs: one mutation of a valid document per case, grouped in mutation classes.

A document is a Python structure (dicts, lists, strings, numbers) plus the serializer of its format (JSON, YAML,
INI, CSV lines, msgpack ...). ``mutate(doc, serialize, cls, rng)`` returns the bytes of one malformed variant:

* structure level (a random value of the document): ``wrong_type`` (a value or key replaced by one of another
  type), ``huge`` (a number or size far out of range, a 1 MB string, a 100k-element list), ``deep_nesting`` (a
  value buried under 5,000-100,000 levels of lists or maps), ``nan_inf`` (a number replaced by NaN / inf / -inf),
  ``control_chars`` (C0/C1 controls, bidirectional overrides, line separators inserted into a string), ``missing``
  (a key or item removed), ``duplicate`` (an item or line repeated);
* byte level: ``truncation`` (the serialized bytes cut short) and ``byte_flip`` (1-8 random bits flipped).

Everything is drawn from the ``random.Random`` the caller passes, so case ``i`` of a seed is reproducible: the fuzz
worker regenerates a case from (seed, target, index) alone. Sizes are bounded (at most a few MB per case).
"""
from __future__ import annotations

import math
import random
import re
from typing import Any, Callable

MUTATION_CLASSES = ("truncation", "byte_flip", "wrong_type", "huge", "deep_nesting", "nan_inf", "control_chars",
                    "missing", "duplicate")

# Characters that must never reach a terminal or log unescaped: C0, DEL, C1 (\x9b is CSI), bidi overrides and
# isolates, zero-width joiner, line / paragraph separators, BOM, a lone surrogate's replacement.
CONTROL_CHARS = ("\x00", "\x07", "\x1b[31m", "\x7f", "\x85", "\x9b", "\u202e", "\u2066", "\u200d", "\u2028",
                 "\u2029", "\ufeff", "\r", "\t", "\n")
_WRONG_VALUES = (None, True, "x", "", "3", "0.7", [], [1, 2], {}, {"a": 1}, 0.7, -1, 2 ** 64, "\u202e")
_HUGE_NUMBERS = (300_000_000, 2 ** 31, 2 ** 63, 2 ** 64 + 1, 10 ** 30, 1e308, -1e308, -2 ** 63 - 1, -1, 0,
                 9_999_999_999)

Serialize = Callable[[Any], bytes]


def _paths(obj: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path (tuple of keys / indices) to a value inside ``obj``, the root included."""
    out = [prefix]
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += _paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out += _paths(v, prefix + (i,))
    return out


def _copy(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _copy(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_copy(v) for v in obj]
    return obj


def _get(obj: Any, path: tuple) -> Any:
    for p in path:
        obj = obj[p]
    return obj


def _set(obj: Any, path: tuple, value: Any) -> Any:
    """``obj`` with the value at ``path`` replaced (the root itself when path is empty)."""
    if not path:
        return value
    _get(obj, path[:-1])[path[-1]] = value
    return obj


def _pick(rng: random.Random, obj: Any, want: Callable[[Any], bool]) -> tuple | None:
    """A random path whose value satisfies ``want``, or None."""
    paths = [p for p in _paths(obj) if want(_get(obj, p))]
    return rng.choice(paths) if paths else None


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


# Serializers recurse per nesting level and fail on the depths that matter, so a deep value travels as a marker
# string that is expanded in the serialized bytes: lists ("[[[0]]]") or maps ('{"a": {"a": 0}}').
_DEEP_TEXT = re.compile(rb"([\"']?)@@DEEP-(\d+)-([lm])@@\1")
_DEEP_MSGPACK = re.compile(rb"[\xa0-\xbf]@@DEEP-(\d+)-([lm])@@")


def _deep(rng: random.Random) -> str:
    return f"@@DEEP-{rng.choice((5_000, 20_000, 100_000))}-{'m' if rng.random() < 0.3 else 'l'}@@"


def expand_deep(data: bytes) -> bytes:
    """Replace deep-nesting markers in text formats (JSON, YAML flow, lines) by the nested value itself."""
    def sub(m: re.Match) -> bytes:
        n = int(m.group(2))
        return b"[" * n + b"0" + b"]" * n if m.group(3) == b"l" else b'{"a": ' * n + b"0" + b"}" * n
    return _DEEP_TEXT.sub(sub, data)


def expand_deep_msgpack(data: bytes) -> bytes:
    """Replace deep-nesting markers packed as msgpack strings by nested msgpack arrays or maps."""
    def sub(m: re.Match) -> bytes:
        n = int(m.group(1))
        return (b"\x91" if m.group(2) == b"l" else b"\x81\xa1a") * n + b"\x00"
    return _DEEP_MSGPACK.sub(sub, data)


def _structural(doc: Any, cls: str, rng: random.Random) -> Any:
    """A mutated copy of ``doc`` for one structure-level class (falls back to the root when nothing fits)."""
    d = _copy(doc)
    if cls == "wrong_type":
        path = _pick(rng, d, lambda v: True)
        if path and isinstance(_get(d, path[:-1]), dict) and rng.random() < 0.25:
            parent, key = _get(d, path[:-1]), path[-1]  # a key of another type or spelling
            parent[rng.choice((key + "_", key.upper(), "", "\u202e" + key)) if isinstance(key, str) else "k"] = \
                parent.pop(key)
            return d
        return _set(d, path or (), rng.choice(_WRONG_VALUES))
    if cls == "huge":
        kind = rng.random()
        if kind < 0.5:
            path = _pick(rng, d, _is_number)
            if path is not None:
                return _set(d, path, rng.choice(_HUGE_NUMBERS))
        if kind < 0.75:
            path = _pick(rng, d, lambda v: isinstance(v, str))
            if path is not None:
                return _set(d, path, rng.choice("ax\u00e9") * rng.choice((1 << 16, 1 << 20)))
        path = _pick(rng, d, lambda v: isinstance(v, list) and len(v) > 0)
        if path is not None:
            lst = _get(d, path)
            n = rng.choice((10_000, 100_000))
            return _set(d, path, (lst * (n // len(lst) + 1))[:n])
        return _set(d, (), [0] * 100_000)
    if cls == "deep_nesting":
        path = _pick(rng, d, lambda v: True) or ()
        return _set(d, path, _deep(rng))
    if cls == "nan_inf":
        path = _pick(rng, d, _is_number)
        return _set(d, path or (), rng.choice((math.nan, math.inf, -math.inf)))
    if cls == "control_chars":
        path = _pick(rng, d, lambda v: isinstance(v, str) and v != "")
        c = rng.choice(CONTROL_CHARS)
        if path is None:
            return _set(d, (), c)
        s = _get(d, path)
        i = rng.randint(0, len(s))
        return _set(d, path, s[:i] + c + s[i:])
    if cls == "missing":
        path = _pick(rng, d, lambda v: True)
        if not path:
            return {} if isinstance(d, dict) else []
        parent = _get(d, path[:-1])
        del parent[path[-1]]
        return d
    if cls == "duplicate":
        path = _pick(rng, d, lambda v: isinstance(v, list) and len(v) > 0)
        if path is None:
            return d
        lst = _get(d, path)
        i = rng.randrange(len(lst))
        lst.insert(i + 1, _copy(lst[i]))
        return d
    raise ValueError(f"cls: unknown structure-level mutation class {cls!r}")


def mutate(doc: Any, serialize: Serialize, cls: str, rng: random.Random) -> bytes:
    """The bytes of one malformed variant of ``doc`` (a valid document of the format ``serialize`` writes).

    Structure-level classes mutate ``doc`` and serialize it; when the serializer itself refuses the result (e.g.
    msgpack's nesting limit, YAML's recursion) the bytes are built without it where the format allows (nesting as
    repeated brackets), else the unmutated document is truncated instead, so every case yields input bytes.
    """
    if cls not in MUTATION_CLASSES:
        raise ValueError(f"cls: unknown mutation class {cls!r} (known: {', '.join(MUTATION_CLASSES)})")
    if cls in ("truncation", "byte_flip"):
        data = bytearray(serialize(doc))
        if not data:
            return b""
        if cls == "truncation":
            return bytes(data[:rng.randrange(len(data))])
        for _ in range(rng.randint(1, 8)):
            i = rng.randrange(len(data))
            data[i] ^= 1 << rng.randrange(8)
        return bytes(data)
    mutated = _structural(doc, cls, rng)
    try:
        return expand_deep(serialize(mutated))
    except (RecursionError, ValueError, TypeError, OverflowError):
        data = serialize(doc)
        return data[:max(1, len(data) // 2)]


def case_rng(seed: int, target: str, index: int) -> random.Random:
    """The generator of case ``index`` of ``target`` under ``seed`` (independent of every other case)."""
    return random.Random(f"{seed}/{target}/{index}")


def case_class(rng: random.Random, classes: tuple[str, ...] = MUTATION_CLASSES) -> str:
    return rng.choice(classes)
