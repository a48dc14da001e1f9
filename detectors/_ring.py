"""A fixed-size ring buffer over a numpy array: the bounded memory of every windowed class."""

from __future__ import annotations

from typing import Any

import numpy as np

from detectors._state import decode_array, encode_array

__all__ = ["RingBuffer"]


class RingBuffer:
    """The last ``capacity`` rows written, in a preallocated numpy array.

    >>> ring = RingBuffer(3)
    >>> ring.extend(np.array([1.0, 2.0, 3.0, 4.0]))
    >>> ring.append(5.0)
    >>> ring.ordered().tolist()
    [3.0, 4.0, 5.0]
    """

    def __init__(self, capacity: int, dtype: Any = np.float64, width: int | None = None) -> None:
        shape = (capacity,) if width is None else (capacity, width)
        self._data = np.zeros(shape, dtype=dtype)
        self._capacity = capacity
        self._pos = 0  # next slot to write
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def append(self, row: Any) -> None:
        """Write one row, overwriting the oldest when full."""
        self._data[self._pos] = row
        self._pos = (self._pos + 1) % self._capacity
        self._size = min(self._size + 1, self._capacity)

    def extend(self, rows: np.ndarray) -> None:
        """Write many rows (oldest first)."""
        n = len(rows)
        if n >= self._capacity:
            self._data[:] = rows[n - self._capacity :]
            self._pos = 0
        else:
            first = min(n, self._capacity - self._pos)
            self._data[self._pos : self._pos + first] = rows[:first]
            self._data[: n - first] = rows[first:]
            self._pos = (self._pos + n) % self._capacity
        self._size = min(self._size + n, self._capacity)

    def ordered(self) -> np.ndarray:
        """A fresh array of the stored rows, oldest first."""
        if self._size < self._capacity:
            return self._data[: self._size].copy()
        return np.concatenate([self._data[self._pos :], self._data[: self._pos]])

    def to_state(self) -> dict[str, Any]:
        """The stored rows, oldest first, as JSON data (:func:`~detectors._state.encode_array`)."""
        return encode_array(self.ordered())

    def load_state(self, state: Any) -> None:
        """Append the rows ``to_state`` wrote (or a plain JSON list of rows)."""
        rows = decode_array(state, self._data.dtype)
        if len(rows):
            self.extend(rows)
