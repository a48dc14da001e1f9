"""Chi-squared test of a categorical feature's window against the reference counts."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from detectors._categorical import CategoricalWindowedDetector
from detectors.base import NamedThresholds

__all__ = ["ChiSquared"]


class ChiSquared(NamedThresholds, CategoricalWindowedDetector):
    """Chi-squared test of homogeneity between the reference and the last ``window`` values.

    Every ``step`` values, the 2 x k table (reference counts, window counts) over the
    reference categories plus ``"other"`` gets Pearson's chi-squared test of homogeneity
    (as ``scipy.stats.chi2_contingency`` without continuity correction; buckets empty on
    both sides are dropped). Unseen categories
    count in ``"other"``; ``None`` is the category ``"null"``.

    ``statistic`` and ``p_value`` are the p-value; drift when it is below ``p_value_below``,
    warning below ``warning_p_value_below`` (direction ``"below"``).

    **False alarms.** Under no drift the p-value is uniform, so each evaluation false-alarms
    with probability ``p_value_below``; evaluations every ``step`` values give an expected run
    length of roughly ``step / p_value_below`` values (longer, since overlapping windows make
    alarms cluster): 100,000 values at the defaults. When many features are tested, set
    ``p_value_below`` with :mod:`detectors.multiple_testing`.

    Parameters
    ----------
    reference
        Reference sample of categories (or call ``fit`` later).
    window
        Number of recent values tested.
    step
        Evaluate after every ``step``-th value of the stream.
    p_value_below
        Drift when the p-value is below this.
    warning_p_value_below
        Warning when the p-value is below this (``None``: no warnings).
    max_categories
        Reference categories kept; the rest go to ``"other"``.

    Examples
    --------
    >>> import numpy as np
    >>> from detectors.chi2 import ChiSquared
    >>> rng = np.random.default_rng(42)
    >>> reference = rng.choice(["a", "b", "c"], 3000, p=[0.5, 0.3, 0.2])
    >>> detector = ChiSquared(reference=reference, window=500, step=250)
    >>> detector.update_many(rng.choice(["a", "b", "c"], 1000, p=[0.5, 0.3, 0.2])).tolist()
    []
    >>> detector.update_many(rng.choice(["a", "b", "c"], 1000, p=[0.3, 0.3, 0.4])).tolist()
    [249, 499, 749, 999]
    """

    name: ClassVar[str] = "chi2"
    direction: ClassVar[str] = "below"  # type: ignore[assignment]
    _threshold_param: ClassVar[str] = "p_value_below"
    _warning_param: ClassVar[str] = "warning_p_value_below"

    def __init__(
        self,
        reference: Any = None,
        window: int = 1000,
        step: int = 100,
        p_value_below: float = 0.001,
        warning_p_value_below: float | None = 0.01,
        max_categories: int = 50,
    ) -> None:
        self.window = window
        self.step = step
        self.p_value_below = p_value_below
        self.warning_p_value_below = warning_p_value_below
        self.max_categories = max_categories
        self._check_window()
        self._check_thresholds()
        self._check_categories()
        self._start(reference)

    def _test(self, window: np.ndarray) -> tuple[float, float | None]:
        from scipy import special  # on first use (detectors.deferred)

        table = np.vstack([self._require_reference()["counts"], self._window_counts(window)])
        table = table[:, table.sum(axis=0) > 0].astype(np.float64)
        if table.shape[1] < 2:
            return 1.0, 1.0
        expected = np.outer(table.sum(axis=1), table.sum(axis=0)) / table.sum()
        statistic = float(np.sum((table - expected) ** 2 / expected))
        p_value = float(special.chdtrc(table.shape[1] - 1, statistic))
        return p_value, p_value
