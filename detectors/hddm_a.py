"""HDDM_A: Hoeffding-bound drift detection with moving averages (river's implementation)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar

from detectors._river import RiverDetector
from detectors._river_private import dump_mean, load_mean, private, set_private
from detectors.base import require, require_probability

__all__ = ["HDDM_A", "check_hddm_params"]


def check_hddm_params(detector: Any) -> None:
    """Validate the confidences and the two-sided flag shared by HDDM_A and HDDM_W."""
    name = detector.name
    require_probability(name, "drift_confidence", detector.drift_confidence)
    require_probability(name, "warning_confidence", detector.warning_confidence)
    ok = detector.warning_confidence >= detector.drift_confidence
    require(name, "warning_confidence", detector.warning_confidence, ok, ">= drift_confidence")
    ok = isinstance(detector.two_sided_test, bool)
    require(name, "two_sided_test", detector.two_sided_test, ok, "a bool")


class HDDM_A(RiverDetector):  # noqa: N801 - the algorithm's published name
    """HDDM with the A-test (Frias-Blanco et al., 2014; wraps ``river.drift.binary.HDDMA``).

    Compares the running mean of the whole stream with the mean up to a cut point where
    the mean (plus its Hoeffding bound) was lowest; drift when the difference exceeds the
    Hoeffding bound at ``drift_confidence`` (warning at ``warning_confidence``).

    ``statistic`` is the increase of the mean since the cut point and ``threshold`` the
    Hoeffding bound at ``drift_confidence`` (direction ``"above"``). Input: values in
    [0, 1] (usually 0/1 errors); anything else raises ``ValueError``.

    **False alarms.** The Hoeffding bound is distribution-free and conservative: the
    per-test false alarm probability is at most ``drift_confidence``. In practice a
    stationary Bernoulli stream gives a false alarm every few 10,000 values or less at the
    default 0.001 (the test is repeated at each value, so the run length is not 1/0.001).

    Parameters
    ----------
    drift_confidence
        Drift confidence level, in (0, 1).
    warning_confidence
        Warning confidence level, in (drift_confidence, 1).
    two_sided_test
        Also detect decreases of the mean.

    Examples
    --------
    >>> import numpy as np
    >>> from detectors.hddm_a import HDDM_A
    >>> rng = np.random.default_rng(42)
    >>> stream = np.concatenate([rng.binomial(1, 0.1, 1000), rng.binomial(1, 0.5, 1000)])
    >>> HDDM_A().update_many(stream).tolist()
    [1030]
    """

    name: ClassVar[str] = "hddm_a"
    direction: ClassVar[str] = "above"  # type: ignore[assignment]
    domain: ClassVar[str] = "unit_interval"  # type: ignore[assignment]
    _river_class: ClassVar[str] = "drift.binary.HDDMA"

    def __init__(
        self,
        drift_confidence: float = 0.001,
        warning_confidence: float = 0.005,
        two_sided_test: bool = False,
    ) -> None:
        self.drift_confidence = drift_confidence
        self.warning_confidence = warning_confidence
        self.two_sided_test = two_sided_test
        check_hddm_params(self)
        self._reset()

    @property
    def statistic(self) -> float:
        """Increase of the mean since the cut point (``nan`` before the first value)."""
        z, x_min = private(self._river, "_z"), private(self._river, "_x_min")
        if z.n == 0:
            return math.nan
        return z.get() - x_min.get()

    @property
    def threshold(self) -> float:
        """Hoeffding bound at ``drift_confidence`` (``nan`` while there is no cut point)."""
        z, x_min = private(self._river, "_z"), private(self._river, "_x_min")
        if x_min.n == 0 or x_min.n == z.n:
            return math.nan
        m = (z.n - x_min.n) / x_min.n * (1.0 / z.n)
        return math.sqrt(m / 2 * math.log(2.0 / self.drift_confidence))

    def _dump(self) -> dict[str, Any]:
        river = self._river
        return {key: dump_mean(private(river, f"_{key}")) for key in ("x_min", "x_max", "z")}

    def _load_river(self, state: Mapping[str, Any]) -> None:
        for key in ("x_min", "x_max", "z"):
            set_private(self._river, f"_{key}", load_mean(state[key]))
