"""Family-wise error control when many features are tested at once.

Testing 50 features each at ``p < 0.01`` gives about one false alarm every other
evaluation. ``bonferroni`` gives the per-feature level that keeps the chance of *any* false
alarm per evaluation at ``alpha``; ``holm`` is the uniformly more powerful step-down version,
applied to the p-values of one evaluation.
"""

from __future__ import annotations

from collections.abc import Mapping

from detectors.base import require, require_probability

__all__ = ["bonferroni", "holm"]


def bonferroni(alpha: float, n_tests: int) -> float:
    """Per-test p-value threshold keeping the family-wise error rate at ``alpha``.

    Use it as ``p_value_below`` of each of ``n_tests`` detectors.

    >>> bonferroni(0.01, 20)
    0.0005
    """
    require_probability("bonferroni", "alpha", alpha)
    ok = isinstance(n_tests, int) and not isinstance(n_tests, bool) and n_tests >= 1
    require("bonferroni", "n_tests", n_tests, ok, "an int >= 1")
    return alpha / n_tests


def holm(p_values: Mapping[str, float], alpha: float) -> dict[str, bool]:
    """Holm's step-down procedure: which features drifted, family-wise error rate ``alpha``.

    Sort p-values ascending; reject while ``p_(i) <= alpha / (m - i)`` (i from 0), stop at the
    first acceptance. ``None`` or NaN p-values (not evaluated) are never rejected and do not
    count in ``m``.

    >>> holm({"age": 0.001, "income": 0.012, "country": 0.04, "device": 0.3}, alpha=0.05)
    {'age': True, 'income': True, 'country': False, 'device': False}
    """
    require_probability("holm", "alpha", alpha)
    tested = {k: p for k, p in p_values.items() if p is not None and p == p}
    ranked = sorted(tested, key=lambda k: tested[k])
    decision = {key: False for key in p_values}
    for i, key in enumerate(ranked):
        if tested[key] > alpha / (len(ranked) - i):
            break
        decision[key] = True
    return decision
