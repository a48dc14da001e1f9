"""The statistics of a canary / A-B comparison against values worked out by hand and
against independent computations (a contingency table's chi-square, all pairs of an AUC,
a seeded bootstrap)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from streams.updater.comparison import auc, bootstrap_auc, decide, delong, mean_difference, two_proportions


def test_two_proportions_matches_the_textbook_computation() -> None:
    # 45 of 100 right against 56 of 100: pooled p = 101/200, se = sqrt(p (1 - p) (1/100 + 1/100))
    r = two_proportions(45, 100, 56, 100)
    pooled = 101 / 200
    se = math.sqrt(pooled * (1 - pooled) * 0.02)
    assert r.baseline == 0.45 and r.candidate == 0.56
    assert r.difference == pytest.approx(0.11)
    assert r.statistic == pytest.approx(0.11 / se) == pytest.approx(1.5557, abs=1e-4)
    assert r.p_value == pytest.approx(0.1198, abs=1e-4)


def test_two_proportions_z_squared_is_the_uncorrected_chi_square_of_the_table() -> None:
    r = two_proportions(430, 500, 398, 480)
    chi2, p, _, _ = stats.chi2_contingency([[430, 70], [398, 82]], correction=False)
    assert r.statistic ** 2 == pytest.approx(chi2)
    assert r.p_value == pytest.approx(p)
    assert r.difference < 0 and not r.improves


def test_two_proportions_of_constant_samples() -> None:
    assert two_proportions(100, 100, 100, 100).p_value == 1.0
    assert two_proportions(0, 100, 100, 100).p_value < 1e-40
    assert mean_difference([1.0, 1.0], [2.0, 2.0]).p_value == 0.0  # no variance, different means
    assert mean_difference([1.0, 1.0], [1.0, 1.0]).p_value == 1.0
    with pytest.raises(ValueError, match="at least one pair"):
        two_proportions(0, 0, 1, 1)


def test_delong_matches_a_hand_computation() -> None:
    # a: positives 0.9, 0.7, 0.4; negatives 0.6, 0.4, 0.1 (one tie at 0.4)
    #    V10 = [1, 1, 1/2], V01 = [2/3, 5/6, 1]: AUC 5/6; var = (1/12)/3 + (1/36)/3 = 1/27
    # b: positives 0.8, 0.3; negatives 0.5, 0.2
    #    V10 = [1, 1/2], V01 = [1/2, 1]: AUC 3/4; var = (1/8)/2 + (1/8)/2 = 1/8
    r = delong([1, 1, 1, 0, 0, 0], [0.9, 0.7, 0.4, 0.6, 0.4, 0.1], [1, 1, 0, 0], [0.8, 0.3, 0.5, 0.2])
    assert r.baseline == pytest.approx(5 / 6) and r.candidate == pytest.approx(3 / 4)
    z = (3 / 4 - 5 / 6) / math.sqrt(1 / 27 + 1 / 8)
    assert r.statistic == pytest.approx(z)
    assert r.p_value == pytest.approx(2 * stats.norm.sf(abs(z)))


def _pairwise_auc(positive: np.ndarray, scores: np.ndarray) -> float:
    pos, neg = scores[positive], scores[~positive]
    wins = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(wins / (len(pos) * len(neg)))


def _sample(rng: np.random.Generator, n: int, separation: float) -> tuple[np.ndarray, np.ndarray]:
    positive = rng.random(n) < 0.4
    scores = np.round(1 / (1 + np.exp(-(rng.normal(0, 1, n) + separation * positive))), 2)  # rounded: ties
    return positive, scores


def test_auc_equals_the_share_of_positive_negative_pairs_ranked_right() -> None:
    rng = np.random.default_rng(3)
    for _ in range(5):
        positive, scores = _sample(rng, 300, 1.0)
        assert auc(positive, scores) == pytest.approx(_pairwise_auc(positive, scores))


def test_delong_and_a_seeded_bootstrap_agree() -> None:
    rng = np.random.default_rng(11)
    a, b = _sample(rng, 600, 1.0), _sample(rng, 500, 1.6)
    d = delong(*a, *b)
    boot = bootstrap_auc(*a, *b, rounds=1500, seed=7)
    assert boot.difference == pytest.approx(d.difference)
    se_delong, se_boot = d.difference / d.statistic, boot.difference / boot.statistic
    assert se_boot == pytest.approx(se_delong, rel=0.1)
    assert d.p_value < 0.01 and boot.p_value < 0.01 and d.improves
    assert bootstrap_auc(*a, *b, rounds=200, seed=7) == bootstrap_auc(*a, *b, rounds=200, seed=7)  # deterministic


def test_delong_false_alarm_rate_is_near_its_level() -> None:
    """Two versions equally good: p < 0.05 in about 5 % of 400 seeded splits."""
    rng = np.random.default_rng(5)
    alarms = sum(delong(*_sample(rng, 400, 1.0), *_sample(rng, 400, 1.0)).p_value < 0.05 for _ in range(400))
    assert 8 <= alarms <= 36


def test_delong_needs_both_classes() -> None:
    with pytest.raises(ValueError, match="both classes"):
        delong([1, 1], [0.2, 0.3], [1, 0], [0.2, 0.3])


def test_mean_difference_is_welchs_statistic() -> None:
    rng = np.random.default_rng(2)
    a, b = rng.exponential(1.0, 400), rng.exponential(1.2, 300)
    r = mean_difference(a, b)
    assert r.statistic == pytest.approx(stats.ttest_ind(b, a, equal_var=False).statistic)
    assert not r.higher_is_better and (r.improves == (r.difference < 0))


def test_decide_calls_worse_first_and_corrects_for_several_metrics() -> None:
    better_acc = two_proportions(800, 1000, 850, 1000)  # p ~ 0.004
    worse_acc = two_proportions(850, 1000, 800, 1000)
    assert decide([better_acc], 0.01) == "better"
    assert decide([worse_acc], 0.01) == "worse"
    assert decide([better_acc], 0.001) == "inconclusive"
    flat = two_proportions(800, 1000, 800, 1000)
    assert decide([better_acc, flat], 0.005) == "inconclusive"  # tested at 0.0025 each
    assert decide([better_acc, worse_acc], 0.05) == "worse"
    assert decide([], 0.05) == "inconclusive"
