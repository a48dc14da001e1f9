"""Detectors that score every value on its own (no window): fully vectorised batches."""

from __future__ import annotations

import abc
import math
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from detectors._state import decode_float, encode_float
from detectors.base import Detector, check_value, check_values

__all__ = ["PointwiseDetector"]


class PointwiseDetector(Detector):
    """A detector on a metric stream whose statistic is a function of the last value only.

    ``update`` is ``update_many`` of one value, so both share one code path.
    """

    kind: ClassVar[str] = "metric"  # type: ignore[assignment]

    def _reset(self) -> None:
        super()._reset()
        self._statistic = math.nan

    @property
    def statistic(self) -> float:
        """Score of the last value (``nan`` before the first)."""
        return self._statistic

    @property
    @abc.abstractmethod
    def warning_threshold(self) -> float | None:
        """Warning level of the score, in ``direction`` (``None``: no warnings)."""

    @abc.abstractmethod
    def _scores(self, values: np.ndarray) -> np.ndarray:
        """Score of each value."""

    def _beyond(self, scores: np.ndarray, threshold: float | None) -> np.ndarray:
        if threshold is None:
            return np.zeros(len(scores), dtype=bool)
        return scores > threshold if self.direction == "above" else scores < threshold

    def _check_one(self, x: Any) -> float:
        return check_value(self.name, x)

    def _check_many(self, xs: Any) -> np.ndarray:
        return check_values(self.name, xs)

    def _update_one(self, value: float) -> None:
        self._update_batch(np.array([value]))

    def _update_batch(self, values: np.ndarray) -> np.ndarray:
        if len(values) == 0:
            return np.empty(0, dtype=np.int64)
        scores = self._scores(values)
        drift = self._beyond(scores, self.threshold)
        warning = ~drift & self._beyond(scores, self.warning_threshold)
        self._n_seen += len(values)
        self._statistic = float(scores[-1])
        self._drift = bool(drift[-1])
        self._warning = bool(warning[-1])
        return np.flatnonzero(drift).astype(np.int64)

    def _dump_stream(self) -> dict[str, Any]:
        return {"statistic": encode_float(self._statistic)}

    def _load_stream(self, state: Mapping[str, Any]) -> None:
        self._statistic = decode_float(state["statistic"])
