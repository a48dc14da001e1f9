"""Rolling regression metrics: MAE, MSE, R^2."""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np

from detectors.base import Domain
from detectors.metrics.base import RollingMetric

__all__ = ["RollingMAE", "RollingMSE", "RollingR2"]


class _RegressionMetric(RollingMetric):
    _domains: ClassVar[tuple[Domain, ...]] = ("real", "real")


class RollingMAE(_RegressionMetric):
    """Mean absolute error over the window.

    >>> from detectors.metrics import RollingMAE
    >>> metric = RollingMAE(window=100)
    >>> metric.update_many([1.0, 2.0, 3.0], [1.5, 2.0, 2.0])
    >>> metric.value
    0.5
    """

    name: ClassVar[str] = "mae"

    def _compute(self, window: np.ndarray) -> float:
        return float(np.mean(np.abs(window[:, 0] - window[:, 1])))


class RollingMSE(_RegressionMetric):
    """Mean squared error over the window.

    >>> from detectors.metrics import RollingMSE
    >>> metric = RollingMSE(window=100)
    >>> metric.update_many([1.0, 2.0, 3.0], [1.5, 2.0, 2.0])
    >>> round(metric.value, 4)
    0.4167
    """

    name: ClassVar[str] = "mse"

    def _compute(self, window: np.ndarray) -> float:
        return float(np.mean((window[:, 0] - window[:, 1]) ** 2))


class RollingR2(_RegressionMetric):
    """Coefficient of determination over the window (``nan`` if ``y_true`` is constant).

    >>> from detectors.metrics import RollingR2
    >>> metric = RollingR2(window=100)
    >>> metric.update_many([1.0, 2.0, 3.0], [1.5, 2.0, 2.0])
    >>> metric.value
    0.375
    """

    name: ClassVar[str] = "r2"

    def _compute(self, window: np.ndarray) -> float:
        y_true = window[:, 0]
        total = float(np.sum((y_true - y_true.mean()) ** 2))
        if total == 0:
            return math.nan
        return 1.0 - float(np.sum((y_true - window[:, 1]) ** 2)) / total
