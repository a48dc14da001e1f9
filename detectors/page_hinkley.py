"""Page-Hinkley test on a real-valued stream (river's implementation)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar

from detectors._river import RiverDetector
from detectors._river_private import dump_mean, load_mean, private, set_private
from detectors._state import decode_float, encode_float
from detectors.base import require, require_int, require_positive

__all__ = ["PageHinkley"]

_MODES = ("up", "down", "both")


class PageHinkley(RiverDetector):
    """Page-Hinkley (CUSUM-type) test for a change in the mean (wraps river's PageHinkley).

    Accumulates the deviations of each value from the running mean (minus a tolerance
    ``delta``, with forgetting factor ``alpha``); drift when the accumulated deviation rises
    more than ``drift_above`` above its running minimum (``mode="up"``), below its running
    maximum (``"down"``) or either (``"both"``). No warning zone.

    ``statistic`` is the largest monitored excursion and ``threshold`` is ``drift_above``
    (direction ``"above"``). Input: any finite real value (error, loss, metric).

    **False alarms.** ``drift_above`` is in the units of the input: the run length between
    false alarms grows roughly exponentially with ``drift_above / (sigma**2)`` for noise of
    standard deviation ``sigma``. With the defaults (50, delta 0.005) a 0/1 stream with
    error rate 0.2 gives about one false alarm per 15,000-20,000 values (measured in
    ``tests/unit/detectors/test_statistical.py``); for other scales calibrate ``drift_above``
    on reference data.

    Parameters
    ----------
    min_instances
        No detection before this many values.
    delta
        Tolerated deviation per value (>= 0).
    drift_above
        Drift threshold on the accumulated deviation (river's ``threshold``, lambda).
    alpha
        Forgetting factor, in (0, 1].
    mode
        ``"up"``, ``"down"`` or ``"both"``.

    Examples
    --------
    >>> import numpy as np
    >>> from detectors.page_hinkley import PageHinkley
    >>> rng = np.random.default_rng(42)
    >>> stream = np.concatenate([rng.normal(0, 1, 1000), rng.normal(3, 1, 1000)])
    >>> PageHinkley().update_many(stream).tolist()
    [1011, 1920]
    """

    name: ClassVar[str] = "page_hinkley"
    direction: ClassVar[str] = "above"  # type: ignore[assignment]
    _river_class: ClassVar[str] = "drift.PageHinkley"

    def __init__(
        self,
        min_instances: int = 30,
        delta: float = 0.005,
        drift_above: float = 50.0,
        alpha: float = 1 - 0.0001,
        mode: str = "both",
    ) -> None:
        self.min_instances = min_instances
        self.delta = delta
        self.drift_above = drift_above
        self.alpha = alpha
        self.mode = mode
        require_int(self.name, "min_instances", min_instances, 1)
        require_positive(self.name, "delta", delta, allow_zero=True)
        require_positive(self.name, "drift_above", drift_above)
        ok = isinstance(alpha, (int, float)) and 0 < alpha <= 1
        require(self.name, "alpha", alpha, ok, "a float in (0, 1]")
        require(self.name, "mode", mode, mode in _MODES, f"one of {', '.join(_MODES)}")
        self._reset()

    def _river_params(self) -> dict[str, Any]:
        params = self.params()
        params["threshold"] = params.pop("drift_above")
        return params

    @property
    def statistic(self) -> float:
        """Largest monitored excursion of the accumulated deviation."""
        river = self._river
        if private(river, "_x_mean").n == 0:
            return math.nan
        increase = private(river, "_sum_increase") - private(river, "_min_increase")
        decrease = private(river, "_max_decrease") - private(river, "_sum_decrease")
        return {"up": increase, "down": decrease}.get(self.mode, max(increase, decrease))

    @property
    def threshold(self) -> float:
        """``drift_above``."""
        return float(self.drift_above)

    def _dump(self) -> dict[str, Any]:
        river = self._river
        return {
            "x_mean": dump_mean(private(river, "_x_mean")),
            "sum_increase": float(private(river, "_sum_increase")),
            "sum_decrease": float(private(river, "_sum_decrease")),
            "min_increase": encode_float(private(river, "_min_increase")),
            "max_decrease": float(private(river, "_max_decrease")),
        }

    def _load_river(self, state: Mapping[str, Any]) -> None:
        river = self._river
        set_private(river, "_x_mean", load_mean(state["x_mean"]))
        set_private(river, "_sum_increase", float(state["sum_increase"]))
        set_private(river, "_sum_decrease", float(state["sum_decrease"]))
        set_private(river, "_min_increase", decode_float(state["min_increase"]))
        set_private(river, "_max_decrease", float(state["max_decrease"]))
