"""Linear assignment in numba: an exact rectangular solver and the gated matcher the tracker uses.

* ``solve_lsa(cost)`` solves the rectangular linear sum assignment problem exactly (the same problem as
  ``scipy.optimize.linear_sum_assignment``): every row of the smaller side is assigned, total cost is minimal.
  Algorithm: successive shortest augmenting paths with dual variables (the Jonker-Volgenant family, in the
  rectangular form described by D. F. Crouse, "On implementing 2D rectangular assignment algorithms", IEEE TAES
  2016), O(n^2 m) worst case for n <= m.
* ``assign_gated(cost, max_cost)`` is the tracking matcher: only pairs with ``cost < max_cost`` may be matched, and
  any row or column may stay unmatched. It minimises ``sum over matches (cost - max_cost)``; this is the same
  optimum as padding the matrix with "unmatched" entries of cost ``max_cost / 2`` per side (lapjv's
  ``cost_limit``), so a pair is only matched when that beats leaving both ends unmatched. The allowed pairs are first
  split into connected components (union-find); each component is solved on its own, which is exact because the
  objective is a sum over components and makes the usual sparse IoU graphs of tracking cheap.

All kernels are plain module-level ``@njit(cache=True)`` functions; costs are float64 (other float dtypes compile a
separate specialisation); indices are int64.
"""
from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def _sap(cost):
    """Shortest-augmenting-path LSA for an (nr, nc) finite float64 matrix with nr <= nc -> col4row (nr,) int64."""
    nr, nc = cost.shape
    u = np.zeros(nr)  # row duals
    v = np.zeros(nc)  # column duals
    col4row = np.full(nr, -1, np.int64)
    row4col = np.full(nc, -1, np.int64)
    shortest = np.empty(nc)
    path = np.full(nc, -1, np.int64)
    remaining = np.empty(nc, np.int64)
    seen_row = np.zeros(nr, np.bool_)
    seen_col = np.zeros(nc, np.bool_)
    for cur in range(nr):
        # Dijkstra over reduced costs (non-negative by the dual invariant) from the free row `cur` to a free column.
        for j in range(nc):
            remaining[j] = nc - 1 - j
            shortest[j] = np.inf
            seen_col[j] = False
        seen_row[:] = False
        n_rem = nc
        min_val = 0.0
        i = cur
        sink = -1
        while sink == -1:
            seen_row[i] = True
            best = -1
            lowest = np.inf
            for it in range(n_rem):
                j = remaining[it]
                r = min_val + cost[i, j] - u[i] - v[j]
                if r < shortest[j]:
                    path[j] = i
                    shortest[j] = r
                # prefer a free column on ties: it ends the search one step earlier
                if shortest[j] < lowest or (shortest[j] == lowest and row4col[j] == -1):
                    lowest = shortest[j]
                    best = it
            min_val = lowest
            j = remaining[best]
            if row4col[j] == -1:
                sink = j
            else:
                i = row4col[j]
            seen_col[j] = True
            n_rem -= 1
            remaining[best] = remaining[n_rem]
        # keep the reduced costs of the current matching at zero and all others non-negative
        u[cur] += min_val
        for i in range(nr):
            if seen_row[i] and i != cur:
                u[i] += min_val - shortest[col4row[i]]
        for j in range(nc):
            if seen_col[j]:
                v[j] -= min_val - shortest[j]
        # flip the matching along the path
        j = sink
        while True:
            i = path[j]
            row4col[j] = i
            nxt = col4row[i]
            col4row[i] = j
            j = nxt
            if i == cur:
                break
    return col4row


@njit(cache=True)
def solve_lsa(cost):
    """Exact rectangular linear sum assignment of an (N, M) finite cost matrix.

    Returns ``(rows, cols)``: two (min(N, M),) int64 arrays, sorted by row, with ``cost[rows, cols].sum()`` minimal.
    Raises ValueError when the matrix contains NaN or inf.
    """
    n, m = cost.shape
    for i in range(n):
        for j in range(m):
            if not np.isfinite(cost[i, j]):
                raise ValueError("cost: contains NaN or inf")
    k = min(n, m)
    rows = np.empty(k, np.int64)
    cols = np.empty(k, np.int64)
    if k == 0:
        return rows, cols
    c = np.empty((n, m)) if n <= m else np.empty((m, n))
    if n <= m:
        c[:, :] = cost
    else:
        c[:, :] = cost.T
    col4row = _sap(c)
    if n <= m:
        for i in range(n):
            rows[i] = i
            cols[i] = col4row[i]
    else:
        row_of = np.full(n, -1, np.int64)
        for j in range(m):
            row_of[col4row[j]] = j
        t = 0
        for i in range(n):
            if row_of[i] >= 0:
                rows[t] = i
                cols[t] = row_of[i]
                t += 1
    return rows, cols


@njit(cache=True)
def _find(parent, x):
    while parent[x] != x:
        parent[x] = parent[parent[x]]
        x = parent[x]
    return x


@njit(cache=True)
def assign_gated(cost, max_cost):
    """Match rows to columns of an (N, M) cost matrix, only through pairs with ``cost < max_cost``.

    NaN and inf entries are never matched. Minimises ``sum over matches (cost - max_cost)`` (see module docstring).
    Returns ``(matches, unmatched_rows, unmatched_cols)``: (K, 2) int64 ``[row, col]`` pairs sorted by row, and
    the sorted int64 indices of rows and columns left unmatched.
    """
    if not np.isfinite(max_cost):
        raise ValueError("max_cost: must be finite")
    n, m = cost.shape
    parent = np.arange(n + m)
    n_edges = 0
    for i in range(n):
        for j in range(m):
            if cost[i, j] < max_cost:
                n_edges += 1
                a = _find(parent, i)
                b = _find(parent, n + j)
                if a != b:
                    parent[a] = b
    col_of = np.full(n, -1, np.int64)
    if n_edges > 0:
        comp = np.empty(n + m, np.int64)
        for x in range(n + m):
            comp[x] = _find(parent, x)
        done = np.zeros(n + m, np.bool_)
        rws = np.empty(n, np.int64)
        cls = np.empty(m, np.int64)
        for i in range(n):
            root = comp[i]
            if done[root] or root == i:  # a row that is its own root has no allowed pair (roots are columns)
                continue
            done[root] = True
            nr = 0
            for a in range(i, n):
                if comp[a] == root:
                    rws[nr] = a
                    nr += 1
            nc = 0
            for b in range(m):
                if comp[n + b] == root:
                    cls[nc] = b
                    nc += 1
            if nr == 1 and nc == 1:
                col_of[rws[0]] = cls[0]
                continue
            # component sub-problem on the smaller side s x (l + s): real pairs cost (c - max_cost) < 0, forbidden
            # pairs +1, and s "stay unmatched" columns at 0, so every row can opt out.
            swap = nr > nc
            s, ln = (nc, nr) if swap else (nr, nc)
            sub = np.zeros((s, ln + s))
            for a in range(s):
                for b in range(ln):
                    c = cost[rws[b], cls[a]] if swap else cost[rws[a], cls[b]]
                    sub[a, b] = c - max_cost if c < max_cost else 1.0
            pick = _sap(sub)
            for a in range(s):
                b = pick[a]
                if b < ln and sub[a, b] < 0.0:
                    if swap:
                        col_of[rws[b]] = cls[a]
                    else:
                        col_of[rws[a]] = cls[b]
    k = 0
    for i in range(n):
        if col_of[i] >= 0:
            k += 1
    matches = np.empty((k, 2), np.int64)
    unmatched_rows = np.empty(n - k, np.int64)
    col_used = np.zeros(m, np.bool_)
    t = 0
    u = 0
    for i in range(n):
        if col_of[i] >= 0:
            matches[t, 0] = i
            matches[t, 1] = col_of[i]
            col_used[col_of[i]] = True
            t += 1
        else:
            unmatched_rows[u] = i
            u += 1
    unmatched_cols = np.empty(m - k, np.int64)
    u = 0
    for j in range(m):
        if not col_used[j]:
            unmatched_cols[u] = j
            u += 1
    return matches, unmatched_rows, unmatched_cols
