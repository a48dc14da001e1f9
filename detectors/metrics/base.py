"""The contract of the rolling performance metrics: a value over the last ``window`` events.

Each event's inputs are stored in a fixed-size ring buffer (a numpy array); ``value`` is
computed from the window when read. ``update_many`` writes a batch into the ring at once, so
it costs a few numpy operations per batch and gives exactly the per-event result.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, TypeVar

import numpy as np

from detectors._ring import RingBuffer
from detectors.base import (
    STATE_VERSION,
    Domain,
    Parameterised,
    check_state_header,
    check_value,
    check_values,
    require_int,
)
from detectors.exceptions import InputError, StateError

__all__ = ["RollingMetric"]

M = TypeVar("M", bound="RollingMetric")


class RollingMetric(Parameterised, abc.ABC):
    """A metric over the last ``window`` events.

    Subclasses name the domain of each input (``_domains``: one per argument of ``update``)
    and compute the value from the window (``_compute``, one row per event, oldest first).
    """

    name: ClassVar[str]
    _domains: ClassVar[tuple[Domain, ...]]
    window: int

    def __init__(self, window: int = 1000) -> None:
        self.window = window
        self._check_window()
        self._reset()

    def _check_window(self) -> None:
        require_int(self.name, "window", self.window, 1)

    def _reset(self) -> None:
        width = len(self._domains)
        self._ring = RingBuffer(self.window, np.float64, None if width == 1 else width)
        self._n_seen = 0

    @property
    def window_size(self) -> int:
        """``window``."""
        return self.window

    @property
    def value(self) -> float:
        """The metric over the current window (``nan`` while it is undefined)."""
        if len(self._ring) == 0:
            return math.nan
        return self._compute(self._ring.ordered())

    @abc.abstractmethod
    def _compute(self, window: np.ndarray) -> float:
        """The metric of a non-empty window."""

    def _arity(self, given: int) -> None:
        if given != len(self._domains):
            raise InputError(f"{self.name}: expected {len(self._domains)} inputs per event, got {given}")

    def update(self, *inputs: Any) -> None:
        """Add one event (``update(y_true, y_pred)``, or ``update(value)``)."""
        self._arity(len(inputs))
        row = [check_value(self.name, x, d) for x, d in zip(inputs, self._domains)]
        self._ring.append(row[0] if len(row) == 1 else row)
        self._n_seen += 1

    def update_many(self, *columns: np.ndarray | Sequence[Any]) -> None:
        """Add a batch (one array per input); same result as the per-event loop."""
        self._arity(len(columns))
        arrays = [check_values(self.name, c, d) for c, d in zip(columns, self._domains)]
        if len({len(a) for a in arrays}) > 1:
            raise InputError(f"{self.name}: inputs have different lengths {[len(a) for a in arrays]}")
        self._ring.extend(arrays[0] if len(arrays) == 1 else np.column_stack(arrays))
        self._n_seen += len(arrays[0])

    def to_state(self) -> dict[str, Any]:
        """Everything needed to resume, as plain JSON data."""
        return {
            "type": self.name,
            "version": STATE_VERSION,
            "params": self.params(),
            "n_seen": self._n_seen,
            "window": self._ring.to_state(),
        }

    @classmethod
    def from_state(cls: type[M], state: Mapping[str, Any]) -> M:
        """Rebuild from ``to_state()`` output; only this class's type is accepted."""
        check_state_header(cls.name, state)
        try:
            metric = cls(**state["params"])
            metric._ring.load_state(state["window"])
            metric._n_seen = int(state["n_seen"])
        except (KeyError, TypeError) as exc:
            raise StateError(f"{cls.name}: malformed state ({exc!r})") from None
        return metric
