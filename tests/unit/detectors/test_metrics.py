"""Rolling metrics: values against direct formulas, batch == loop, state round trip."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import orjson
import pytest
from scipy import stats

from detectors import registry
from detectors.metrics import METRICS, RollingMetric


def _inputs(name: str, rng: np.random.Generator, n: int) -> tuple[list[Any], ...]:
    if name in ("precision", "recall", "f1"):
        return rng.integers(0, 2, n).tolist(), rng.integers(0, 2, n).tolist()
    if name == "accuracy":
        return rng.integers(0, 3, n).tolist(), rng.integers(0, 3, n).tolist()
    if name == "roc_auc":
        y = rng.integers(0, 2, n)
        return y.tolist(), (y * 0.5 + rng.normal(0, 0.5, n)).round(2).tolist()
    if name in ("mae", "mse", "r2"):
        y = rng.normal(0, 1, n)
        return y.tolist(), (y + rng.normal(0, 0.5, n)).tolist()
    if name in ("map_at_k", "ndcg_at_k"):
        relevant = [set(rng.choice(20, 3, replace=False).tolist()) for _ in range(n)]
        ranked = [rng.permutation(20).tolist() for _ in range(n)]
        return relevant, ranked
    if name == "error_rate":
        return (rng.integers(0, 2, n).tolist(),)
    if name == "confidence":
        return (rng.uniform(0, 1, n).tolist(),)
    return (rng.exponential(0.1, n).tolist(),)  # quantile (latency, seconds)


def _direct(name: str, cols: tuple[list[Any], ...], metric: RollingMetric) -> float:
    """The metric of the last ``window`` events, computed from scratch."""
    w = metric.window
    if name in ("map_at_k", "ndcg_at_k"):
        scores = [metric._query_score(r, p) for r, p in zip(*cols)]
        return float(np.mean(scores[-w:]))
    arrays = [np.asarray(c[-w:], dtype=float) for c in cols]
    if name == "accuracy":
        return float(np.mean(arrays[0] == arrays[1]))
    if name in ("precision", "recall", "f1"):
        t, p = arrays
        tp, fp, fn = np.sum(t * p), np.sum((1 - t) * p), np.sum(t * (1 - p))
        return {"precision": tp / (tp + fp), "recall": tp / (tp + fn), "f1": 2 * tp / (2 * tp + fp + fn)}[name]
    if name == "roc_auc":
        t, s = arrays
        pos, neg = s[t == 1], s[t == 0]
        return float(stats.mannwhitneyu(pos, neg).statistic / (len(pos) * len(neg)))
    if name in ("mae", "mse", "r2"):
        t, p = arrays
        if name == "mae":
            return float(np.mean(np.abs(t - p)))
        mse = float(np.mean((t - p) ** 2))
        return mse if name == "mse" else 1 - mse / float(np.var(t))
    if name in ("error_rate", "confidence"):
        return float(np.mean(arrays[0]))
    return float(np.quantile(arrays[0], metric.q))


@pytest.mark.parametrize("name", sorted(METRICS))
def test_metric_contract(name: str) -> None:
    assert METRICS[name].__doc__ and ">>>" in METRICS[name].__doc__
    rng = np.random.default_rng(3)
    cols = _inputs(name, rng, 700)
    config = {"type": name, "window": 250}

    looped = registry.build_metric(config)
    assert math.isnan(looped.value) and looped.window_size == 250
    for row in zip(*cols):
        looped.update(*row)
    assert looped.value == pytest.approx(_direct(name, cols, looped), rel=1e-9)

    for cuts in ([0, 700], [0, 1, 2, 333, 700], list(range(0, 700, 97)) + [700]):
        batched = registry.build_metric(config)
        for a, b in zip(cuts, cuts[1:]):
            batched.update_many(*(c[a:b] for c in cols))
        assert batched.value == looped.value and batched.n_seen == looped.n_seen

    half = registry.build_metric(config)
    half.update_many(*(c[:400] for c in cols))
    restored = registry.metric_from_state(orjson.loads(orjson.dumps(half.to_state())))
    for m in (half, restored):
        m.update_many(*(c[400:] for c in cols))
    assert restored.value == half.value == looped.value

    looped.reset()
    assert math.isnan(looped.value) and looped.n_seen == 0


@pytest.mark.parametrize("name", sorted(set(METRICS) - {"map_at_k", "ndcg_at_k"}))
def test_metric_rejects_bad_input(name: str) -> None:
    metric = registry.build_metric({"type": name})
    args = [0.0] * len(metric._domains)
    args[0] = float("nan")
    with pytest.raises(ValueError, match=rf"^{name}: input must be finite, got nan"):
        metric.update(*args)
    with pytest.raises(ValueError, match=rf"^{name}: input must be finite, got nan at index 1"):
        metric.update_many(*([0.0, a] for a in args))
    if "binary" in metric._domains:
        with pytest.raises(ValueError, match=rf"^{name}: input must be 0 or 1 \(1 = error\), got 5.0"):
            metric.update(*([5] * len(metric._domains)))
    assert metric.n_seen == 0


def test_ranking_rejects_bad_queries() -> None:
    metric = registry.build_metric({"type": "ndcg_at_k", "k": 5})
    with pytest.raises(ValueError, match="ndcg_at_k: ranked items must be a sequence"):
        metric.update({"a"}, 3)
    with pytest.raises(ValueError, match="ndcg_at_k: relevant items must be a collection"):
        metric.update(None, ["a"])


def test_metric_feeds_a_threshold_detector() -> None:
    rng = np.random.default_rng(0)
    accuracy = registry.build_metric({"type": "accuracy", "window": 500})
    alarm = registry.build({"type": "threshold", "below": 0.8})
    alarms = []
    for batch, p_correct in enumerate([0.9] * 10 + [0.6] * 10):
        y = rng.integers(0, 2, 100)
        correct = rng.random(100) < p_correct
        accuracy.update_many(y, np.where(correct, y, 1 - y))
        alarm.update(accuracy.value)
        if alarm.drift_detected:
            alarms.append(batch)
    assert alarms and 10 <= alarms[0] <= 14


def test_unknown_metric_names_the_choices() -> None:
    with pytest.raises(ValueError, match="unknown metric type 'acc'; expected one of: confidence, accuracy"):
        registry.build_metric({"type": "acc"})
    with pytest.raises(ValueError, match="quantile: unknown parameter 'p'; expected one of: q, window"):
        registry.build_metric({"type": "quantile", "p": 0.9})
    with pytest.raises(ValueError, match="quantile: parameter 'q' must be a float in \\[0, 1\\], got 1.5"):
        registry.build_metric({"type": "quantile", "q": 1.5})
