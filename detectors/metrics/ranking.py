"""Rolling ranking metrics over the last ``window`` queries: MAP@K and NDCG@K.

An event is one query: the collection of relevant item ids and the ranked list of
recommended ids. Its score is computed on arrival; the window holds the last scores.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Collection, Sequence
from typing import Any, ClassVar

import numpy as np

from detectors.base import Domain, require_int
from detectors.exceptions import InputError
from detectors.metrics.base import RollingMetric

__all__ = ["RollingMAPAtK", "RollingNDCGAtK"]


class _RankingMetric(RollingMetric):
    _domains: ClassVar[tuple[Domain, ...]] = ("unit_interval",)

    def __init__(self, k: int = 10, window: int = 1000) -> None:
        self.k = k
        require_int(self.name, "k", k, 1)
        super().__init__(window)

    @abc.abstractmethod
    def _score(self, relevant: Collection[Any], hits: list[bool]) -> float:
        """Score of one query, from its relevant set and the hit flags of its top k."""

    def _query_score(self, relevant: Any, ranked: Any) -> float:
        if isinstance(relevant, (str, bytes)) or not isinstance(relevant, Collection):
            raise InputError(f"{self.name}: relevant items must be a collection, got {relevant!r}")
        if isinstance(ranked, (str, bytes)) or not isinstance(ranked, Sequence):
            raise InputError(f"{self.name}: ranked items must be a sequence, got {ranked!r}")
        relevant = set(relevant)
        if not relevant:
            return math.nan
        return self._score(relevant, [item in relevant for item in ranked[: self.k]])

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

    def _score(self, relevant: Collection[Any], hits: list[bool]) -> float:
        found, total = 0, 0.0
        for i, hit in enumerate(hits, start=1):
            if hit:
                found += 1
                total += found / i
        return total / min(len(relevant), self.k)


class RollingNDCGAtK(_RankingMetric):
    """Normalised discounted cumulative gain at ``k`` (binary relevance).

    >>> from detectors.metrics import RollingNDCGAtK
    >>> metric = RollingNDCGAtK(k=3, window=100)
    >>> metric.update({"a", "b"}, ["a", "x", "b"])
    >>> round(metric.value, 4)
    0.9197
    """

    name: ClassVar[str] = "ndcg_at_k"

    def _score(self, relevant: Collection[Any], hits: list[bool]) -> float:
        dcg = sum(1.0 / math.log2(i + 2) for i, hit in enumerate(hits) if hit)
        ideal = sum(1.0 / math.log2(i + 2) for i in range(min(len(relevant), self.k)))
        return dcg / ideal
