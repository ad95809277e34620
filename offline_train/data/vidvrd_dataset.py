"""Directory-level loader for VidVRD / VidOR: find the official JSON files, parse each, map labels to a vocabulary.

Layouts found on disk (both handled by searching directories recursively for ``*.json``)::

    vidvrd-dataset/train/ILSVRC2015_train_00005003.json        # VidVRD: one flat folder per split
    vidor/annotation/training/0000/2401075277.json             # VidOR: <split>/<group>/<video_id>.json

Parsing and validation of one file is ``engine.io.vidvrd.load_vidvrd`` (``end_fid`` exclusive, boxes xyxy pixels,
frame ``f`` at ``f / fps`` seconds); this module only discovers files, renames labels (``label_map``) and checks
that video ids are unique across the dataset.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from tqdm import tqdm

from engine.io.vidvrd import VideoAnnotation, load_vidvrd
from offline_train.data.label_map import LabelMap, remap_annotation


def find_annotation_files(paths: Sequence[str | Path], split: str = "") -> list[Path]:
    """The annotation files named by ``paths``, sorted within each path.

    Each entry is a ``.json`` file or a directory searched recursively for ``*.json``. ``split``, when given, is a
    sub-folder joined to every directory entry (``annotation`` + ``training`` -> ``annotation/training``); it does
    not apply to file entries. A missing path raises FileNotFoundError; finding no file at all raises ValueError.
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    out: list[Path] = []
    for entry in paths:
        p = Path(entry)
        if p.is_file():
            if p.suffix.lower() != ".json":
                raise ValueError(f"{p}: expected a .json annotation file or a directory of them")
            out.append(p)
            continue
        d = p / split if split else p
        if not d.is_dir():
            raise FileNotFoundError(f"annotation path not found: {d}" + (f" (path {p} + split '{split}')"
                                                                          if split else ""))
        out.extend(sorted(f for f in d.rglob("*.json") if f.is_file()))
    if not out:
        raise ValueError(f"no *.json annotation files under {[str(p) for p in paths]}"
                         + (f" with split '{split}'" if split else ""))
    return out


def load_vidvrd_dataset(paths: Sequence[str | Path], categories: LabelMap, predicates: LabelMap, *,
                        split: str = "", min_frames: int = 1, max_videos: int = 0,
                        progress: bool = True) -> list[VideoAnnotation]:
    """Load every annotation under ``paths`` (see ``find_annotation_files``) with labels mapped into the vocabularies
    of ``categories`` / ``predicates``.

    min_frames: videos with fewer frames are skipped. max_videos: stop after this many videos (0 = all).
    A malformed file raises ValueError naming it (nothing is returned partially); two files with the same
    ``video_id`` raise ValueError naming both.
    """
    if min_frames < 1 or max_videos < 0:
        raise ValueError(f"need min_frames >= 1 and max_videos >= 0, got {min_frames} and {max_videos}")
    files = find_annotation_files(paths, split)
    seen: dict[str, Path] = {}
    out: list[VideoAnnotation] = []
    for f in tqdm(files, desc="annotations", unit="video", disable=not progress, leave=False):
        try:
            ann = load_vidvrd(f)
        except ValueError as e:  # VideoAnnotation's own checks name the video, not the file
            if str(f) in str(e):
                raise
            raise ValueError(f"{f}: {e}") from e
        if ann.video_id in seen:
            raise ValueError(f"{f}: video_id '{ann.video_id}' already loaded from {seen[ann.video_id]}")
        seen[ann.video_id] = f
        if ann.frame_count < min_frames:
            continue
        out.append(remap_annotation(ann, categories, predicates, str(f)))
        if max_videos and len(out) >= max_videos:
            break
    return out
