"""Constant-velocity Kalman filter for boxes: batched in-place predict/update of (N, 8) means, (N, 8, 8) covariances.

State vector of one track (float64)::

    x = [cx, cy, w, h, vcx, vcy, vw, vh]

centre and size of the box in pixels (image frame, origin top-left) and their rates in pixels per frame.
The measurement is the detected box as ``z = [cx, cy, w, h]`` (pixels), so ``H = [I4 | 0]``.
Motion model over a step of ``dt`` frames: ``F = [[I4, dt*I4], [0, I4]]`` (constant velocity).

Noise is proportional to the box size, so the filter behaves the same for near (big) and far (small) objects.
With ``s = (w, h, w, h)`` from the current estimate (clamped to >= 1 px) and per-component weights
``std_pos``, ``std_vel``, ``std_meas`` (each (4,) float64, fractions of the box size for cx, cy, w, h):

* process noise     ``Q = dt * diag((std_pos * s)**2, (std_vel * s)**2)``,
* measurement noise ``R = diag((std_meas * s)**2)``,
* initial covariance ``diag((2 * std_pos * s)**2, (10 * std_vel * s)**2)`` with ``s`` from the first measurement.

Only the ratios between the weights shape the filter (scaling all of them by one factor scales P, Q and R alike
and leaves the gain unchanged). The kernels work in place on the rows listed in ``rows`` (int64 indices), so a
tracker can keep fixed-capacity struct-of-arrays state and touch only its live slots.
"""
from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def _size_scale(w, h, i):
    """Noise scale of state component ``i`` (0..3: cx, cy, w, h): the box width for x terms, height for y terms."""
    return max(w, 1.0) if i % 2 == 0 else max(h, 1.0)


@njit(cache=True)
def kalman_initiate(mean, cov, rows, meas, std_pos, std_vel):
    """Start tracks: ``mean[rows[k]]`` = (meas[k], 0 velocity), ``cov[rows[k]]`` = initial covariance.

    mean: (C, 8) float64, cov: (C, 8, 8) float64 (modified in place); rows: (K,) int64;
    meas: (K, 4) cxcywh pixels (any float dtype); std_pos, std_vel: (4,) float64 weights.
    """
    for k in range(rows.shape[0]):
        r = rows[k]
        w, h = np.float64(meas[k, 2]), np.float64(meas[k, 3])
        for i in range(8):
            mean[r, i] = np.float64(meas[k, i]) if i < 4 else 0.0
            for j in range(8):
                cov[r, i, j] = 0.0
        for i in range(4):
            s = _size_scale(w, h, i)
            cov[r, i, i] = (2.0 * std_pos[i] * s) ** 2
            cov[r, i + 4, i + 4] = (10.0 * std_vel[i] * s) ** 2


@njit(cache=True)
def kalman_predict(mean, cov, rows, dt, std_pos, std_vel):
    """Advance ``rows`` by ``dt`` frames: x <- F x, P <- F P F^T + Q (in place). See the module docstring."""
    for k in range(rows.shape[0]):
        r = rows[k]
        w, h = mean[r, 2], mean[r, 3]
        for i in range(4):
            mean[r, i] += dt * mean[r, i + 4]
        p = cov[r]
        # F P F^T written out by blocks (pp, pv, vp, vv): F only adds dt * velocity rows/cols to the position ones.
        for i in range(4):
            for j in range(8):
                p[i, j] += dt * p[i + 4, j]
        for i in range(8):
            for j in range(4):
                p[i, j] += dt * p[i, j + 4]
        for i in range(4):
            s = _size_scale(w, h, i)
            p[i, i] += dt * (std_pos[i] * s) ** 2
            p[i + 4, i + 4] += dt * (std_vel[i] * s) ** 2


@njit(cache=True)
def kalman_update(mean, cov, rows, meas, std_meas):
    """Correct ``rows`` with measurements ``meas`` (K, 4) cxcywh pixels (in place); std_meas: (4,) float64 weights.

    S = H P H^T + R, K = P H^T S^-1, x <- x + K (z - H x), P <- P - K H P, solved with a 4x4 Cholesky factor.
    """
    S = np.empty((4, 4))  # scratch, reused for every row
    L = np.zeros((4, 4))
    X = np.empty((4, 8))
    y = np.empty(4)
    innov = np.empty(4)
    top = np.empty((4, 8))
    for k in range(rows.shape[0]):
        r = rows[k]
        p = cov[r]
        w, h = mean[r, 2], mean[r, 3]
        # innovation covariance S (4x4) and its Cholesky factor L (lower)
        for i in range(4):
            for j in range(4):
                S[i, j] = p[i, j]
            S[i, i] += (std_meas[i] * _size_scale(w, h, i)) ** 2
        for i in range(4):
            for j in range(i + 1):
                acc = S[i, j]
                for q in range(j):
                    acc -= L[i, q] * L[j, q]
                if i == j:
                    L[i, i] = np.sqrt(acc)
                else:
                    L[i, j] = acc / L[j, j]
        # X = S^-1 P[:4, :]  (4x8); the Kalman gain is X^T because S and P are symmetric
        for c in range(8):
            for i in range(4):
                acc = p[i, c]
                for q in range(i):
                    acc -= L[i, q] * y[q]
                y[i] = acc / L[i, i]
            for i in range(3, -1, -1):
                acc = y[i]
                for q in range(i + 1, 4):
                    acc -= L[q, i] * X[q, c]
                X[i, c] = acc / L[i, i]
        for i in range(4):
            innov[i] = np.float64(meas[k, i]) - mean[r, i]
        for i in range(8):
            acc = 0.0
            for q in range(4):
                acc += X[q, i] * innov[q]
            mean[r, i] += acc
        # P <- P - X^T P[:4, :], then re-symmetrise against round-off drift
        top[:, :] = p[:4, :]
        for i in range(8):
            for j in range(8):
                acc = 0.0
                for q in range(4):
                    acc += X[q, i] * top[q, j]
                p[i, j] -= acc
        for i in range(8):
            for j in range(i + 1, 8):
                v = 0.5 * (p[i, j] + p[j, i])
                p[i, j] = v
                p[j, i] = v
