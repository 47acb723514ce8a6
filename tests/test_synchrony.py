"""Windowed lagged cross-correlation and its surrogate baseline, on hand-made and real MEA data."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from ipr.synchrony import (
    SeriesTooShort,
    SynchronyError,
    _shuffle_segments,
    read_mea_txt,
    surrogate_baseline,
    synchrony,
)
from tests.conftest import corpus


def naive_ccf(x: np.ndarray, y: np.ndarray, win: int, lag: int, step: int) -> np.ndarray:
    """rMEA's MEAccf loop written out literally: one np.corrcoef per window and lag."""
    n_windows = math.ceil((len(x) - win - lag + 1) / step)
    out = np.full((n_windows, 2 * lag + 1), np.nan)
    for k in range(n_windows):
        xw, yw = x[k * step : k * step + win + lag], y[k * step : k * step + win + lag]
        if max(np.isnan(xw).sum(), np.isnan(yw).sum()) > len(xw) / 2:
            continue
        for column, d in enumerate(range(-lag, lag + 1)):
            a, b = (xw[:win], yw[d : d + win]) if d >= 0 else (xw[-d : -d + win], yw[:win])
            both = ~np.isnan(a) & ~np.isnan(b)
            a, b = a[both], b[both]
            if len(a) >= 3 and a.std() > 0 and b.std() > 0:
                out[k, column] = np.corrcoef(a, b)[0, 1]
    return out


def as_abs_z(r: np.ndarray) -> np.ndarray:
    limit = math.tanh(10.0)
    return np.abs(np.arctanh(np.clip(r, -limit, limit)))


# --- hand-worked series ----------------------------------------------------------------------


def test_alternating_series_give_exact_correlations_per_lag():
    # 1 Hz, 4 s windows, ±1 s lag, 2 s step: same-phase at lag 0 (r = 1), opposite at ±1 (r = −1).
    x = [0.0, 1.0] * 6
    result = synchrony(x, x, 1.0, window_s=4, step_s=2, max_lag_s=1, fisher_z=False, absolute=False)
    assert result.n_windows == 4  # windows start at 0, 2, 4, 6 s; each reads 5 samples of 12
    assert result.lags_ms == [-1000, 0, 1000]
    np.testing.assert_allclose(result.matrix, [[-1.0, 1.0, -1.0]] * 4)
    assert result.grand_mean == pytest.approx(-1 / 3)
    assert result.lag_zero_mean == pytest.approx(1.0)
    assert result.left_leads_mean == pytest.approx(-1.0)
    assert result.peak_mean == pytest.approx(1.0)
    assert result.best_lag_median_ms == 0
    assert [p.t_ms for p in result.series] == [2000, 4000, 6000, 8000]


def test_a_delayed_copy_peaks_at_its_delay_and_the_sign_says_who_leads():
    rng = np.random.default_rng(5)
    left = rng.normal(size=25 * 120)
    right = np.concatenate([rng.normal(size=50), left[:-50]])  # right repeats left 2 s later
    result = synchrony(left, right, 25.0)
    assert result.best_lag_median_ms == 2000
    assert result.peak_mean == pytest.approx(10.0)  # r = 1 → Fisher z capped at 10
    assert result.left_leads_mean > result.right_leads_mean
    mirrored = synchrony(right, left, 25.0)
    assert mirrored.best_lag_median_ms == -2000


def test_fisher_z_and_absolute_values_follow_the_settings():
    rng = np.random.default_rng(2)
    x = rng.normal(size=400)
    kwargs = dict(window_s=10, step_s=10, max_lag_s=0)
    assert synchrony(x, -x, 10.0, **kwargs).grand_mean == pytest.approx(10.0)
    assert synchrony(x, -x, 10.0, fisher_z=True, absolute=False, **kwargs).grand_mean == (
        pytest.approx(-10.0)
    )
    assert synchrony(x, -x, 10.0, fisher_z=False, absolute=False, **kwargs).grand_mean == (
        pytest.approx(-1.0)
    )


def test_window_centres_and_counts_follow_rmea_at_25_hz():
    x = np.random.default_rng(0).normal(size=25 * 600)
    result = synchrony(x, x[::-1].copy(), 25.0)
    # ceil((15000 − 750 − 125 + 1) / 250) = 57 windows, as MEAccf counts them
    assert result.n_windows == 57
    assert result.series[0].t_ms == 15_000
    assert result.series[1].t_ms == 25_000
    assert (result.window_ms, result.step_ms, result.max_lag_ms) == (30_000, 10_000, 5_000)
    assert len(result.lags_ms) == 251


def test_matches_the_literal_loop_with_missing_and_flat_stretches():
    rng = np.random.default_rng(3)
    x = rng.gamma(2.0, 100.0, size=1500)
    y = 0.5 * np.roll(x, 7) + rng.gamma(2.0, 100.0, size=1500)
    x[rng.random(1500) < 0.15] = np.nan
    y[300:420] = np.nan  # a window with most of it missing
    y[800:1000] = 0.0  # nobody moves: r undefined there
    result = synchrony(x, y, 10.0, window_s=20, step_s=7, max_lag_s=3)
    expected = as_abs_z(naive_ccf(x, y, 200, 30, 70))
    assert np.array_equal(np.isnan(result.matrix), np.isnan(expected))
    np.testing.assert_allclose(result.matrix, expected, rtol=1e-9, atol=1e-9)


def test_constant_series_have_no_synchrony_value():
    flat = np.full(100, 7.0)
    moving = np.arange(100, dtype=float)
    result = synchrony(flat, moving, 1.0, window_s=10, step_s=10, max_lag_s=2)
    assert result.grand_mean is None
    assert result.best_lag_median_ms is None
    assert all(point.value is None for point in result.series)
    json.dumps(result.to_dict())


def test_a_window_mostly_missing_has_no_value_in_the_series():
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=60), rng.normal(size=60)
    x[:8] = np.nan  # 8 of the first window's 12 samples
    result = synchrony(x, y, 1.0, window_s=10, step_s=10, max_lag_s=2)
    assert result.series[0].value is None
    assert all(point.value is not None for point in result.series[1:])


def test_series_exactly_one_window_long_and_one_sample_shorter():
    x = np.random.default_rng(6).normal(size=35)
    assert synchrony(x, x, 1.0, window_s=30, max_lag_s=5).n_windows == 1
    with pytest.raises(SeriesTooShort, match="at least 35 s"):
        synchrony(x[:34], x[:34], 1.0, window_s=30, max_lag_s=5)


def test_bad_input_is_refused_with_named_errors():
    with pytest.raises(SynchronyError, match="same length"):
        synchrony([1.0, 2.0, 3.0], [1.0, 2.0], 1.0)
    with pytest.raises(SynchronyError, match="infinite"):
        synchrony([1.0, math.inf], [1.0, 2.0], 1.0)
    with pytest.raises(SynchronyError, match="rate_hz"):
        synchrony([1.0], [1.0], 0.0)
    with pytest.raises(SynchronyError, match="window_s"):
        synchrony([1.0] * 10, [1.0] * 10, 1.0, window_s=1)


# --- surrogates ------------------------------------------------------------------------------


def test_segment_shuffle_keeps_each_persons_values_and_the_tail():
    series = np.arange(105, dtype=float)
    shuffled = _shuffle_segments(series, 10, np.random.default_rng(0))
    assert sorted(shuffled) == sorted(series)
    assert list(shuffled[100:]) == [100.0, 101.0, 102.0, 103.0, 104.0]
    blocks = shuffled[:100].reshape(10, 10)
    assert all(list(b) == list(range(int(b[0]), int(b[0]) + 10)) for b in blocks)
    assert not np.array_equal(shuffled, series)


def test_coupled_series_beat_their_surrogates_and_results_repeat_for_a_seed():
    rng = np.random.default_rng(8)
    left = rng.gamma(2.0, 50.0, size=10 * 300)
    right = 0.8 * np.roll(left, 10) + rng.gamma(2.0, 50.0, size=left.size)
    kwargs = dict(window_s=30, step_s=10, max_lag_s=3, segment_s=30)
    result = surrogate_baseline(left, right, 10.0, n=19, seed=1, **kwargs)
    assert result.p_value == pytest.approx(1 / 20)
    assert result.effect_size is not None and result.effect_size > 5
    assert surrogate_baseline(left, right, 10.0, n=19, seed=1, **kwargs) == result
    json.dumps(result.to_dict())


def test_surrogates_refuse_a_series_shorter_than_two_segments():
    x = np.random.default_rng(1).normal(size=50)
    with pytest.raises(SeriesTooShort, match="two 30 s segments"):
        surrogate_baseline(x, x, 1.0, n=5, window_s=20, max_lag_s=2, segment_s=30)


# --- real psychotherapy data (rMEA) ----------------------------------------------------------

# Share of samples with any motion (patient, therapist) as printed by rMEA's readMEA in its README.
RMEA_MOVEMENT_PERCENT = {
    "normal/200_01.txt": (50.1, 59.5),
    "normal/201_01.txt": (50.2, 74.7),
    "normal/202_01.txt": (44.6, 47.1),
    "normal/203_01.txt": (97.4, 73.1),
    "normal/204_01.txt": (66.4, 55.7),
    "normal/205_01.txt": (84.3, 69.9),
    "normal/206_01.txt": (30.3, 34.4),
    "normal/207_01.txt": (52.5, 42.3),
    "normal/208_01.txt": (76.6, 44.2),
    "normal/209_01.txt": (72.4, 63.1),
    "dropout/100_01.txt": (85.0, 97.2),
    "dropout/101_01.txt": (84.2, 88.0),
    "dropout/102_01.txt": (90.9, 95.1),
    "dropout/103_01.txt": (72.5, 90.7),
    "dropout/104_01.txt": (72.5, 73.9),
    "dropout/105_01.txt": (69.2, 83.5),
    "dropout/106_01.txt": (76.7, 66.1),
    "dropout/107_01.txt": (95.4, 79.5),
    "dropout/108_01.txt": (80.1, 96.5),
    "dropout/109_01.txt": (85.0, 87.3),
}


def rmea_or_skip() -> Path:
    return corpus("motion_energy/rMEA_extdata")


@pytest.mark.corpus
def test_reader_agrees_with_rmea_on_every_session():
    root = rmea_or_skip()
    for name, (patient_pct, therapist_pct) in RMEA_MOVEMENT_PERCENT.items():
        patient, therapist = read_mea_txt(root / name)
        assert patient.size == therapist.size == 15_000  # 10 min at 25 Hz
        assert round(100 * float((patient > 0).mean()), 1) == patient_pct
        assert round(100 * float((therapist > 0).mean()), 1) == therapist_pct


@pytest.mark.corpus
def test_real_session_matches_the_literal_loop_and_the_documented_figures():
    patient, therapist = read_mea_txt(rmea_or_skip() / "normal" / "200_01.txt")
    result = synchrony(patient, therapist, 25.0)
    expected = as_abs_z(naive_ccf(patient[:4000], therapist[:4000], 750, 125, 250))
    np.testing.assert_allclose(result.matrix[: len(expected)], expected, rtol=1e-8, atol=1e-10)
    # The figures quoted in docs/timeline.md for dyad 200.
    assert result.n_windows == 57
    assert result.grand_mean == pytest.approx(0.0969, abs=5e-5)
    assert result.lag_zero_mean == pytest.approx(0.1234, abs=5e-5)


@pytest.mark.corpus
def test_real_dyads_are_more_in_sync_than_recombined_strangers():
    root = rmea_or_skip()
    sessions = [read_mea_txt(root / name) for name in RMEA_MOVEMENT_PERCENT]
    real = [synchrony(p, t, 25.0).grand_mean for p, t in sessions]
    strangers = [
        synchrony(sessions[i][0], sessions[j][1], 25.0).grand_mean
        for i in range(len(sessions))
        for j in range(len(sessions))
        if i != j
    ]
    assert len(strangers) == 380
    assert np.mean(real) == pytest.approx(0.1291, abs=5e-5)
    assert np.mean(strangers) == pytest.approx(0.1192, abs=5e-5)
