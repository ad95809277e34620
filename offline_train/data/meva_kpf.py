"""Line-wise parser of MEVA's KPF annotation files (``*.geom.yml``, ``*.types.yml``, ``*.activities.yml``, plain or xz).

KPF writes one YAML flow mapping per line, as a YAML sequence item (``- { geom: {...} }``). Two line layouts occur
in the published files, and both are handled:

* YAML flow style (set ``kitware/``)::

      - { geom: {id1: 8287562301640615251, id0: 1, ts0: 1159, ts1: 38.63, g0: 1364 218 1399 298, keyframe: true } }

* Python-repr style with sorted keys (set ``kitware-meva-training/``)::

      - {'geom': {'g0': '1883 86 1918 153', 'id0': 4008, 'id1': 4, 'keyframe': False, 'ts0': 5164}}

Field meanings (KPF): ``id0`` detection id, ``id1`` track id, ``id2`` activity id; ``ts0`` frame number (30 fps),
``ts1`` seconds; ``g0`` the box ``'x1 y1 x2 y2'`` in pixels (may be negative: boxes leaving the image);
``keyframe`` true for human-drawn boxes (missing on some lines); ``cset3`` ``{category: probability}``;
``act2`` ``{activity name: probability}``; ``tsr0`` an inclusive ``[first, last]`` frame range. ``{meta: ...}``
records carry free text (an empty clip says ``... was marked empty_37``).

Speed: geometry lines are matched by two anchored regular expressions (one per layout), about 1 µs a line; any line
they do not match (a different key order, an extra field) goes through a small, general YAML-flow parser
(``parse_flow_line``), which is also used for the few thousand types / activities lines. PyYAML's CSafeLoader is
about 10x slower on these files. Every malformed line raises ``KpfFormatError`` naming the file and line number.
"""
from __future__ import annotations

import lzma
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

_NUM = r"(-?\d+(?:\.\d+)?)"
_BOX = rf"{_NUM} {_NUM} {_NUM} {_NUM}"
# Python-repr layout: keys sorted, g0 quoted, keyframe optional.
_GEOM_REPR = re.compile(rf"- \{{'geom': \{{'g0': '{_BOX}', 'id0': (\d+), 'id1': (\d+), "
                        rf"(?:'keyframe': (True|False), )?'ts0': (\d+)\}}\}}\s*")
# YAML flow layout: id1, id0, ts0, ts1, g0, then an optional keyframe.
_GEOM_FLOW = re.compile(rf"- \{{ geom: \{{id1: (\d+), id0: (\d+), ts0: (\d+), ts1: -?\d+(?:\.\d*)?, g0: {_BOX}"
                        rf"(?:, keyframe: (true|false))? \}} \}}\s*")
_KEYFRAME = {"True": 1, "true": 1, "False": 0, "false": 0, "": -1, None: -1}
_PLAIN_END = ",]}"
_BOOLS = {**dict.fromkeys(("yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON"), True),
          **dict.fromkeys(("no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF"), False)}
_NULLS = ("", "~", "null", "Null", "NULL")
_INT = re.compile(r"[-+]?(?:0|[1-9][0-9_]*)")
_FLOAT = re.compile(r"[-+]?(?:[0-9][0-9_]*)?\.[0-9.]*(?:[eE][-+][0-9]+)?")
_ESCAPES = {"\\": "\\", '"': '"', "/": "/", "n": "\n", "t": "\t", "r": "\r", "0": "\0", " ": " "}


class KpfFormatError(ValueError):
    """A KPF line that cannot be read; the message names the file and the 1-based line number."""


@dataclass(frozen=True, eq=False)
class KpfGeom:
    """All boxes of one ``*.geom.yml`` file, one row per line, in file order (N rows).

    track:    (N,) int64 track id (``id1``).
    det:      (N,) int64 detection id (``id0``).
    frame:    (N,) int64 frame number at 30 fps (``ts0``).
    box:      (N, 4) float32 xyxy pixels as written (not clipped; may be negative or past the image edge).
    keyframe: (N,) int8: 1 human-drawn, 0 interpolated, -1 flag missing.
    meta:     the text of the file's ``meta`` records.
    """

    track: np.ndarray
    det: np.ndarray
    frame: np.ndarray
    box: np.ndarray
    keyframe: np.ndarray
    meta: tuple[str, ...] = ()


@dataclass(frozen=True)
class KpfActivity:
    """One ``act`` record. Frame ranges are inclusive ``(first, last)`` at 30 fps (``tsr0``).

    actors: ``(track_id, ranges)`` per listed actor, in file order (the order carries no meaning).
    status: ``src_status`` (or ``src``) text, '' when absent.
    """

    activity_id: int
    name: str
    ranges: tuple[tuple[int, int], ...]
    actors: tuple[tuple[int, tuple[tuple[int, int], ...]], ...]
    status: str = ""


def read_kpf_lines(path: str | Path) -> list[str]:
    """Lines of a KPF file, decompressing ``*.xz``; a missing, unreadable or non-UTF-8 file raises naming it."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"KPF file not found: {p}")
    try:
        raw = lzma.open(p).read() if p.suffix == ".xz" else p.read_bytes()
        return raw.decode("utf-8").splitlines()
    except lzma.LZMAError as e:
        raise KpfFormatError(f"{p}: not a valid xz file ({e})") from e
    except UnicodeDecodeError as e:
        raise KpfFormatError(f"{p}: not UTF-8 text ({e})") from e


class _Flow:
    """Recursive-descent reader of one YAML flow collection (``{...}`` / ``[...]`` with plain and quoted scalars),
    resolving plain scalars as PyYAML's SafeLoader does (YAML 1.1: ints, floats with a dot, yes/no/true/false, null)."""

    def __init__(self, text: str):
        self.s, self.i = text, 0

    def fail(self, why: str):
        raise ValueError(f"{why} at column {self.i + 1}")

    def ws(self):
        while self.i < len(self.s) and self.s[self.i] in " \t":
            self.i += 1

    def value(self):
        self.ws()
        if self.i >= len(self.s):
            self.fail("unexpected end of line")
        c = self.s[self.i]
        if c == "{":
            return self.mapping()
        if c == "[":
            return self.sequence()
        if c in "'\"":
            return self.quoted(c)
        return _resolve(self.plain(key=False))

    def mapping(self) -> dict:
        self.i += 1
        out: dict = {}
        while True:
            self.ws()
            if self.s.startswith("}", self.i):
                self.i += 1
                return out
            c = self.s[self.i] if self.i < len(self.s) else ""
            key = self.quoted(c) if c in ("'", '"') else _resolve(self.plain(key=True))
            self.ws()
            if not self.s.startswith(":", self.i):
                self.fail(f"expected ':' after key {key!r}")
            self.i += 1
            if key in out:
                self.fail(f"duplicate key {key!r}")
            out[key] = self.value()
            self.ws()
            if self.s.startswith(",", self.i):
                self.i += 1
            elif not self.s.startswith("}", self.i):
                self.fail("expected ',' or '}'")

    def sequence(self) -> list:
        self.i += 1
        out: list = []
        while True:
            self.ws()
            if self.s.startswith("]", self.i):
                self.i += 1
                return out
            out.append(self.value())
            self.ws()
            if self.s.startswith(",", self.i):
                self.i += 1
            elif not self.s.startswith("]", self.i):
                self.fail("expected ',' or ']'")

    def plain(self, key: bool) -> str:
        start = self.i
        while self.i < len(self.s):
            c = self.s[self.i]
            if c in _PLAIN_END or c in "{[":
                break
            # ': ' (or ':' before a flow indicator) ends a key; a value may contain ':' only inside a word
            if c == ":" and (key or self.i + 1 >= len(self.s) or self.s[self.i + 1] in " ,]}"):
                break
            self.i += 1
        if self.i == start and key:
            self.fail("expected a key")
        return self.s[start:self.i].strip()

    def quoted(self, q: str) -> str:
        self.i += 1
        out = []
        while True:
            if self.i >= len(self.s):
                self.fail("unterminated quoted string")
            c = self.s[self.i]
            if c == q:
                if q == "'" and self.s.startswith("''", self.i):  # '' is an escaped quote in single quotes
                    out.append("'")
                    self.i += 2
                    continue
                self.i += 1
                return "".join(out)
            if c == "\\" and q == '"':
                esc = self.s[self.i + 1:self.i + 2]
                if esc == "u":
                    out.append(chr(int(self.s[self.i + 2:self.i + 6], 16)))
                    self.i += 6
                    continue
                if esc not in _ESCAPES:
                    self.fail(f"unknown escape '\\{esc}'")
                out.append(_ESCAPES[esc])
                self.i += 2
                continue
            out.append(c)
            self.i += 1


def _resolve(text: str):
    if text in _NULLS:
        return None
    if text in _BOOLS:
        return _BOOLS[text]
    if _INT.fullmatch(text):
        return int(text.replace("_", ""))
    if _FLOAT.fullmatch(text) and any(ch.isdigit() for ch in text):
        return float(text.replace("_", ""))
    if text in (".inf", ".Inf", ".INF", "+.inf"):
        return float("inf")
    if text in ("-.inf", "-.Inf", "-.INF"):
        return float("-inf")
    if text in (".nan", ".NaN", ".NAN"):
        return float("nan")
    return text


def parse_flow_line(line: str):
    """One KPF line (``- {...}`` or ``{...}``) as the Python value PyYAML would give for that sequence item.

    Returns None for a blank or comment line. Raises ValueError (without the file name) on malformed text.
    """
    s = line.strip()
    if not s or s.startswith("#"):
        return None
    if s.startswith("- ") or s == "-":
        s = s[1:].lstrip()
    if not s.startswith("{"):
        raise ValueError("expected a flow mapping '{...}'")
    p = _Flow(s)
    out = p.mapping()
    p.ws()
    if p.i != len(s):
        p.fail("unexpected text after the mapping")
    return out


def _record(line: str, path, lineno: int, kinds: tuple[str, ...]) -> tuple[str, object] | None:
    """(record kind, body) of one line, or None for blank/comment lines; anything else raises KpfFormatError."""
    try:
        rec = parse_flow_line(line)
    except ValueError as e:
        raise KpfFormatError(f"{path}:{lineno}: malformed KPF line ({e}): {line[:160]!r}") from None
    if rec is None:
        return None
    if len(rec) != 1 or next(iter(rec)) not in kinds:
        raise KpfFormatError(f"{path}:{lineno}: expected one record of kind {' / '.join(kinds)}, got keys "
                             f"{list(rec)}: {line[:160]!r}")
    return next(iter(rec.items()))


def _field(body, key: str, typ, path, lineno: int, line: str):
    if not isinstance(body, dict) or key not in body:
        raise KpfFormatError(f"{path}:{lineno}: missing field '{key}': {line[:160]!r}")
    v = body[key]
    if typ is int and (not isinstance(v, int) or isinstance(v, bool)):
        raise KpfFormatError(f"{path}:{lineno}: field '{key}' must be an integer, got {v!r}: {line[:160]!r}")
    if typ is not int and not isinstance(v, typ):
        raise KpfFormatError(f"{path}:{lineno}: field '{key}' has the wrong type ({type(v).__name__}): "
                             f"{line[:160]!r}")
    return v


def _slow_geom(body, path, lineno: int, line: str) -> tuple:
    """(x1, y1, x2, y2, id0, id1, keyframe, ts0) as strings from a generally parsed geom body."""
    g = _field(body, "g0", (str, int, float), path, lineno, line)
    parts = str(g).split()
    try:
        [float(v) for v in parts]
    except ValueError:
        parts = []
    if len(parts) != 4:
        raise KpfFormatError(f"{path}:{lineno}: g0 must be four numbers 'x1 y1 x2 y2', got {g!r}: {line[:160]!r}")
    kf = body.get("keyframe")
    if kf is not None and not isinstance(kf, bool):
        raise KpfFormatError(f"{path}:{lineno}: keyframe must be true/false, got {kf!r}: {line[:160]!r}")
    ids = [str(_field(body, k, int, path, lineno, line)) for k in ("id0", "id1", "ts0")]
    return (*parts, ids[0], ids[1], "" if kf is None else str(kf), ids[2])


def parse_geom(lines: list[str], path: str | Path = "<geom>") -> KpfGeom:
    """All ``geom`` records of a geometry file's lines (see module docstring for the layouts)."""
    rows, meta = [], []
    for lineno, line in enumerate(lines, 1):
        m = _GEOM_REPR.fullmatch(line)
        if m:
            rows.append(m.groups())
            continue
        m = _GEOM_FLOW.fullmatch(line)
        if m:
            t, d, f, x1, y1, x2, y2, kf = m.groups()
            rows.append((x1, y1, x2, y2, d, t, kf, f))
            continue
        rec = _record(line, path, lineno, ("geom", "meta"))
        if rec is None:
            continue
        if rec[0] == "meta":
            meta.append(str(rec[1]))
        else:
            rows.append(_slow_geom(rec[1], path, lineno, line))
    if not rows:
        z = np.zeros(0, np.int64)
        return KpfGeom(z, z.copy(), z.copy(), np.zeros((0, 4), np.float32), np.zeros(0, np.int8), tuple(meta))
    cols = list(zip(*rows))  # the C-level string -> number conversion below is the fast part
    try:
        box = np.array(cols[0:4], dtype=np.float64).T.astype(np.float32)
        track, det, frame = (np.array(cols[i], np.int64) for i in (5, 4, 7))
    except (OverflowError, ValueError) as e:  # ids beyond int64
        raise KpfFormatError(f"{path}: a track/detection id or frame number does not fit in int64 ({e})") from None
    kf = np.array([_KEYFRAME[v] for v in cols[6]], np.int8)
    return KpfGeom(track, det, frame, np.ascontiguousarray(box), kf, tuple(meta))


def parse_types(lines: list[str], path: str | Path = "<types>") -> dict[int, str]:
    """Track id -> category (the most probable entry of ``cset3``; ties go to the first listed)."""
    out: dict[int, str] = {}
    for lineno, line in enumerate(lines, 1):
        rec = _record(line, path, lineno, ("types", "meta"))
        if rec is None or rec[0] == "meta":
            continue
        tid = _field(rec[1], "id1", int, path, lineno, line)
        cset = _field(rec[1], "cset3", dict, path, lineno, line)
        if not cset or not all(isinstance(v, (int, float)) for v in cset.values()):
            raise KpfFormatError(f"{path}:{lineno}: cset3 must map category names to probabilities: {line[:160]!r}")
        if tid in out:
            raise KpfFormatError(f"{path}:{lineno}: track {tid} is typed twice")
        out[tid] = str(max(cset, key=lambda k: cset[k]))
    return out


def _ranges(spans, path, lineno: int, line: str) -> tuple[tuple[int, int], ...]:
    """The ``tsr0`` ranges of a KPF ``timespan`` list (other time domains, e.g. ``tsr1`` seconds, are ignored)."""
    if not isinstance(spans, list):
        raise KpfFormatError(f"{path}:{lineno}: timespan must be a list: {line[:160]!r}")
    out = []
    for s in spans:
        if not isinstance(s, dict):
            raise KpfFormatError(f"{path}:{lineno}: timespan entries must be mappings: {line[:160]!r}")
        if "tsr0" not in s:
            continue
        r = s["tsr0"]
        if (not isinstance(r, list) or len(r) != 2 or not all(isinstance(v, int) and not isinstance(v, bool)
                                                               for v in r) or r[1] < r[0]):
            raise KpfFormatError(f"{path}:{lineno}: tsr0 must be [first, last] frames with first <= last, got "
                                 f"{r!r}: {line[:160]!r}")
        out.append((int(r[0]), int(r[1])))
    return tuple(out)


def parse_activities(lines: list[str], path: str | Path = "<activities>") -> list[KpfActivity]:
    """All ``act`` records. The name is the most probable ``act2`` entry; actor-less records (``empty_37``) keep
    ``actors=()``."""
    out = []
    for lineno, line in enumerate(lines, 1):
        rec = _record(line, path, lineno, ("act", "meta"))
        if rec is None or rec[0] == "meta":
            continue
        body = rec[1]
        act2 = _field(body, "act2", dict, path, lineno, line)
        if not act2:
            raise KpfFormatError(f"{path}:{lineno}: act2 is empty: {line[:160]!r}")
        aid = _field(body, "id2", int, path, lineno, line)
        spans = _ranges(_field(body, "timespan", list, path, lineno, line), path, lineno, line)
        actors = []
        for a in body.get("actors") or []:
            tid = _field(a, "id1", int, path, lineno, line)
            actors.append((tid, _ranges(a.get("timespan", []), path, lineno, line)))
        status = body.get("src_status", body.get("src", ""))
        out.append(KpfActivity(aid, str(max(act2, key=lambda k: act2[k])), spans, tuple(actors),
                               "" if status is None else str(status)))
    return out
