"""Sliding-window detectors that compare the last ``window`` values with a reference.

The test runs at deterministic positions only: after every ``step``-th value of the whole
stream, once ``window`` values have been seen. The window at each such position is the same
whatever way the stream was cut into batches, so ``update_many`` gives exactly the per-event
result, and a batch costs one vectorised encode plus one test per ``step`` values.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from detectors._reference import ReferenceDetector, capped_sorted, numeric_reference
from detectors._ring import RingBuffer
from detectors._state import decode_float, encode_float
from detectors.base import check_value, check_values, crosses, require_int

__all__ = ["NumericWindowedDetector", "SampleWindowedDetector", "WindowedDetector"]


class WindowedDetector(ReferenceDetector):
    """Reference-based detector evaluated every ``step`` values over the last ``window``.

    ``drift_detected``/``warning_detected`` are True only right after an evaluation that
    crossed the threshold (they describe the last update); ``statistic`` and ``p_value`` keep
    the result of the last evaluation (``nan``/``None`` before the first).
    """

    _dtype: ClassVar[Any] = np.float64
    window: int
    step: int

    def _check_window(self) -> None:
        require_int(self.name, "window", self.window, 2)
        require_int(self.name, "step", self.step, 1)

    def _reset(self) -> None:
        super()._reset()
        self._ring = RingBuffer(self.window, self._window_dtype())
        self._statistic = math.nan
        self._p_value: float | None = None

    def _window_dtype(self) -> Any:
        """The dtype the window keeps its values in (the smallest that holds them: the
        window is written with every state dump)."""
        return self._dtype

    @property
    def window_size(self) -> int:
        """``window``."""
        return self.window

    @property
    def statistic(self) -> float:
        """Statistic of the last evaluation (``nan`` before the first)."""
        return self._statistic

    @property
    def p_value(self) -> float | None:
        """p-value of the last evaluation, for detectors whose test gives one."""
        return self._p_value

    @property
    @abc.abstractmethod
    def warning_threshold(self) -> float | None:
        """Warning level of the statistic, in ``direction`` (``None``: no warnings)."""

    @abc.abstractmethod
    def _test(self, window: np.ndarray) -> tuple[float, float | None]:
        """The statistic and p-value (or ``None``) of one full window, oldest value first."""

    def _evaluate(self, window: np.ndarray) -> None:
        self._judge(*self._test(window))

    def _judge(self, statistic: float, p_value: float | None) -> None:
        """Take one evaluation's statistic and p-value, and set the flags from them."""
        self._statistic, self._p_value = statistic, p_value
        self._drift = crosses(self._statistic, self.threshold, self.direction)
        self._warning = not self._drift and crosses(
            self._statistic, self.warning_threshold, self.direction
        )

    def _evaluations(self, n: int) -> range:
        """The positions at which this detector evaluates among its next ``n`` values."""
        start = max(self._n_seen + 1, self.window)
        return range(-(-start // self.step) * self.step, self._n_seen + n + 1, self.step)

    def _due(self, position: int) -> bool:
        return position % self.step == 0 and position >= self.window

    def _update_one(self, value: Any) -> None:
        self._ring.append(value)
        self._n_seen += 1
        if self._due(self._n_seen):
            self._evaluate(self._ring.ordered())
        else:
            self._drift = self._warning = False

    def _update_batch(self, values: np.ndarray) -> np.ndarray:
        n0, n = self._n_seen, len(values)
        if n == 0:
            return np.empty(0, dtype=np.int64)
        positions = self._evaluations(n)
        hits = []
        if positions:
            history = np.concatenate([self._ring.ordered(), values])
            offset = n0 - len(self._ring)  # history[k] is the value at position offset + k + 1
            for position in positions:
                end = position - offset
                self._evaluate(history[end - self.window : end].copy())
                if self._drift:
                    hits.append(position - n0 - 1)
        self._ring.extend(values)
        self._n_seen += n
        if not positions or positions[-1] != self._n_seen:
            self._drift = self._warning = False
        return np.asarray(hits, dtype=np.int64)

    def _dump_stream(self) -> dict[str, Any]:
        return {
            "window": self._ring.to_state(),
            "statistic": encode_float(self._statistic),
            "p_value": self._p_value,
        }

    def _load_stream(self, state: Mapping[str, Any]) -> None:
        self._ring.load_state(state["window"])
        self._statistic = decode_float(state["statistic"])
        self._p_value = None if state["p_value"] is None else float(state["p_value"])


class NumericWindowedDetector(WindowedDetector):
    """A windowed detector on a numeric feature (finite real values)."""

    kind: ClassVar[str] = "numeric"  # type: ignore[assignment]

    def _check_one(self, x: Any) -> float:
        return check_value(self.name, x)

    def _check_many(self, xs: Any) -> np.ndarray:
        return check_values(self.name, xs)


class SampleWindowedDetector(NumericWindowedDetector):
    """A numeric windowed detector whose reference summary is a sorted sample.

    The sample is capped at ``reference_size`` evenly spaced order statistics (deterministic),
    and the reference standard deviation (``scale``, 1 where it is 0) is kept beside it.
    """

    _reference_arrays: ClassVar[dict[str, Any]] = {"sample": np.float64}
    _reference_floats: ClassVar[tuple[str, ...]] = ("scale",)
    reference_size: int

    def _check_reference_size(self) -> None:
        require_int(self.name, "reference_size", self.reference_size, 2)

    def _summarise(self, reference: Any) -> dict[str, Any]:
        values = numeric_reference(self.name, reference)
        scale = float(np.std(values))
        return {
            "sample": capped_sorted(values, self.reference_size),
            "scale": scale if scale > 0 else 1.0,
        }
