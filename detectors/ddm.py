"""DDM: drift detection method on a binary error stream (river's implementation)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from detectors._river import RiverDetector
from detectors._river_private import dump_mean, load_mean, private, set_private
from detectors._state import decode_float, encode_float
from detectors.base import require, require_int, require_positive

__all__ = ["DDM"]


class DDM(RiverDetector):
    """Drift Detection Method (Gama et al., 2004) on a 0/1 error stream (wraps river's DDM).

    DDM tracks the running error rate ``p`` and its binomial standard deviation
    ``s = sqrt(p (1 - p) / n)`` and remembers ``p_min``/``s_min`` where ``p + s`` was smallest.
    It warns when ``p + s > p_min + warning_threshold * s_min`` and signals drift when
    ``p + s > p_min + drift_threshold * s_min``, then starts afresh.

    ``statistic`` is ``p + s`` and ``threshold`` is ``p_min + drift_threshold * s_min``
    (direction ``"above"``; ``nan`` during the first ``warm_start`` values).

    Input: 1 = error, 0 = correct; any other value raises ``ValueError``.

    **False alarms.** The thresholds are normal quantiles (2 ~ 95 %, 3 ~ 99.7 %) applied at
    every step to a running minimum, so the false alarm rate is *not* the nominal one: on a
    stationary Bernoulli stream DDM rarely fires once its estimate has settled (the bound
    shrinks like 1/sqrt(n)), but a low error rate in the first few hundred values can make it
    fire early. Expect well under one false alarm per 10,000 values at error rates 0.1-0.3.
    The error rate is cumulative since the last drift, so after a long stable period DDM
    reacts slowly (a jump from 0.2 to 0.5 after 6,000 stable values is caught ~1,000 values
    later, where ADWIN or HDDM take under 100).

    Parameters
    ----------
    warm_start
        No detection before this many values.
    warning_threshold
        Warning level in units of ``s_min``.
    drift_threshold
        Drift level in units of ``s_min`` (>= ``warning_threshold``).

    Examples
    --------
    >>> import numpy as np
    >>> from detectors.ddm import DDM
    >>> rng = np.random.default_rng(42)
    >>> stream = np.concatenate([rng.binomial(1, 0.1, 1000), rng.binomial(1, 0.5, 1000)])
    >>> detector = DDM()
    >>> detector.update_many(stream).tolist()
    [173, 1078]
    >>> detector = DDM(warm_start=500)
    >>> used = detector.update_until_drift(stream)
    >>> used, [round(m, 2) for m in detector.drift_means]
    (1043, [0.09, 0.59])
    """

    name: ClassVar[str] = "ddm"
    direction: ClassVar[str] = "above"  # type: ignore[assignment]
    domain: ClassVar[str] = "binary"  # type: ignore[assignment]
    _river_class: ClassVar[str] = "drift.binary.DDM"

    def __init__(
        self, warm_start: int = 30, warning_threshold: float = 2.0, drift_threshold: float = 3.0
    ) -> None:
        self.warm_start = warm_start
        self.warning_threshold = warning_threshold
        self.drift_threshold = drift_threshold
        require_int(self.name, "warm_start", warm_start, 1)
        require_positive(self.name, "warning_threshold", warning_threshold)
        require_positive(self.name, "drift_threshold", drift_threshold)
        require(
            self.name,
            "drift_threshold",
            drift_threshold,
            drift_threshold >= warning_threshold,
            f">= warning_threshold ({warning_threshold})",
        )
        self._reset()

    @property
    def statistic(self) -> float:
        """``p + s`` for the running error rate (``nan`` before the first value)."""
        mean = private(self._river, "_p")
        if mean.n == 0:
            return math.nan
        p = mean.get()
        return p + math.sqrt(p * (1 - p) / mean.n)

    def _reset(self) -> None:
        super()._reset()
        self._since_warning = [0.0, 0.0]  # values and errors since the warning level was crossed

    @property
    def drift_means(self) -> tuple[float, float] | None:
        """At a drift: ``p_min`` and the error rate since the warning level was last crossed
        (the values DDM attributes to the new concept, as in Gama et al.)."""
        n, errors = self._since_warning
        p_min = private(self._river, "_p_min")
        if not self._drift or p_min is None or n == 0:
            return None
        return float(p_min), errors / n

    def _update_one(self, value: float) -> None:
        self._feed([value])

    def _feed(self, values: Sequence[float]) -> int:
        river = self._river
        update = river.update
        since = self._since_warning
        if self._drift:
            since[0] = since[1] = 0.0  # river starts afresh on this update
        used = 0
        for value in values:
            update(value)
            used += 1
            if river.warning_detected or river.drift_detected:
                since[0] += 1.0
                since[1] += value
                if river.drift_detected:
                    break
            elif since[0]:
                since[0] = since[1] = 0.0
        self._n_seen += used
        self._drift = river.drift_detected
        self._warning = river.warning_detected
        return used

    @property
    def threshold(self) -> float:
        """``p_min + drift_threshold * s_min`` (``nan`` during the warm start)."""
        p_min, s_min = private(self._river, "_p_min"), private(self._river, "_s_min")
        if p_min is None:
            return math.nan
        return p_min + self.drift_threshold * s_min

    def _dump(self) -> dict[str, Any]:
        river = self._river
        return {
            "p": dump_mean(private(river, "_p")),
            "p_min": private(river, "_p_min"),
            "s_min": private(river, "_s_min"),
            "ps_min": encode_float(private(river, "_ps_min")),
            "since_warning": list(self._since_warning),
        }

    def _load_river(self, state: Mapping[str, Any]) -> None:
        river = self._river
        set_private(river, "_p", load_mean(state["p"]))
        set_private(river, "_p_min", None if state["p_min"] is None else float(state["p_min"]))
        set_private(river, "_s_min", None if state["s_min"] is None else float(state["s_min"]))
        set_private(river, "_ps_min", decode_float(state["ps_min"]))
        self._since_warning = [float(v) for v in state.get("since_warning", (0.0, 0.0))]  # absent before it existed
