"""Data quality of one feature: missing values, values outside the reference, type changes.

Each feature's reference gives its profile: its missing rate, its value types, and its
range (a numeric feature) or its categories (any other). The values that follow are
counted a batch at a time, with numpy over the batch's column: per bucket of ``bucket``
consecutive stream positions, how many were missing, outside the range or unseen, and of a
type the reference did not have. The last ``window // bucket`` buckets are kept in a ring,
so the state is a few integers however long the stream (it was one digit per value of the
window, in every changelog write). At a checkpoint the share of each count over the last
``window`` values is checked (``data_quality.checks``): the missing rate against the
reference's plus ``max_missing_increase``, the others against their own ``max_*`` share.

A window ends on a bucket's edge when ``bucket`` divides both the window and the
checkpoints' spacing (the monitor's buckets: their greatest common divisor, 250 for the
default window). Counting may run ahead of the window: a batch is counted in one go at its
first checkpoint, and its buckets enter the window as checkpoints reach them
(:meth:`FeatureQuality.advance`), so a share never sees a value after its checkpoint.

>>> q = FeatureQuality.from_reference([1.0, 2.0, None, 3.0], window=4)
>>> q.update([2.5, None, None, 7.0, "3"], position=0)
>>> q.advance(4)
>>> q.share("missing_rate"), q.share("out_of_range"), q.share("type_change")
(0.5, 0.25, 0.0)
>>> q.advance(5)  # a string where the reference had numbers: a type change
>>> q.share("type_change")
0.25
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import repeat
from typing import Any

import numpy as np

from streams.pipeline.number_column import NumberColumn, number_column

#: The checks per kind of feature (numeric: out_of_range; categorical: unseen_category).
CHECKS = ("missing_rate", "out_of_range", "unseen_category", "type_change")
#: Value types that take the whole-column paths of FeatureQuality._flagged.
_NUMERIC_TYPES = frozenset({float, int, type(None)})
_STRING_TYPES = frozenset({str, type(None)})
#: Each check's count (out_of_range and unseen_category share one: a feature has one of
#: them); a value's flag has bit ``1 << count`` set for each count it is in.
_COUNT = {"missing_rate": 0, "out_of_range": 1, "unseen_category": 1, "type_change": 2}

#: Counted values not yet in the window: positions ``[start, end)``, all in one bucket, and
#: their counts (missing, outside or unseen, of another type).
Row = tuple[int, int, int, int, int]
#: Where in a batch each count's values are (offsets), ``None`` where it has none.
Flagged = tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None]


def value_type(v: Any) -> str:
    """``number``, ``bool``, ``string`` or ``other`` (a list, a dict)."""
    if type(v) is bool:
        return "bool"
    if type(v) is int or type(v) is float:
        return "number"
    return "string" if type(v) is str else "other"


def _is_missing(v: Any) -> bool:
    return v is None or (type(v) is float and not math.isfinite(v))


class FeatureQuality:
    """The profile of one feature's reference and the counts of its last ``window`` values,
    by bucket of ``bucket`` stream positions (``bucket`` divides ``window``)."""

    def __init__(self, numeric: bool, missing: float, types: list[str], low: float | None, high: float | None,
                 categories: list[str] | None, window: int, bucket: int = 1) -> None:
        if bucket < 1 or window % bucket:
            raise ValueError(f"bucket must divide window ({window}), got {bucket}")
        self.numeric = numeric
        self.missing = missing
        self.types = types
        self.low, self.high = low, high
        self.categories = categories
        self._known = set(categories or ())
        self.window = window
        self.bucket = bucket
        self._reset()

    def _reset(self) -> None:
        # bucket i's counts are in row i % rows of the ring; totals: the ring's column sums
        self._ring = [[0, 0, 0] for _ in range(self.window // self.bucket)]
        self._totals = [0, 0, 0]
        self.end = 0  # the position after the window's last value
        self.seen = 0  # values in the window (up to ``window``)
        self._queued: list[Any] = []  # values after the counted ones, not counted yet
        self._queued_at = 0  # the position of _queued[0]
        # the queued values' batches as numbers (NumberColumn.values), while every one came
        # converted and plain: the whole-column path then takes them without converting
        self._queued_numbers: list[np.ndarray] | None = []
        self._counted: list[Row] = []  # counted, not in the window yet, in stream order

    @classmethod
    def from_reference(cls, values: Sequence[Any], window: int, bucket: int = 1) -> FeatureQuality:
        column = number_column(values)
        if column is not None and column.plain:  # plain numbers and nulls: the profile in numpy passes
            finite = column.values[np.isfinite(column.values)]
            if len(finite):  # float(min(present)) of the values themselves: float() keeps their order
                missing = 1.0 - len(finite) / len(values)
                return cls(True, missing, ["number"], float(finite.min()), float(finite.max()), None, window, bucket)
        present = [v for v in values if not _is_missing(v)]
        numeric = bool(present) and all(value_type(v) == "number" for v in present)
        missing = 1.0 - len(present) / len(values) if values else 0.0
        types = sorted({value_type(v) for v in present})
        if numeric:
            return cls(True, missing, types, float(min(present)), float(max(present)), None, window, bucket)
        return cls(False, missing, types, None, None, sorted({str(v) for v in present}), window, bucket)

    def checks(self, configured: Sequence[str]) -> list[str]:
        """The configured checks that apply to this feature, in ``CHECKS`` order."""
        other = "unseen_category" if self.numeric else "out_of_range"
        return [c for c in CHECKS if c in configured and c != other]

    @property
    def full(self) -> bool:
        """Whether the window holds ``window`` values (a share of a few says little)."""
        return self.seen >= self.window

    def update(self, values: Sequence[Any], position: int, column: NumberColumn | None = None) -> None:
        """Queue ``values``, the stream's values from ``position`` on (each call's start where
        the last one's ended): they are counted when the window next advances. ``column``:
        ``values`` as the monitor converted them for its detectors, if it did."""
        if not self._queued:
            self._queued_at = position
            self._queued_numbers = []
        self._queued.extend(values)
        if self._queued_numbers is not None:
            if column is not None and column.plain:
                self._queued_numbers.append(column.values)
            else:  # these values take the value-by-value path, and so do all queued with them
                self._queued_numbers = None

    def advance(self, position: float) -> None:
        """Move the window's end up to ``position``: count what is queued, and add the
        counted buckets that end at or before it."""
        if self._queued:
            values, self._queued = self._queued, []
            numbers, self._queued_numbers = self._queued_numbers, []
            if numbers and self.numeric:
                x = numbers[0] if len(numbers) == 1 else np.concatenate(numbers)
                self._counted.extend(_per_bucket(self._outside(x), self._queued_at, len(values), self.bucket))
            else:
                self._counted.extend(self._rows(values, self._queued_at))
        counted = self._counted
        if not counted or counted[0][1] > position:  # nothing reaches the window yet
            return
        done = 0
        while done < len(counted) and counted[done][1] <= position:
            self._add(counted[done])
            done += 1
        del counted[:done]

    def _add(self, row: Row) -> None:
        start, end, missing, outside, other = row  # three counts, unrolled: once per feature per checkpoint
        b = self.bucket
        ring, totals = self._ring, self._totals
        slot = ring[(end - 1) // b % len(ring)]
        if not self.seen or (self.end - 1) // b != (end - 1) // b:  # a new bucket: the oldest goes
            totals[0] += missing - slot[0]
            totals[1] += outside - slot[1]
            totals[2] += other - slot[2]
            slot[0], slot[1], slot[2] = missing, outside, other
        else:
            totals[0] += missing
            totals[1] += outside
            totals[2] += other
            slot[0] += missing
            slot[1] += outside
            slot[2] += other
        self.end = end
        self.seen = min(self.window, self.seen + end - start)

    def _rows(self, values: list[Any], position: int) -> list[Row]:
        """``values``' counts, a row per bucket they touch."""
        return _per_bucket(self._flagged(values), position, len(values), self.bucket)

    def _flagged(self, values: list[Any]) -> Flagged:
        """Where in ``values`` each count's values are (missing; outside or unseen; of another
        type); ``None`` for a count that takes none. A numeric feature's numbers and nulls,
        and a string feature's strings and nulls, take a few whole-column passes; any other
        mix, one value at a time."""
        x = _plain_numbers(values) if self.numeric else None
        if x is None and self.numeric and set(map(type, values)) <= _NUMERIC_TYPES:
            try:
                x = np.asarray(values, dtype=np.float64)  # None -> nan
            except OverflowError:  # an int beyond a float's range
                pass
        if x is not None:
            return self._outside(x)
        if not self.numeric and self.types == ["string"]:
            distinct = _distinct(values)
            if distinct is not None and set(map(type, distinct)) <= _STRING_TYPES:  # a str equals only a str
                if None not in distinct and distinct <= self._known:
                    return None, None, None
                flag = dict.fromkeys(self._known, 0)
                flag[None] = 1
                return _positions(np.fromiter(map(flag.get, values, repeat(2)), dtype=np.uint8, count=len(values)))
        return _positions(np.fromiter(map(self._flag, values), dtype=np.uint8, count=len(values)))

    def _outside(self, x: np.ndarray) -> Flagged:
        """A numeric feature's plain numbers and nulls (``x``: nan for a null): the missing
        ones and those outside the reference's range, in a few whole-column passes."""
        low, high = self.low, self.high
        lowest, highest = x.min(), x.max()  # a nan or an infinity shows in one of them
        if low <= lowest and highest <= high:
            return None, None, None
        if math.isfinite(lowest) and math.isfinite(highest):  # outliers, nothing missing
            return None, np.flatnonzero((x < low) | (x > high)), None
        finite = np.isfinite(x)
        return np.flatnonzero(~finite), np.flatnonzero(finite & ((x < low) | (x > high))), None

    def _flag(self, v: Any) -> int:
        """One value's flag, whatever its type."""
        if _is_missing(v):
            return 1
        kind = value_type(v)
        flag = 0 if kind in self.types else 4
        if self.numeric:
            if kind == "number" and not (self.low <= v <= self.high):  # type: ignore[operator]  # numeric: set
                flag |= 2
        elif str(v) not in self._known:
            flag |= 2
        return flag

    def share(self, check: str) -> float:
        """The share of the window's values ``check`` counts (``nan`` until the window is
        full, or where the check is not for this kind of feature)."""
        return self.shares([check])[check]

    def shares(self, checks: Sequence[str]) -> dict[str, float]:
        """Each check's share of the window: exact where it ends on a bucket's edge."""
        if not self.full:
            return {check: math.nan for check in checks}
        mine = self.checks(CHECKS)
        totals, n = self._totals, self.window
        return {check: totals[_COUNT[check]] / n if check in mine else math.nan for check in checks}

    def judging(self, limits: dict[str, Any]) -> list[tuple[str, int, float]]:
        """``(check, count, threshold)`` of each check of ``limits["checks"]`` (the model's
        ``data_quality`` config) that applies: its share at a checkpoint is
        ``counts_at(position)[count] / window``. The caller works this out once."""
        return [(c, _COUNT[c], self.threshold(c, limits)) for c in self.checks(limits["checks"])]

    def counts_at(self, position: int) -> list[int] | None:
        """:meth:`advance` to ``position``; then the window's counts (missing; outside or
        unseen; of another type) once it is full, ``None`` before. The list is the running
        totals themselves (read it, do not keep it): a checkpoint of a dozen features reads
        three dozen shares, so nothing is built for them."""
        self.advance(position)
        return self._totals if self.seen >= self.window else None

    def threshold(self, check: str, limits: dict[str, Any]) -> float:
        """Drift when the share is above this."""
        if check == "missing_rate":
            return self.missing + float(limits["max_missing_increase"])
        return float(limits[f"max_{check}"])

    def to_state(self) -> dict[str, Any]:
        """The profile and the ring, after everything queued is counted and in the window
        (all of it is before the next checkpoint, so no share changes)."""
        self.advance(math.inf)
        return {"numeric": self.numeric, "missing": self.missing, "types": self.types, "low": self.low,
                "high": self.high, "categories": self.categories, "window": self.window, "bucket": self.bucket,
                "end": self.end, "seen": self.seen, "counts": [row[:] for row in self._ring]}

    @classmethod
    def from_state(cls, state: dict[str, Any], end: int = 0, bucket: int = 1) -> FeatureQuality:
        """A state of :meth:`to_state`; or one written when the window was one flag digit per
        value (``flags``): those are counted again, the last at ``end - 1``, into buckets of
        ``bucket``."""
        counts = state.get("counts")
        q = cls(state["numeric"], state["missing"], list(state["types"]), state["low"], state["high"],
                state["categories"], int(state["window"]), int(state["bucket"]) if counts is not None else bucket)
        if counts is not None:
            q._ring = [[int(c) for c in row] for row in counts]
            q._totals = [sum(column) for column in zip(*q._ring)]
            q.end, q.seen = int(state["end"]), int(state["seen"])
            return q
        flags = str(state.get("flags") or "")
        codes = np.frombuffer(flags.encode("ascii"), dtype=np.uint8) - ord("0")
        for row in _per_bucket(_positions(codes), end - len(flags), len(flags), q.bucket) if len(flags) else ():
            q._add(row)
        return q


def _per_bucket(flagged: Flagged, position: int, n: int, bucket: int) -> list[Row]:
    """The counts of ``n`` values from ``position`` on (``flagged``: where each count's
    values are), a row per bucket they touch."""
    starts = [position, *range((position // bucket + 1) * bucket, position + n, bucket)]
    ends = [*starts[1:], position + n]
    first = position // bucket
    counts = [[0] * len(starts) if at is None or not len(at) else
              np.bincount((at + position) // bucket - first, minlength=len(starts)).tolist() for at in flagged]
    return [(s, e, *c) for s, e, c in zip(starts, ends, zip(*counts))]


def _positions(codes: np.ndarray) -> Flagged:
    """Flag digits (bits 1, 2, 4: one per count) as where each count's values are."""
    return tuple(np.flatnonzero(codes & bit) for bit in (1, 2, 4))  # type: ignore[return-value]


def _plain_numbers(values: Sequence[Any]) -> np.ndarray | None:
    """``values`` as an array where numpy's own pass over them shows ints and floats only
    (no null, string or list): one pass instead of a type check and a conversion. A bool
    would pass as a 0 or a 1, so a column holding either is left to the type check."""
    try:
        x = np.asarray(values)
    except (ValueError, TypeError, OverflowError):  # lists of unequal lengths, say
        return None
    if x.ndim != 1 or x.dtype.kind not in "fi" or np.count_nonzero((x == 0) | (x == 1)):
        return None
    return x


def _distinct(values: Sequence[Any]) -> set[Any] | None:
    """The distinct values, or ``None`` where one cannot be hashed (a list, a dict)."""
    try:
        return set(values)
    except TypeError:
        return None


__all__ = ["CHECKS", "FeatureQuality", "value_type"]
