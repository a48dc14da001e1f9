"""A feature column of one batch as numbers, converted once for every consumer.

The drift detectors (:func:`streams.pipeline.feeding.numeric`) and the data-quality checks
(:class:`streams.pipeline.quality.FeatureQuality`) both read a numeric feature's values as
a float64 array. Converting the column once per batch and handing both the same array
removes what was most of the checks' cost: numpy's own pass over the values, made twice
(and the detectors' one made again for every observation chunk of the batch).

The two consumers do not agree on what a number is, and each keeps its own view:
``np.asarray(values, dtype=np.float64)`` turns ``True`` into 1.0 and ``"3"`` into 3.0 for a
detector, while a quality check counts either as a type change. So the record says whether
every value is a plain int, float or ``None`` (``plain``); the checks take the array only
then, and a column numpy cannot convert as a whole (``None`` from :func:`number_column`)
leaves both to their own value-by-value paths, as before.

>>> c = number_column([1.5, 2, None])
>>> c.values.tolist(), c.plain
([1.5, 2.0, nan], True)
>>> c = number_column([1.5, True])
>>> c.values.tolist(), c.plain
([1.5, 1.0], False)
>>> number_column(["3", 1.0]) is None, number_column([[1.0], [2.0]]) is None
(True, True)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

#: Value types a plain numeric column holds (a bool is not one: it is a type change).
_PLAIN_TYPES = frozenset({float, int, type(None)})


@dataclass(frozen=True, slots=True)
class NumberColumn:
    """``values``: what ``np.asarray(column, dtype=np.float64)`` gives (1-D; ``None`` is
    nan). ``plain``: every value of the column is an int, a float or ``None``; known only
    where the column was converted ``with_types`` (``False`` otherwise)."""

    values: np.ndarray
    plain: bool


def number_column(values: Sequence[Any], with_types: bool = True) -> NumberColumn | None:
    """``values`` converted once; ``None`` where numpy cannot convert them as a whole (a
    string, a list, an int beyond a float's range): each consumer then does as it did.
    ``with_types``: also find whether the column is ``plain`` (for the quality checks)."""
    if not with_types:
        try:
            x = np.asarray(values, dtype=np.float64)  # None -> nan; a string raises
        except (TypeError, ValueError, OverflowError):
            return None
        return NumberColumn(x, False) if x.ndim == 1 else None
    try:
        x = np.asarray(values)  # its dtype shows the types in the same pass
    except (TypeError, ValueError, OverflowError):  # lists of unequal lengths, say
        return None
    if x.ndim != 1:
        return None
    kind = x.dtype.kind
    if kind in "fi":  # ints and floats, or a bool among them (which numpy makes a 0 or a 1)
        plain = not np.count_nonzero((x == 0) | (x == 1)) or set(map(type, values)) <= _PLAIN_TYPES
        return NumberColumn(x if x.dtype == np.float64 else x.astype(np.float64), plain)
    if kind == "b":
        return NumberColumn(x.astype(np.float64), False)
    if kind == "O" and set(map(type, values)) <= _PLAIN_TYPES:  # numbers and nulls
        try:
            return NumberColumn(np.asarray(values, dtype=np.float64), True)
        except OverflowError:  # an int beyond a float's range
            return None
    return None  # strings (numpy would parse "3" for a detector, value by value), mixed objects


__all__ = ["NumberColumn", "number_column"]
