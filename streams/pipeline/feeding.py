"""How a model monitor cuts, converts and feeds its detectors' input.

The monitor (:mod:`streams.pipeline.monitor`) observes every detector at fixed positions of
its sequence (every ``OBSERVE_EVERY`` events) and feeds a windowed detector only when one of
its evaluations falls within what it is given; these helpers say where those positions are
and turn a column into the finite numbers a detector takes.

:func:`advance_together` feeds the PSI detectors that are due at once (a model's features,
at the end of an observation chunk) in groups (:mod:`detectors.psi_group`): a dozen
features' detectors cost about what a few did one by one, with the same results.

>>> chunks(240, 30)
[(0, 10), (10, 30)]
>>> all_numbers([1, 2.5, None]), all_numbers([1, float("nan")]), all_numbers([1, True]), all_numbers(["a"])
(True, False, False, False)
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from operator import countOf
from typing import Any

import numpy as np

from detectors.base import Detector
from detectors.psi_group import group_key, update_together

#: Detectors are observed every this many events of their sequence (and at first drift).
OBSERVE_EVERY = 250


def is_number(v: Any) -> bool:
    """A finite int or float (a bool is not a number here)."""
    return (type(v) is float or type(v) is int) and math.isfinite(v)


_NUMBER_TYPES = frozenset((int, float, type(None)))


def all_numbers(values: Sequence[Any]) -> bool:
    """Whether every value but ``None`` :func:`is_number`: in C-level passes, since it runs
    over every reference value of every feature of every model (50 models fitting their
    references in one batch took 0.85 s in a call per value)."""
    if not set(map(type, values)) <= _NUMBER_TYPES:
        return False
    try:
        finite = int(np.isfinite(np.asarray(values, dtype=np.float64)).sum())  # None -> nan
    except OverflowError:  # an int beyond a float's range
        return all(is_number(v) for v in values if v is not None)
    return finite == len(values) - countOf(values, None)


def chunks(start: int, count: int) -> list[tuple[int, int]]:
    """Cut positions [start, start+count) at multiples of OBSERVE_EVERY; (lo, hi) offsets."""
    cuts = []
    lo = 0
    while lo < count:
        pos = start + lo
        hi = min(count, lo + OBSERVE_EVERY - pos % OBSERVE_EVERY)
        cuts.append((lo, hi))
        lo = hi
    return cuts


def until_evaluation(detector: Detector) -> int | None:
    """How many more values ``detector`` takes up to its next evaluation, where a windowed
    detector (one with a ``step``) can signal drift; ``None``: it can at any value."""
    step = getattr(detector, "step", None)
    return step - detector.n_seen % step if isinstance(step, int) else None


def evaluation_cuts(detector: Detector, n: int) -> list[int]:
    """End offsets splitting ``n`` values so that any drift can only be signalled by the
    last value of a piece: at every ``step`` of a windowed detector (one piece otherwise)."""
    first = until_evaluation(detector)
    if first is None or first >= n:
        return [n]
    return [*range(first, n, detector.step), n]  # type: ignore[attr-defined]  # windowed: it has one


def may_signal(detector: Detector, more: int) -> bool:
    """Whether ``more`` new values could make ``detector`` signal drift: a windowed one
    only at an evaluation, any other at any value."""
    first = until_evaluation(detector)
    return detector.kind == "error_stream" or first is None or more >= first


def numeric(values: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
    """Finite numbers of ``values`` and their indices (others are missing, not errors)."""
    try:
        arr = np.asarray(values, dtype=np.float64)  # None -> nan; a string raises
    except (TypeError, ValueError):
        idx = [i for i, v in enumerate(values) if is_number(v)]
        return np.fromiter((values[i] for i in idx), dtype=np.float64, count=len(idx)), np.asarray(idx, dtype=np.int64)
    return finite(arr)


def finite(arr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`numeric` of values already converted (``arr``: float64, nan for a null)."""
    ok = np.isfinite(arr)
    if ok.all():
        return arr, np.arange(len(arr), dtype=np.int64)
    idx = np.flatnonzero(ok)
    return arr[idx], idx


def categorical(values: Sequence[Any]) -> tuple[list[str], np.ndarray]:
    return ["null" if v is None else str(v) for v in values], np.arange(len(values), dtype=np.int64)


def advance_together(due: Sequence[tuple[Detector, np.ndarray | list[str] | None]]) -> list[np.ndarray | None]:
    """Feed the detectors of ``due`` (each with what it takes: a numeric one its values as
    the batch converted them, ``None`` where they were not; a categorical one its category
    keys) that can go as a group: by :func:`detectors.psi_group.group_key` and number of
    values, at least two, a numeric one's values all finite, and no evaluation before the
    last value (so the one ``update_many`` the monitor would make is the whole of it).
    Their drift hits, each where its detector was fed here; ``None`` where the monitor
    still feeds it itself."""
    groups: dict[tuple[Hashable, int], list[int]] = {}
    for i, (detector, values) in enumerate(due):
        key = group_key(detector) if values is not None and len(values) else None
        if key is not None and evaluation_cuts(detector, len(values)) == [len(values)]:  # type: ignore[arg-type]
            groups.setdefault((key, len(values)), []).append(i)  # type: ignore[arg-type]
    advanced: list[np.ndarray | None] = [None] * len(due)
    for members in groups.values():
        rows: Any = [due[i][1] for i in members]
        if len(members) > 1 and due[members[0]][0].kind == "numeric":
            rows = np.vstack(rows)
            ok = np.isfinite(rows).all(axis=1)
            if not ok.all():  # a row with a missing value: its detector takes the monitor's own path
                members = [i for i, keep in zip(members, ok.tolist()) if keep]
                rows = rows[ok]
        if len(members) < 2:
            continue
        for i, hits in zip(members, update_together([due[i][0] for i in members], rows)):  # type: ignore[misc]
            advanced[i] = hits
    return advanced


__all__ = ["OBSERVE_EVERY", "advance_together", "all_numbers", "categorical", "chunks", "evaluation_cuts", "finite",
           "is_number", "may_signal", "numeric", "until_evaluation"]
