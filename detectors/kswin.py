"""KSWIN: Kolmogorov-Smirnov windowing (river's implementation, explicit rng state)."""

from __future__ import annotations

import collections
import math
from collections.abc import Mapping
from typing import Any, ClassVar

from detectors._river import RiverDetector
from detectors._river_private import private
from detectors.base import require, require_int, require_probability

__all__ = ["KSWIN"]


class KSWIN(RiverDetector):
    """Kolmogorov-Smirnov windowing (Raab et al., 2020; wraps ``river.drift.KSWIN``).

    Keeps the last ``window`` values; at each value it draws ``stat_size`` values at random
    from the older part of the window and runs a two-sample KS test against the newest
    ``stat_size`` values. Drift when the p-value is at most ``alpha`` and the KS distance
    exceeds 0.1; the window is then cut to its newest ``stat_size`` values.

    ``statistic`` is the last p-value and ``threshold`` is ``alpha`` (direction ``"below"``).
    The random draws use a ``random.Random(seed)``; its state (625 ints) is part of
    ``to_state()`` so a restored detector draws the same samples, and detection indices are
    river's own for the same seed. Input: any finite real value.

    **False alarms.** The KS test runs at every value on heavily overlapping windows, so
    ``alpha`` is far from the false alarm rate per value: at ``alpha=0.005`` expect a false
    alarm every 600-1,000 values on a stationary continuous stream; use ``alpha`` around
    1e-4 or lower in production.

    Parameters
    ----------
    alpha
        p-value threshold, in (0, 1).
    window
        Number of recent values kept.
    stat_size
        Size of the two compared samples (at most ``window // 2``).
    seed
        Seed of the random draws.

    Examples
    --------
    >>> import numpy as np
    >>> from detectors.kswin import KSWIN
    >>> rng = np.random.default_rng(42)
    >>> stream = np.concatenate([rng.normal(0, 1, 1000), rng.normal(3, 1, 1000)])
    >>> KSWIN(alpha=0.0001, seed=42).update_many(stream).tolist()
    [1016]
    """

    name: ClassVar[str] = "kswin"
    direction: ClassVar[str] = "below"  # type: ignore[assignment]
    _river_class: ClassVar[str] = "drift.KSWIN"

    def __init__(
        self, alpha: float = 0.005, window: int = 100, stat_size: int = 30, seed: int = 42
    ) -> None:
        self.alpha = alpha
        self.window = window
        self.stat_size = stat_size
        self.seed = seed
        require_probability(self.name, "alpha", alpha)
        require_int(self.name, "window", window, 2)
        require_int(self.name, "stat_size", stat_size, 1)
        ok = stat_size <= window // 2
        require(self.name, "stat_size", stat_size, ok, f"<= window // 2 ({window // 2})")
        require_int(self.name, "seed", seed, 0)
        self._reset()

    def _river_params(self) -> dict[str, Any]:
        return {
            "alpha": self.alpha,
            "window_size": self.window,
            "stat_size": self.stat_size,
            "seed": self.seed,
        }

    @property
    def window_size(self) -> int:
        """``window``."""
        return self.window

    @property
    def statistic(self) -> float:
        """p-value of the last KS test (``nan`` while the window is not full)."""
        if len(self._river.window) < self.window:
            return math.nan
        return float(self._river.p_value)

    @property
    def p_value(self) -> float | None:
        """Same as ``statistic``."""
        value = self.statistic
        return None if math.isnan(value) else value

    @property
    def threshold(self) -> float:
        """``alpha``."""
        return float(self.alpha)

    def _dump(self) -> dict[str, Any]:
        river = self._river
        version, internal, gauss = private(river, "_rng").getstate()
        return {
            "window": [float(v) for v in river.window],
            "p_value": float(river.p_value),
            "n": river.n,
            "rng": [version, list(internal), gauss],
        }

    def _load_river(self, state: Mapping[str, Any]) -> None:
        river = self._river
        river.window = collections.deque(
            (float(v) for v in state["window"]), maxlen=self.window
        )
        river.p_value = float(state["p_value"])
        river.n = int(state["n"])
        version, internal, gauss = state["rng"]
        private(river, "_rng").setstate((int(version), tuple(int(v) for v in internal), gauss))
