"""The statistics of a canary / A-B comparison: is one served version better than another?

In a traffic split each version scores *different* predictions, so every test here is for
two independent samples:

- **accuracy**: the pooled two-proportion z-test (:func:`two_proportions`);
- **ROC AUC** of a binary problem with scores: DeLong's variance of each version's AUC,
  summed because the samples are independent (:func:`delong`); :func:`bootstrap_auc`
  is a seeded bootstrap of the same difference, the cross-check the tests use;
- **MAE** of a regression: Welch's z-test on the absolute errors (:func:`mean_difference`).

:func:`decide` turns the tests into ``better`` / ``worse`` / ``inconclusive`` for the
candidate. Everything is a pure function of its inputs (no clock, no global random state).

>>> r = two_proportions(45, 100, 56, 100)
>>> round(r.difference, 2), round(r.statistic, 4), round(r.p_value, 4)
(0.11, 1.5557, 0.1198)
>>> decide([r], p_value_below=0.05)
'inconclusive'
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

__all__ = ["DECISIONS", "MetricTest", "auc", "bootstrap_auc", "decide", "delong", "mean_difference", "two_proportions"]

DECISIONS = ("better", "worse", "inconclusive")


@dataclass(frozen=True)
class MetricTest:
    """One metric of both versions and the test of their difference.

    ``difference`` is candidate minus baseline; ``higher_is_better`` says which sign is an
    improvement (accuracy, AUC: yes; MAE: no). ``p_value`` is two-sided."""

    metric: str
    baseline: float
    candidate: float
    difference: float
    statistic: float
    p_value: float
    higher_is_better: bool = True

    @property
    def improves(self) -> bool:
        return (self.difference > 0) == self.higher_is_better and self.difference != 0


def _z_test(metric: str, baseline: float, candidate: float, variance: float, higher_is_better: bool = True) -> MetricTest:
    difference = candidate - baseline
    if variance > 0:
        z = difference / math.sqrt(variance)
        p = float(2.0 * stats.norm.sf(abs(z)))
    else:  # both samples constant: equal values are no evidence, different ones are certain
        z, p = (0.0, 1.0) if difference == 0 else (math.copysign(math.inf, difference), 0.0)
    return MetricTest(metric, baseline, candidate, difference, z, p, higher_is_better)


def two_proportions(successes_a: int, n_a: int, successes_b: int, n_b: int, metric: str = "accuracy") -> MetricTest:
    """Pooled two-proportion z-test of ``b`` (candidate) against ``a`` (baseline).

    >>> r = two_proportions(80, 100, 90, 100)
    >>> round(r.statistic, 3), round(r.p_value, 4)
    (1.98, 0.0477)
    """
    if n_a < 1 or n_b < 1:
        raise ValueError(f"both samples need at least one pair, got n_a={n_a}, n_b={n_b}")
    p_a, p_b = successes_a / n_a, successes_b / n_b
    pooled = (successes_a + successes_b) / (n_a + n_b)
    return _z_test(metric, p_a, p_b, pooled * (1.0 - pooled) * (1.0 / n_a + 1.0 / n_b))


def mean_difference(values_a: Sequence[float], values_b: Sequence[float], metric: str = "mae",
                    higher_is_better: bool = False) -> MetricTest:
    """Welch's z-test of the means of two independent samples (large samples: the normal
    approximation), e.g. the absolute errors of two regressors."""
    a, b = np.asarray(values_a, dtype=float), np.asarray(values_b, dtype=float)
    if len(a) < 2 or len(b) < 2:
        raise ValueError(f"both samples need at least two values, got {len(a)} and {len(b)}")
    return _z_test(metric, float(a.mean()), float(b.mean()),
                   float(a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b)), higher_is_better)


def _components(positive: np.ndarray, scores: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """The AUC and DeLong's structural components: for each positive the share of negatives
    it outscores, for each negative the share of positives that outscore it (ties count half).
    Ranks make it O(n log n) instead of all pairs."""
    pos, neg = scores[positive], scores[~positive]
    m, n = len(pos), len(neg)
    if m == 0 or n == 0:
        raise ValueError(f"ROC AUC needs both classes, got {m} positives and {n} negatives")
    all_ranks = stats.rankdata(np.concatenate([pos, neg]))
    pos_ranks, neg_ranks = all_ranks[:m], all_ranks[m:]
    # a positive's rank among all, minus its rank among positives, counts the negatives below it
    v10 = (pos_ranks - stats.rankdata(pos)) / n
    v01 = 1.0 - (neg_ranks - stats.rankdata(neg)) / m
    return float(v10.mean()), v10, v01


def auc(positive: Sequence[bool], scores: Sequence[float]) -> float:
    """ROC AUC: the chance that a random positive outscores a random negative (ties half).

    >>> auc([True, False, True, False], [0.9, 0.1, 0.4, 0.6])
    0.75
    """
    return _components(np.asarray(positive, dtype=bool), np.asarray(scores, dtype=float))[0]


def _delong_variance(positive: np.ndarray, scores: np.ndarray) -> tuple[float, float]:
    value, v10, v01 = _components(positive, scores)
    var10 = float(v10.var(ddof=1)) if len(v10) > 1 else 0.0
    var01 = float(v01.var(ddof=1)) if len(v01) > 1 else 0.0
    return value, var10 / len(v10) + var01 / len(v01)


def delong(positive_a: Sequence[bool], scores_a: Sequence[float], positive_b: Sequence[bool],
           scores_b: Sequence[float]) -> MetricTest:
    """DeLong's test of two AUCs measured on independent samples: each AUC's variance from
    its structural components (DeLong, DeLong & Clarke-Pearson 1988), the two summed (a
    traffic split has no covariance between the versions)."""
    auc_a, var_a = _delong_variance(np.asarray(positive_a, dtype=bool), np.asarray(scores_a, dtype=float))
    auc_b, var_b = _delong_variance(np.asarray(positive_b, dtype=bool), np.asarray(scores_b, dtype=float))
    return _z_test("roc_auc", auc_a, auc_b, var_a + var_b)


def bootstrap_auc(positive_a: Sequence[bool], scores_a: Sequence[float], positive_b: Sequence[bool],
                  scores_b: Sequence[float], *, rounds: int = 2000, seed: int = 0) -> MetricTest:
    """The same test by a seeded, stratified bootstrap: each sample resampled within its
    classes ``rounds`` times, the difference's standard error taken from the replicates
    (deterministic for a given ``seed``)."""
    rng = np.random.default_rng(seed)

    def replicates(positive: Sequence[bool], scores: Sequence[float]) -> tuple[float, np.ndarray]:
        pos_mask = np.asarray(positive, dtype=bool)
        s = np.asarray(scores, dtype=float)
        pos, neg = s[pos_mask], s[~pos_mask]
        out = np.empty(rounds)
        labels = np.concatenate([np.ones(len(pos), dtype=bool), np.zeros(len(neg), dtype=bool)])
        for i in range(rounds):
            sample = np.concatenate([rng.choice(pos, len(pos)), rng.choice(neg, len(neg))])
            out[i] = _components(labels, sample)[0]
        return auc(pos_mask, s), out

    auc_a, rep_a = replicates(positive_a, scores_a)
    auc_b, rep_b = replicates(positive_b, scores_b)
    return _z_test("roc_auc", auc_a, auc_b, float(np.var(rep_b - rep_a, ddof=1)))


def decide(tests: Sequence[MetricTest], p_value_below: float) -> str:
    """``worse`` when any metric is significantly worse, else ``better`` when any is
    significantly better, else ``inconclusive``. Each of the k metrics is tested at
    ``p_value_below / k`` (Bonferroni), so adding AUC to accuracy does not add false calls.

    >>> worse = MetricTest("accuracy", 0.9, 0.8, -0.1, -3.0, 0.003)
    >>> better = MetricTest("roc_auc", 0.8, 0.9, 0.1, 3.0, 0.003)
    >>> decide([worse, better], 0.01), decide([better], 0.01), decide([better], 0.001)
    ('worse', 'better', 'inconclusive')
    """
    if not tests:
        return "inconclusive"
    level = p_value_below / len(tests)
    significant = [t for t in tests if t.p_value < level]
    if any(not t.improves for t in significant):
        return "worse"
    if significant:
        return "better"
    return "inconclusive"
