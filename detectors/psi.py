"""Population stability index of a numeric feature over a sliding window."""

from __future__ import annotations

import bisect
from typing import Any, ClassVar

import numpy as np

from detectors._reference import numeric_reference
from detectors._windowed import NumericWindowedDetector
from detectors.base import NamedThresholds, check_value, check_values, require_int, require_positive
from detectors.severity import Severity, SeverityBands

__all__ = ["PSI", "population_stability_index", "psi_severity"]


def population_stability_index(
    expected: np.ndarray, actual_counts: np.ndarray, epsilon: float
) -> float:
    """PSI between reference proportions and observed counts over the same buckets.

    Proportions are floored at ``epsilon`` (empty-bucket smoothing), so an empty bucket adds
    a large but finite term.

    >>> round(population_stability_index(np.array([0.5, 0.5]), np.array([50, 50]), 1e-4), 6)
    0.0
    >>> round(population_stability_index(np.array([0.5, 0.5]), np.array([90, 10]), 1e-4), 4)
    0.8789
    """
    actual = np.maximum(actual_counts / actual_counts.sum(), epsilon)
    expected = np.maximum(expected, epsilon)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def psi_severity(detector: Any) -> Severity:
    """Band of a PSI detector's last statistic, its warning and drift levels as cut points."""
    warning = detector.warning_threshold
    bands = SeverityBands(detector.threshold if warning is None else warning, detector.threshold)
    return bands.classify(detector.statistic)


class PSI(NamedThresholds, NumericWindowedDetector):
    """Windowed population stability index for a numeric feature.

    ``bins`` bucket edges are fixed at the reference quantiles (repeated edges, from ties,
    are merged), so each reference bucket holds about ``1 / bins`` of the reference. Every
    ``step`` values the last ``window`` values are bucketed with ``np.searchsorted`` and the
    PSI ``sum((a - e) * ln(a / e))`` is computed, proportions floored at ``epsilon``. Values
    outside the reference range fall in the two end buckets.

    ``statistic`` is the PSI; drift above ``psi_above``, warning above ``warning_psi_above``
    (common practice: < 0.1 none, 0.1-0.2 moderate, > 0.2 significant; ``severity`` gives
    the band). State: the bin edges, reference proportions and a ring of bucket codes.

    **False alarms.** With no drift, PSI over ``window`` values is about
    ``(bins - 1) / window`` (chi-squared / window): 0.009 for 10 bins and 1000 values, far
    below 0.1, so false alarms are practically absent at the defaults; they become real for
    small windows (for ``window=100`` the null PSI is ~0.1). Use
    :func:`detectors.calibration.calibrate` to set ``psi_above`` for a target run length.

    Parameters
    ----------
    reference
        Reference sample (or call ``fit`` later).
    bins
        Number of quantile buckets (>= 2).
    window
        Number of recent values compared with the reference.
    step
        Evaluate after every ``step``-th value of the stream.
    psi_above
        Drift when PSI is above this.
    warning_psi_above
        Warning when PSI is above this (``None``: no warnings).
    epsilon
        Floor of the proportions.

    Examples
    --------
    >>> import numpy as np
    >>> from detectors.psi import PSI
    >>> rng = np.random.default_rng(42)
    >>> detector = PSI(reference=rng.normal(0, 1, 5000), window=500, step=250)
    >>> detector.update_many(rng.normal(0, 1, 1000)).tolist()
    []
    >>> detector.update_many(rng.normal(1, 1, 1000)).tolist()
    [249, 499, 749, 999]
    >>> round(detector.statistic, 3), detector.severity
    (0.941, 'significant')
    """

    name: ClassVar[str] = "psi"
    direction: ClassVar[str] = "above"  # type: ignore[assignment]
    _threshold_param: ClassVar[str] = "psi_above"
    _warning_param: ClassVar[str] = "warning_psi_above"
    _reference_arrays: ClassVar[dict[str, Any]] = {"edges": np.float64, "expected": np.float64}

    def __init__(
        self,
        reference: Any = None,
        bins: int = 10,
        window: int = 1000,
        step: int = 100,
        psi_above: float = 0.2,
        warning_psi_above: float | None = 0.1,
        epsilon: float = 1e-4,
    ) -> None:
        self.bins = bins
        self.window = window
        self.step = step
        self.psi_above = psi_above
        self.warning_psi_above = warning_psi_above
        self.epsilon = epsilon
        require_int(self.name, "bins", bins, 2)
        self._check_window()
        self._check_thresholds()
        require_positive(self.name, "epsilon", epsilon)
        self._start(reference)

    def _window_dtype(self) -> Any:
        return np.min_scalar_type(self.bins)  # bucket codes: 0 .. bins - 1

    @property
    def severity(self) -> Severity:
        """Band of the last PSI, with this detector's thresholds as the cut points."""
        return psi_severity(self)

    def _summarise(self, reference: Any) -> dict[str, Any]:
        values = numeric_reference(self.name, reference)
        quantiles = np.quantile(values, np.linspace(0, 1, self.bins + 1)[1:-1])
        edges = np.unique(quantiles)
        codes = np.searchsorted(edges, values, side="right")
        expected = np.bincount(codes, minlength=len(edges) + 1) / len(values)
        return {"edges": edges, "expected": expected}

    def _check_one(self, x: Any) -> int:
        edges = self._require_reference()["edges"]
        return bisect.bisect_right(edges, check_value(self.name, x))

    def _check_many(self, xs: Any) -> np.ndarray:
        edges = self._require_reference()["edges"]
        return np.searchsorted(edges, check_values(self.name, xs), side="right")

    def _test(self, window: np.ndarray) -> tuple[float, float | None]:
        expected = self._require_reference()["expected"]
        counts = np.bincount(window, minlength=len(expected))
        return population_stability_index(expected, counts, self.epsilon), None
