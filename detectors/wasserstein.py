"""Wasserstein (earth mover's) distance of a numeric feature's window to the reference."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from detectors._windowed import SampleWindowedDetector
from detectors.base import NamedThresholds

__all__ = ["Wasserstein"]


class Wasserstein(NamedThresholds, SampleWindowedDetector):
    """Wasserstein-1 distance between the reference and the last ``window`` values.

    Every ``step`` values, ``scipy.stats.wasserstein_distance`` between the stored reference
    sample (at most ``reference_size`` evenly spaced order statistics) and the window is
    divided by the reference standard deviation, so the statistic is in reference standard
    deviations and thresholds carry over between features. A pure mean shift of ``d``
    standard deviations gives a distance of ``d``.

    ``statistic`` is that scaled distance; drift above ``distance_above``, warning above
    ``warning_distance_above`` (direction ``"above"``).

    **False alarms.** With no drift the scaled distance between two samples of sizes ``n``
    (reference) and ``m`` (window) is about ``0.8 * sqrt(1/n + 1/m)`` on average for a
    normal feature: ~0.03 for ``n=2000, m=1000``, and rarely above 0.08, so the default 0.15
    almost never false-alarms for windows of 1000; small windows need a calibrated threshold
    (:func:`detectors.calibration.calibrate`).

    Parameters
    ----------
    reference
        Reference sample (or call ``fit`` later).
    window
        Number of recent values compared.
    step
        Evaluate after every ``step``-th value of the stream.
    distance_above
        Drift when the scaled distance is above this.
    warning_distance_above
        Warning when the scaled distance is above this (``None``: no warnings).
    reference_size
        Cap on the stored reference sample.

    Examples
    --------
    >>> import numpy as np
    >>> from detectors.wasserstein import Wasserstein
    >>> rng = np.random.default_rng(42)
    >>> detector = Wasserstein(reference=rng.normal(0, 1, 2000), window=500, step=250)
    >>> detector.update_many(rng.normal(0, 1, 1000)).tolist()
    []
    >>> detector.update_many(rng.normal(0.5, 1, 1000)).tolist()
    [249, 499, 749, 999]
    >>> round(detector.statistic, 2)
    0.53
    """

    name: ClassVar[str] = "wasserstein"
    direction: ClassVar[str] = "above"  # type: ignore[assignment]
    _threshold_param: ClassVar[str] = "distance_above"
    _warning_param: ClassVar[str] = "warning_distance_above"

    def __init__(
        self,
        reference: Any = None,
        window: int = 1000,
        step: int = 100,
        distance_above: float = 0.15,
        warning_distance_above: float | None = 0.1,
        reference_size: int = 2000,
    ) -> None:
        self.window = window
        self.step = step
        self.distance_above = distance_above
        self.warning_distance_above = warning_distance_above
        self.reference_size = reference_size
        self._check_window()
        self._check_thresholds()
        self._check_reference_size()
        self._start(reference)

    def _test(self, window: np.ndarray) -> tuple[float, float | None]:
        from scipy import stats  # on first use (detectors.deferred)

        reference = self._require_reference()
        distance = stats.wasserstein_distance(reference["sample"], window)
        return float(distance) / reference["scale"], None
