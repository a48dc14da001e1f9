"""PSI detectors advanced together (detectors/psi_group.py) end exactly where each one's own
``update_many`` leaves it: hits, flags, statistic (bit for bit) and state."""

from __future__ import annotations

import numpy as np
import pytest

from detectors.psi import PSI
from detectors.psi_categorical import CategoricalPSI
from detectors.psi_group import group_key, update_together


def _pair(rng: np.random.Generator, k: int, **params: object) -> tuple[list[PSI], list[PSI]]:
    references = [rng.normal(0, 1 + r, 400) for r in range(k)]
    return ([PSI(reference=ref, **params) for ref in references],  # type: ignore[arg-type]
            [PSI(reference=ref, **params) for ref in references])  # type: ignore[arg-type]


def _same(alone: list[PSI], together: list[PSI]) -> None:
    for a, b in zip(alone, together):
        assert (a.drift_detected, a.warning_detected, a.n_seen) == (b.drift_detected, b.warning_detected, b.n_seen)
        assert a.statistic == b.statistic or (np.isnan(a.statistic) and np.isnan(b.statistic))  # bit for bit
        assert a.to_state() == b.to_state()


@pytest.mark.parametrize("seed", range(6))
def test_together_equals_one_by_one_whatever_the_batch_sizes(seed: int) -> None:
    """Random batch sizes: before the window fills, several evaluations in one batch, none,
    rings wrapped at any position; shifted streams so that some batches drift."""
    rng = np.random.default_rng(seed)
    alone, together = _pair(rng, 5, bins=8, window=120, step=30, psi_above=0.15)
    drifts = 0
    for i in range(60):
        n = int(rng.choice([1, 7, 30, 45, 119, 250]))
        values = np.vstack([rng.normal(0.02 * i * r, 1 + r, n) for r in range(5)])
        hits = update_together(together, values)
        expected = [a.update_many(row) for a, row in zip(alone, values)]
        assert [h.tolist() for h in hits] == [e.tolist() for e in expected]
        _same(alone, together)
        drifts += sum(map(len, expected))
    assert drifts > 0
    assert {group_key(d) for d in together} == {group_key(together[0])}


def test_together_after_a_restore_continues_as_one_by_one() -> None:
    """Restored detectors' rings start at another position than their originals' did."""
    rng = np.random.default_rng(11)
    alone, together = _pair(rng, 3, window=100, step=25)
    warm = rng.normal(0, 1, (3, 137))
    for d, row in [*zip(alone, warm), *zip(together, warm)]:
        d.update_many(row[:60])
        d.update_many(row[60:])
    together = [PSI.from_state(together[0].to_state()), *together[1:]]  # its ring starts elsewhere
    assert together[0]._ring._pos != together[1]._ring._pos
    for _ in range(10):
        values = rng.normal(0.5, 1, (3, 50))
        assert [h.tolist() for h in update_together(together, values)] == [a.update_many(r).tolist() for a, r in zip(alone, values)]
        _same(alone, together)


def test_group_key_keeps_apart_what_cannot_go_together() -> None:
    rng = np.random.default_rng(2)
    ties = PSI(reference=np.repeat([0.0, 1.0, 2.0], 50))  # merged edges: fewer buckets
    plain = PSI(reference=rng.normal(0, 1, 300))
    assert group_key(ties) != group_key(plain)
    assert group_key(PSI()) is None  # no reference yet
    plain.update_many(rng.normal(0, 1, 3))
    assert group_key(plain) != group_key(PSI(reference=rng.normal(0, 1, 300)))  # another position


@pytest.mark.parametrize("seed", range(3))
def test_categorical_together_equals_one_by_one(seed: int) -> None:
    """Category keys, unseen ones among them (the "other" bucket), references of as many
    categories (one bucket count) but different proportions."""
    rng = np.random.default_rng(seed)
    names = np.array(["a", "b", "c", "d", "e"])
    references = [list(rng.choice(names[:4], 300, p=p)) for p in ([0.4, 0.3, 0.2, 0.1], [0.1, 0.2, 0.3, 0.4])]
    alone = [CategoricalPSI(reference=r, window=150, step=50) for r in references]
    together = [CategoricalPSI(reference=r, window=150, step=50) for r in references]
    assert group_key(together[0]) == group_key(together[1]) != group_key(PSI(reference=rng.normal(0, 1, 50), window=150, step=50))
    drifts = 0
    for i in range(40):
        n = int(rng.choice([3, 50, 77, 200]))
        p = [0.25, 0.25, 0.25, 0.25 - 0.005 * i, 0.005 * i]
        values = [list(rng.choice(names, n, p=p)) for _ in range(2)]
        expected = [a.update_many(row) for a, row in zip(alone, values)]
        assert [h.tolist() for h in update_together(together, values)] == [e.tolist() for e in expected]
        _same(alone, together)  # type: ignore[arg-type]
        drifts += sum(map(len, expected))
    assert drifts > 0
