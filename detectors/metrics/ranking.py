"""Ranking metrics of one query, and rolling ones over the last ``window`` queries.

An event is one query: its relevant item ids (a collection, each of gain 1, or a mapping of
item id -> graded gain >= 0) and the ranked list of recommended ids. Its score is computed
on arrival by :func:`average_precision_at_k`, :func:`ndcg_at_k`,
:func:`reciprocal_rank_at_k`, :func:`precision_at_k`, :func:`recall_at_k` or
:func:`hit_at_k`; a window holds the last scores (its mean: MAP, NDCG, MRR, precision,
recall, hit rate at k). A query with no relevant item has no score (``nan``) and is skipped.
Graded gains count as relevant or not everywhere but in NDCG.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Collection, Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from detectors.base import Domain, require_int
from detectors.exceptions import InputError
from detectors.metrics.base import RollingMetric

__all__ = [
    "RollingMAPAtK", "RollingNDCGAtK", "average_precision_at_k", "gains", "hit_at_k", "ndcg_at_k", "precision_at_k",
    "recall_at_k", "reciprocal_rank_at_k",
]


def gains(relevant: Collection[Any] | Mapping[Any, float]) -> dict[Any, float]:
    """Each relevant item's gain: 1 for each item of a collection, the mapping's value
    otherwise; items of gain 0 are not relevant and are left out.

    >>> gains(["a", "b"]), gains({"a": 3, "b": 0})
    ({'a': 1.0, 'b': 1.0}, {'a': 3.0})
    """
    if isinstance(relevant, Mapping):
        return {item: float(g) for item, g in relevant.items() if g > 0}
    return dict.fromkeys(relevant, 1.0)


#: 1 / log2(rank + 1) for ranks 1..1000, NDCG's discounts (a log per item was most of its cost).
_DISCOUNTS = [1.0 / math.log2(i + 2) for i in range(1000)]


def _discount(i: int) -> float:
    """The discount of 0-based rank ``i``."""
    return _DISCOUNTS[i] if i < len(_DISCOUNTS) else 1.0 / math.log2(i + 2)


def _top(ranked: Sequence[Any], k: int) -> list[Any]:
    """The first ``k`` distinct items: a repeated item counts at its first rank only (else
    a list repeating one relevant item would score above 1)."""
    top = list(ranked[:k])
    if len(set(top)) == len(top):  # the usual case (the input contract refuses repeats)
        return top
    seen: set[Any] = set()
    top = []
    for item in ranked:
        if item not in seen:
            seen.add(item)
            top.append(item)
            if len(top) == k:
                break
    return top


def average_precision_at_k(relevance: Mapping[Any, float], ranked: Sequence[Any], k: int) -> float:
    """AP@k of one query (``relevance`` as :func:`gains` gives it; graded gains count as
    relevant or not): the sum of precision@i at each relevant rank i <= k, divided by
    min(#relevant, k); ``nan`` with no relevant item.

    >>> average_precision_at_k({"a": 1.0, "b": 1.0}, ["a", "x", "b"], 3)  # (1/1 + 2/3) / 2
    0.8333333333333333
    """
    if not relevance:
        return math.nan
    found, total = 0, 0.0
    for i, item in enumerate(_top(ranked, k), start=1):
        if item in relevance:
            found += 1
            total += found / i
    return total / min(len(relevance), k)


def ndcg_at_k(relevance: Mapping[Any, float], ranked: Sequence[Any], k: int) -> float:
    """NDCG@k of one query with linear gains (scikit-learn's ``ndcg_score``): the sum of
    gain / log2(rank + 1) over the top k, divided by that of the best possible order;
    ``nan`` with no relevant item.

    >>> round(ndcg_at_k({"a": 1.0, "b": 1.0}, ["a", "x", "b"], 3), 4)  # (1 + 1/2) / (1 + 1/log2(3))
    0.9197
    >>> round(ndcg_at_k({"a": 3.0, "b": 1.0}, ["b", "a"], 2), 4)  # (1 + 3/log2(3)) / (3 + 1/log2(3))
    0.7967
    """
    if not relevance:
        return math.nan
    dcg = sum(relevance[item] * _discount(i) for i, item in enumerate(_top(ranked, k)) if item in relevance)
    best = sorted(relevance.values(), reverse=True)[:k]
    return dcg / sum(g * _discount(i) for i, g in enumerate(best))


def _hits(relevance: Mapping[Any, float], ranked: Sequence[Any], k: int) -> list[int]:
    """The 1-based ranks <= k of the relevant items."""
    return [i for i, item in enumerate(_top(ranked, k), start=1) if item in relevance]


def reciprocal_rank_at_k(relevance: Mapping[Any, float], ranked: Sequence[Any], k: int) -> float:
    """1 / the rank of the first relevant item in the top k (0 if none is there); ``nan``
    with no relevant item. Its mean over queries is MRR@k.

    >>> reciprocal_rank_at_k({"b": 1.0}, ["a", "b"], 2), reciprocal_rank_at_k({"c": 1.0}, ["a", "b"], 2)
    (0.5, 0.0)
    """
    if not relevance:
        return math.nan
    hits = _hits(relevance, ranked, k)
    return 1.0 / hits[0] if hits else 0.0


def precision_at_k(relevance: Mapping[Any, float], ranked: Sequence[Any], k: int) -> float:
    """The share of the k ranks that hold a relevant item (a shorter list counts its missing
    ranks as misses); ``nan`` with no relevant item.

    >>> precision_at_k({"a": 1.0, "b": 1.0}, ["a", "x", "b", "y"], 4)
    0.5
    """
    return len(_hits(relevance, ranked, k)) / k if relevance else math.nan


def recall_at_k(relevance: Mapping[Any, float], ranked: Sequence[Any], k: int) -> float:
    """The share of the relevant items found in the top k; ``nan`` with none.

    >>> recall_at_k({"a": 1.0, "b": 1.0, "c": 1.0}, ["a", "x", "b"], 2)
    0.3333333333333333
    """
    return len(_hits(relevance, ranked, k)) / len(relevance) if relevance else math.nan


def hit_at_k(relevance: Mapping[Any, float], ranked: Sequence[Any], k: int) -> float:
    """1 if a relevant item is in the top k, else 0; ``nan`` with no relevant item. Its
    mean over queries is the hit rate at k.

    >>> hit_at_k({"b": 1.0}, ["a", "b"], 1), hit_at_k({"b": 1.0}, ["a", "b"], 2)
    (0.0, 1.0)
    """
    if not relevance:
        return math.nan
    return 1.0 if _hits(relevance, ranked, k) else 0.0


class _RankingMetric(RollingMetric):
    _domains: ClassVar[tuple[Domain, ...]] = ("unit_interval",)

    def __init__(self, k: int = 10, window: int = 1000) -> None:
        self.k = k
        require_int(self.name, "k", k, 1)
        super().__init__(window)

    @abc.abstractmethod
    def _score(self, relevance: dict[Any, float], ranked: Sequence[Any]) -> float:
        """Score of one query, from its relevant items' gains and its ranked items."""

    def _query_score(self, relevant: Any, ranked: Any) -> float:
        if isinstance(relevant, (str, bytes)) or not isinstance(relevant, Collection):
            raise InputError(f"{self.name}: relevant items must be a collection, got {relevant!r}")
        if isinstance(ranked, (str, bytes)) or not isinstance(ranked, Sequence):
            raise InputError(f"{self.name}: ranked items must be a sequence, got {ranked!r}")
        if isinstance(relevant, Mapping) and not all(
            type(g) in (int, float) and math.isfinite(g) and g >= 0 for g in relevant.values()
        ):
            raise InputError(f"{self.name}: gains must be finite numbers >= 0, got {relevant!r}")
        return self._score(gains(relevant), ranked)

    def update(self, *inputs: Any) -> None:
        """Add one query: ``update(relevant_ids, ranked_ids)``."""
        if len(inputs) != 2:
            raise InputError(f"{self.name}: expected 2 inputs per event, got {len(inputs)}")
        self.update_many([inputs[0]], [inputs[1]])

    def update_many(self, *columns: Any) -> None:
        """Add queries: ``update_many(relevant_per_query, ranked_per_query)``."""
        if len(columns) != 2 or len(columns[0]) != len(columns[1]):
            raise InputError(f"{self.name}: expected two equally long sequences of queries")
        scores = np.asarray(
            [self._query_score(rel, ranked) for rel, ranked in zip(*columns)], dtype=np.float64
        )
        scores = scores[~np.isnan(scores)]  # queries with no relevant item are skipped
        self._ring.extend(scores)
        self._n_seen += len(scores)

    def _compute(self, window: np.ndarray) -> float:
        return float(np.mean(window))


class RollingMAPAtK(_RankingMetric):
    """Mean average precision at ``k`` over the last ``window`` queries.

    AP@k = sum of precision@i at each hit i <= k, divided by min(#relevant, k). Queries
    with no relevant item are skipped.

    >>> from detectors.metrics import RollingMAPAtK
    >>> metric = RollingMAPAtK(k=3, window=100)
    >>> metric.update({"a", "b"}, ["a", "x", "b"])
    >>> round(metric.value, 4)
    0.8333
    """

    name: ClassVar[str] = "map_at_k"

    def _score(self, relevance: dict[Any, float], ranked: Sequence[Any]) -> float:
        return average_precision_at_k(relevance, ranked, self.k)


class RollingNDCGAtK(_RankingMetric):
    """Normalised discounted cumulative gain at ``k`` (binary or graded relevance).

    >>> from detectors.metrics import RollingNDCGAtK
    >>> metric = RollingNDCGAtK(k=3, window=100)
    >>> metric.update({"a", "b"}, ["a", "x", "b"])
    >>> round(metric.value, 4)
    0.9197
    """

    name: ClassVar[str] = "ndcg_at_k"

    def _score(self, relevance: dict[Any, float], ranked: Sequence[Any]) -> float:
        return ndcg_at_k(relevance, ranked, self.k)
