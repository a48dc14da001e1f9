"""Prediction latency of one model: p50, p95 and p99 of ``latency_ms`` over a rolling window.

The serving latency a prediction reports (``latency_ms``, optional in the contract) is kept
for the last ``latency.window`` predictions that carry one, in a numpy ring. At each
checkpoint (a fixed position of the prediction sequence, so batching never changes a
result) the configured percentiles are computed with linear interpolation between order
statistics (numpy's default). A percentile with an SLO
(``latency.slo_ms.p99 = 250``) is a check of kind ``latency``: drift while it is above
the SLO. The others are exported, never judged.

>>> w = LatencyWindow(window=4)
>>> w.update([10.0, None, 30.0, 20.0, 40.0])  # None: no latency reported, skipped
>>> w.full, w.percentile("p50"), round(w.percentile("p99"), 6)  # sorted 10 20 30 40: p99 at 2.97
(True, 25.0, 39.7)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from detectors._ring import RingBuffer

#: The percentiles a model's latency may be summarised by, and their quantile.
PERCENTILES = {"p50": 0.5, "p95": 0.95, "p99": 0.99}


def series_name(percentile: str) -> str:
    """The name of a percentile's series in samples, drift events and config: ``latency_p99``."""
    return f"latency_{percentile}"


class LatencyWindow:
    """The last ``window`` reported latencies of one model, in milliseconds."""

    def __init__(self, window: int) -> None:
        self.window = window
        self._ring = RingBuffer(window)
        # values not yet in the ring: a busy worker's batch holds a few events per model,
        # so converting them per batch cost more than the percentiles; read at checkpoints
        self._new: list[Any] = []

    def update(self, latencies: Sequence[Any]) -> None:
        """Add latencies in stream order (``None`` is skipped: the field is optional and the
        parser has already refused bad values)."""
        self._new.extend(latencies)

    def _flush(self) -> None:
        if not self._new:
            return
        try:
            values = np.asarray(self._new, dtype=np.float64)  # None -> nan
        except (TypeError, ValueError):
            values = np.asarray([v if type(v) in (int, float) else math.nan for v in self._new], dtype=np.float64)
        self._new = []
        values = values[np.isfinite(values) & (values >= 0)]
        if len(values):
            self._ring.extend(values)

    def __len__(self) -> int:
        self._flush()
        return len(self._ring)

    @property
    def full(self) -> bool:
        """Judged over full windows only: a p99 of a few values says little."""
        return len(self) >= self.window

    def percentile(self, name: str) -> float:
        """The percentile ``name`` (``p50``, ``p95``, ``p99``) of the window; ``nan`` while empty."""
        return self.percentiles([name])[name]

    def percentiles(self, names: Sequence[str]) -> dict[str, float]:
        """Several percentiles from one sort (a ``np.quantile`` call each cost a noticeable
        share of the stages' time); the same linear interpolation."""
        if not len(self):
            return {name: math.nan for name in names}
        ordered = np.sort(self._ring.ordered())
        top = len(ordered) - 1
        found = {}
        for name in names:
            at = PERCENTILES[name] * top
            low = int(at)
            high = min(low + 1, top)
            found[name] = float(ordered[low] + (ordered[high] - ordered[low]) * (at - low))
        return found

    def to_state(self) -> dict[str, Any]:
        self._flush()
        return {"window": self.window, "values": self._ring.to_state()}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> LatencyWindow:
        w = cls(int(state["window"]))
        w._ring.load_state(state["values"])
        return w


__all__ = ["PERCENTILES", "LatencyWindow", "series_name"]
