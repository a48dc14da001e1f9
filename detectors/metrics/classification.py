"""Rolling classification metrics: accuracy, precision, recall, F1, ROC AUC, error rate."""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np

from detectors.base import Domain
from detectors.metrics.base import RollingMetric

__all__ = [
    "RollingAccuracy",
    "RollingErrorRate",
    "RollingF1",
    "RollingPrecision",
    "RollingROCAUC",
    "RollingRecall",
]


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else math.nan


def _confusion(window: np.ndarray) -> tuple[float, float, float]:
    """True positives, false positives and false negatives of 0/1 (y_true, y_pred) rows."""
    y_true, y_pred = window[:, 0], window[:, 1]
    tp = float(np.sum(y_true * y_pred))
    return tp, float(np.sum(y_pred)) - tp, float(np.sum(y_true)) - tp


class RollingAccuracy(RollingMetric):
    """Share of events whose predicted label equals the true label (labels: numbers).

    >>> from detectors.metrics import RollingAccuracy
    >>> metric = RollingAccuracy(window=3)
    >>> metric.update_many([1, 0, 2, 2], [1, 1, 2, 2])
    >>> round(metric.value, 3)
    0.667
    """

    name: ClassVar[str] = "accuracy"
    _domains: ClassVar[tuple[Domain, ...]] = ("real", "real")

    def _compute(self, window: np.ndarray) -> float:
        return float(np.mean(window[:, 0] == window[:, 1]))


class RollingPrecision(RollingMetric):
    """Precision of 0/1 predictions: tp / (tp + fp); ``nan`` with no predicted positive.

    >>> from detectors.metrics import RollingPrecision
    >>> metric = RollingPrecision(window=100)
    >>> metric.update_many([1, 0, 1, 0], [1, 1, 0, 0])
    >>> metric.value
    0.5
    """

    name: ClassVar[str] = "precision"
    _domains: ClassVar[tuple[Domain, ...]] = ("binary", "binary")

    def _compute(self, window: np.ndarray) -> float:
        tp, fp, _ = _confusion(window)
        return _ratio(tp, tp + fp)


class RollingRecall(RollingMetric):
    """Recall of 0/1 predictions: tp / (tp + fn); ``nan`` with no actual positive.

    >>> from detectors.metrics import RollingRecall
    >>> metric = RollingRecall(window=100)
    >>> metric.update_many([1, 1, 1, 0], [1, 1, 0, 0])
    >>> round(metric.value, 3)
    0.667
    """

    name: ClassVar[str] = "recall"
    _domains: ClassVar[tuple[Domain, ...]] = ("binary", "binary")

    def _compute(self, window: np.ndarray) -> float:
        tp, _, fn = _confusion(window)
        return _ratio(tp, tp + fn)


class RollingF1(RollingMetric):
    """F1 of 0/1 predictions: 2 tp / (2 tp + fp + fn).

    >>> from detectors.metrics import RollingF1
    >>> metric = RollingF1(window=100)
    >>> metric.update_many([1, 1, 1, 0], [1, 1, 0, 1])
    >>> round(metric.value, 3)
    0.667
    """

    name: ClassVar[str] = "f1"
    _domains: ClassVar[tuple[Domain, ...]] = ("binary", "binary")

    def _compute(self, window: np.ndarray) -> float:
        tp, fp, fn = _confusion(window)
        return _ratio(2 * tp, 2 * tp + fp + fn)


class RollingROCAUC(RollingMetric):
    """ROC AUC of scores against 0/1 labels (Mann-Whitney, ties count half).

    ``nan`` while the window holds only one class.

    >>> from detectors.metrics import RollingROCAUC
    >>> metric = RollingROCAUC(window=100)
    >>> metric.update_many([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    >>> metric.value
    0.75
    """

    name: ClassVar[str] = "roc_auc"
    _domains: ClassVar[tuple[Domain, ...]] = ("binary", "real")

    def _compute(self, window: np.ndarray) -> float:
        from scipy import stats  # on first use (detectors.deferred)

        positive = window[:, 0] == 1
        n_pos = int(positive.sum())
        n_neg = len(window) - n_pos
        if n_pos == 0 or n_neg == 0:
            return math.nan
        ranks = stats.rankdata(window[:, 1])
        return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


class RollingErrorRate(RollingMetric):
    """Share of errors in a 0/1 error stream (1 = error).

    >>> from detectors.metrics import RollingErrorRate
    >>> metric = RollingErrorRate(window=4)
    >>> metric.update_many([1, 0, 0, 1, 1])
    >>> metric.value
    0.5
    """

    name: ClassVar[str] = "error_rate"
    _domains: ClassVar[tuple[Domain, ...]] = ("binary",)

    def _compute(self, window: np.ndarray) -> float:
        return float(np.mean(window))
