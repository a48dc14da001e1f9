"""Two-sample Kolmogorov-Smirnov test of a numeric feature's window against the reference."""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np

from detectors._windowed import SampleWindowedDetector
from detectors.base import NamedThresholds

__all__ = ["KolmogorovSmirnov"]


class KolmogorovSmirnov(NamedThresholds, SampleWindowedDetector):
    """Two-sample KS test between a reference sample and the last ``window`` values.

    The reference is kept as a sorted sample of at most ``reference_size`` evenly spaced
    order statistics. Every ``step`` values the KS distance ``D`` between the two empirical
    CDFs is computed (sorted arrays and ``np.searchsorted``) and its asymptotic p-value is
    ``scipy.special.kolmogorov(sqrt(n m / (n + m)) D)``, as ``ks_2samp(method="asymp")``
    without its small-sample refinement.

    ``statistic`` and ``p_value`` are the p-value (direction ``"below"``). Drift below ``p_value_below``, warning below ``warning_p_value_below``.

    **False alarms.** Under no drift the p-value is close to uniform, so each evaluation
    false-alarms with probability ``p_value_below``, an expected run length of roughly
    ``step / p_value_below`` values or more (overlapping windows cluster alarms): 100,000
    values at the defaults. Ties (discrete features) make the test conservative.

    Parameters
    ----------
    reference
        Reference sample (or call ``fit`` later).
    window
        Number of recent values tested.
    step
        Evaluate after every ``step``-th value of the stream.
    p_value_below
        Drift when the p-value is below this.
    warning_p_value_below
        Warning when the p-value is below this (``None``: no warnings).
    reference_size
        Cap on the stored reference sample.

    Examples
    --------
    >>> import numpy as np
    >>> from detectors.ks import KolmogorovSmirnov
    >>> rng = np.random.default_rng(42)
    >>> detector = KolmogorovSmirnov(reference=rng.normal(0, 1, 2000), window=500, step=250)
    >>> detector.update_many(rng.normal(0, 1, 1000)).tolist()
    []
    >>> detector.update_many(rng.normal(0.5, 1, 1000)).tolist()
    [249, 499, 749, 999]
    >>> detector.p_value < 1e-6
    True
    """

    name: ClassVar[str] = "ks"
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
        reference_size: int = 2000,
    ) -> None:
        self.window = window
        self.step = step
        self.p_value_below = p_value_below
        self.warning_p_value_below = warning_p_value_below
        self.reference_size = reference_size
        self._check_window()
        self._check_thresholds()
        self._check_reference_size()
        self._start(reference)

    def _test(self, window: np.ndarray) -> tuple[float, float | None]:
        from scipy import special  # on first use (detectors.deferred)

        reference = self._require_reference()["sample"]  # already sorted
        ordered = np.sort(window)
        points = np.concatenate([reference, ordered])
        cdf_reference = np.searchsorted(reference, points, side="right") / len(reference)
        cdf_window = np.searchsorted(ordered, points, side="right") / len(ordered)
        distance = float(np.max(np.abs(cdf_reference - cdf_window)))
        effective_n = len(reference) * len(ordered) / (len(reference) + len(ordered))
        p_value = float(special.kolmogorov(math.sqrt(effective_n) * distance))
        return p_value, p_value
