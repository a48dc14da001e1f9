"""Rolling performance metrics over a fixed window of recent events.

Every metric follows :class:`~detectors.metrics.base.RollingMetric`: ``update(...)``,
``update_many(...)`` (same result as the loop), ``value``, ``window_size``, ``reset()``,
``to_state()``/``from_state()``. Feed ``value`` to a
:class:`~detectors.threshold.ThresholdDetector` or any ``"metric"`` detector.
"""

from __future__ import annotations

from detectors.metrics.base import RollingMetric
from detectors.metrics.classification import (
    RollingAccuracy,
    RollingErrorRate,
    RollingF1,
    RollingPrecision,
    RollingRecall,
    RollingROCAUC,
)
from detectors.metrics.latency import ConfidenceStats, RollingQuantile
from detectors.metrics.ranking import RollingMAPAtK, RollingNDCGAtK
from detectors.metrics.regression import RollingMAE, RollingMSE, RollingR2

__all__ = [
    "METRICS",
    "ConfidenceStats",
    "RollingAccuracy",
    "RollingErrorRate",
    "RollingF1",
    "RollingMAE",
    "RollingMAPAtK",
    "RollingMSE",
    "RollingMetric",
    "RollingNDCGAtK",
    "RollingPrecision",
    "RollingQuantile",
    "RollingR2",
    "RollingROCAUC",
    "RollingRecall",
]

#: The allow-list of metric types: name -> class.
METRICS: dict[str, type[RollingMetric]] = {
    cls.name: cls
    for cls in (
        ConfidenceStats,
        RollingAccuracy,
        RollingErrorRate,
        RollingF1,
        RollingMAE,
        RollingMAPAtK,
        RollingMSE,
        RollingNDCGAtK,
        RollingPrecision,
        RollingQuantile,
        RollingR2,
        RollingROCAUC,
        RollingRecall,
    )
}
