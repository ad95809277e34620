"""RelationBackend: the interface every relation-model runtime implements, and the validation of its step inputs.

A backend runs one ``forward_step`` of the relation model (tensor contract in ``engine.relate.relation_io``). It is
stateless apart from its session: the per-pair state goes in and comes out of ``step`` and is stored by the caller
(``engine.relate.pairs.PairStore``), so one backend can serve any number of streams.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import NamedTuple

import numpy as np

from engine.relate.relation_io import (OUTPUTS, PAIR_VECTOR, STATE_INPUTS, STEP_INPUTS, UNCERTAINTY,
                                       ModelInfo)


class BackendUnavailable(RuntimeError):
    """This runtime cannot run on this machine (no GPU, library not installed); the loader falls back."""


class RelationInputs(NamedTuple):
    """Per-frame inputs of P pairs: feats (P, F) float32, subj_label / obj_label (P,) int64 object indices."""

    feats: np.ndarray
    subj_label: np.ndarray
    obj_label: np.ndarray


class RelationState(NamedTuple):
    """Per-pair state: window (P, L-1, d) float32, window_valid (P, L-1) float32 1/0, prev_out (P, d) float32."""

    window: np.ndarray
    window_valid: np.ndarray
    prev_out: np.ndarray


class RelationOutputs(NamedTuple):
    """One step's outputs: scores (P, C) float32 probabilities, the new RelationState, uncertainty (P, C)
    float32 in [0, 1) (relation_io.UNCERTAINTY, dimensionless) and pair_vector (P, d_head) float32 unit rows
    (relation_io.PAIR_VECTOR, an open-vocabulary head's), each None when the model has no such output."""

    scores: np.ndarray
    state: RelationState
    uncertainty: np.ndarray | None
    pair_vector: np.ndarray | None = None


class RelationBackend(ABC):
    """step(inputs, state) -> (scores (P, C) float32 probabilities, new RelationState); ``step_outputs`` also gives
    the optional uncertainty. Thread use: one at a time.

    Attributes: ``info`` (the model's ModelInfo: vocabularies, feature_lag, window, d_model, outputs), ``name``
    (e.g. "ort-cpu"), ``max_pairs`` (largest P accepted).
    """

    info: ModelInfo
    name: str
    max_pairs: int

    def step(self, inputs, state) -> tuple[np.ndarray, RelationState]:
        """Score P pairs of one frame and advance their state. Inputs are not modified.

        inputs: (feats, subj_label, obj_label); state: (window, window_valid, prev_out), row-aligned with inputs.
        Bad shapes, dtypes, label indices or P > max_pairs raise ValueError/TypeError naming the tensor.
        """
        out = self.step_outputs(inputs, state)
        return out.scores, out.state

    def step_outputs(self, inputs, state) -> RelationOutputs:
        """As ``step``, plus the model's optional outputs where its file has them (``info.has_uncertainty``,
        ``info.has_pair_vector``)."""
        feed = self.validate(inputs, state)
        if len(feed["feats"]) == 0 and self._skip_empty:
            shapes = self.info.shapes(0)
            extra = {s.name: np.zeros(shapes[s.name], np.float32) for s in self.info.output_specs[len(OUTPUTS):]}
            return RelationOutputs(np.zeros(shapes[OUTPUTS[0].name], np.float32),
                                   RelationState(*(feed[s.name] for s in STATE_INPUTS)), extra.get(UNCERTAINTY.name),
                                   extra.get(PAIR_VECTOR.name))
        out = self._run(feed)
        extra = dict(zip(self.info.outputs[len(OUTPUTS):], out[len(OUTPUTS):]))  # optional outputs by name
        return RelationOutputs(out[0], RelationState(*out[1:4]), extra.get(UNCERTAINTY.name),
                               extra.get(PAIR_VECTOR.name))

    _skip_empty = False  # True where the runtime cannot take P = 0 (TensorRT profiles start at 1)

    @abstractmethod
    def _run(self, feed: dict[str, np.ndarray]) -> tuple[np.ndarray, ...]:
        """Run validated, contiguous inputs keyed by relation_io.INPUT_NAMES; return the outputs in the order of
        ``info.outputs`` (the four of every model, then ``uncertainty`` / ``pair_vector`` where the file has them)."""

    def initial_state(self, pairs: int) -> RelationState:
        """Zero state for ``pairs`` new pairs."""
        return RelationState(*self.info.initial_state(pairs))

    def warmup(self, pairs: int | None = None) -> None:
        """Run a few steps so the first real frame does not pay for allocation and kernel selection."""
        n = min(self.max_pairs, 64 if pairs is None else int(pairs))
        rng = np.random.default_rng(0)
        inputs = RelationInputs(rng.standard_normal((n, self.info.num_features)).astype(np.float32),
                                rng.integers(0, len(self.info.objects), n), rng.integers(0, len(self.info.objects), n))
        state = self.initial_state(n)
        for _ in range(3):
            _, state = self.step(inputs, state)

    def close(self) -> None:
        """Release the session (and device memory). The backend cannot be used afterwards."""

    def validate(self, inputs, state) -> dict[str, np.ndarray]:
        """Checked, C-contiguous copies-or-views of the six inputs keyed by name (see relation_io.INPUTS)."""
        if not isinstance(inputs, (tuple, list)) or len(inputs) != 3:
            raise TypeError("inputs: expected (feats, subj_label, obj_label)")
        if not isinstance(state, (tuple, list)) or len(state) != 3:
            raise TypeError("state: expected (window, window_valid, prev_out)")
        arrays = [np.asarray(a) for a in (*inputs, *state)]
        p = arrays[0].shape[0] if arrays[0].ndim >= 1 else -1
        if p < 0:
            raise ValueError(f"feats: expected shape (pairs, {self.info.num_features}), got {arrays[0].shape}")
        if p > self.max_pairs:
            raise ValueError(f"feats: {p} pairs exceed this backend's max_pairs {self.max_pairs}")
        shapes = self.info.shapes(p)
        feed = {}
        for spec, a in zip(STEP_INPUTS + STATE_INPUTS, arrays):
            kind = np.dtype(spec.dtype).kind
            if a.dtype.kind not in ("iu" if kind == "i" else "fiu") or a.dtype == np.bool_:
                raise TypeError(f"{spec.name}: expected {spec.dtype} values, got dtype {a.dtype}")
            if a.shape != shapes[spec.name]:
                raise ValueError(f"{spec.name}: expected shape {shapes[spec.name]} ({', '.join(map(str, spec.dims))})"
                                 f", got {a.shape}")
            feed[spec.name] = np.ascontiguousarray(a, dtype=spec.dtype)
        n_obj = len(self.info.objects)
        for name in ("subj_label", "obj_label"):
            lab = feed[name]
            if p and (lab.min() < 0 or lab.max() >= n_obj):
                bad = int(lab[(lab < 0) | (lab >= n_obj)][0])
                raise ValueError(f"{name}: label index {bad} outside the model's {n_obj} object labels")
        if p and not np.isfinite(feed["feats"]).all():
            raise ValueError("feats: contains NaN or inf")
        return feed
