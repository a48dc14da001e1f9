"""Shared machinery of the detectors that compare a stream with a reference sample."""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, TypeVar

import numpy as np

from detectors._state import decode_array, decode_float, encode_array, encode_float
from detectors.base import Detector, check_values
from detectors.exceptions import InputError, NoReferenceError

__all__ = ["ReferenceDetector", "capped_sorted", "numeric_reference"]

R = TypeVar("R", bound="ReferenceDetector")


def numeric_reference(owner: str, reference: Any, min_size: int = 2) -> np.ndarray:
    """Validate a numeric reference sample (finite values, at least ``min_size`` of them)."""
    try:
        values = check_values(owner, reference)
    except InputError as exc:
        raise ValueError(f"reference: {exc}") from None
    if len(values) < min_size:
        raise ValueError(f"{owner}: reference needs at least {min_size} values, got {len(values)}")
    return values


def capped_sorted(values: np.ndarray, cap: int) -> np.ndarray:
    """The sorted sample, thinned to at most ``cap`` evenly spaced order statistics.

    Deterministic (no random draw), so the same reference always gives the same summary.

    >>> capped_sorted(np.arange(10.0)[::-1], 4).tolist()
    [0.0, 3.0, 6.0, 9.0]
    """
    ordered = np.sort(values)
    if len(ordered) <= cap:
        return ordered
    positions = np.round(np.linspace(0, len(ordered) - 1, cap)).astype(np.int64)
    return ordered[positions]


class ReferenceDetector(Detector):
    """A detector that needs a reference: given to ``__init__`` or to ``fit``.

    Subclasses summarise the reference into a small dict (``_summarise``); the summary, not
    the reference, is kept and written to the state. ``_reference_arrays`` names the summary
    entries that are numpy arrays, with their dtype.
    """

    _reference_arrays: ClassVar[dict[str, Any]] = {}
    _reference_floats: ClassVar[tuple[str, ...]] = ()
    _reference: dict[str, Any] | None

    def _start(self, reference: Any) -> None:
        """End of ``__init__``: create the state, then fit the reference if one was given."""
        self._reference = None
        self._reset()
        if reference is not None:
            self.fit(reference)

    def fit(self: R, reference: Any) -> R:
        """Summarise ``reference`` and start afresh against it."""
        self._reference = self._summarise(reference)
        self._reset()
        return self

    @abc.abstractmethod
    def _summarise(self, reference: Any) -> dict[str, Any]:
        """Validate ``reference`` and reduce it to a bounded summary."""

    @property
    def reference_summary(self) -> dict[str, Any] | None:
        """The fitted reference summary (``None`` until ``fit``)."""
        return self._reference

    def _require_reference(self) -> dict[str, Any]:
        if self._reference is None:
            raise NoReferenceError(f"{self.name} has no reference; call fit(reference) first")
        return self._reference

    def update(self, x: Any) -> None:
        """Update the detector with one value (needs a fitted reference)."""
        self._require_reference()
        super().update(x)

    def update_many(self, xs: np.ndarray | Sequence[Any]) -> np.ndarray:
        """Update with a batch; same result as calling ``update`` on each value in turn."""
        self._require_reference()
        return super().update_many(xs)

    def update_until_drift(self, xs: np.ndarray | Sequence[Any]) -> int:
        """Update until a value signals drift (needs a fitted reference); how many were used."""
        self._require_reference()
        return super().update_until_drift(xs)

    def _dump(self) -> dict[str, Any]:
        return {"reference": self._reference_state(), **self._dump_stream()}

    def _reference_state(self) -> dict[str, Any] | None:
        """The reference summary as JSON data, encoded once per fitted summary (it never
        changes in place, and every state dump needs it)."""
        summary = self._reference
        if summary is None:
            return None
        cached = getattr(self, "_reference_cache", None)
        if cached is not None and cached[0] is summary:
            return dict(cached[1])
        encoded: dict[str, Any] = {}
        for key, value in summary.items():
            if key in self._reference_arrays:
                value = encode_array(np.asarray(value, dtype=self._reference_arrays[key]))
            elif key in self._reference_floats:
                value = encode_float(value)
            encoded[key] = value
        self._reference_cache = (summary, encoded)
        return dict(encoded)

    def _load(self, state: Mapping[str, Any]) -> None:
        reference = state["reference"]
        if reference is not None:
            self._reference = {}
            for key, value in reference.items():
                if key in self._reference_arrays:
                    value = decode_array(value, self._reference_arrays[key])
                elif key in self._reference_floats:
                    value = decode_float(value)
                self._reference[key] = value
        self._load_stream(state)

    @abc.abstractmethod
    def _dump_stream(self) -> dict[str, Any]:
        """State that depends on the stream seen so far (not the reference)."""

    @abc.abstractmethod
    def _load_stream(self, state: Mapping[str, Any]) -> None:
        """Restore what ``_dump_stream`` wrote."""
