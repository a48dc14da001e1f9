"""``load_tests.memory``'s slopes on synthetic RSS samples (no broker): the headline, the
median slope of several windows, is not swung by the allocator's dips and steps that move
least squares and Theil-Sen, and still reads a steady creep."""

from __future__ import annotations

import math

import numpy as np
import pytest

from load_tests.memory import robust_slope_mb_per_million, slope_mb_per_million, window_median_slope_mb_per_million

Samples = list[tuple[float, float, float, float]]
TOTAL = 20_000_000  # events; warm-up is the first half, as in memory.py
WARMUP = TOTAL / 2


def _run(rss_mb: "np.ndarray") -> Samples:
    events = np.linspace(0, TOTAL, rss_mb.size)
    return [(float(e), float(r), 0.0, 0.0) for e, r in zip(events, rss_mb)]


def _flat(seed: int, n: int = 800) -> "np.ndarray":
    return 440.0 + np.random.default_rng(seed).normal(0.0, 0.5, n)


def _after_warmup(n: int, lo: float, hi: float) -> "np.ndarray":
    """Sample indices whose events are in [lo, hi) of the measured half (fractions)."""
    events = np.linspace(0, TOTAL, n)
    return (events >= WARMUP + lo * WARMUP) & (events < WARMUP + hi * WARMUP)


@pytest.mark.parametrize("seed", range(5))
def test_a_dip_at_the_end_of_warm_up_swings_least_squares_not_the_windows(seed: int) -> None:
    rss = _flat(seed)
    dip = _after_warmup(rss.size, 0.0, 0.06)
    rss[dip] -= 25.0  # an arena handed back just after warm-up, taken again a little later
    samples = _run(rss)
    assert abs(slope_mb_per_million(samples, WARMUP)[0]) > 0.5
    assert abs(window_median_slope_mb_per_million(samples, WARMUP)) < 0.15


@pytest.mark.parametrize("seed", range(5))
def test_a_step_half_way_swings_theil_sen_not_the_windows(seed: int) -> None:
    rss = _flat(seed)
    rss[_after_warmup(rss.size, 0.5, 1.01)] -= 12.0
    samples = _run(rss)
    assert robust_slope_mb_per_million(samples, WARMUP) < -0.5
    assert slope_mb_per_million(samples, WARMUP)[0] < -0.5
    assert abs(window_median_slope_mb_per_million(samples, WARMUP)) < 0.15


@pytest.mark.parametrize("creep", [0.6, 1.0, 3.0])
def test_a_steady_creep_is_read_through_dips(creep: float) -> None:
    rss = _flat(11) + creep * np.linspace(0, TOTAL / 1e6, 800)
    for lo in (0.1, 0.45, 0.8):  # dips recovering within a fraction of a window
        rss[_after_warmup(rss.size, lo, lo + 0.04)] -= 20.0
    slope = window_median_slope_mb_per_million(_run(rss), WARMUP)
    assert slope == pytest.approx(creep, abs=0.15)
    assert abs(slope) > 0.5  # above the target: a creep fails it


def test_too_few_samples_after_warm_up_is_no_slope() -> None:
    samples = _run(_flat(1, n=8))  # the last four after warm-up
    assert not math.isnan(window_median_slope_mb_per_million(samples, WARMUP))
    assert math.isnan(window_median_slope_mb_per_million(samples[:6], WARMUP))  # two windows, one slope
    assert math.isnan(window_median_slope_mb_per_million([], WARMUP))
