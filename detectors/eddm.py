"""EDDM: early drift detection method on a binary error stream (river's implementation)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar

from detectors._river import RiverDetector
from detectors._river_private import dump_var, load_var, private, set_private
from detectors.base import require, require_int

__all__ = ["EDDM"]


class EDDM(RiverDetector):
    """Early Drift Detection Method (Baena-Garcia et al., 2006; wraps river's EDDM).

    EDDM follows the distance between consecutive errors: with ``p'`` the mean distance and
    ``s'`` its standard deviation, it keeps the maximum of ``p' + 2 s'`` and compares the
    current value with it. The ratio (``statistic``) falling below ``alpha`` is a warning,
    below ``beta`` (``threshold``, direction ``"below"``) a drift. It reacts to gradual
    increases of the error rate earlier than DDM.

    Input: 1 = error, 0 = correct; any other value raises ``ValueError``.

    **False alarms.** EDDM is known to be trigger-happy: with river's defaults
    (``alpha=0.95``, ``beta=0.9``) a stationary stream with error rate 0.2 gives about one
    false alarm every 300-600 values (every ~100 errors). Lower ``alpha``/``beta`` (e.g. 0.8/0.75) for
    production use and calibrate on a reference error stream.

    Parameters
    ----------
    warm_start
        No detection before this many values *and* this many errors.
    alpha
        Warning ratio, in (0, 1].
    beta
        Drift ratio, in (0, alpha].

    Examples
    --------
    >>> import numpy as np
    >>> from detectors.eddm import EDDM
    >>> rng = np.random.default_rng(42)
    >>> stream = np.concatenate([rng.binomial(1, 0.1, 1000), rng.binomial(1, 0.5, 1000)])
    >>> detector = EDDM(alpha=0.8, beta=0.75)
    >>> detector.update_many(stream).tolist()
    [346, 1084]
    """

    name: ClassVar[str] = "eddm"
    direction: ClassVar[str] = "below"  # type: ignore[assignment]
    domain: ClassVar[str] = "binary"  # type: ignore[assignment]
    _river_class: ClassVar[str] = "drift.binary.EDDM"

    def __init__(self, warm_start: int = 30, alpha: float = 0.95, beta: float = 0.9) -> None:
        self.warm_start = warm_start
        self.alpha = alpha
        self.beta = beta
        require_int(self.name, "warm_start", warm_start, 1)
        ok = isinstance(alpha, (int, float)) and 0 < alpha <= 1
        require(self.name, "alpha", alpha, ok, "a float in (0, 1]")
        ok = isinstance(beta, (int, float)) and 0 < beta <= alpha
        require(self.name, "beta", beta, ok, f"a float in (0, alpha={alpha}]")
        self._reset()

    @property
    def statistic(self) -> float:
        """``(p' + 2 s') / max(p' + 2 s')`` over the distances between errors."""
        river = self._river
        p2s_prime_max = private(river, "_p2s_prime_max")
        if private(river, "_n_errors") <= self.warm_start or p2s_prime_max <= 0:
            return math.nan
        distances = private(river, "_error_distances")
        return (distances.mean.get() + 2 * distances.get() ** 0.5) / p2s_prime_max

    @property
    def threshold(self) -> float:
        """``beta``: drift when the statistic falls below it."""
        return float(self.beta)

    def _dump(self) -> dict[str, Any]:
        river = self._river
        return {
            "distances": dump_var(private(river, "_error_distances")),
            "n": private(river, "_n"),
            "last_error": private(river, "_last_error"),
            "n_errors": private(river, "_n_errors"),
            "p2s_prime_max": float(private(river, "_p2s_prime_max")),
        }

    def _load_river(self, state: Mapping[str, Any]) -> None:
        river = self._river
        set_private(river, "_error_distances", load_var(state["distances"]))
        set_private(river, "_n", int(state["n"]))
        set_private(river, "_last_error", int(state["last_error"]))
        set_private(river, "_n_errors", int(state["n_errors"]))
        set_private(river, "_p2s_prime_max", float(state["p2s_prime_max"]))
