"""ADWIN: adaptive windowing (river's Rust implementation)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from detectors._river import RiverDetector, dump_bytes, load_bytes
from detectors._river_private import private
from detectors.base import require_int, require_probability

__all__ = ["ADWIN"]


class ADWIN(RiverDetector):
    """ADaptive WINdowing change detector on a real-valued stream (wraps ``river.drift.ADWIN``).

    ADWIN keeps a variable-length window of recent values, compressed into exponential
    buckets, and drops its older part whenever two sub-windows have means that differ by more
    than a Hoeffding-style bound at confidence ``delta``. Input: any finite real value, usually
    the 0/1 error of a model or a bounded loss.

    ``statistic`` is the mean of the current adaptive window. The cut bound depends on the
    split being tested and river does not expose it, so ``threshold`` is ``nan``; drift is
    signalled by river itself.

    At a drift, ``drift_means`` holds the means of the two sub-windows ADWIN told apart
    (the part it dropped, the part it kept): its own evidence of which way the stream moved
    and by how much.

    State is bounded: the bucket list holds at most ``max_buckets`` buckets per power of two of
    the window length, i.e. O(log n) numbers.

    **False alarms.** ``delta`` bounds the probability of a false cut per check under the null
    of a constant mean; checks happen every ``clock`` values. With the defaults, a stationary
    Bernoulli(0.2) stream gives about one false alarm per 100,000 values or fewer (see
    ``tests/unit/detectors/test_statistical.py``).

    Parameters
    ----------
    delta
        Confidence of the cut test, in (0, 1). Smaller: fewer false alarms, later detection.
    clock
        Check for a cut every ``clock`` values.
    max_buckets
        Buckets kept per size before merging.
    min_window_length
        Smallest sub-window considered when testing a cut.
    grace_period
        No detection before this many values.

    Examples
    --------
    >>> import numpy as np
    >>> from detectors.adwin import ADWIN
    >>> rng = np.random.default_rng(42)
    >>> stream = np.concatenate([rng.binomial(1, 0.1, 1000), rng.binomial(1, 0.5, 1000)])
    >>> detector = ADWIN()
    >>> detector.update_many(stream).tolist()
    [1055]
    >>> detector = ADWIN()
    >>> detector.update_until_drift(stream), [round(m, 2) for m in detector.drift_means]
    (1056, [0.1, 0.18])
    """

    name: ClassVar[str] = "adwin"
    direction: ClassVar[str] = "above"  # type: ignore[assignment]
    _river_class: ClassVar[str] = "drift.ADWIN"

    def __init__(
        self,
        delta: float = 0.002,
        clock: int = 32,
        max_buckets: int = 5,
        min_window_length: int = 5,
        grace_period: int = 10,
    ) -> None:
        self.delta = delta
        self.clock = clock
        self.max_buckets = max_buckets
        self.min_window_length = min_window_length
        self.grace_period = grace_period
        require_probability(self.name, "delta", delta)
        require_int(self.name, "clock", clock, 1)
        require_int(self.name, "max_buckets", max_buckets, 2)
        require_int(self.name, "min_window_length", min_window_length, 1)
        require_int(self.name, "grace_period", grace_period, 1)
        self._reset()

    @property
    def statistic(self) -> float:
        """Mean of the current adaptive window (``nan`` while it is empty)."""
        width = self._river.width
        return self._river.total / width if width else math.nan

    def _reset(self) -> None:
        super()._reset()
        self._drift_means: tuple[float, float] | None = None

    @property
    def drift_means(self) -> tuple[float, float] | None:
        """Means of the dropped (older) and kept (newer) sub-windows at the last drift."""
        return self._drift_means if self._drift else None

    def _feed(self, values: Sequence[float]) -> int:
        # river only drops values when it signals drift, so the window before the cut is
        # the one at the start of this call plus the values used; the cut part is the rest
        river = self._river
        width, total = river.width, river.total
        used = super()._feed(values)
        if self._drift:
            self._drift_means = _cut_means(width + used, total + math.fsum(values[:used]), river.width, river.total)
        return used

    def _update_one(self, value: float) -> None:
        river = self._river
        width, total = river.width, river.total
        super()._update_one(value)
        if self._drift:
            self._drift_means = _cut_means(width + 1, total + value, river.width, river.total)

    @property
    def threshold(self) -> float:
        """Not exposed by river (the bound depends on the split): ``nan``."""
        return math.nan

    @property
    def width(self) -> int:
        """Length of the current adaptive window."""
        return int(self._river.width)

    def _dump(self) -> dict[str, Any]:
        means = None if self._drift_means is None else list(self._drift_means)
        return {"helper": dump_bytes(private(self._river, "_helper").__getstate__()), "drift_means": means}

    def _load_river(self, state: Mapping[str, Any]) -> None:
        private(self._river, "_helper").__setstate__(load_bytes(state["helper"]))
        means = state.get("drift_means")  # absent from states written before it existed
        self._drift_means = None if means is None else (float(means[0]), float(means[1]))


def _cut_means(width: float, total: float, kept_width: float, kept_total: float) -> tuple[float, float] | None:
    """(mean of the dropped part, mean of the kept part) of a window cut in two."""
    dropped = width - kept_width
    if dropped <= 0 or kept_width <= 0:
        return None
    return (total - kept_total) / dropped, kept_total / kept_width
