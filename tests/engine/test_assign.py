"""engine.track.assign: optimality against scipy.optimize.linear_sum_assignment on many random matrices."""
import itertools

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

from engine.track.assign import assign_gated, solve_lsa


def _random_cost(rng, n, m, kind):
    if kind == "int":  # many ties
        return rng.integers(0, 4, (n, m)).astype(np.float64)
    if kind == "neg":
        return rng.normal(0, 10, (n, m))
    return rng.random((n, m))


@pytest.mark.parametrize("kind", ["float", "int", "neg"])
def test_solve_lsa_is_optimal(kind):
    rng = np.random.default_rng({"float": 0, "int": 1, "neg": 2}[kind])
    shapes = list(itertools.product(range(0, 8), range(0, 8))) + [(30, 30), (25, 40), (40, 25), (1, 60)]
    for trial in range(600):
        n, m = shapes[trial % len(shapes)]
        c = _random_cost(rng, n, m, kind)
        rows, cols = solve_lsa(c)
        r2, c2 = linear_sum_assignment(c)
        assert len(rows) == len(cols) == min(n, m)
        assert len(set(rows.tolist())) == len(rows) and len(set(cols.tolist())) == len(cols)
        assert (np.diff(rows) > 0).all()
        assert c[rows, cols].sum() == pytest.approx(c[r2, c2].sum(), abs=1e-9)


def test_solve_lsa_rejects_nan_and_inf():
    for bad in (np.nan, np.inf):
        c = np.ones((3, 3))
        c[1, 2] = bad
        with pytest.raises(ValueError, match="cost"):
            solve_lsa(c)


def _reference_gated_objective(c, limit):
    """Classic padded formulation: each row/column may instead take an 'unmatched' entry costing limit / 2."""
    n, m = c.shape
    big = 1e9
    e = np.full((n + m, n + m), big)
    e[:n, :m] = np.where(c < limit, c, big)
    e[np.arange(n), m + np.arange(n)] = limit / 2
    e[n + np.arange(m), np.arange(m)] = limit / 2
    e[n:, m:] = 0
    r, k = linear_sum_assignment(e)
    return e[r, k].sum() - (n + m) * limit / 2  # = sum over matches (cost - limit)


def test_assign_gated_is_optimal():
    rng = np.random.default_rng(3)
    for trial in range(1500):
        n, m = rng.integers(0, 9, 2)
        kind = ("float", "int", "neg")[trial % 3]
        c = _random_cost(rng, n, m, kind)
        limit = {"float": 0.6, "int": 2.5, "neg": 0.0}[kind]
        matches, ur, uc = assign_gated(c, limit)
        assert matches.shape[1] == 2 and matches.dtype == np.int64
        assert all(c[i, j] < limit for i, j in matches)
        assert sorted(matches[:, 0].tolist() + ur.tolist()) == list(range(n))
        assert sorted(matches[:, 1].tolist() + uc.tolist()) == list(range(m))
        obj = sum(c[i, j] - limit for i, j in matches)
        assert obj == pytest.approx(_reference_gated_objective(c, limit), abs=1e-9)


def test_assign_gated_prefers_one_good_match_over_two_poor_ones():
    # IoU-like costs: A-x 0.1, A-y 0.7, B-x 0.75. Two matches cost more than A-x alone plus two unmatched.
    c = np.array([[0.1, 0.7], [0.75, 1.0]])
    matches, ur, uc = assign_gated(c, 0.8)
    assert matches.tolist() == [[0, 0]] and ur.tolist() == [1] and uc.tolist() == [1]


def test_assign_gated_never_matches_nan_inf_or_gated():
    c = np.array([[np.nan, 0.2, np.inf], [0.9, np.inf, 0.3], [np.inf, np.inf, np.inf]])
    matches, ur, uc = assign_gated(c, 0.5)
    assert matches.tolist() == [[0, 1], [1, 2]] and ur.tolist() == [2] and uc.tolist() == [0]
    with pytest.raises(ValueError, match="max_cost"):
        assign_gated(c, np.inf)


def test_assign_gated_empty_and_large_sparse():
    for n, m in [(0, 0), (0, 5), (4, 0)]:
        matches, ur, uc = assign_gated(np.zeros((n, m)), 0.5)
        assert matches.shape == (0, 2) and len(ur) == n and len(uc) == m
    # block-diagonal: 200 independent 1x1 / 2x2 components must be solved exactly
    rng = np.random.default_rng(4)
    c = np.ones((300, 300))
    for b in range(150):
        c[2 * b:2 * b + 2, 2 * b:2 * b + 2] = rng.random((2, 2)) * 0.5
    matches, _, _ = assign_gated(c, 0.8)
    obj = sum(c[i, j] - 0.8 for i, j in matches)
    r, k = linear_sum_assignment(np.where(c < 0.8, c - 0.8, 0.0))
    assert len(matches) == 300
    assert obj == pytest.approx(np.where(c < 0.8, c - 0.8, 0.0)[r, k].sum(), abs=1e-9)
