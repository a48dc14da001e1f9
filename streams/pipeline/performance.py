"""Which performance metrics a model is judged by, and their values over its labelled window.

A model's joined pairs (label, prediction, score) go into one window of the last
``performance.window`` pairs; at each checkpoint every configured metric is computed from
it by the implementations in :mod:`detectors.metrics` (plus log loss, Brier and RMSE, which
are a line each). The window holds plain values, so it is the state as it is.

Classification: a binary problem is judged for ``positive_class`` (absent: the problem is
binary when its labels and predictions are 0/1 or booleans, and 1 is positive); otherwise
precision, recall and F1 are macro averages over the classes in the window (a class's
undefined ratio counts 0, as scikit-learn's). ``score`` is the confidence of the predicted
class (docs/contracts.md), so the probability of the positive class is ``score`` when the
positive class was predicted and ``1 - score`` otherwise: ROC AUC, log loss and Brier need
that, and are undefined (``nan``, not checked) for a multiclass window.

>>> w = PerformanceWindow("classification", window=4, positive_class=None)
>>> w.update([1, 0, 1, 0], [1, 0, 0, 0], [0.9, 0.8, 0.6, 0.7])
>>> w.value("accuracy"), w.value("recall"), w.value("precision")
(0.75, 1.0, 0.5)
>>> round(w.value("brier"), 4)  # P(positive) = 0.9, 0.2, 0.6, 0.3; labels 1, 0, 0, 0
0.125

Ranking (a prediction is a ranked list of item ids, its label the relevant ids or item id
-> gain): MAP@k, NDCG@k, MRR@k, precision@k, recall@k and the hit rate at k, named with
their cutoff (``map@10``, ``ndcg@5``, ``mrr@10``, ``precision@5``, ``recall@20``,
``hit_rate@10``), so one config may watch several cutoffs. Each labelled query is scored once, on arrival
(:mod:`detectors.metrics.ranking`), and :class:`RankingWindow` keeps the scores of the last
``performance.window`` queries that have a relevant item: the metric is their mean.

>>> r = RankingWindow(["map@3", "ndcg@3"], window=2)
>>> _ = r.add(r.score([["a", "x", "b"], ["x", "y", "z"]], [["a", "b"], {"z": 2, "q": 0}]))
>>> round(r.value("map@3"), 4), round(r.value("ndcg@3"), 4)  # (5/6 + 1/3) / 2; (0.9197 + 2/log2(4) / 2) / 2
(0.5833, 0.7099)
>>> r = RankingWindow(["mrr@3", "precision@2", "recall@3", "hit_rate@1"], window=2)
>>> _ = r.add(r.score([["a", "x", "b"], ["x", "y", "z"]], [["a", "b"], {"z": 2, "q": 0}]))
>>> [round(r.value(name), 4) for name in r.metrics]  # (1 + 1/3) / 2; (1/2 + 0) / 2; (1 + 1) / 2; (1 + 0) / 2
[0.6667, 0.25, 1.0, 0.5]
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from detectors.metrics import RollingF1, RollingMSE, RollingPrecision, RollingR2, RollingRecall, RollingROCAUC
from detectors.metrics.ranking import (
    average_precision_at_k, gains, hit_at_k, ndcg_at_k, precision_at_k, recall_at_k, reciprocal_rank_at_k,
)
from schemas.limits import MAX_RANKED_ITEMS

#: The metrics each task may be judged by, in the order they are checked.
METRICS = {
    "classification": ("accuracy", "precision", "recall", "f1", "roc_auc", "log_loss", "brier"),
    "regression": ("mae", "mse", "rmse", "r2"),
}
ALL_METRICS = tuple(name for names in METRICS.values() for name in names)
#: Ranking metrics, named ``<family>@<k>`` with 1 <= k <= MAX_RANKED_ITEMS (a longer
#: cutoff than a ranking may be long would only restate the whole list).
RANKING = {
    "map": average_precision_at_k, "ndcg": ndcg_at_k, "mrr": reciprocal_rank_at_k, "precision": precision_at_k,
    "recall": recall_at_k, "hit_rate": hit_at_k,
}
_RANKING_NAME = re.compile(rf"({'|'.join(RANKING)})@([1-9][0-9]*)\Z")
#: The tasks a model may have (:func:`task_of` infers it from a prediction).
TASKS = ("classification", "regression", "ranking")
#: A task's metric when the config lists none of its task's.
TASK_DEFAULT = {"classification": "accuracy", "regression": "mae", "ranking": "ndcg@10"}
#: Metrics where a lower value is better: checked against a relative increase.
LOWER_IS_BETTER = frozenset({"log_loss", "brier", "mae", "mse", "rmse"})
#: Probabilities are clipped this far from 0 and 1 in log loss (as scikit-learn's eps).
LOG_LOSS_EPS = 1e-15

_BINARY = {"precision": RollingPrecision, "recall": RollingRecall, "f1": RollingF1}


def ranking_metric(name: Any) -> tuple[str, int] | None:
    """``(family, k)`` of a ranking metric's name, ``None`` if it is not one.

    >>> ranking_metric("ndcg@5"), ranking_metric("map@0"), ranking_metric("map@1001"), ranking_metric("map")
    (('ndcg', 5), None, None, None)
    """
    match = _RANKING_NAME.match(name) if isinstance(name, str) else None
    if match is None or int(match[2]) > MAX_RANKED_ITEMS:
        return None
    return match[1], int(match[2])


def is_metric(name: Any) -> bool:
    """Whether ``name`` is a performance metric of some task."""
    return name in ALL_METRICS or ranking_metric(name) is not None


def threshold_key(name: str) -> str:
    """The key of ``name``'s threshold under ``performance.max_drop`` (or ``max_increase``):
    a ranking metric's family, one threshold for every cutoff; any other metric's name."""
    ranked = ranking_metric(name)
    return ranked[0] if ranked else name


def task_of(prediction: Any) -> str:
    """The task a model's prediction says it has: a list of item ids is a ranking, a class
    (a string, a bool or a whole number) classification, any other number regression."""
    if type(prediction) is list:
        return "ranking"
    v = prediction
    classification = type(v) is bool or type(v) is str or type(v) is int or (type(v) is float and v.is_integer())
    return "classification" if classification else "regression"


def metrics_for(task: str, configured: Sequence[str]) -> list[str]:
    """The configured metrics that apply to ``task`` (its default if none does), in
    ``METRICS`` order (ranking: by family, then cutoff) so the checks run in one order
    whatever the config's.

    >>> metrics_for("regression", ["f1", "accuracy"]), metrics_for("classification", ["f1", "accuracy"])
    (['mae'], ['accuracy', 'f1'])
    >>> metrics_for("ranking", ["ndcg@5", "accuracy", "map@10", "ndcg@3"]), metrics_for("ranking", ["mae"])
    (['map@10', 'ndcg@3', 'ndcg@5'], ['ndcg@10'])
    """
    if task == "ranking":
        chosen = sorted((name for name in configured if ranking_metric(name)), key=ranking_metric)
    else:
        chosen = [name for name in METRICS[task] if name in configured]
    return chosen or [TASK_DEFAULT[task]]


def own_metric(task: str, checked: Sequence[str]) -> str:
    """The task's own metric, always computed: concept drift is judged by it (its baseline,
    its error stream). Classification and regression: accuracy and MAE, checked or not; a
    ranking: the first metric checked (``metrics_for`` order)."""
    return checked[0] if task == "ranking" else TASK_DEFAULT[task]


def class_key(value: Any) -> int | str | None:
    """A label or prediction as the class it names: ``True``, ``1`` and ``1.0`` are one
    class (they compare equal, as the error stream's ``p == y`` does); a string is its own."""
    if type(value) is bool:
        return int(value)
    if type(value) is float and value.is_integer():
        return int(value)
    if type(value) is int or type(value) is str:
        return value
    return None


def _order(key: int | str) -> tuple[int, Any]:
    return (0, key) if type(key) is int else (1, key)


class PerformanceWindow:
    """The last ``window`` labelled pairs of one model, as plain lists."""

    def __init__(self, task: str, window: int, positive_class: Any) -> None:
        self.task = task
        self.window = window
        self.positive_class = positive_class
        self._reset()

    def _reset(self) -> None:
        self.labels: list[Any] = []
        self.predictions: list[Any] = []
        self.scores: list[float | None] = []
        # columns several metrics read, built once per checkpoint (each metric rebuilt them
        # from the lists: with every classification metric on, most of a checkpoint's cost)
        self._columns: dict[Any, Any] = {}

    def update(self, predictions: Sequence[Any], labels: Sequence[Any], scores: Sequence[Any]) -> None:
        """Add pairs in stream order; a pair whose label or prediction is unusable is
        skipped (it is not a number in regression, not a class in classification)."""
        self._columns = {}
        convert = class_key if self.task == "classification" else _real
        for p, y, s in zip(predictions, labels, scores):
            p, y = convert(p), convert(y)
            if p is None or y is None:
                continue
            self.labels.append(y)
            self.predictions.append(p)
            self.scores.append(float(s) if _real(s) is not None else None)
        extra = len(self.labels) - self.window
        if extra > 0:
            del self.labels[:extra], self.predictions[:extra], self.scores[:extra]

    def __len__(self) -> int:
        return len(self.labels)

    def value(self, name: str) -> float:
        """``name`` over the window (``nan`` while undefined)."""
        if not self.labels:
            return math.nan
        if self.task == "regression":
            return self._regression(name)
        if name == "accuracy":
            return float(np.mean([p == y for p, y in zip(self.predictions, self.labels)]))
        positive = self._positive()
        if name in _BINARY:
            if positive is not None:
                return self._binary(name, positive)
            classes = sorted(set(self.labels) | set(self.predictions), key=_order)
            values = [self._binary(name, c) for c in classes]
            return float(np.mean([0.0 if math.isnan(v) else v for v in values]))
        if positive is None:
            return math.nan  # one confidence cannot give every class's probability
        truth, prob = self._probabilities(positive)
        if not len(truth):
            return math.nan
        if name == "roc_auc":
            metric = RollingROCAUC(window=len(truth))
            metric.update_many(truth, prob)
            return metric.value
        if name == "brier":
            return float(np.mean((prob - truth) ** 2))
        clipped = np.clip(prob, LOG_LOSS_EPS, 1 - LOG_LOSS_EPS)
        return float(-np.mean(truth * np.log(clipped) + (1 - truth) * np.log(1 - clipped)))

    def _positive(self) -> int | str | None:
        if self.positive_class is not None:
            return class_key(self.positive_class)
        if "positive" not in self._columns:
            classes = set(self.labels) | set(self.predictions)
            self._columns["positive"] = 1 if classes <= {0, 1} else None
        return self._columns["positive"]  # type: ignore[no-any-return]

    def _binary(self, name: str, positive: int | str) -> float:
        key = ("binary", positive)
        if key not in self._columns:
            self._columns[key] = (np.asarray([y == positive for y in self.labels], dtype=np.float64),
                                  np.asarray([p == positive for p in self.predictions], dtype=np.float64))
        metric = _BINARY[name](window=len(self.labels))
        metric.update_many(*self._columns[key])
        return metric.value

    def _probabilities(self, positive: int | str) -> tuple[np.ndarray, np.ndarray]:
        """Whether each scored pair's label is ``positive``, and its probability of being so."""
        key = ("probability", positive)
        if key not in self._columns:
            rows = [(y == positive, p == positive, s) for y, p, s in zip(self.labels, self.predictions, self.scores)
                    if s is not None]
            self._columns[key] = (np.asarray([r[0] for r in rows], dtype=np.float64),
                                  np.asarray([s if predicted else 1.0 - s for _, predicted, s in rows], dtype=np.float64))
        return self._columns[key]

    def _regression(self, name: str) -> float:
        y = np.asarray(self.labels, dtype=np.float64)
        p = np.asarray(self.predictions, dtype=np.float64)
        if name == "mae":
            return float(np.mean(np.abs(y - p)))
        metric = (RollingR2 if name == "r2" else RollingMSE)(window=len(y))
        metric.update_many(y, p)
        return math.sqrt(metric.value) if name == "rmse" else metric.value

    def to_state(self) -> dict[str, Any]:
        return {"labels": list(self.labels), "predictions": list(self.predictions), "scores": list(self.scores)}

    def load_state(self, state: dict[str, Any]) -> None:
        self._columns = {}
        self.labels = list(state["labels"])
        self.predictions = list(state["predictions"])
        self.scores = list(state["scores"])


class RankingWindow:
    """The scores of the last ``window`` labelled queries of one ranking model, one list
    per metric (all of the same queries: a query without a relevant item has no score in
    any of them), as plain floats."""

    def __init__(self, names: Sequence[str], window: int) -> None:
        self.metrics = {name: ranking_metric(name) for name in names}
        assert all(self.metrics.values()), names  # the config checked the names
        self.window = window
        self.scores: dict[str, list[float]] = {name: [] for name in names}

    def score(self, predictions: Sequence[Any], labels: Sequence[Any]) -> dict[str, list[float]]:
        """Each query's score by each metric (``nan``: no relevant item, or a pair that is
        not a ranking, such as a class predicted by a model that ranks)."""
        scored: dict[str, list[float]] = {name: [] for name in self.metrics}
        for ranked, label in zip(predictions, labels):
            relevance = gains(label) if type(label) is dict or type(label) is list else None
            for name, (family, k) in self.metrics.items():  # type: ignore[misc]  # checked in __init__
                usable = relevance is not None and type(ranked) is list
                scored[name].append(RANKING[family](relevance, ranked, k) if usable else math.nan)
        return scored

    def add(self, scored: dict[str, list[float]]) -> dict[str, list[float]]:
        """Add queries' scores (:meth:`score`) in stream order; the window keeps the last
        ``window`` scored ones. Returns ``scored``."""
        for name, values in scored.items():
            kept = self.scores[name]
            kept.extend(v for v in values if not math.isnan(v))
            if len(kept) > self.window:
                del kept[:len(kept) - self.window]
        return scored

    def __len__(self) -> int:
        return min(len(values) for values in self.scores.values())

    def value(self, name: str) -> float:
        """``name`` over the window (``nan`` while no query has been scored)."""
        values = self.scores[name]
        return math.fsum(values) / len(values) if values else math.nan

    def to_state(self) -> dict[str, Any]:
        return {"scores": {name: list(values) for name, values in self.scores.items()}}

    def load_state(self, state: dict[str, Any]) -> None:
        """The saved scores of the metrics still configured (a metric added since starts empty)."""
        saved = state.get("scores") or {}
        self.scores = {name: [float(v) for v in saved.get(name, [])][-self.window:] for name in self.metrics}


def _real(v: Any) -> float | None:
    return float(v) if (type(v) is float or type(v) is int) and math.isfinite(v) else None


__all__ = [
    "ALL_METRICS", "LOWER_IS_BETTER", "METRICS", "RANKING", "TASKS", "TASK_DEFAULT", "PerformanceWindow",
    "RankingWindow", "class_key", "is_metric", "metrics_for", "own_metric", "ranking_metric", "task_of",
    "threshold_key",
]
