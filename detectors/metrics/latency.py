"""Rolling latency quantiles (p50/p95/p99) and confidence statistics."""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from detectors.base import Domain, require
from detectors.metrics.base import RollingMetric

__all__ = ["ConfidenceStats", "RollingQuantile"]


class RollingQuantile(RollingMetric):
    """The ``q`` quantile (linear interpolation) of the window, e.g. latency p99 in seconds.

    >>> from detectors.metrics import RollingQuantile
    >>> p95 = RollingQuantile(q=0.95, window=1000)
    >>> p95.update_many([0.010 * i for i in range(1, 101)])
    >>> round(p95.value, 4)
    0.9505
    """

    name: ClassVar[str] = "quantile"
    _domains: ClassVar[tuple[Domain, ...]] = ("real",)

    def __init__(self, q: float = 0.5, window: int = 1000) -> None:
        self.q = q
        ok = isinstance(q, (int, float)) and not isinstance(q, bool) and 0 <= q <= 1
        require(self.name, "q", q, ok, "a float in [0, 1]")
        super().__init__(window)

    def _compute(self, window: np.ndarray) -> float:
        return float(np.quantile(window, self.q))


class ConfidenceStats(RollingMetric):
    """Mean (``value``) and standard deviation (``std``) of prediction confidences in [0, 1].

    >>> from detectors.metrics import ConfidenceStats
    >>> stats = ConfidenceStats(window=100)
    >>> stats.update_many([0.9, 0.7, 0.8])
    >>> round(stats.value, 3), round(stats.std, 3)
    (0.8, 0.082)
    """

    name: ClassVar[str] = "confidence"
    _domains: ClassVar[tuple[Domain, ...]] = ("unit_interval",)

    def _compute(self, window: np.ndarray) -> float:
        return float(np.mean(window))

    @property
    def std(self) -> float:
        """Population standard deviation of the window (``nan`` while it is empty)."""
        if len(self._ring) == 0:
            return float("nan")
        return float(np.std(self._ring.ordered()))
