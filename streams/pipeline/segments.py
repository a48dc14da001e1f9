"""Segments: which slice of a model's traffic an event belongs to (``segment_by``).

With ``segment_by = "country"`` a model is monitored overall and per segment. A segment
is named by the value of that feature (:func:`segment_of`), computed the same way by the
join (for the pairs, which carry no features) and by the monitor (for the predictions).

The segments are bounded: the ``segments.max`` most frequent values of the model's
reference period (ties by name, so the choice is deterministic) are chosen once the
reference is in and fixed from then on; every other value, including one first seen later,
goes to :data:`OTHER`. So a model has at most ``segments.max + 1`` segment monitors and
its series at most ``segments.max + 2`` values of the ``segment`` label (with the overall
``""``), however many distinct values the stream brings.

>>> choose(["DE", "US", "FR", "US", "DE", "IT"], 2)
['DE', 'US']
>>> [segment_of(v) for v in ("US", None, 3, 2.5, True)]
['US', 'null', '3', '2.5', 'true']
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import orjson

#: The segment of every value that is not among the chosen ones.
OTHER = "other"
#: A segment's name is its value cut at this many characters (it becomes a label value).
MAX_NAME = 64


def segment_of(value: Any) -> str:
    """The segment name of a feature value: a string as it is, anything else as JSON
    (``null`` for an absent feature)."""
    name = value if isinstance(value, str) else orjson.dumps(value).decode()
    return name[:MAX_NAME]


def segment_column(models: Sequence[str], features: Mapping[str, Sequence[Any]],
                   segment_by: Callable[[str], str | None]) -> list[str | None]:
    """Each row's segment name (``None`` where its model has no ``segment_by``), for the rows
    of a column batch of ``models`` and ``features``.

    >>> segment_column(["m", "n", "m"], {"c": ["US", "DE", None]}, {"m": "c", "n": None}.get)
    ['US', None, 'null']
    """
    by = {m: segment_by(m) for m in set(models)}
    if len(set(by.values())) == 1:  # one feature (or none) for every row: a pass over one column
        [feature] = set(by.values())
        if feature is None:
            return [None] * len(models)
        column = features.get(feature)
        return list(map(segment_of, column)) if column is not None else [segment_of(None)] * len(models)
    out: list[str | None] = []
    for i, model in enumerate(models):
        feature = by[model]
        column = features.get(feature) if feature is not None else None
        out.append(None if feature is None else segment_of(column[i] if column is not None else None))
    return out


def choose(names: Iterable[str], k: int) -> list[str]:
    """The ``k`` most frequent of ``names`` (ties: by name), in name order; never :data:`OTHER`
    itself, which is always a segment."""
    counts = Counter(name for name in names if name != OTHER)
    top = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:k]
    return sorted(name for name, _ in top)


def split(segments: Sequence[str | None], chosen: Sequence[str]) -> dict[str, list[int]]:
    """Row indices by segment: each chosen segment's rows, then :data:`OTHER`'s, each in
    order (segments without rows left out).

    >>> split(["US", "FR", "US", None], ["US"])
    {'US': [0, 2], 'other': [1, 3]}
    """
    known = set(chosen)
    rows: dict[str, list[int]] = {}
    for i, name in enumerate(segments):
        rows.setdefault(name if name in known else OTHER, []).append(i)
    return {name: rows[name] for name in [*chosen, OTHER] if name in rows}


def take_rows(columns: Mapping[str, Any], index: Sequence[int]) -> dict[str, Any]:
    """The rows ``index`` of a monitor-input column batch (``features`` is a table of columns).

    >>> take_rows({"ts": [1.0, 2.0], "features": {"x": [5, 6]}}, [1])
    {'ts': [2.0], 'features': {'x': [6]}}
    """
    def pick(values: Sequence[Any]) -> list[Any]:
        return [values[i] for i in index]

    return {name: {f: pick(v) for f, v in values.items()} if name == "features" else pick(values)
            for name, values in columns.items() if values is not None}


__all__ = ["MAX_NAME", "OTHER", "choose", "segment_column", "segment_of", "split", "take_rows"]
