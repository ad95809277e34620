"""MEVA clip discovery and the on-disk parse cache: KPF files are parsed once, in parallel, and kept as ``.npz`` arrays.

A clip is the three files ``<clip>.geom.yml``, ``<clip>.types.yml``, ``<clip>.activities.yml`` (each plain or
``.xz``) in one folder; the published layout is ``<set>/<date>/<hour>/<clip>.*`` but any folder depth works. When a
clip has both a plain and an ``.xz`` copy of a file, the plain one is read.

Cache: one file per clip, ``<cache_dir>/<clip>.<digest>.npz`` (``numpy.savez_compressed``; read back with
``allow_pickle=False``, so a cache file can never run code). ``digest`` is a BLAKE2b hash of the cache format version
and the bytes of the clip's three source files, so an edited source gets a new entry (the stale one is deleted) and an
unchanged one is never parsed again. Writes go to a temporary file that is renamed into place, so an interrupted run
leaves no half-written entry. Missing entries are parsed by a pool of ``workers`` processes with a tqdm bar.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Sequence

import numpy as np
from tqdm import tqdm

from offline_train.data.meva_kpf import (KpfActivity, KpfGeom, parse_activities, parse_geom, parse_types,
                                         read_kpf_lines)

CACHE_VERSION = 1
DEFAULT_CACHE_DIR = "~/.cache/vsgg/meva"
PARTS = ("geom", "types", "activities")
_ENTRY = re.compile(r"\.[0-9a-f]{32}\.npz")  # what follows the clip name in a cache file name


@dataclass(frozen=True)
class MevaSource:
    """Where one clip's files are. ``name`` is the clip name (``2018-03-13.17-05-00.17-10-00.school.G299``)."""

    name: str
    geom: Path
    types: Path
    activities: Path

    @property
    def folder(self) -> Path:
        return self.geom.parent


@dataclass(frozen=True, eq=False)
class ParsedClip:
    """The parsed KPF content of one clip: boxes (sparse, as in the file), track categories, activities.

    categories: track id -> category name (``types`` file).
    digest:     the source hash this content was parsed from ('' when parsed without hashing).
    """

    name: str
    geom: KpfGeom
    categories: dict[int, str]
    activities: tuple[KpfActivity, ...]
    digest: str = ""


def _kind_and_name(p: Path) -> tuple[str, str] | None:
    n = p.name
    for suffix in (".yml", ".yml.xz"):
        for part in PARTS:
            end = f".{part}{suffix}"
            if n.endswith(end) and len(n) > len(end):
                return part, n[:-len(end)]
    return None


def find_meva_sources(paths: Sequence[str | Path]) -> list[MevaSource]:
    """Every clip under ``paths`` (folders searched recursively), sorted by clip name.

    A missing path raises FileNotFoundError; a clip lacking one of its three files, or the same clip name in two
    folders, raises ValueError naming the files; finding no clip at all raises ValueError.
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    found: dict[tuple[Path, str], dict[str, Path]] = {}
    for entry in paths:
        root = Path(entry).expanduser()
        if not root.exists():
            raise FileNotFoundError(f"MEVA annotation path not found: {root}")
        files = [root] if root.is_file() else sorted(f for f in root.rglob("*.yml*") if f.is_file())
        for f in files:
            kn = _kind_and_name(f)
            if kn is None:
                continue
            part, name = kn
            slot = found.setdefault((f.parent, name), {})
            if part not in slot or f.suffix == ".yml":  # the plain copy wins over the .xz one
                slot[part] = f
    out: dict[str, MevaSource] = {}
    for (folder, name), parts in sorted(found.items(), key=lambda kv: (kv[0][1], str(kv[0][0]))):
        missing = [p for p in PARTS if p not in parts]
        if missing:
            need = ", ".join(f"{name}.{m}.yml[.xz]" for m in missing)
            raise ValueError(f"MEVA clip {name} in {folder}: missing {need}")
        if name in out:
            raise ValueError(f"MEVA clip {name} found twice: in {out[name].folder} and {folder}")
        out[name] = MevaSource(name, parts["geom"], parts["types"], parts["activities"])
    if not out:
        raise ValueError(f"no MEVA clips (<clip>.geom.yml[.xz] + types + activities) under {[str(p) for p in paths]}")
    return list(out.values())


def source_digest(src: MevaSource) -> str:
    """Hex BLAKE2b-128 of the cache format version and the bytes of the clip's three files."""
    h = hashlib.blake2b(digest_size=16)
    h.update(f"vsgg-meva-cache-v{CACHE_VERSION}".encode())
    for part in PARTS:
        p = getattr(src, part)
        h.update(f"|{part}|{p.name}|".encode())
        with open(p, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def parse_clip(src: MevaSource, digest: str = "") -> ParsedClip:
    """Parse one clip's three KPF files (``KpfFormatError`` names the file and line of a malformed line)."""
    geom = parse_geom(read_kpf_lines(src.geom), src.geom)
    categories = parse_types(read_kpf_lines(src.types), src.types)
    acts = tuple(parse_activities(read_kpf_lines(src.activities), src.activities))
    return ParsedClip(src.name, geom, categories, acts, digest)


def _acts_to_json(acts) -> str:
    return json.dumps([[a.activity_id, a.name, a.ranges, a.actors, a.status] for a in acts], separators=(",", ":"))


def _acts_from_json(text: str) -> tuple[KpfActivity, ...]:
    def rng(rs):
        return tuple((int(a), int(b)) for a, b in rs)
    return tuple(KpfActivity(int(i), str(n), rng(r), tuple((int(t), rng(tr)) for t, tr in actors), str(s))
                 for i, n, r, actors, s in json.loads(text))


def save_parsed(clip: ParsedClip, path: str | Path) -> None:
    """Write ``clip`` as a compressed npz (atomically: temporary file + rename)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f".{p.name}.{os.getpid()}.tmp")
    g = clip.geom
    ids = np.array(sorted(clip.categories), np.int64)
    with open(tmp, "wb") as fh:
        np.savez_compressed(
            fh, version=np.array(CACHE_VERSION), name=np.array(clip.name), digest=np.array(clip.digest),
            track=g.track, det=g.det, frame=g.frame, box=g.box, keyframe=g.keyframe,
            meta=np.array(g.meta, dtype=str) if g.meta else np.zeros(0, "U1"),
            type_ids=ids, type_cats=np.array([clip.categories[i] for i in ids.tolist()], dtype=str)
            if len(ids) else np.zeros(0, "U1"),
            activities=np.array(_acts_to_json(clip.activities)))
    os.replace(tmp, p)


def load_parsed(path: str | Path) -> ParsedClip:
    """Read a cache entry written by ``save_parsed``; a corrupt or foreign file raises ValueError naming it."""
    p = Path(path)
    try:
        with np.load(p, allow_pickle=False) as z:
            if int(z["version"]) != CACHE_VERSION:
                raise ValueError(f"cache format version {int(z['version'])}, expected {CACHE_VERSION}")
            geom = KpfGeom(z["track"], z["det"], z["frame"], z["box"], z["keyframe"], tuple(z["meta"].tolist()))
            cats = dict(zip(z["type_ids"].tolist(), z["type_cats"].tolist()))
            return ParsedClip(str(z["name"]), geom, cats, _acts_from_json(str(z["activities"])), str(z["digest"]))
    except (OSError, KeyError, ValueError, TypeError, json.JSONDecodeError) as e:
        raise ValueError(f"{p}: not a readable MEVA cache entry ({e})") from e


def cache_path(cache_dir: str | Path, name: str, digest: str) -> Path:
    return Path(cache_dir).expanduser() / f"{name}.{digest}.npz"


def _build_entry(job: tuple[MevaSource, str, str]) -> str:
    """Pool worker: parse one clip and write its cache entry; returns the entry's path."""
    src, digest, cache_dir = job
    out = cache_path(cache_dir, src.name, digest)
    save_parsed(parse_clip(src, digest), out)
    return str(out)


def load_parsed_clips(sources: Sequence[MevaSource], cache_dir: str | Path = DEFAULT_CACHE_DIR, workers: int = 2,
                      progress: bool = True) -> list[ParsedClip]:
    """ParsedClip for every source, in order, parsing only those without a valid cache entry.

    workers: processes for the parsing (0 or 1 = in this process); they are started with 'spawn', so a script that
    calls this at top level needs the usual ``if __name__ == "__main__":`` guard. Stale entries of a re-parsed clip
    (older digests) are deleted, so the cache holds at most one entry per clip; an unreadable entry is rebuilt.
    """
    if workers < 0:
        raise ValueError(f"workers must be >= 0, got {workers}")
    root = Path(cache_dir).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    digests = [source_digest(s) for s in tqdm(sources, desc="meva hash", unit="clip", disable=not progress,
                                              leave=False)]
    jobs = [(s, d, str(root)) for s, d in zip(sources, digests) if not cache_path(root, s.name, d).is_file()]
    for s, d, _ in jobs:
        for stale in root.glob(f"{s.name}.*.npz"):
            if _ENTRY.fullmatch(stale.name[len(s.name):]) and stale.name != f"{s.name}.{d}.npz":
                stale.unlink(missing_ok=True)
    bar = tqdm(total=len(jobs), desc="meva parse", unit="clip", disable=not progress or not jobs, leave=False)
    if workers <= 1 or len(jobs) <= 1:
        for job in jobs:
            _build_entry(job)
            bar.update()
    else:
        # 'spawn' keeps the workers free of whatever threads (torch, tqdm) the parent process has started
        with get_context("spawn").Pool(workers) as pool:
            for _ in pool.imap_unordered(_build_entry, jobs, chunksize=4):
                bar.update()
    bar.close()
    out = []
    for s, d in tqdm(list(zip(sources, digests)), desc="meva cache", unit="clip", disable=not progress,
                     leave=False):
        path = cache_path(root, s.name, d)
        try:
            clip = load_parsed(path)
            if clip.name != s.name or clip.digest != d:
                raise ValueError(f"{path}: holds clip {clip.name} digest {clip.digest}")
        except ValueError:  # a damaged or misplaced entry is rebuilt, never trusted
            _build_entry((s, d, str(root)))
            clip = load_parsed(path)
        out.append(clip)
    return out
