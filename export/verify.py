"""Parity of an exported relation model against torch: per-step outputs with carried state, and `vsgg eval` reports.

``step_parity`` runs the torch ``forward_step`` and an engine backend side by side for several pair counts, each
over several steps where both sides carry their *own* state (so drift would accumulate), and reports the max
absolute difference per output (the optional ``uncertainty`` and ``pair_vector`` outputs too, where the model has
them).
``eval_report_parity`` runs `vsgg eval` on a checkpoint and on its export and compares the reports. ``random_checkpoint`` writes a random-weight checkpoint, for checks and benchmarks that must
not wait for a trained model.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from engine.backends.base import RelationBackend, RelationInputs, RelationOutputs, RelationState
from engine.config import to_dict
from engine.relate.features import FEATURE_VERSION, NUM_FEATURES
from engine.relate.relation_io import OUTPUT_NAMES, PAIR_VECTOR, UNCERTAINTY
from engine.vocab import builtin
from offline_train.checkpoint import CheckpointMeta, save_checkpoint
from offline_train.models import MODEL_VERSION, ModelConfig, build_model

PARITY_PAIRS = (0, 1, 7, 64, 300)
FP32_ATOL = 1e-4


class ParityError(AssertionError):
    """An exported model whose outputs differ from torch by more than the tolerance."""


@dataclass
class ParityReport:
    """rows: one per (pairs, step): {'pairs', 'step', <output name>: max abs diff} for every output compared."""

    rows: list[dict] = field(default_factory=list)

    @staticmethod
    def _diffs(row: dict) -> list[float]:
        return [v for k, v in row.items() if k not in ("pairs", "step")]

    @property
    def max_abs_diff(self) -> float:
        return max((d for r in self.rows for d in self._diffs(r)), default=0.0)

    def summary(self) -> str:
        by_p: dict[int, float] = {}
        for r in self.rows:
            by_p[r["pairs"]] = max(by_p.get(r["pairs"], 0.0), *self._diffs(r))
        steps = max((r["step"] for r in self.rows), default=-1) + 1
        return (f"max abs diff {self.max_abs_diff:.2e} over {steps} steps; per pair count: "
                + ", ".join(f"{p}: {d:.1e}" for p, d in sorted(by_p.items())))


def random_step(num_features: int, num_objects: int, pairs: int, rng: np.random.Generator) -> RelationInputs:
    """Feature rows in the range pair_features produces (clipped to +-20) and random labels."""
    feats = np.clip(rng.standard_normal((pairs, num_features)) * 2.0, -20, 20).astype(np.float32)
    return RelationInputs(feats, rng.integers(0, num_objects, pairs), rng.integers(0, num_objects, pairs))


def random_state(window: int, d_model: int, pairs: int, rng: np.random.Generator) -> RelationState:
    """Mid-stream state: each pair has seen a random number of observations (valid slots are the newest ones)."""
    h = window - 1
    seen = rng.integers(0, h + 1, pairs)
    valid = (np.arange(h)[None, :] >= (h - seen)[:, None]).astype(np.float32)   # (P, L-1), oldest first
    win = (rng.standard_normal((pairs, h, d_model)) * valid[..., None]).astype(np.float32)
    prev = (rng.standard_normal((pairs, d_model)) * (seen > 0)[:, None]).astype(np.float32)
    return RelationState(win, valid, prev)


def torch_step(model: torch.nn.Module, inputs, state) -> tuple[np.ndarray, RelationState]:
    """The reference: the torch model's forward_step on numpy inputs (eval mode, no grad)."""
    out = torch_step_outputs(model, inputs, state)
    return out.scores, out.state


def torch_step_outputs(model: torch.nn.Module, inputs, state) -> RelationOutputs:
    """As torch_step, plus the optional outputs of a model that has them (else None): uncertainty (P, C) in
    [0, 1), pair_vector (P, d_head) unit rows. What a backend's ``step_outputs`` must give for the exported file."""
    from export.to_onnx import model_outputs, step_outputs

    with torch.inference_mode():
        args = [torch.from_numpy(np.ascontiguousarray(a)) for a in (*inputs, *state)]
        out = [o.numpy() for o in step_outputs(model, *args)]
    extra = dict(zip(model_outputs(model)[len(OUTPUT_NAMES):], out[len(OUTPUT_NAMES):]))
    return RelationOutputs(out[0], RelationState(*out[1:4]), extra.get(UNCERTAINTY.name),
                           extra.get(PAIR_VECTOR.name))


def step_parity(model: torch.nn.Module, backend: RelationBackend, pair_counts=PARITY_PAIRS, steps: int = 4,
                seed: int = 0) -> ParityReport:
    """Run both sides for ``steps`` steps per pair count from the same random mid-stream state; each side feeds
    its own state outputs back. Returns the max abs difference of every output at every step."""
    model.eval()
    info, rng, report = backend.info, np.random.default_rng(seed), ParityReport()
    for p in pair_counts:
        ref_state = got_state = random_state(info.window, info.d_model, p, rng)
        for k in range(steps):
            inputs = random_step(info.num_features, len(info.objects), p, rng)
            ref = torch_step_outputs(model, inputs, ref_state)
            got = backend.step_outputs(inputs, got_state)
            ref_state, got_state = ref.state, got.state
            compared = list(zip(OUTPUT_NAMES, (ref.scores, *ref.state), (got.scores, *got.state)))
            for name, a, b in ((UNCERTAINTY.name, ref.uncertainty, got.uncertainty),
                               (PAIR_VECTOR.name, ref.pair_vector, got.pair_vector)):
                if (a is None) != (b is None):
                    which = "torch has it, the model file lacks it" if b is None else \
                        "the model file has it, torch lacks it"
                    raise ParityError(f"output '{name}': {which} ({backend.name})")
                if a is not None:
                    compared.append((name, a, b))
            row = {"pairs": p, "step": k}
            for name, a, b in compared:
                if a.shape != b.shape:
                    raise ParityError(f"{name} at {p} pairs: shape {b.shape}, torch gives {a.shape}")
                row[name] = float(np.abs(a - b).max()) if a.size else 0.0
            report.rows.append(row)
    return report


def parity_pairs(max_pairs: int) -> tuple[int, ...]:
    """PARITY_PAIRS a model declared for ``max_pairs`` pairs can take, plus max_pairs itself when it cuts them."""
    kept = tuple(p for p in PARITY_PAIRS if p <= max_pairs)
    return kept if max_pairs in kept or max_pairs > PARITY_PAIRS[-1] else kept + (max_pairs,)


def check_parity(model: torch.nn.Module, backend: RelationBackend, atol: float = FP32_ATOL, **kw) -> ParityReport:
    """step_parity, raising ParityError when any output differs by more than ``atol``."""
    report = step_parity(model, backend, **kw)
    if not report.max_abs_diff <= atol:
        raise ParityError(f"{backend.name} differs from torch beyond {atol:g}: {report.summary()}")
    return report


def random_checkpoint(out_dir: str | Path, *, objects=None, predicates=None, groups=None,
                      model_cfg: ModelConfig | None = None, feature_lag: int = 5, seed: int = 0) -> Path:
    """A checkpoint directory holding a random-weight model (random unit-norm embedding tables, random feature
    statistics). objects/predicates: Vocabulary objects (default: the built-in VidVRD ones); groups default to one
    sigmoid group. The training config recorded is TrainConfig with this model config and feature_lag."""
    from offline_train.config import TrainConfig

    objects = objects or builtin("vidvrd_objects")
    predicates = predicates or builtin("vidvrd_predicates")
    groups = groups or (("all", "sigmoid", tuple(range(len(predicates)))),)
    model_cfg = model_cfg or ModelConfig()
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)

    def table(n):
        t = torch.randn(n, 384, generator=g)
        return t / t.norm(dim=1, keepdim=True)

    model = build_model(model_cfg, NUM_FEATURES, table(len(objects)), table(len(predicates)), groups)
    with torch.no_grad():
        model.tokenizer.feat_mean.copy_(torch.randn(NUM_FEATURES, generator=g) * 0.1)
        model.tokenizer.feat_std.copy_(torch.rand(NUM_FEATURES, generator=g) + 0.5)
    cfg = to_dict(TrainConfig(model=model_cfg, feature_lag=feature_lag))
    meta = CheckpointMeta(config=cfg, objects=tuple(objects.names), predicates=tuple(predicates.names),
                          groups=tuple(groups), model_version=MODEL_VERSION, feature_version=FEATURE_VERSION,
                          num_features=NUM_FEATURES)
    return save_checkpoint(out_dir, model, meta)


def _numeric_leaves(d, prefix=""):
    if isinstance(d, dict):
        for k, v in d.items():
            yield from _numeric_leaves(v, f"{prefix}.{k}" if prefix else str(k))
    elif isinstance(d, (int, float)) and not isinstance(d, bool):
        yield prefix, float(d)


def eval_report_parity(checkpoint: str | Path, model_path: str | Path, vidvrd_paths, work_dir: str | Path,
                       atol: float = 1e-3, **eval_kw) -> dict:
    """`vsgg eval` (offline_train.eval_run.run_eval, no baselines) on the torch checkpoint and on its exported
    model; returns {'torch': report, 'export': report, 'max_abs_diff': float, 'differences': [(key, a, b), ...]}
    over every numeric metric (differences lists those above ``atol``). Raises ParityError when any does.
    eval_kw: further run_eval options for both sides (predicate_map, category_map, unknown, threshold), e.g. the
    label maps a VidOR annotation needs."""
    from offline_train.eval_run import run_eval

    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    reports = {}
    for side, path in (("torch", checkpoint), ("export", model_path)):
        reports[side] = run_eval(str(path), list(vidvrd_paths), work / f"{side}_predictions.json",
                                 work / f"{side}_report.json", baselines=False, progress=False, **eval_kw)["model"]
    a, b = dict(_numeric_leaves(reports["torch"])), dict(_numeric_leaves(reports["export"]))
    if set(a) != set(b):
        raise ParityError(f"eval reports have different metrics: {sorted(set(a) ^ set(b))[:10]}")
    diffs = [(k, a[k], b[k]) for k in sorted(a) if abs(a[k] - b[k]) > atol]
    pred_diff = _prediction_diff(work / "torch_predictions.json", work / "export_predictions.json")
    out = {**reports, "max_abs_diff": max((abs(a[k] - b[k]) for k in a), default=0.0), "differences": diffs,
           "prediction_max_abs_diff": pred_diff}
    (work / "eval_parity.json").write_text(json.dumps(out, indent=1))
    if diffs:
        raise ParityError(f"exported model's eval report differs from torch's beyond {atol:g}: {diffs[:5]}")
    if pred_diff > atol:  # metrics can agree by chance (e.g. both 0 on real data); the predictions must too
        raise ParityError(f"exported model's eval predictions differ from torch's: "
                          f"{'different relation instances' if pred_diff == float('inf') else f'score diff {pred_diff:.3g}'}"
                          f" (beyond {atol:g})")
    return out


def _prediction_diff(a_path: Path, b_path: Path) -> float:
    """Largest score difference between two official-format prediction files; inf when their instances
    (video, triplet, duration) differ."""
    def load(p):
        res = json.loads(p.read_text())["results"]
        return {vid: sorted(((tuple(i["triplet"]), tuple(i["duration"])), i["score"]) for i in inst)
                for vid, inst in res.items()}

    a, b = load(a_path), load(b_path)
    if set(a) != set(b) or any([k for k, _ in a[v]] != [k for k, _ in b[v]] for v in a):
        return float("inf")
    return max((abs(x - y) for v in a for (_, x), (_, y) in zip(a[v], b[v])), default=0.0)
