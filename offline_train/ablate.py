"""`vsgg ablate`: train the five papers' components switched on/off, evaluate each variant, tabulate the ablation.

The ablation config (YAML, see ``offline_train/ablation/*.yaml``) holds

* ``tracks``    training setups, each a preset + dotted overrides, with its held-out evaluation: ``meva`` (held-out
                MEVA dates through ``offline_train.eval_meva.run_eval_meva`` at a fixed merge threshold) and/or
                ``synthetic`` (held-out generated videos of the 'test' split through ``offline_train.eval_run``),
                and optionally an ``open_vocab`` base/novel split of the track's vocabulary;
* ``schedule``  dotted overrides applied to every track and variant (the short schedule);
* ``variants``  name -> dotted overrides (or {overrides, open_vocab, tracks}); every variant runs on every track
                it names (default: all).

Each (track, variant) is trained in ``OUT/<track>/<variant>/run`` (resumable: a complete run is not retrained, a
partial one resumes), its ``best`` checkpoint evaluated, and its figures kept in ``result.json`` beside it (a
variant whose result matches its config is skipped). Figures, per evaluation set:

* mAP, R@50, mR@50, P@5  VidVRD-helper relation detection / tagging (``offline_train.metrics``).
* tail_R@50              mean per-predicate recall@50 over the least frequent third of the *training* predicates
                         (positive labelled frames in the training data), over those that have test instances.
* flicker_per_s          toggles of a relation's on/off state per active relation-second, measured on the model's
                         raw per-frame scores with ``engine.relate.relation_filter`` set to plain thresholding at the
                         evaluation threshold (``FilterConfig(tau_s=0, enter=exit=threshold, min_duration_s=0)``):
                         the model's own steadiness, before the engine's smoothing. Time base: the model's frame rate.
* latency_ms             median ONNX Runtime time (1 CPU thread) of one ``forward_step`` at a fixed pair count,
                         measured by the ``latency`` callable (``export.ablate_cli.onnx_step_latency``).

Open vocabulary (UASAN): the variant is trained on the base vocabulary only (novel predicate instances and novel
category objects dropped from training and validation data), then its text tables are swapped for the full
vocabulary (``set_predicates`` / ``set_objects``, no retraining) and it is scored on base, novel (triplets with a
novel predicate or category) and all ground truth; predictions are restricted to the same triplets.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
from tqdm import tqdm

from engine.config import ConfigError, FilterConfig, from_dict, load_yaml, to_dict
from engine.relate.relation_filter import RelationFilter
from offline_train.config import TrainConfig, load_train_config
from offline_train.data.registry import dataset_vocabularies, load_dataset
from offline_train.models.uasan import split_vocabulary

PAPERS = {
    "dll": "DLL: decoupled label learning (VidVRD)",
    "fremure": "FReMuRe: frequency guidance (Action Genome)",
    "tr2": "TR²: time-variant relation guidance (Action Genome)",
    "uasan": "UASAN: open vocabulary (VidVRD / VidOR)",
    "arn": "ARN: association reasoning",
}
SHORT = {"dll": "DLL", "fremure": "FReMuRe", "tr2": "TR²", "uasan": "UASAN", "arn": "ARN"}
METRICS = ("mAP", "R@50", "mR@50", "tail_R@50", "P@5", "flicker_per_s", "latency_ms")
RESULT_VERSION = 1


@dataclass(frozen=True)
class MevaEval:
    """Held-out MEVA evaluation: ``split`` ('test' = the held-out test dates) or explicit ``dates``."""

    paths: tuple[str, ...] = ("../shared/data/meva",)
    split: str = "test"
    dates: tuple[str, ...] = ()
    threshold: float = 0.1
    workers: int = 1
    max_clips: int = 0
    cache_dir: str = ""
    flicker_clips: int = 20        # clips scored a second time for flicker (0 = none)

    def __post_init__(self):
        if bool(self.split) == bool(self.dates) or self.split not in ("", "train", "val", "test"):
            raise ConfigError("meva: give either split ('train' | 'val' | 'test') or dates, not both")
        _check_eval("meva", self.threshold, self.flicker_clips)
        if self.workers < 1 or self.max_clips < 0 or not self.paths:
            raise ConfigError("meva: workers >= 1, max_clips >= 0 and at least one path")


@dataclass(frozen=True)
class SyntheticEval:
    """Held-out generated videos: the track's train_data world settings, split 'test', indices 0..videos-1."""

    videos: int = 40
    threshold: float = 0.3
    flicker_clips: int = 20

    def __post_init__(self):
        _check_eval("synthetic", self.threshold, self.flicker_clips)
        if self.videos < 1:
            raise ConfigError(f"synthetic.videos must be >= 1, got {self.videos}")


def _check_eval(where: str, threshold: float, flicker_clips: int) -> None:
    if not 0.0 < threshold <= 1.0:
        raise ConfigError(f"{where}.threshold must be in (0, 1], got {threshold}")
    if flicker_clips < 0:
        raise ConfigError(f"{where}.flicker_clips must be >= 0, got {flicker_clips}")


@dataclass(frozen=True)
class OpenVocab:
    """Base/novel split (``split_vocabulary``): the listed names plus a drawn ``fraction`` of predicates are novel."""

    fraction: float = 1 / 3
    seed: int = 0
    novel_predicates: tuple[str, ...] = ()
    novel_objects: tuple[str, ...] = ()


@dataclass(frozen=True)
class LatencyConfig:
    pairs: int = 90
    steps: int = 200
    warmup: int = 20


@dataclass(frozen=True)
class Track:
    preset: str | None
    overrides: tuple[str, ...]
    meva: MevaEval | None
    synthetic: SyntheticEval | None
    open_vocab: OpenVocab | None


@dataclass(frozen=True)
class Variant:
    name: str
    overrides: tuple[str, ...]
    open_vocab: bool
    tracks: tuple[str, ...]

    @property
    def paper(self) -> str:
        """The paper whose component the overrides switch ('baseline' when none)."""
        keys = {o.split("=", 1)[0].split(".")[1] for o in self.overrides
                if o.startswith("model.") and o.split("=", 1)[0].count(".") >= 2}
        return "+".join(SHORT[k] for k in PAPERS if k in keys) or "baseline"


@dataclass(frozen=True)
class AblationConfig:
    tracks: dict = field(default_factory=dict)          # name -> Track
    variants: tuple = ()                                # Variant, in table order
    schedule: tuple[str, ...] = ()
    latency: LatencyConfig = field(default_factory=LatencyConfig)
    title: str = "ablation"


def _strings(v, where: str) -> tuple[str, ...]:
    if v is None:
        return ()
    if not isinstance(v, (list, tuple)) or not all(isinstance(x, str) for x in v):
        raise ConfigError(f"{where} must be a list of 'key=value' strings, got {v!r}")
    return tuple(v)


def _mapping(v, where: str, keys: tuple[str, ...]) -> dict:
    if not isinstance(v, dict):
        raise ConfigError(f"{where} must be a mapping, got {type(v).__name__}")
    unknown = sorted(set(v) - set(keys))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown} (known: {list(keys)})")
    return v


def load_ablation_config(path: str | Path) -> AblationConfig:
    """Parse and validate an ablation YAML: every (track, variant) training config is built here, so an unknown
    dotted key or a conflicting switch raises ConfigError naming the variant before anything trains."""
    raw = _mapping(load_yaml(path), str(path), ("title", "schedule", "tracks", "variants", "latency"))
    tracks = {}
    for name, t in _mapping(raw.get("tracks") or {}, "tracks", tuple(raw.get("tracks") or ())).items():
        t = _mapping(t, f"tracks.{name}", ("preset", "overrides", "meva", "synthetic", "open_vocab"))
        parts = {k: from_dict(cls, t[k], f"tracks.{name}.{k}.") if t.get(k) is not None else None
                 for k, cls in (("meva", MevaEval), ("synthetic", SyntheticEval), ("open_vocab", OpenVocab))}
        if parts["meva"] is None and parts["synthetic"] is None:
            raise ConfigError(f"tracks.{name}: give at least one evaluation, 'meva' or 'synthetic'")
        tracks[str(name)] = Track(t.get("preset"), _strings(t.get("overrides"), f"tracks.{name}.overrides"), **parts)
    if not tracks:
        raise ConfigError(f"{path}: 'tracks' must name at least one training setup")
    variants = []
    for name, v in _mapping(raw.get("variants") or {}, "variants", tuple(raw.get("variants") or ())).items():
        if not isinstance(v, dict):
            v = {"overrides": v}
        v = _mapping(v, f"variants.{name}", ("overrides", "open_vocab", "tracks"))
        on = _strings(v.get("tracks"), f"variants.{name}.tracks") or tuple(tracks)
        bad = [t for t in on if t not in tracks]
        if bad:
            raise ConfigError(f"variants.{name}.tracks: unknown track(s) {bad} (known: {list(tracks)})")
        variants.append(Variant(str(name), _strings(v.get("overrides"), f"variants.{name}.overrides"),
                                bool(v.get("open_vocab", False)), on))
    if not variants:
        raise ConfigError(f"{path}: 'variants' must name at least one variant")
    cfg = AblationConfig(tracks, tuple(variants), _strings(raw.get("schedule"), "schedule"),
                         from_dict(LatencyConfig, raw.get("latency") or {}, "latency."),
                         str(raw.get("title", "ablation")))
    if cfg.latency.pairs < 1 or cfg.latency.steps < 1 or cfg.latency.warmup < 0:
        raise ConfigError("latency: pairs >= 1, steps >= 1, warmup >= 0")
    for v in cfg.variants:
        for t in v.tracks:
            variant_train_config(cfg, t, v, Path("<out>"))
    return cfg


def open_vocab_split(track: Track, data_cfg) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...],
                                                       tuple[str, ...]]:
    """(base predicates, novel predicates, base objects, novel objects) of the track's full vocabulary."""
    objects, predicates = dataset_vocabularies(data_cfg)
    ov = track.open_vocab
    base_p, nov_p = split_vocabulary(predicates.names, ov.fraction, ov.seed, ov.novel_predicates)
    bad = [n for n in ov.novel_objects if n not in objects.names]
    if bad:
        raise ValueError(f"open_vocab.novel_objects: {bad} not in the object vocabulary")
    names = lambda v, ix: tuple(v.names[i] for i in ix)  # noqa: E731
    return (names(predicates, base_p), names(predicates, nov_p),
            tuple(n for n in objects.names if n not in ov.novel_objects), tuple(ov.novel_objects))


def variant_train_config(cfg: AblationConfig, track_name: str, v: Variant, variant_dir: Path) -> TrainConfig:
    """The TrainConfig of variant ``v`` on a track: preset < track overrides < schedule < variant < run folder;
    open-vocabulary variants read base vocabulary files from ``variant_dir`` and drop novel labels."""
    tr = cfg.tracks[track_name]
    where = f"variant '{v.name}' on track '{track_name}'"
    ov = [*tr.overrides, *cfg.schedule, *v.overrides, f"run.out_dir={variant_dir / 'run'}"]
    try:
        tc = load_train_config(preset=tr.preset, overrides=ov)
        if v.open_vocab:
            if tr.open_vocab is None:
                raise ConfigError(f"open_vocab: track '{track_name}' has no open_vocab split")
            if not tc.model.uasan.enabled:
                raise ConfigError("open_vocab: needs model.uasan.enabled=true (scores by text similarity)")
            open_vocab_split(tr, tc.train_data)
            extra = [f"{d}.{k}" for d in ("train_data", "val_data") for k in (
                f"predicate_vocab={variant_dir / 'base_predicates.txt'}",
                f"object_vocab={variant_dir / 'base_objects.txt'}", "unknown_predicate=drop", "unknown_category=drop")]
            tc = load_train_config(preset=tr.preset, overrides=[*ov, *extra])
    except ConfigError as e:
        raise ConfigError(f"{where}: {e}") from None
    except ValueError as e:
        raise ConfigError(f"{where}: {e}") from None
    return tc


def fingerprint(cfg: AblationConfig, track_name: str, v: Variant, tc: TrainConfig) -> dict:
    """What a result depends on: the training config (minus where it lives) and the evaluation settings."""
    d = to_dict(tc)
    d["run"].pop("out_dir", None)
    d["run"].pop("progress", None)
    tr = cfg.tracks[track_name]
    return json.loads(json.dumps({"version": RESULT_VERSION, "train": d, "open_vocab": v.open_vocab,
                                  "eval": {k: asdict(getattr(tr, k)) if getattr(tr, k) else None
                                           for k in ("meva", "synthetic", "open_vocab")},
                                  "latency": asdict(cfg.latency)}))


def training_counts(data_cfg, cache: Path, progress: bool) -> dict[str, int]:
    """Positive labelled frames per predicate in the training data ({name: count}, every vocabulary name),
    cached in ``cache`` keyed by the data config."""
    key = json.dumps(to_dict(data_cfg), sort_keys=True)
    if cache.is_file():
        c = json.loads(cache.read_text())
        if c.get("key") == key:
            return c["counts"]
    counts = dict.fromkeys(dataset_vocabularies(data_cfg)[1].names, 0)
    for ann in load_dataset(data_cfg, progress):
        for r in ann.relations:
            counts[r.predicate] += r.end_fid - r.begin_fid
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps({"key": key, "counts": counts}, indent=1))
    return counts


def tail_predicates(counts: dict[str, int]) -> tuple[str, ...]:
    """The least frequent third (at least one) of the training predicates (count > 0) by training count; ties
    broken by name. Vocabulary names the training data never uses are not training predicates."""
    names = sorted((n for n, c in counts.items() if c > 0), key=lambda n: (counts[n], n))
    return tuple(names[:max(1, round(len(names) / 3))]) if names else ()


def flicker(stepper, clips_and_fps, threshold: float) -> dict:
    """Toggles per active relation-second of ``stepper``'s raw per-frame scores over (SparseClip, fps) items,
    through RelationFilter as plain thresholding (module docstring)."""
    from offline_train.sparse_eval import score_sparse

    filt_cfg = FilterConfig(tau_s=0.0, enter=threshold, exit=threshold, min_duration_s=0.0)
    toggles, active = 0, 0.0
    n_pred = len(stepper.predicates)
    for clip, fps in clips_and_fps:
        if not len(clip.row_pair):
            continue
        scores = score_sparse(stepper.step, stepper.init_state, clip, n_pred)
        f = RelationFilter(filt_cfg, clip.num_pairs, n_pred)
        bounds = np.searchsorted(clip.row_frame, np.arange(clip.num_frames + 1))
        for t in np.unique(clip.row_frame):
            rows = slice(int(bounds[t]), int(bounds[t + 1]))
            f.update(clip.row_pair[rows].astype(np.int64), scores[rows], float(t) / fps)
        toggles, active = toggles + f.toggles, active + f.active_seconds
    return {"flicker_per_s": toggles / active if active > 0 else 0.0, "toggles": toggles,
            "active_relation_s": round(active, 2)}


def subset_figures(anns, preds: dict, keep: Callable[[tuple], bool], tail: tuple[str, ...]) -> dict:
    """Detection / tagging figures over the ground truth and predictions whose triplet passes ``keep``."""
    from offline_train.metrics import (RelationDetectionConfig, RelationTaggingConfig, evaluate_relation_detection,
                                       evaluate_relation_tagging, video_relations_from_annotation)

    gt = {a.video_id: [r for r in video_relations_from_annotation(a) if keep(r.triplet)] for a in anns}
    pr = {vid: [r for r in preds.get(vid, []) if keep(r.triplet)] for vid in gt}
    n_gt = sum(map(len, gt.values()))
    if not n_gt:
        return {k: float("nan") for k in METRICS[:5]} | {"n_gt": 0}
    det = evaluate_relation_detection(gt, pr, RelationDetectionConfig())
    tag = evaluate_relation_tagging(gt, pr, RelationTaggingConfig())
    return figures(det["mAP"], det["R@50"], det["mR@50"], tag["P@5"], det["per_predicate_recall@50"], tail) | {
        "n_gt": n_gt}


def figures(m_ap, r50, mr50, p5, per_pred: dict, tail: tuple[str, ...]) -> dict:
    tr = [per_pred[n] for n in tail if n in per_pred]
    return {"mAP": m_ap, "R@50": r50, "mR@50": mr50, "tail_R@50": float(np.mean(tr)) if tr else float("nan"),
            "P@5": p5}


def report_figures(report: dict, tail: tuple[str, ...]) -> dict:
    m = report["model"]
    return figures(m["relation_detection"]["mAP"], m["relation_detection"]["R@50"], m["mean_recall@50"],
                   m["relation_tagging"]["P@5"], m["per_predicate_recall@50"], tail) | {"n_gt": report["n_gt"]}


def run_ablation(cfg: AblationConfig, out: str | Path, only=(), latency: Callable | None = None,
                 progress: bool = True) -> list[dict]:
    """Train, evaluate and tabulate every (track, variant) (only the variants named in ``only``, if given).
    ``latency(checkpoint_dir, work_dir, LatencyConfig) -> {'latency_ms', 'latency_p95_ms'}`` (None = not measured).
    Writes OUT/ablation.{md,csv,png}; returns every row of the table (earlier results in OUT included)."""
    from offline_train.ablation_report import collect_rows, write_report
    from offline_train.ablation_run import run_variant

    known = [v.name for v in cfg.variants]
    bad = [n for n in only if n not in known]
    if bad:
        raise ConfigError(f"--only: unknown variant(s) {bad} (known: {known})")
    out = Path(out)
    jobs = [(t, v) for v in cfg.variants if not only or v.name in only for t in v.tracks]
    for t, v in tqdm(jobs, desc="ablation", unit="variant", disable=not progress):
        run_variant(cfg, t, v, out / t / v.name, latency, progress)
    rows = collect_rows(cfg, out)
    write_report(cfg, rows, out)
    return rows


def result_path(variant_dir: Path) -> Path:
    return variant_dir / "result.json"

