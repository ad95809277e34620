"""Turn rule outputs into per-frame VidVRD predicate labels: debounce, combine action + spatial, name lookup.

The combination and fall-back order is documented in ``rules.py``; this module only implements it. Labels are a
(T, K, K, P) bool tensor aligned with a predicate ``Vocabulary`` (subject index, object index, predicate index);
``engine.io.vidvrd.instances_from_labels`` turns them into ``[begin_fid, end_fid)`` relation instances.
"""
from __future__ import annotations

import numpy as np

from engine.vocab import Vocabulary
from offline_train.synthetic.rules import (ACTION_MIN_RUN_S, ACTIONS, MIN_RUN_S, PAIR, SPATIAL, Geometry, action_of,
                                           pair_predicates, spatial_patterns)


LAYOUT = ("left", "right", "front", "behind")     # the image-layout patterns


def combined_name(action: str, spatial: str, moving: bool, predicates: Vocabulary,
                  layout_with_action: bool = True) -> str | None:
    """The predicate name for ``action`` + ``spatial``: ``action_spatial``, else ``move_spatial`` when moving,
    else the plain ``spatial``; None when none of these is in ``predicates``.

    layout_with_action=False names the layout patterns (left, right, front, behind) plainly whatever the action
    (a smaller label set: ``SynthConfig.layout_with_action``).
    """
    if action not in ACTIONS:
        raise ValueError(f"action must be one of {ACTIONS}, got {action!r}")
    if spatial not in SPATIAL:
        raise ValueError(f"spatial must be one of {SPATIAL}, got {spatial!r}")
    if not layout_with_action and spatial in LAYOUT:
        return spatial if spatial in predicates else None
    for name in ((f"{action}_{spatial}" if action != "none" else None),
                 (f"move_{spatial}" if moving else None), spatial):
        if name is not None and name in predicates:
            return name
    return None


def emittable(predicates: Vocabulary, layout_with_action: bool = True) -> tuple[str, ...]:
    """Every predicate name the rules can produce with this vocabulary, in vocabulary order."""
    names = {combined_name(a, s, m, predicates, layout_with_action)
             for a in ACTIONS for s in SPATIAL for m in (False, True)}
    names |= {p for p in PAIR if p in predicates}
    return tuple(n for n in predicates.names if n in names)


def _flip_short_runs(x: np.ndarray, value: bool, min_len: int, interior_only: bool) -> np.ndarray:
    """x: (T, N) bool. Runs equal to ``value`` shorter than ``min_len`` frames are set to ``not value``.
    interior_only: only runs with a neighbouring run on both sides (not touching frame 0 or T)."""
    t, n = x.shape
    z = (x == value).T
    pad = np.zeros((n, 1), bool)
    edges = np.diff(np.concatenate([pad, z, pad], axis=1).astype(np.int8), axis=1)   # (N, T + 1)
    b, e = np.argwhere(edges == 1), np.argwhere(edges == -1)     # both sorted by (column, frame): they pair up
    short = (e[:, 1] - b[:, 1]) < min_len
    if interior_only:
        short &= (b[:, 1] > 0) & (e[:, 1] < t)
    delta = np.zeros((t + 1, n), np.int32)
    np.add.at(delta, (b[short, 1], b[short, 0]), 1)
    np.add.at(delta, (e[short, 1], e[short, 0]), -1)
    flip = np.cumsum(delta, axis=0)[:t] > 0
    out = x.copy()
    out[flip] = not value
    return out


def debounce(x: np.ndarray, min_len: int) -> np.ndarray:
    """(T, ...) bool with gaps shorter than ``min_len`` frames between two on-runs filled, then on-runs shorter
    than ``min_len`` removed. min_len <= 1 returns a copy."""
    x = np.asarray(x, bool)
    if min_len <= 1 or x.shape[0] == 0:
        return x.copy()
    flat = x.reshape(x.shape[0], -1)
    flat = _flip_short_runs(flat, False, min_len, interior_only=True)
    flat = _flip_short_runs(flat, True, min_len, interior_only=False)
    return flat.reshape(x.shape)


def debounce_categorical(x: np.ndarray, min_len: int) -> np.ndarray:
    """(T, K) integer labels: a run shorter than ``min_len`` frames takes the value of the run before it (the
    first run takes the value of the one after it). Sequences made only of short runs keep the first value."""
    x = np.asarray(x)
    out = x.copy()
    if min_len <= 1:
        return out
    for k in range(x.shape[1]):
        col = out[:, k]
        starts = np.flatnonzero(np.r_[True, col[1:] != col[:-1]])
        ends = np.r_[starts[1:], len(col)]
        vals = col[starts].copy()
        long_ = (ends - starts) >= min_len
        if not long_.any():
            out[:, k] = vals[0]
            continue
        first_long = int(np.flatnonzero(long_)[0])
        for r in range(len(starts)):
            if r < first_long:
                vals[r] = vals[first_long]
            elif not long_[r]:
                vals[r] = vals[r - 1]
        out[:, k] = np.repeat(vals, ends - starts)
    return out


def frame_predicates(g: Geometry, predicates: Vocabulary, layout_with_action: bool = True) -> np.ndarray:
    """(T, K, K, P) bool per-frame predicate labels from the rules (before the visibility mask)."""
    t, k = g.moving.shape
    m = max(1, round(MIN_RUN_S * g.world.fps))
    ma = max(1, round(ACTION_MIN_RUN_S * g.world.fps))
    actions = debounce_categorical(action_of(g), ma)
    moving = debounce(g.moving, ma)
    out = np.zeros((t, k, k, len(predicates)), bool)
    for s, holds in spatial_patterns(g).items():
        holds = debounce(holds, m)
        for ai, a in enumerate(ACTIONS):
            has_a = actions == ai
            if not has_a.any():
                continue
            for mv in (False, True):
                name = combined_name(a, s, mv, predicates, layout_with_action)
                if name is not None:
                    out[..., predicates.index(name)] |= holds & (has_a & (moving == mv))[:, :, None]
    for p, holds in pair_predicates(g).items():
        if p in predicates:
            out[..., predicates.index(p)] |= debounce(holds, m)
    return out
