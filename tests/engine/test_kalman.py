"""engine.track.kalman: the batched in-place kernels equal a per-track textbook Kalman filter written in numpy."""
import numpy as np

from engine.track.kalman import kalman_initiate, kalman_predict, kalman_update

W_POS = np.array([0.05, 0.05, 0.025, 0.025])
W_VEL = np.array([1 / 160, 1 / 160, 1 / 320, 1 / 320])
W_MEAS = np.full(4, 0.1)


def _scale(x):
    w, h = max(x[2], 1.0), max(x[3], 1.0)
    return np.array([w, h, w, h])


def ref_predict(x, P, dt):
    F = np.eye(8)
    F[:4, 4:] = dt * np.eye(4)
    s = _scale(x)
    Q = dt * np.diag(np.concatenate([(W_POS * s) ** 2, (W_VEL * s) ** 2]))
    return F @ x, F @ P @ F.T + Q


def ref_update(x, P, z):
    H = np.hstack([np.eye(4), np.zeros((4, 4))])
    R = np.diag((W_MEAS * _scale(x)) ** 2)
    S = H @ P @ H.T + R
    K = P @ H.T @ np.linalg.inv(S)
    return x + K @ (z - H @ x), (np.eye(8) - K @ H) @ P


def _started(rng, cap, rows):
    mean, cov = np.zeros((cap, 8)), np.zeros((cap, 8, 8))
    z0 = np.column_stack([rng.uniform(50, 500, (len(rows), 2)), rng.uniform(10, 200, (len(rows), 2))])
    kalman_initiate(mean, cov, rows, z0, W_POS, W_VEL)
    return mean, cov, z0


def test_initiate():
    rng = np.random.default_rng(0)
    mean, cov, z0 = _started(rng, 5, np.array([1, 3]))
    np.testing.assert_array_equal(mean[[1, 3], :4], z0)
    assert (mean[:, 4:] == 0).all() and (mean[[0, 2, 4]] == 0).all()
    s = _scale(z0[0])
    np.testing.assert_allclose(np.diag(cov[1]), np.concatenate([(2 * W_POS * s) ** 2, (10 * W_VEL * s) ** 2]))
    assert np.count_nonzero(cov[1] - np.diag(np.diag(cov[1]))) == 0


def test_batched_equals_per_track_reference():
    rng = np.random.default_rng(1)
    cap, rows = 9, np.array([0, 2, 3, 7], np.int64)
    mean, cov, z0 = _started(rng, cap, rows)
    ref = {r: (mean[r].copy(), cov[r].copy()) for r in rows}
    untouched = np.setdiff1d(np.arange(cap), rows)
    mean[untouched] = 7.0  # sentinel values the kernels must not touch
    cov[untouched] = 3.0
    vel = rng.normal(0, 4, (len(rows), 4))
    for step in range(40):
        dt = 1.0 if step % 5 else 2.0
        kalman_predict(mean, cov, rows, dt, W_POS, W_VEL)
        for r in rows:
            ref[r] = ref_predict(*ref[r], dt)
        sub = rows[rng.random(len(rows)) < 0.7]  # some tracks unmatched this step
        k = np.searchsorted(rows, sub)
        z = z0[k] + vel[k] * (step + 1) + rng.normal(0, 2, (len(sub), 4))
        kalman_update(mean, cov, sub, z, W_MEAS)
        for r, zr in zip(sub, z):
            ref[r] = ref_update(*ref[r], zr)
        for r in rows:
            np.testing.assert_allclose(mean[r], ref[r][0], rtol=1e-9, atol=1e-7)
            np.testing.assert_allclose(cov[r], ref[r][1], rtol=1e-7, atol=1e-6)
    assert (mean[untouched] == 7.0).all() and (cov[untouched] == 3.0).all()


def test_covariance_stays_symmetric_positive_definite():
    rng = np.random.default_rng(2)
    rows = np.arange(6, dtype=np.int64)
    mean, cov, z0 = _started(rng, 6, rows)
    for i in range(500):
        kalman_predict(mean, cov, rows, 1.0, W_POS, W_VEL)
        kalman_update(mean, cov, rows, z0 + rng.normal(0, 3, z0.shape), W_MEAS)
    np.testing.assert_allclose(cov, cov.transpose(0, 2, 1), atol=0)
    assert (np.linalg.eigvalsh(cov) > 0).all()


def test_constant_velocity_is_learned():
    rows = np.array([0], np.int64)
    mean, cov = np.zeros((1, 8)), np.zeros((1, 8, 8))
    kalman_initiate(mean, cov, rows, np.array([[100.0, 100, 40, 80]]), W_POS, W_VEL)
    for f in range(1, 60):
        kalman_predict(mean, cov, rows, 1.0, W_POS, W_VEL)
        kalman_update(mean, cov, rows, np.array([[100.0 + 3 * f, 100 - 1 * f, 40, 80]]), W_MEAS)
    np.testing.assert_allclose(mean[0, 4:6], [3.0, -1.0], atol=0.05)
    np.testing.assert_allclose(mean[0, :4], [277, 41, 40, 80], atol=0.5)


def test_empty_rows_are_a_no_op():
    mean, cov = np.ones((3, 8)), np.tile(np.eye(8), (3, 1, 1))
    e = np.zeros(0, np.int64)
    kalman_predict(mean, cov, e, 1.0, W_POS, W_VEL)
    kalman_update(mean, cov, e, np.zeros((0, 4)), W_MEAS)
    kalman_initiate(mean, cov, e, np.zeros((0, 4)), W_POS, W_VEL)
    assert (mean == 1).all() and (cov == np.eye(8)).all()
