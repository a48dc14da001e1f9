"""Several PSI detectors advanced by one set of numpy operations.

A model's numeric features each have their own :class:`~detectors.psi.PSI` detector, and
each evaluation of one is a dozen numpy calls on arrays of ten buckets: the calls, not the
arithmetic, were most of a model monitor's cost. Detectors that stand at the same position
of their streams, with the same window, step, floor and number of buckets, evaluate
together here: one bucket count over all of their windows (each row's codes offset into a
range of its own) and one PSI over the rows. Each row gets exactly what the detector's own
``update_many`` computes (the same element-wise operations, and numpy sums each row of a
C-ordered array as it sums a 1-D one), so results and state do not depend on which path a
detector took; ``tests/unit/detectors/test_psi_group.py`` checks it bit for bit.
A categorical feature's :class:`~detectors.psi_categorical.CategoricalPSI` groups with the
others of its class the same way: its codes come from its own category index, its expected
proportions from its reference counts, as its ``update_many`` takes them.

>>> import numpy as np
>>> from detectors.psi import PSI
>>> rng = np.random.default_rng(3)
>>> references = [rng.normal(0, 1, 500) for _ in range(3)]
>>> together = [PSI(reference=r, window=200, step=100) for r in references]
>>> alone = [PSI(reference=r, window=200, step=100) for r in references]
>>> values = np.vstack([rng.normal(k, 1, 300) for k in range(3)])
>>> [h.tolist() for h in update_together(together, values)] == [d.update_many(v).tolist() for d, v in zip(alone, values)]
True
>>> [d.statistic for d in together] == [d.statistic for d in alone]
True
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any, Union

import numpy as np

from detectors.psi import PSI
from detectors.psi_categorical import CategoricalPSI

__all__ = ["Groupable", "group_key", "update_together"]

#: The detectors that go in groups (their exact classes: a subclass may test otherwise).
Groupable = Union[PSI, CategoricalPSI]


def group_key(detector: object) -> Hashable | None:
    """What detectors must share to be advanced together (``None``: not a plain
    :class:`PSI` or :class:`CategoricalPSI` with a reference, so it advances alone)."""
    kind = type(detector)
    if (kind is not PSI and kind is not CategoricalPSI) or detector.reference_summary is None:  # type: ignore[attr-defined]
        return None
    d: Any = detector
    return (kind, d.n_seen, d.window, d.step, d.epsilon, len(_expected(d)))


def _expected(detector: Groupable) -> np.ndarray:
    """The reference's proportions per bucket, as the detector's own ``_test`` takes them."""
    summary: Any = detector.reference_summary
    if type(detector) is PSI:
        return summary["expected"]
    counts = summary["counts"]
    return counts / counts.sum()


def _codes(detector: Groupable, values: Any) -> np.ndarray:
    """Each value's bucket, as the detector's ``update_many`` finds it (``values`` checked)."""
    if type(detector) is PSI:
        return detector.reference_summary["edges"].searchsorted(values, side="right")  # type: ignore[index]
    return detector._check_many(values)


def update_together(detectors: Sequence[Groupable], values: Sequence[Any]) -> list[np.ndarray]:
    """``[d.update_many(row) for d, row in zip(detectors, values)]`` for detectors of one
    :func:`group_key`, each given as many values: a :class:`PSI` finite float64 values, a
    :class:`CategoricalPSI` category keys (the caller has checked them, as ``update_many``
    would). Each detector's hits, its flags, statistic and window end as its own
    ``update_many`` leaves them."""
    first = detectors[0]
    k, n = len(detectors), len(values[0])
    n0, window = first.n_seen, first.window
    hits: list[list[int]] = [[] for _ in range(k)]
    codes = np.vstack([_codes(d, row) for d, row in zip(detectors, values)])
    positions = first._evaluations(n)  # the group's: they share position, window and step
    if positions:
        expected = np.maximum(np.vstack([_expected(d) for d in detectors]), first.epsilon)
        buckets = expected.shape[1]
        # the windows' history: the rings (their oldest values are of no window here), then the codes
        keep = min(len(first._ring), window - 1)
        history = np.hstack([_newest(detectors, keep), codes]) + (np.arange(k, dtype=np.int64) * buckets)[:, None]
        offset = n0 - keep  # history[:, j] is the value at position offset + j + 1; row r counts into [r*B, (r+1)*B)
        for position in positions:
            end = position - offset
            counts = np.bincount(history[:, end - window : end].ravel(), minlength=k * buckets).reshape(k, buckets)
            actual = np.maximum(counts / counts.sum(axis=1, keepdims=True), first.epsilon)
            statistics = np.sum((actual - expected) * np.log(actual / expected), axis=1).tolist()
            for r, d in enumerate(detectors):
                d._judge(float(statistics[r]), None)
                if d._drift:
                    hits[r].append(position - n0 - 1)
    for d, row in zip(detectors, codes):
        d._ring.extend(row)
        d._n_seen += n
        if not positions or positions[-1] != d._n_seen:
            d._drift = d._warning = False
    return [np.asarray(h, dtype=np.int64) for h in hits]


def _newest(detectors: Sequence[Groupable], keep: int) -> np.ndarray:
    """The ``keep`` newest values of each detector's window, a row each, oldest first."""
    rings = [d._ring for d in detectors]
    first = rings[0]
    if all(r._pos == first._pos and len(r) == len(first) for r in rings):  # as their common history left them
        data = np.vstack([r._data for r in rings])
        if len(first) == first._capacity:
            data = np.hstack([data[:, first._pos :], data[:, : first._pos]])
        else:
            data = data[:, : len(first)]
    else:
        data = np.vstack([r.ordered() for r in rings])
    return data[:, data.shape[1] - keep :]
