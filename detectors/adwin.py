"""ADWIN: adaptive windowing (river's Rust implementation)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar

from river import drift

from detectors._river import RiverDetector, dump_bytes, load_bytes
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
    """

    name: ClassVar[str] = "adwin"
    direction: ClassVar[str] = "above"  # type: ignore[assignment]
    _river_cls: ClassVar[type] = drift.ADWIN

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

    @property
    def threshold(self) -> float:
        """Not exposed by river (the bound depends on the split): ``nan``."""
        return math.nan

    @property
    def width(self) -> int:
        """Length of the current adaptive window."""
        return int(self._river.width)

    def _dump(self) -> dict[str, Any]:
        return {"helper": dump_bytes(self._river._helper.__getstate__())}

    def _load_river(self, state: Mapping[str, Any]) -> None:
        self._river._helper.__setstate__(load_bytes(state["helper"]))
