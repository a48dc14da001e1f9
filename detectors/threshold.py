"""Fixed threshold on a metric stream (e.g. rolling accuracy below 0.8)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from detectors._pointwise import PointwiseDetector
from detectors.base import Direction, _is_real, require

__all__ = ["ThresholdDetector"]


class ThresholdDetector(PointwiseDetector):
    """Alarm when a metric value crosses a fixed threshold, in a named direction.

    Give exactly one of ``above`` (drift when the value is above it, e.g. an error rate or
    a latency p99) or ``below`` (drift when the value is below it, e.g. accuracy or AUC).
    ``warning_at`` is an optional, less extreme level in the same direction. Feed it the
    ``value`` of a :mod:`detectors.metrics` rolling metric, e.g. after every batch.

    ``statistic`` is the last value.

    **False alarms.** None by construction on a metric that stays on the right side; the
    false alarm rate is that of the metric's own noise crossing the line, so leave a margin
    of a few standard errors of the rolling metric (for accuracy ``p`` over a window ``n``:
    ``sqrt(p (1 - p) / n)``).

    Parameters
    ----------
    above
        Drift when the value is above this.
    below
        Drift when the value is below this.
    warning_at
        Warning level, in the same direction, not beyond the drift level.

    Examples
    --------
    >>> from detectors.threshold import ThresholdDetector
    >>> detector = ThresholdDetector(below=0.8, warning_at=0.85)
    >>> detector.update_many([0.91, 0.84, 0.79, 0.9]).tolist()
    [2]
    >>> detector.update(0.83)
    >>> detector.warning_detected, detector.direction, detector.threshold
    (True, 'below', 0.8)
    """

    name: ClassVar[str] = "threshold"

    def __init__(
        self,
        above: float | None = None,
        below: float | None = None,
        warning_at: float | None = None,
    ) -> None:
        self.above = above
        self.below = below
        self.warning_at = warning_at
        ok = (above is None) != (below is None)
        require(self.name, "above", above, ok, "set when 'below' is not (give exactly one)")
        level = above if above is not None else below
        require(self.name, "above" if above is not None else "below", level, _is_real(level), "a finite float")
        ok = warning_at is None or (
            _is_real(warning_at)
            and (warning_at <= level if above is not None else warning_at >= level)  # type: ignore[operator]
        )
        require(self.name, "warning_at", warning_at, ok, f"None or not beyond {level}")
        self._reset()

    @property
    def direction(self) -> Direction:  # type: ignore[override]
        """``"above"`` if ``above`` was given, else ``"below"``."""
        return "above" if self.above is not None else "below"

    @property
    def threshold(self) -> float:
        """``above`` or ``below``, whichever was given."""
        return float(self.above if self.above is not None else self.below)  # type: ignore[arg-type]

    @property
    def warning_threshold(self) -> float | None:
        """``warning_at``."""
        return self.warning_at

    def _scores(self, values: np.ndarray) -> np.ndarray:
        return values

    def _dump(self) -> dict[str, Any]:
        return self._dump_stream()

    def _load(self, state: Mapping[str, Any]) -> None:
        self._load_stream(state)
