"""Status classification and the trend forecast on synthetic series."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from milo_tui.memory.forecast import Forecaster, theil_sen
from milo_tui.memory.status import GREEN, RED, YELLOW, Thresholds, classify

MB = 1_000_000
LIMIT = 1000 * MB
CRITICAL = 850 * MB


@pytest.mark.parametrize("used, expected", [(0, GREEN), (749, GREEN), (750, YELLOW), (849, YELLOW),
                                            (850, RED), (1200, RED)])
def test_classify_boundaries(used, expected):
    assert classify(used * MB, LIMIT, Thresholds()) == expected


def test_classify_hysteresis_keeps_a_state_near_its_threshold():
    t = Thresholds()
    assert classify(840 * MB, LIMIT, t, previous=RED) == RED      # within 2 % below critical
    assert classify(825 * MB, LIMIT, t, previous=RED) == YELLOW
    assert classify(740 * MB, LIMIT, t, previous=YELLOW) == YELLOW
    assert classify(729 * MB, LIMIT, t, previous=YELLOW) == GREEN
    assert classify(840 * MB, LIMIT, t, previous=GREEN) == YELLOW  # rising is never delayed


def test_configurable_thresholds_and_validation():
    assert classify(600 * MB, LIMIT, Thresholds(warning=0.5, critical=0.6)) == RED
    with pytest.raises(ValueError):
        Thresholds(warning=0.9, critical=0.8)


def feed(forecaster, times, values):
    for t, v in zip(times, values):
        forecaster.add(float(t), int(v))


def test_linear_rise_predicts_time_to_critical_and_limit():
    f = Forecaster(window_seconds=30, min_points=5)
    times = np.arange(0, 20, 0.5)
    feed(f, times, 500 * MB + 5 * MB * times)           # 5 MB/s, now at ~597.5 MB
    fc = f.forecast(CRITICAL, LIMIT, horizon=60)
    assert fc.slope_bytes_per_s == pytest.approx(5 * MB, rel=1e-6)
    assert fc.seconds_to_critical == pytest.approx((850 - 597.5) / 5, rel=1e-3)
    assert fc.seconds_to_limit == pytest.approx((1000 - 597.5) / 5, rel=1e-3)
    assert fc.alert  # 50.5 s to critical is inside a 60 s horizon
    assert not f.forecast(CRITICAL, LIMIT, horizon=30).alert


def test_noise_and_spikes_do_not_move_the_trend_much():
    rng = np.random.default_rng(0)
    times = np.arange(0, 30, 0.5)
    values = 400 * MB + 2 * MB * times + rng.normal(0, 3 * MB, times.size)
    values[::7] += 150 * MB  # short-lived allocations
    f = Forecaster(window_seconds=30)
    feed(f, times, values)
    fc = f.forecast(CRITICAL, LIMIT, horizon=600)
    assert fc.slope_bytes_per_s == pytest.approx(2 * MB, rel=0.15)
    expected = (850 - (400 + 2 * 29.5)) / 2
    assert fc.seconds_to_critical == pytest.approx(expected, rel=0.15)
    # A least-squares fit is dragged by the spikes; the median is not.
    slope_ls = np.polyfit(times, values, 1)[0]
    assert abs(fc.slope_bytes_per_s - 2 * MB) < abs(slope_ls - 2 * MB)


@pytest.mark.parametrize("slope", [0.0, -3 * MB])
def test_flat_or_falling_has_no_time_to_anything(slope):
    rng = np.random.default_rng(1)
    times = np.arange(0, 20, 0.5)
    f = Forecaster()
    feed(f, times, 600 * MB + slope * times + rng.normal(0, 1 * MB, times.size))
    fc = f.forecast(CRITICAL, LIMIT, horizon=10_000)
    assert fc.seconds_to_critical is None and fc.seconds_to_limit is None and not fc.alert


def test_too_few_points_gives_no_forecast():
    f = Forecaster(min_points=5)
    feed(f, [0, 1, 2, 3], [1, 2, 3, 4])
    assert f.forecast(CRITICAL, LIMIT, 60).alert is False
    assert f.forecast(CRITICAL, LIMIT, 60).slope_bytes_per_s == 0.0


def test_old_points_leave_the_window():
    f = Forecaster(window_seconds=10)
    feed(f, range(0, 20), [100 * MB + 10 * MB * t for t in range(20)])  # steep rise long ago
    feed(f, range(20, 40), [300 * MB] * 20)                             # flat for the last 20 s
    assert len(f) == 11
    assert f.forecast(CRITICAL, LIMIT, 10_000).seconds_to_critical is None


def test_already_above_critical_means_zero_seconds():
    f = Forecaster()
    feed(f, range(10), [900 * MB + t * MB for t in range(10)])
    fc = f.forecast(CRITICAL, LIMIT, 60)
    assert fc.seconds_to_critical == 0.0 and fc.alert


def test_theil_sen_on_exact_line():
    t = np.arange(10.0)
    slope, intercept = theil_sen(t, 3 * t + 7)
    assert (slope, intercept) == pytest.approx((3.0, 7.0))

ORDER = {GREEN: 0, YELLOW: 1, RED: 2}


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 2 * LIMIT), st.integers(0, 2 * LIMIT), st.sampled_from([None, GREEN, YELLOW, RED]))
def test_classify_is_monotone_in_usage(a, b, previous):
    low, high = sorted((a, b))
    assert ORDER[classify(low, LIMIT, Thresholds(), previous)] <= ORDER[classify(high, LIMIT, Thresholds(), previous)]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, 2 * LIMIT), min_size=5, max_size=60), st.floats(1, 600))
def test_forecast_invariants_on_any_series(values, horizon):
    f = Forecaster()
    feed(f, [0.5 * i for i in range(len(values))], values)
    fc = f.forecast(CRITICAL, LIMIT, horizon)
    for seconds in (fc.seconds_to_critical, fc.seconds_to_limit):
        assert seconds is None or seconds >= 0
    if fc.seconds_to_critical is not None and fc.seconds_to_limit is not None:
        assert fc.seconds_to_critical <= fc.seconds_to_limit
    assert fc.alert == any(s is not None and s <= horizon for s in (fc.seconds_to_critical, fc.seconds_to_limit))


def test_a_clock_going_backwards_is_ignored():
    f = Forecaster()
    feed(f, [0, 1, 2, 3, 4], [1, 2, 3, 4, 5])
    f.add(2.5, 10**12)
    assert len(f) == 5
