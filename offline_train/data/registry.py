"""DatasetConfig and ``load_dataset``: which annotation format to read, from where, into which label vocabularies.

Switching datasets is a config change (YAML slice ``dataset:`` of the training config, or dotted overrides)::

    dataset:                       # ImageNet-VidVRD, official JSON; train/ and test/ folders
      kind: vidvrd
      paths: [/data/vidvrd-dataset]
      split: train
    dataset:                       # VidOR mapped onto the VidVRD label space
      kind: vidor
      paths: [/data/vidor/annotation]
      split: training              # -> annotation/training/<group>/<video_id>.json
      object_vocab: vidvrd_objects
      predicate_vocab: vidvrd_predicates
      category_map: maps/vidor_to_vidvrd_objects.yaml
      predicate_map: maps/vidor_to_vidvrd_predicates.yaml
      unknown_category: drop
    dataset:                       # Action Genome, STTran's protocol
      kind: action_genome
      paths: [/data/ag/annotations]  # folder holding person_bbox.pkl and object_bbox_and_relationship.pkl
      split: train
      min_frames: 3
    dataset:                       # generated worlds in the VidVRD label space (offline_train.synthetic)
      kind: synthetic
      split: train                 # train | val | test ('' = train): part of each video's seed
      synthetic_seed: 0
      synthetic_videos: 200        # video indices 0..199 of that split
      synthetic: {frames: 150, fps: 15.0}
    dataset:                       # MEVA relations (KPF, parsed once into a cache), split by recording date
      kind: meva
      paths: [/data/meva-data-repo/annotation/DIVA-phase-2/MEVA]
      split: val                   # train | val | test by offline_train.data.meva.DEFAULT_SPLITS ('' = all dates)
      meva_fps: 10.0               # model frame rate; must divide 30 (frame t = annotation frame 3 t at 10 fps)
      meva_dates: []               # or an explicit include list of YYYY-MM-DD dates (then leave split '')
      meva_cache_dir: ''           # '' = ~/.cache/vsgg/meva
      meva_workers: 2              # processes for the first parse

Vocabularies are built-in names (``engine/vocab/*.txt``: vidvrd_objects, vidvrd_predicates, ag_objects,
ag_predicates, meva_objects, meva_predicates) or paths to a text file with one name per line; empty means the kind's
default (VidVRD's for vidvrd, AG's for action_genome, MEVA's for meva; VidOR's 80/50 labels are not bundled, so vidor
needs both set). Map files and the unknown-label policies are described in ``offline_train.data.label_map``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from engine.config import ConfigError, load_config
from engine.io.vidvrd import VideoAnnotation
from engine.vocab import Vocabulary, builtin
from offline_train.data.action_genome import ag_predicate_groups, load_action_genome
from offline_train.data.label_map import UNKNOWN_POLICIES, LabelMap, remap_annotation
from offline_train.data.meva import SPLITS as MEVA_SPLITS, frame_stride, load_meva
from offline_train.data.meva_cache import DEFAULT_CACHE_DIR as MEVA_CACHE_DIR
from offline_train.data.vidvrd_dataset import load_vidvrd_dataset
from offline_train.synthetic.generate import SPLIT_CODES, SynthConfig, generate_video

KINDS = ("vidvrd", "vidor", "action_genome", "synthetic", "meva")
_DEFAULT_VOCABS = {"vidvrd": ("vidvrd_objects", "vidvrd_predicates"), "vidor": ("", ""),
                   "action_genome": ("ag_objects", "ag_predicates"),
                   "synthetic": ("vidvrd_objects", "vidvrd_predicates"),
                   "meva": ("meva_objects", "meva_predicates")}


@dataclass(frozen=True)
class DatasetConfig:
    """Where the annotations are and how their labels become vocabulary indices.

    kind:        'vidvrd' | 'vidor' (official JSON) | 'action_genome' (AG pickles) | 'synthetic' | 'meva' (KPF).
    paths:       JSON files or folders (searched recursively) for vidvrd/vidor; AG's annotations folder; unused
                 for synthetic.
    split:       vidvrd/vidor: sub-folder joined to each folder path ('' = none); action_genome: 'train' | 'test' |
                 '' (both), from the frames' metadata 'set'; synthetic: 'train' | 'val' | 'test' ('' = train);
                 meva: 'train' | 'val' | 'test' by recording date (``offline_train.data.meva.DEFAULT_SPLITS``) or
                 '' (all dates, or ``meva_dates``).
    object_vocab, predicate_vocab: built-in vocabulary name or vocabulary file; '' = the kind's default.
    category_map, predicate_map:   YAML/JSON {source_name: target_name or null} files; '' = identity.
    unknown_category, unknown_predicate: 'error' | 'drop' for names neither mapped nor in the vocabulary.
    min_frames:  skip videos with fewer (kept) frames; STTran's AG protocol uses 3.
    max_videos:  load at most this many videos (0 = all), for quick runs.
    ag_require_person_box: drop AG frames without a person box (STTran's default, True).
    ag_fps:      assumed native frame rate of AG's Charades videos, for keyframe times in seconds.
    synthetic, synthetic_seed, synthetic_videos: kind 'synthetic' generates videos (seed, split, index) for
                 index 0 .. synthetic_videos - 1 with ``offline_train.synthetic.generate.generate_video``.
    meva_fps:    model frame rate for kind 'meva'; must divide 30. Frame t of the loaded annotation is annotation
                 frame ``t * 30 / meva_fps`` (``offline_train.data.meva.frame_stride``).
    meva_dates:  include list of recording dates (YYYY-MM-DD) for kind 'meva'; exclusive with ``split``.
    meva_cache_dir: where parsed MEVA clips are cached ('' = ~/.cache/vsgg/meva). meva_workers: parse processes.
    meva_skip_empty: leave out MEVA clips without any track.
    meva_exclude_status: MEVA activities whose ``src_status`` is listed give no relations (e.g. ['not_good']).
    """

    kind: str = "vidvrd"
    paths: tuple[str, ...] = ()
    split: str = ""
    object_vocab: str = ""
    predicate_vocab: str = ""
    category_map: str = ""
    predicate_map: str = ""
    unknown_category: str = "error"
    unknown_predicate: str = "error"
    min_frames: int = 1
    max_videos: int = 0
    ag_require_person_box: bool = True
    ag_fps: float = 24.0
    synthetic: SynthConfig = field(default_factory=SynthConfig)
    synthetic_seed: int = 0
    synthetic_videos: int = 100
    meva_fps: float = 10.0
    meva_dates: tuple[str, ...] = ()
    meva_cache_dir: str = ""
    meva_workers: int = 2
    meva_skip_empty: bool = True
    meva_exclude_status: tuple[str, ...] = ()

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ConfigError(f"dataset.kind must be one of {KINDS}, got {self.kind!r}")
        for name in ("unknown_category", "unknown_predicate"):
            if getattr(self, name) not in UNKNOWN_POLICIES:
                raise ConfigError(f"dataset.{name} must be one of {UNKNOWN_POLICIES}, got {getattr(self, name)!r}")
        if self.kind == "action_genome" and self.split not in ("", "train", "test"):
            raise ConfigError(f"dataset.split for action_genome must be '', 'train' or 'test', got {self.split!r}")
        if self.min_frames < 1 or self.max_videos < 0:
            raise ConfigError("dataset.min_frames must be >= 1 and dataset.max_videos >= 0")
        if not self.ag_fps > 0:
            raise ConfigError(f"dataset.ag_fps must be > 0, got {self.ag_fps}")
        if self.kind == "synthetic" and self.split not in ("", *SPLIT_CODES):
            raise ConfigError(f"dataset.split for synthetic must be '' or one of {tuple(SPLIT_CODES)}, "
                              f"got {self.split!r}")
        if self.kind == "meva":
            if self.split not in ("", *MEVA_SPLITS):
                raise ConfigError(f"dataset.split for meva must be '' or one of {MEVA_SPLITS}, got {self.split!r}")
            if self.split and self.meva_dates:
                raise ConfigError("dataset.meva_dates and dataset.split select MEVA dates two ways: set only one")
        try:
            frame_stride(self.meva_fps)
        except ValueError as e:
            raise ConfigError(f"dataset.meva_fps: {e}") from None
        if self.meva_workers < 0:
            raise ConfigError(f"dataset.meva_workers must be >= 0, got {self.meva_workers}")
        for name in ("meva_dates", "meva_exclude_status"):
            if isinstance(getattr(self, name), str):
                raise ConfigError(f"dataset.{name} must be a list, got the single string {getattr(self, name)!r}")
            object.__setattr__(self, name, tuple(str(v) for v in getattr(self, name)))
        bad = [d for d in self.meva_dates if not re.fullmatch(r"\d{4}-\d\d-\d\d", d)]
        if bad:
            raise ConfigError(f"dataset.meva_dates must be YYYY-MM-DD dates, got {bad}")
        if self.synthetic_seed < 0 or self.synthetic_videos < 1:
            raise ConfigError("dataset.synthetic_seed must be >= 0 and dataset.synthetic_videos >= 1")
        if isinstance(self.paths, (str, Path)):
            raise ConfigError(f"dataset.paths must be a list of paths, got the single string {self.paths!r}")
        object.__setattr__(self, "paths", tuple(str(p) for p in self.paths))


def load_dataset_config(path: str | Path | None = None, overrides: tuple[str, ...] = ()) -> DatasetConfig:
    """DatasetConfig from a YAML file holding just this slice, plus dotted overrides (``kind=action_genome``)."""
    return load_config(DatasetConfig, path, overrides)


def _vocab(spec: str, default: str, field_name: str, kind: str) -> Vocabulary:
    spec = spec or default
    if not spec:
        raise ConfigError(f"dataset.{field_name} must be set for kind '{kind}' (no bundled vocabulary)")
    if "/" in spec or "\\" in spec or spec.endswith(".txt"):
        return Vocabulary.from_file(spec)
    return builtin(spec)


def dataset_vocabularies(cfg: DatasetConfig) -> tuple[Vocabulary, Vocabulary]:
    """(object vocabulary, predicate vocabulary) that ``load_dataset(cfg)`` maps labels into."""
    objs, preds = _DEFAULT_VOCABS[cfg.kind]
    return (_vocab(cfg.object_vocab, objs, "object_vocab", cfg.kind),
            _vocab(cfg.predicate_vocab, preds, "predicate_vocab", cfg.kind))


def label_maps(cfg: DatasetConfig) -> tuple[LabelMap, LabelMap]:
    """(category map, predicate map) onto ``dataset_vocabularies(cfg)``, read from the configured map files."""
    ov, pv = dataset_vocabularies(cfg)

    def one(path: str, vocab: Vocabulary, policy: str) -> LabelMap:
        return LabelMap.from_file(path, vocab, policy) if path else LabelMap(vocab, {}, policy)

    return (one(cfg.category_map, ov, cfg.unknown_category), one(cfg.predicate_map, pv, cfg.unknown_predicate))


def predicate_groups(cfg: DatasetConfig) -> dict[str, list[int]]:
    """Predicate indices per group for grouped heads: AG's attention / spatial / contacting; {} for other kinds."""
    if cfg.kind != "action_genome":
        return {}
    return ag_predicate_groups(dataset_vocabularies(cfg)[1], label_maps(cfg)[1])


def load_dataset(cfg: DatasetConfig, progress: bool = True) -> list[VideoAnnotation]:
    """Every video of the configured dataset as a VideoAnnotation with labels in ``dataset_vocabularies(cfg)``.

    Boxes are xyxy float32 pixels. For action_genome the frame axis is the kept keyframes (see
    ``offline_train.data.action_genome``; use ``load_action_genome`` directly for frame numbers and times).
    """
    if cfg.kind == "synthetic":
        return _load_synthetic(cfg, progress)
    if not cfg.paths:
        raise ConfigError(f"dataset.paths is empty: give the {cfg.kind} annotation files or folders")
    cats, preds = label_maps(cfg)
    if cfg.kind == "meva":
        return _load_meva(cfg, cats, preds, progress)
    if cfg.kind == "action_genome":
        if len(cfg.paths) != 1:
            raise ConfigError(f"dataset.paths for action_genome must be one annotations folder, got {cfg.paths}")
        videos = load_action_genome(cfg.paths[0], cats, preds, split=cfg.split,
                                    require_person_box=cfg.ag_require_person_box, min_frames=cfg.min_frames,
                                    max_videos=cfg.max_videos, fps=cfg.ag_fps, progress=progress)
        return [v.annotation for v in videos]
    return load_vidvrd_dataset(cfg.paths, cats, preds, split=cfg.split, min_frames=cfg.min_frames,
                               max_videos=cfg.max_videos, progress=progress)


def _load_meva(cfg: DatasetConfig, cats: LabelMap, preds: LabelMap, progress: bool) -> list[VideoAnnotation]:
    """MEVA clips of the configured dates at ``meva_fps`` (``offline_train.data.meva.load_meva``), labels mapped."""
    clips = load_meva(cfg.paths, fps=cfg.meva_fps, dates=cfg.meva_dates, split=cfg.split,
                      cache_dir=cfg.meva_cache_dir or MEVA_CACHE_DIR, workers=cfg.meva_workers,
                      skip_empty=cfg.meva_skip_empty, exclude_status=cfg.meva_exclude_status, progress=progress)
    out = []
    for c in clips:
        if c.annotation.frame_count >= cfg.min_frames:
            out.append(remap_annotation(c.annotation, cats, preds, f"MEVA clip {c.name}"))
        if cfg.max_videos and len(out) >= cfg.max_videos:
            break
    return out


def _load_synthetic(cfg: DatasetConfig, progress: bool) -> list[VideoAnnotation]:
    """Generated videos (synthetic_seed, split, 0 .. synthetic_videos - 1), labels mapped like any dataset."""
    cats, preds = label_maps(cfg)
    split = cfg.split or "train"
    n = cfg.synthetic_videos if not cfg.max_videos else min(cfg.max_videos, cfg.synthetic_videos)
    out = []
    for i in tqdm(range(n), desc="synthetic", unit="video", disable=not progress, leave=False):
        ann = generate_video(cfg.synthetic, cfg.synthetic_seed, i, split)
        if ann.frame_count >= cfg.min_frames:
            out.append(remap_annotation(ann, cats, preds, f"synthetic video '{ann.video_id}'"))
    return out
