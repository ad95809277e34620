"""Seeded synthetic video generation -> ``VideoAnnotation`` (official VidVRD JSON), dataset splits and statistics.

A video is fixed by ``(seed, split, index)``: its generator is ``numpy.random.default_rng(SeedSequence([seed,
SPLIT_CODES[split], index]))``. The split is part of the seed, so the test videos of a seed do not change when
more training videos are asked for. Video ids are ``synth<seed>_<split>_<index:05d>``; time base: frame ``f`` is at
``f / fps`` seconds. Annotations are clean ground truth (boxes of visible objects, relations holding while both
objects are visible); detection noise is the job of the VidVRD replay source in ``engine.io.sources``.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from engine.io.sources import VidvrdReplay
from engine.io.vidvrd import VideoAnnotation, instances_from_labels, save_vidvrd
from engine.vocab import Vocabulary, builtin
from offline_train.synthetic.camera import PinholeCamera, visible_boxes
from offline_train.synthetic.labelling import frame_predicates
from offline_train.synthetic.rules import Geometry, geometry
from offline_train.synthetic.scenario import sample_scenario
from offline_train.synthetic.world import WorldStates, simulate

SPLIT_CODES = {"train": 0, "val": 1, "test": 2}


@dataclass(frozen=True)
class SynthConfig:
    """Synthetic dataset settings. frames: per video; fps: frames per second; width/height/focal_px: camera
    intrinsics (px); min_agents/max_agents: agents per video; val_fraction/test_fraction: of ``--videos``."""

    frames: int = 150
    fps: float = 15.0
    width: int = 640
    height: int = 480
    focal_px: float = 500.0
    min_agents: int = 2
    max_agents: int = 5
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    layout_with_action: bool = True   # False: left/right/front/behind never carry the action (smaller label set)

    def __post_init__(self):
        if not isinstance(self.frames, int) or self.frames < 2:
            raise ValueError(f"frames must be an integer >= 2, got {self.frames!r}")
        if not self.fps > 0:
            raise ValueError(f"fps must be > 0, got {self.fps!r}")
        if not 1 <= self.min_agents <= self.max_agents:
            raise ValueError(f"need 1 <= min_agents <= max_agents, got {self.min_agents}, {self.max_agents}")
        if not (0 <= self.val_fraction and 0 <= self.test_fraction and self.val_fraction + self.test_fraction < 1):
            raise ValueError(f"val_fraction and test_fraction must be >= 0 with a sum < 1, got "
                             f"{self.val_fraction}, {self.test_fraction}")
        PinholeCamera(self.width, self.height, self.focal_px)      # validates the intrinsics

    def split_sizes(self, videos: int) -> dict[str, int]:
        """Number of videos per split for ``videos`` in total (val and test rounded, train the rest)."""
        if videos < 1:
            raise ValueError(f"videos must be >= 1, got {videos}")
        val, test = round(self.val_fraction * videos), round(self.test_fraction * videos)
        return {"train": videos - val - test, "val": val, "test": test}


@dataclass(frozen=True, eq=False)
class SyntheticVideo:
    """A generated video with the world it came from. ``columns``: (K',) indices of the annotated agents in the
    world (agents never visible are dropped; tid k of the annotation is agent ``columns[k]``)."""

    annotation: VideoAnnotation
    world: WorldStates
    camera: PinholeCamera
    setting: str
    geometry: Geometry
    columns: np.ndarray


def video_rng(seed: int, split: str, index: int) -> np.random.Generator:
    if split not in SPLIT_CODES:
        raise ValueError(f"split must be one of {tuple(SPLIT_CODES)}, got {split!r}")
    if seed < 0 or index < 0:
        raise ValueError(f"seed and index must be >= 0, got {seed}, {index}")
    return np.random.default_rng(np.random.SeedSequence([int(seed), SPLIT_CODES[split], int(index)]))


def generate(cfg: SynthConfig, seed: int, index: int, split: str = "train",
             predicates: Vocabulary | None = None) -> SyntheticVideo:
    """Generate one video (deterministic in ``cfg, seed, split, index``)."""
    predicates = predicates or builtin("vidvrd_predicates")
    rng = video_rng(seed, split, index)
    base = PinholeCamera(cfg.width, cfg.height, cfg.focal_px)
    st, cam, plans = sample_scenario(rng, cfg.frames, cfg.fps, (cfg.min_agents, cfg.max_agents), base)
    world = simulate(plans, st, cam.half_width_at, cfg.frames, cfg.fps, rng)
    g = geometry(world, cam)
    boxes = visible_boxes(cam, g.box, g.depth)
    present = ~np.isnan(boxes).any(-1)
    both = present[:, :, None, None] & present[:, None, :, None]          # relations hold only while both are seen
    labels = frame_predicates(g, predicates, cfg.layout_with_action) & both
    cols = np.flatnonzero(present.any(0))
    tids = np.arange(len(cols), dtype=np.int64)
    rels = instances_from_labels(labels[:, cols][:, :, cols], tids, predicates)
    ann = VideoAnnotation(f"synth{seed}_{split}_{index:05d}", float(cfg.fps), cfg.width, cfg.height, tids,
                          tuple(world.categories[c] for c in cols), boxes[:, cols], rels)
    return SyntheticVideo(ann, world, cam, st.name, g, cols)


def generate_video(cfg: SynthConfig, seed: int, index: int, split: str = "train") -> VideoAnnotation:
    """The clean ground-truth annotation of one generated video."""
    return generate(cfg, seed, index, split).annotation


def replay(ann: VideoAnnotation, seed: int = 0, jitter: float = 0.05, drop_prob: float = 0.1,
           false_positives: float = 0.2) -> VidvrdReplay:
    """``ann`` seen through the detection simulator of ``engine.io.sources`` (seeded box jitter as a fraction of the
    box size, per-frame misses, Poisson false positives per frame); labels index ``vidvrd_objects``."""
    return VidvrdReplay(ann, builtin("vidvrd_objects"), jitter=jitter, drop_prob=drop_prob,
                        false_positives=false_positives, seed=seed)


def predicate_counts(annotations) -> dict[str, dict[str, int]]:
    """{predicate: {"instances": n, "frames": total (subject, object, frame) labels}} over annotations."""
    inst, frames = Counter(), Counter()
    for ann in annotations:
        for r in ann.relations:
            inst[r.predicate] += 1
            frames[r.predicate] += r.end_fid - r.begin_fid
    return {p: {"instances": inst[p], "frames": frames[p]} for p in sorted(inst, key=lambda p: (-frames[p], p))}


def write_dataset(out: str | Path, videos: int, seed: int, cfg: SynthConfig, progress: bool = True) -> dict:
    """Write ``out/<split>/<video_id>.json`` for every split; return a report with per-predicate counts.

    Report: {"seed", "videos", "splits": {split: n}, "frames_per_video", "fps", "objects", "relation_instances",
    "predicates": {name: {"instances", "frames"}}} (counts over all splits).
    """
    out = Path(out)
    sizes = cfg.split_sizes(videos)
    objects, anns_counts = Counter(), []
    bar = tqdm(total=videos, desc="synth", unit="video", disable=not progress)
    for split, n in sizes.items():
        for i in range(n):
            ann = generate_video(cfg, seed, i, split)
            save_vidvrd(ann, out / split / f"{ann.video_id}.json")
            objects.update(ann.categories)
            anns_counts.append(_light(ann))
            bar.update(1)
    bar.close()
    counts = predicate_counts(anns_counts)
    return {"seed": seed, "videos": videos, "splits": sizes, "frames_per_video": cfg.frames, "fps": cfg.fps,
            "objects": dict(sorted(objects.items())), "relation_instances": sum(len(a.relations) for a in anns_counts),
            "predicates": counts}


@dataclass(frozen=True)
class _Relations:
    relations: tuple


def _light(ann: VideoAnnotation) -> _Relations:
    """Keep only the relations of a written video, so a large dataset's boxes are not held in memory."""
    return _Relations(ann.relations)
