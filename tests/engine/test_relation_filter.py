"""Relation filter: hysteresis, minimum duration, holding through unobserved frames, flicker accounting."""
import numpy as np
import pytest

from engine.config import ConfigError, FilterConfig
from engine.relate.relation_filter import ENDED, STARTED, RelationFilter


def feed(f, seq, dt=0.1, rows=np.array([0])):
    events = []
    for k, s in enumerate(seq):
        if s is None:  # pair not observed in this frame
            continue
        events += f.update(rows, np.array([[s]], np.float32), k * dt)
    return events


def test_start_needs_min_duration_and_reports_first_crossing():
    f = RelationFilter(FilterConfig(tau_s=0.0, enter=0.6, exit=0.4, min_duration_s=0.3), 4, 1)
    ev = feed(f, [0.1, 0.7, 0.8, 0.9, 0.9, 0.9])
    assert [e.kind for e in ev] == [STARTED]
    assert ev[0].t == pytest.approx(0.4) and ev[0].start_time == pytest.approx(0.1)


def test_short_spike_does_not_start():
    f = RelationFilter(FilterConfig(tau_s=0.0, enter=0.6, exit=0.4, min_duration_s=0.3), 4, 1)
    assert feed(f, [0.1, 0.9, 0.9, 0.1, 0.9, 0.1]) == []


def test_hysteresis_band_keeps_relation():
    f = RelationFilter(FilterConfig(tau_s=0.0, enter=0.6, exit=0.4, min_duration_s=0.0), 4, 1)
    ev = feed(f, [0.7, 0.5, 0.45, 0.55, 0.41, 0.3])
    assert [e.kind for e in ev] == [STARTED, ENDED]
    assert ev[1].t == pytest.approx(0.5)


def test_unobserved_frames_hold_state():
    f = RelationFilter(FilterConfig(tau_s=0.0, enter=0.6, exit=0.4, min_duration_s=0.0), 4, 1)
    ev = feed(f, [0.9, None, None, None, 0.9])
    assert [e.kind for e in ev] == [STARTED]
    assert f.active[0, 0]


def test_smoothing_and_flicker_lower_than_raw():
    rng = np.random.default_rng(0)
    truth = (np.arange(600) // 60) % 2 == 0           # 6 s on / 6 s off at 10 fps
    noisy = np.clip(np.where(truth, 0.75, 0.25) + rng.normal(0, 0.2, 600), 0, 1)
    raw = RelationFilter(FilterConfig(tau_s=0.0, enter=0.5, exit=0.5, min_duration_s=0.0), 1, 1)
    smooth = RelationFilter(FilterConfig(), 1, 1)
    for f in (raw, smooth):
        feed(f, noisy.tolist())
    assert smooth.flicker_rate() < raw.flicker_rate() / 3
    assert smooth.toggles >= 9  # still follows the real changes (10 segments -> >= 9 toggles)


def test_end_rows_ends_active_and_clears():
    f = RelationFilter(FilterConfig(tau_s=0.0, min_duration_s=0.0), 4, 2)
    f.update(np.array([1, 2]), np.array([[0.9, 0.1], [0.9, 0.9]], np.float32), 0.0)
    ev = f.end_rows(np.array([2]), 1.0)
    assert sorted((e.row, e.predicate, e.kind) for e in ev) == [(2, 0, ENDED), (2, 1, ENDED)]
    assert not f.active[2].any() and f.active[1, 0]


def test_bad_config():
    with pytest.raises(ConfigError, match="filter: need 0 <= exit <= enter <= 1"):
        FilterConfig(enter=0.3, exit=0.5)


# Thresholds and scores below are exact binary fractions, so float32 smoothing cannot move them off the boundary.
def test_score_exactly_at_enter_starts():
    f = RelationFilter(FilterConfig(tau_s=0.0, enter=0.75, exit=0.5, min_duration_s=0.0), 2, 1)
    ev = feed(f, [0.5, 0.75])
    assert [(e.kind, e.t) for e in ev] == [(STARTED, pytest.approx(0.1))] and f.active[0, 0]


def test_score_exactly_at_exit_holds_and_below_ends():
    f = RelationFilter(FilterConfig(tau_s=0.0, enter=0.75, exit=0.5, min_duration_s=0.0), 2, 1)
    ev = feed(f, [1.0, 0.5, 0.5, 0.25])
    assert [(e.kind, round(e.t, 6)) for e in ev] == [(STARTED, 0.0), (ENDED, 0.3)]


def test_pending_at_exactly_enter_keeps_its_start_time():
    f = RelationFilter(FilterConfig(tau_s=0.0, enter=0.75, exit=0.5, min_duration_s=0.2), 2, 1)
    ev = feed(f, [0.75, 0.75, 0.75])
    assert [e.kind for e in ev] == [STARTED] and ev[0].start_time == 0.0 and ev[0].t == pytest.approx(0.2)


def test_first_observation_initialises_the_smoothing():
    """With a long time constant the first score is taken as is (not blended with a zero prior), so a confident
    first observation starts at once; a row reset later starts afresh the same way."""
    f = RelationFilter(FilterConfig(tau_s=10.0, enter=0.75, exit=0.5, min_duration_s=0.0), 2, 1)
    ev = f.update(np.array([0]), np.array([[0.875]], np.float32), 5.0)
    assert f.smoothed[0, 0] == 0.875 and [e.kind for e in ev] == [STARTED]
    # the second observation is smoothed: a = 1 - exp(-0.1 / 10)
    f.update(np.array([0]), np.array([[0.0]], np.float32), 5.1)
    assert f.smoothed[0, 0] == pytest.approx(0.875 * np.exp(-0.01), rel=1e-6)
    f.end_rows(np.array([0]), 5.2)
    ev = f.update(np.array([0]), np.array([[0.875]], np.float32), 9.0)
    assert f.smoothed[0, 0] == 0.875 and [e.kind for e in ev] == [STARTED]


def test_uncertainty_is_the_latest_frames_not_smoothed_and_rides_on_events():
    """The score is smoothed, the model's uncertainty is kept as given at the row's latest observation (what the
    engine publishes beside the score); a model without one (None) leaves NaN; ending or resetting clears it."""
    f = RelationFilter(FilterConfig(tau_s=10.0, enter=0.5, exit=0.4, min_duration_s=0.0), 3, 2)
    rows = np.array([0, 2])
    ev = f.update(rows, np.array([[0.9, 0.1], [0.1, 0.1]], np.float32), 0.0,
                  np.array([[0.25, 0.5], [0.75, 1.0]], np.float32))
    assert [(e.kind, e.row, e.predicate, e.uncertainty) for e in ev] == [(STARTED, 0, 0, 0.25)]
    f.update(rows, np.array([[0.0, 0.0], [0.0, 0.0]], np.float32), 0.1,
             np.array([[0.125, 0.5], [0.0, 1.0]], np.float32))
    assert f.smoothed[0, 0] > 0.5 and f.uncertainty[0, 0] == 0.125   # score smoothed, uncertainty as given
    assert np.isnan(f.uncertainty[1]).all()                          # never observed
    f.update(np.array([2]), np.array([[0.0, 0.0]], np.float32), 0.2)  # no uncertainty output
    assert np.isnan(f.uncertainty[2]).all() and f.uncertainty[0, 0] == 0.125  # an unobserved row keeps its own
    ended = f.end_rows(np.array([0]), 0.3)
    assert [(e.kind, e.uncertainty) for e in ended] == [(ENDED, 0.125)] and np.isnan(f.uncertainty[0]).all()
