"""Shared machinery of the windowed detectors on a categorical feature.

Categories are str, bool or int values; ``None`` is the category ``"null"``. Each value is
keyed as a string (``True`` -> ``"true"``, ``3`` -> ``"3"``), the reference's
``max_categories`` most frequent keys get a code each, and every other key, including
categories never seen in the reference, falls in one extra ``"other"`` bucket. Nothing that is
a category ever raises; floats (NaN included) and other types do.
"""

from __future__ import annotations

import collections
from collections.abc import Mapping
from itertools import repeat
from typing import Any, ClassVar

import numpy as np

from detectors._windowed import WindowedDetector
from detectors.base import require_int
from detectors.exceptions import InputError

__all__ = ["CategoricalWindowedDetector", "category_key"]


def category_key(owner: str, x: object) -> str:
    """The string key of one category value.

    >>> [category_key("chi2", v) for v in ("a", True, 3, None)]
    ['a', 'true', '3', 'null']
    >>> category_key("chi2", float("nan"))
    Traceback (most recent call last):
    ...
    detectors.exceptions.InputError: chi2: category must be str, bool, int or None, got nan (float)
    """
    if isinstance(x, str):
        return x
    if x is None:
        return "null"
    if isinstance(x, (bool, np.bool_)):
        return "true" if x else "false"
    if isinstance(x, (int, np.integer)):
        return str(int(x))
    raise InputError(
        f"{owner}: category must be str, bool, int or None, got {x!r} ({type(x).__name__})"
    )


class CategoricalWindowedDetector(WindowedDetector):
    """A windowed detector over category codes; the reference summary is the category list
    and the reference count of each category (plus ``"other"``, last)."""

    kind: ClassVar[str] = "categorical"  # type: ignore[assignment]
    _reference_arrays: ClassVar[dict[str, Any]] = {"counts": np.int64}
    max_categories: int

    def _window_dtype(self) -> Any:
        return np.min_scalar_type(self.max_categories + 1)  # category codes, "other" included

    def _check_categories(self) -> None:
        require_int(self.name, "max_categories", self.max_categories, 1)

    def _load_stream(self, state: Mapping[str, Any]) -> None:
        super()._load_stream(state)
        self._index = self._make_index()

    def _reset(self) -> None:
        super()._reset()
        self._index = self._make_index()

    def _make_index(self) -> dict[str, int]:
        if self._reference is None:
            return {}
        return {key: code for code, key in enumerate(self._reference["categories"])}

    def _summarise(self, reference: Any) -> dict[str, Any]:
        try:
            counts = collections.Counter(category_key(self.name, x) for x in reference)
        except InputError as exc:
            raise ValueError(f"reference: {exc}") from None
        if not counts:
            raise ValueError(f"{self.name}: reference needs at least 1 value, got 0")
        ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
        kept = ranked[: self.max_categories]
        other = sum(count for _, count in ranked[self.max_categories :])
        return {
            "categories": [key for key, _ in kept],
            "counts": np.asarray([count for _, count in kept] + [other], dtype=np.int64),
        }

    def _check_one(self, x: Any) -> int:
        self._require_reference()
        return self._index.get(category_key(self.name, x), len(self._index))

    def _check_many(self, xs: Any) -> np.ndarray:
        self._require_reference()
        index, other, name = self._index, len(self._index), self.name
        if set(map(type, xs)) == {str}:  # the monitor's keys already: looked up in C
            codes = list(map(index.get, xs, repeat(other)))
        else:
            codes = [index.get(category_key(name, x), other) for x in xs]
        return np.asarray(codes, dtype=np.int64)

    def _window_counts(self, window: np.ndarray) -> np.ndarray:
        return np.bincount(window, minlength=len(self._index) + 1)
