"""The skew check: an event stamped too far ahead of its record never reaches the join.

The join's window closes at the largest prediction event time it has seen, and that clock
never goes back. One valid prediction stamped 9999-12-31 used to expire every pending
prediction at once and then froze expiry for good (nothing is ever past the year 9999), so
the join state grew without bound. An event whose time is more than ``max_skew_s`` ahead
of its *reference time* is therefore dead-lettered (``clock_skew``) before the join sees
it, so no record can move the clock further than that.

The reference time is the Kafka record's timestamp when the record has one (the producer's
CreateTime, or the broker's LogAppendTime): it is part of the log, so a replay of the same
records makes the same decisions as the live worker. A record with no timestamp (a
backtest read from files) falls back to the wall clock, and so does one stamped ahead of the
wall clock (a producer can set any record timestamp; the earlier of the two counts).

>>> check = SkewCheck(3600.0)
>>> labels = {"prediction_id": ["a", "b"], "label": [1, 0], "timestamp": [10.0, 1e11], "model_id": [None, None]}
>>> kept, errors = check.screen_columns(labels, reference_s=100.0, role="ground-truth")
>>> kept["prediction_id"], [(e.index, e.reason) for e in errors]
(['a'], [(1, 'clock_skew')])
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from schemas import codec
from schemas.columns import rows, take
from schemas.parsing import RecordError

#: Dead-letter reason of an event stamped too far ahead of its record.
CLOCK_SKEW = "clock_skew"


@dataclass(frozen=True, slots=True)
class SkewCheck:
    """Rejects events more than ``max_skew_s`` seconds ahead of their reference time."""

    max_skew_s: float

    def __post_init__(self) -> None:
        if not self.max_skew_s > 0:
            raise ValueError(f"max_skew_s must be > 0, got {self.max_skew_s}")

    def _message(self, role: str, ts: float, reference_s: float) -> str:
        return (f"{role}: field 'timestamp' is {ts - reference_s:.0f}s ahead of its record's time "
                f"{reference_s:.3f}, more than the {self.max_skew_s:g}s allowed (DRIFTSTREAM_MAX_CLOCK_SKEW_S)")

    def screen_columns(
        self, columns: Mapping[str, Any], reference_s: float, role: str
    ) -> tuple[dict[str, Any] | None, list[RecordError]]:
        """``columns`` less the events too far ahead (``None`` when none is left), and an
        error per event left out, indexed by its position in the column batch."""
        ts = np.asarray(columns["timestamp"], dtype=float)
        ahead = ts > reference_s + self.max_skew_s
        if not ahead.any():
            return dict(columns), []
        bad = np.flatnonzero(ahead).tolist()
        kept, bad_rows = drop_rows(columns, bad, role)
        errors = [RecordError(i, CLOCK_SKEW, self._message(role, float(ts[i]), reference_s), codec.dumps(row))
                  for i, row in zip(bad, bad_rows)]
        return kept, errors

    def screen_events(
        self, oks: Sequence[tuple[int | None, dict[str, Any]]], reference_s: float, role: str
    ) -> tuple[list[tuple[int | None, dict[str, Any]]], list[RecordError]]:
        """``oks`` (validated ``(index, event)``) less the events too far ahead, and an
        error per event left out."""
        limit = reference_s + self.max_skew_s
        kept: list[tuple[int | None, dict[str, Any]]] = []
        errors: list[RecordError] = []
        for index, event in oks:
            ts = float(event["timestamp"])
            if ts > limit:
                errors.append(RecordError(index, CLOCK_SKEW, self._message(role, ts, reference_s), codec.dumps(event)))
            else:
                kept.append((index, event))
        return kept, errors


def drop_rows(columns: Mapping[str, Any], bad: Sequence[int], role: str) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """``columns`` less the rows ``bad`` (sorted; ``None`` when no row is left), and those
    rows as event objects (for their dead letters)."""

    def pick(index: Sequence[int]) -> dict[str, Any]:
        return {k: take(v, index) if k != "features" else {f: take(c, index) for f, c in v.items()} for k, v in columns.items()}

    dropped = rows(pick(bad), role)  # type: ignore[arg-type]
    gone = set(bad)
    keep = [i for i in range(len(columns["prediction_id"])) if i not in gone]
    return (pick(keep) if keep else None), dropped


def reference_time(record_timestamp_ms: int | None, wall_clock: Callable[[], float]) -> float:
    """The time an event is checked against: its record's timestamp (seconds), or the wall
    clock when the record has none (Kafka uses -1) or when the record's own timestamp is
    ahead of the wall clock (a producer may set any timestamp: a record stamped 9999 must
    not vouch for an event stamped 9999). A replay, which runs later, then decides the same
    for every record stamped no later than when the worker read it.

    >>> wall = lambda: 5.0
    >>> reference_time(1_000, wall), reference_time(None, wall), reference_time(-1, wall), reference_time(9_000, wall)
    (1.0, 5.0, 5.0, 5.0)
    """
    if record_timestamp_ms is None or record_timestamp_ms < 0:
        return wall_clock()
    return min(record_timestamp_ms / 1000.0, wall_clock())


__all__ = ["CLOCK_SKEW", "SkewCheck", "drop_rows", "reference_time"]
