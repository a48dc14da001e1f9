"""Data quality of one feature: missing values, values outside the reference, type changes.

Each feature's reference gives its profile: its missing rate, its value types, and its
range (a numeric feature) or its categories (any other). Each prediction then gets a few
flags, kept for the last ``window`` predictions; at each checkpoint the share of each flag
is checked (``data_quality.checks``): the missing rate against the reference's plus
``max_missing_increase``, the others against their own ``max_*`` share. The state is the
profile and the flags, plain data, bounded by the reference and the window: the flags are
one digit per value in a string (a list of ints cost a JSON number per value, per feature,
in every changelog write).

>>> q = FeatureQuality.from_reference([1.0, 2.0, None, 3.0], window=4)
>>> q.update([2.5, None, None, 7.0])
>>> q.share("missing_rate"), q.share("out_of_range"), q.share("type_change")
(0.5, 0.25, 0.0)
>>> q.update(["3"])  # a string where the reference had numbers: a type change
>>> q.share("type_change")
0.25
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

#: The checks per kind of feature (numeric: out_of_range; categorical: unseen_category).
CHECKS = ("missing_rate", "out_of_range", "unseen_category", "type_change")
#: Value types that take the vectorised paths of FeatureQuality.update.
_NUMERIC_TYPES = frozenset({float, int, type(None)})
_STRING_TYPES = frozenset({str, type(None)})
_BIT = {"missing_rate": 1, "out_of_range": 2, "unseen_category": 2, "type_change": 4}
#: The flag values (0..7) that carry each check's bit.
_HAS = {check: [f for f in range(8) if f & bit] for check, bit in _BIT.items()}


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
    """The profile of one feature's reference and the flags of its last ``window`` values."""

    def __init__(self, numeric: bool, missing: float, types: list[str], low: float | None, high: float | None,
                 categories: list[str] | None, window: int) -> None:
        self.numeric = numeric
        self.missing = missing
        self.types = types
        self.low, self.high = low, high
        self.categories = categories
        self._known = set(categories or ())
        self.window = window
        self._flags_kept = ""  # one octal digit of bits per value, oldest first
        # values not flagged yet: a busy worker's batch holds a few events per model, and
        # flagging costs mostly per call, so they are flagged when the flags are read
        self._new: list[Any] = []

    @classmethod
    def from_reference(cls, values: Sequence[Any], window: int) -> FeatureQuality:
        present = [v for v in values if not _is_missing(v)]
        numeric = bool(present) and all(value_type(v) == "number" for v in present)
        missing = 1.0 - len(present) / len(values) if values else 0.0
        types = sorted({value_type(v) for v in present})
        if numeric:
            return cls(True, missing, types, float(min(present)), float(max(present)), None, window)
        return cls(False, missing, types, None, None, sorted({str(v) for v in present}), window)

    def checks(self, configured: Sequence[str]) -> list[str]:
        """The configured checks that apply to this feature, in ``CHECKS`` order."""
        other = "unseen_category" if self.numeric else "out_of_range"
        return [c for c in CHECKS if c in configured and c != other]

    def update(self, values: Sequence[Any]) -> None:
        """Add values in stream order; the last ``window`` are flagged when read."""
        self._new.extend(values)

    @property
    def flags(self) -> str:
        """One digit of flag bits per value of the window, oldest first."""
        if self._new:
            values, self._new = self._new, []
            self._flags_kept = (self._flags_kept + self._flag(values[-self.window:]))[-self.window:]
        return self._flags_kept

    def _flag(self, values: Sequence[Any]) -> str:
        kinds = set(map(type, values))
        if self.numeric and kinds <= _NUMERIC_TYPES:
            flags = self._numeric_flags(values)
        elif not self.numeric and kinds <= _STRING_TYPES and self.types == ["string"]:
            flags = self._string_flags(values)
        else:
            flags = self._flags(values)
        return flags

    def _numeric_flags(self, values: Sequence[Any]) -> str:
        """A numeric feature's numbers and nulls, with numpy: the common case, per batch."""
        try:
            x = np.asarray(values, dtype=np.float64)  # None -> nan
        except OverflowError:  # an int beyond a float's range
            return self._flags(values)
        missing = ~np.isfinite(x)
        with np.errstate(invalid="ignore"):
            outside = ~missing & ((x < self.low) | (x > self.high))
        codes = missing.astype(np.uint8) | (outside.astype(np.uint8) << 1)
        # a number where the reference had none (its numbers were all ints, say) is not a type change
        return (codes + ord("0")).tobytes().decode("ascii")

    def _string_flags(self, values: Sequence[Any]) -> str:
        """A categorical feature's strings and nulls: set lookups, no per-value dispatch."""
        known = self._known
        return "".join("1" if v is None else "0" if v in known else "2" for v in values)

    def _flags(self, values: Sequence[Any]) -> str:
        """Any mix of types, one value at a time."""
        flags = []
        for v in values:
            if _is_missing(v):
                flags.append("1")
                continue
            kind = value_type(v)
            flag = 0 if kind in self.types else 4
            if self.numeric:
                if kind == "number" and not (self.low <= v <= self.high):  # type: ignore[operator]  # numeric: set
                    flag |= 2
            elif str(v) not in self._known:
                flag |= 2
            flags.append(str(flag))
        return "".join(flags)

    def share(self, check: str) -> float:
        """The share of the window's values ``check`` flags (``nan`` while it is empty, or
        where the check is not for this kind of feature)."""
        return self.shares([check])[check]

    def shares(self, checks: Sequence[str]) -> dict[str, float]:
        """Each check's share, from one count of the window's flags (a count per check was
        most of a checkpoint's cost)."""
        mine = self.checks(CHECKS)
        flags = self.flags
        if not flags:
            return {check: math.nan for check in checks}
        counts = np.bincount(np.frombuffer(flags.encode("ascii"), dtype=np.uint8) - ord("0"), minlength=8)
        n = len(flags)
        return {check: float(counts[_HAS[check]].sum()) / n if check in mine else math.nan for check in checks}

    def threshold(self, check: str, limits: dict[str, Any]) -> float:
        """Drift when the share is above this."""
        if check == "missing_rate":
            return self.missing + float(limits["max_missing_increase"])
        return float(limits[f"max_{check}"])

    def to_state(self) -> dict[str, Any]:
        return {"numeric": self.numeric, "missing": self.missing, "types": self.types, "low": self.low,
                "high": self.high, "categories": self.categories, "window": self.window, "flags": self.flags}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> FeatureQuality:
        q = cls(state["numeric"], state["missing"], list(state["types"]), state["low"], state["high"],
                state["categories"], int(state["window"]))
        q._flags_kept = str(state["flags"])
        return q


__all__ = ["CHECKS", "FeatureQuality", "value_type"]
