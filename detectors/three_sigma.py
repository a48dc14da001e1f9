"""k-sigma anomaly detection on any metric stream, against a reference mean and SD."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from detectors._pointwise import PointwiseDetector
from detectors._reference import ReferenceDetector
from detectors.base import NamedThresholds
from detectors.mean_shift import reference_moments

__all__ = ["ThreeSigma"]


class ThreeSigma(NamedThresholds, PointwiseDetector, ReferenceDetector):
    """Flag values more than ``sigma_above`` reference SDs away from the reference mean.

    The reference (e.g. a week of hourly latency p95 or accuracy values) is summarised by its
    mean and standard deviation; each new value gets ``statistic = |x - mean| / std``. Drift
    above ``sigma_above``, warning above ``warning_sigma_above``. Works on any metric stream
    (``kind = "metric"``).

    **False alarms.** For normal, independent values, ``P(|z| > 3) = 0.0027``: one false alarm
    per ~370 values on average (per ~15,800 at 4 sigma). Metric streams are often
    autocorrelated or heavy-tailed, which changes this a lot: calibrate ``sigma_above`` for a
    target run length with :func:`detectors.calibration.calibrate`.

    Parameters
    ----------
    reference
        Reference values of the metric (or call ``fit`` later).
    sigma_above
        Drift when the value is more than this many SDs from the mean.
    warning_sigma_above
        Warning beyond this many SDs (``None``: no warnings).

    Examples
    --------
    >>> import numpy as np
    >>> from detectors.three_sigma import ThreeSigma
    >>> rng = np.random.default_rng(42)
    >>> detector = ThreeSigma(reference=rng.normal(0.2, 0.01, 500))
    >>> detector.update_many([0.205, 0.19, 0.26, 0.21]).tolist()
    [2]
    >>> detector.update(0.201)
    >>> detector.drift_detected, round(detector.statistic, 2)
    (False, 0.12)
    """

    name: ClassVar[str] = "three_sigma"
    direction: ClassVar[str] = "above"  # type: ignore[assignment]
    _threshold_param: ClassVar[str] = "sigma_above"
    _warning_param: ClassVar[str] = "warning_sigma_above"
    _reference_floats: ClassVar[tuple[str, ...]] = ("mean", "std")

    def __init__(
        self,
        reference: Any = None,
        sigma_above: float = 3.0,
        warning_sigma_above: float | None = None,
    ) -> None:
        self.sigma_above = sigma_above
        self.warning_sigma_above = warning_sigma_above
        self._check_thresholds()
        self._start(reference)

    def _summarise(self, reference: Any) -> dict[str, Any]:
        return reference_moments(self.name, reference)

    def _scores(self, values: np.ndarray) -> np.ndarray:
        reference = self._require_reference()
        return np.abs(values - reference["mean"]) / reference["std"]
