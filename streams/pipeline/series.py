"""A detector on a metric's rolling series: ``three_sigma`` on F1, ``page_hinkley`` on latency p99.

A performance metric or a latency percentile gets one value per checkpoint (every
``OBSERVE_EVERY`` events of its sequence). ``metric_series.detectors.<name>`` puts a
detector on that series, beside the metric's own threshold: an anomaly is a value
unusual for *this* model, whatever the fixed threshold says. Its reference is the series'
first ``metric_series.reference_points`` values (a detector that needs none starts at
once). A reference with no spread (accuracy 1.0 every checkpoint) cannot scale a z-score:
it slides on by one value until it has some, so the series is watched from the first
checkpoint where it varies. Drift events and alerts have the kind ``anomaly``.

Only detectors that take one value at a time fit a series that grows by one value per
checkpoint: the windowed tests (PSI, KS) would need a thousand checkpoints per window.

>>> w = SeriesWatch({"type": "three_sigma", "sigma_above": 3.0}, reference_points=4)
>>> [w.update(v) for v in (0.80, 0.82, 0.78, 0.80)]  # the reference: mean 0.8, SD 0.0141
[None, None, None, None]
>>> w.update(0.81), w.update(0.70)  # 0.7 is 7.07 SDs below
(False, True)
>>> round(w.detector.statistic, 2)
7.07
"""

from __future__ import annotations

import inspect
from typing import Any

from detectors import registry
from detectors.base import Detector

#: The detectors a metric series may have: each judges one value at a time.
SERIES_DETECTORS = ("three_sigma", "threshold", "page_hinkley")


def _needs_reference(kind: str) -> bool:
    return "reference" in inspect.signature(registry.DETECTORS[kind].__init__).parameters


class SeriesWatch:
    """One detector on one metric's checkpoint values, with the reference it is fit on."""

    def __init__(self, spec: dict[str, Any], reference_points: int) -> None:
        self.spec = dict(spec)
        self.reference_points = reference_points
        self.reference: list[float] = []
        self.detector: Detector | None = None if _needs_reference(self.spec["type"]) else registry.build(self.spec)

    def update(self, value: float) -> bool | None:
        """Add one checkpoint value: whether the detector signals drift on it, ``None``
        while the reference is being collected."""
        if self.detector is None:
            self.reference.append(float(value))
            if len(self.reference) < self.reference_points:
                return None
            try:
                self.detector = registry.build({**self.spec, "reference": list(self.reference)})
            except ValueError:  # no spread to scale by yet: slide the reference on
                self.reference.pop(0)
                return None
            self.reference = []
            return None
        self.detector.update(float(value))
        return bool(self.detector.drift_detected)

    def to_state(self) -> dict[str, Any]:
        return {"spec": self.spec, "reference_points": self.reference_points, "reference": list(self.reference),
                "detector": self.detector.to_state() if self.detector is not None else None}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> SeriesWatch:
        w = cls(state["spec"], int(state["reference_points"]))
        w.reference = [float(v) for v in state["reference"]]
        w.detector = registry.from_state(state["detector"]) if state["detector"] is not None else None
        return w


__all__ = ["SERIES_DETECTORS", "SeriesWatch"]
