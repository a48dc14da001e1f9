"""Performance metrics per model: values, configuration, and each metric's drift."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import orjson
import pytest

from detectors.metrics import RollingF1, RollingMSE, RollingPrecision, RollingR2, RollingRecall, RollingROCAUC
from streams.exceptions import ConfigError
from streams.pipeline.monitor import ModelMonitor
from streams.pipeline.monitor_config import MonitorConfig
from streams.pipeline.performance import PerformanceWindow, metrics_for

N = 4_000  # pairs before the change, and after it


def _rolling(cls: type, *columns: list[float]) -> float:
    metric = cls(window=len(columns[0]))
    metric.update_many(*columns)
    return metric.value


def test_binary_values_match_the_metrics_module_and_hand_computations() -> None:
    labels = [1, 0, 1, 1, 0, 0, 1, 0]
    preds = [1, 0, 0, 1, 1, 0, 1, 0]
    scores = [0.9, 0.8, 0.7, 0.6, 0.55, 0.95, 0.8, 0.6]
    w = PerformanceWindow("classification", window=100, positive_class=None)
    w.update(preds, labels, scores)
    assert w.value("accuracy") == 6 / 8
    assert w.value("precision") == _rolling(RollingPrecision, labels, preds) == 3 / 4
    assert w.value("recall") == _rolling(RollingRecall, labels, preds) == 3 / 4
    assert w.value("f1") == _rolling(RollingF1, labels, preds) == 3 / 4
    prob = [s if p == 1 else 1 - s for p, s in zip(preds, scores)]  # P(class 1)
    assert w.value("roc_auc") == _rolling(RollingROCAUC, labels, prob)
    assert w.value("brier") == pytest.approx(sum((q - y) ** 2 for q, y in zip(prob, labels)) / 8)
    log_loss = -sum(math.log(q) if y else math.log(1 - q) for q, y in zip(prob, labels)) / 8
    assert w.value("log_loss") == pytest.approx(log_loss)


def test_a_configured_positive_class_and_booleans_name_the_same_classes() -> None:
    w = PerformanceWindow("classification", window=100, positive_class="fraud")
    w.update(["fraud", "ok", "ok", "fraud"], ["fraud", "fraud", "ok", "ok"], [0.9, 0.6, 0.8, 0.7])
    assert (w.value("precision"), w.value("recall")) == (0.5, 0.5)
    booleans = PerformanceWindow("classification", window=100, positive_class=None)
    booleans.update([True, 1.0, False], [1, True, 0], [None, None, None])
    assert booleans.value("recall") == 1.0 and booleans.value("accuracy") == 1.0
    assert math.isnan(booleans.value("brier"))  # no score: undefined, not zero


def test_multiclass_uses_macro_averages_and_leaves_probability_metrics_undefined() -> None:
    labels = ["a", "a", "b", "c", "c", "c"]
    preds = ["a", "b", "b", "c", "a", "c"]
    w = PerformanceWindow("classification", window=100, positive_class=None)
    w.update(preds, labels, [0.5] * 6)
    # per class (a, b, c): precision 1/2, 1/2, 1; recall 1/2, 1, 2/3
    assert w.value("precision") == pytest.approx((0.5 + 0.5 + 1.0) / 3)
    assert w.value("recall") == pytest.approx((0.5 + 1.0 + 2 / 3) / 3)
    assert w.value("f1") == pytest.approx((0.5 + 2 / 3 + 0.8) / 3)
    assert math.isnan(w.value("roc_auc")) and math.isnan(w.value("log_loss"))


def test_regression_values_and_the_window_keeps_only_the_last_pairs() -> None:
    w = PerformanceWindow("regression", window=3, positive_class=None)
    w.update([9.0, 1.5, 2.0, 2.0], [0.0, 1.0, 2.0, 3.0], [None] * 4)
    y, p = [1.0, 2.0, 3.0], [1.5, 2.0, 2.0]
    assert len(w) == 3 and w.value("mae") == 0.5
    assert w.value("mse") == _rolling(RollingMSE, y, p)
    assert w.value("rmse") == pytest.approx(math.sqrt(_rolling(RollingMSE, y, p)))
    assert w.value("r2") == _rolling(RollingR2, y, p) == 0.375


def test_metrics_follow_the_task_and_default_to_the_tasks_own() -> None:
    assert metrics_for("classification", ["accuracy", "mae"]) == ["accuracy"]
    assert metrics_for("regression", ["accuracy", "mae"]) == ["mae"]
    assert metrics_for("classification", ["brier", "recall"]) == ["recall", "brier"]
    assert metrics_for("regression", ["recall"]) == ["mae"]


def test_an_unknown_metric_is_refused_at_start_up_naming_the_key_and_the_allowed_ones() -> None:
    with pytest.raises(ConfigError, match=r"defaults\.performance\.metrics: expected a non-empty list of "
                                          r"distinct metrics from: accuracy, precision, recall, f1, roc_auc"):
        MonitorConfig.from_mapping({"defaults": {"performance": {"metrics": ["accuracy", "recal"]}}})


# -- each metric's drift, where accuracy (or MAE) stays within its threshold -----------------------

Stream = tuple[list, list, list]  # predictions, labels, scores


def _imbalanced(rng: np.random.Generator, n: int) -> np.ndarray:
    return (rng.random(n) < 0.05).astype(int)  # 5% positives


def _recall_collapse(rng: np.random.Generator, after: bool) -> Stream:
    y = _imbalanced(rng, N)
    p = np.zeros(N, dtype=int) if after else y.copy()  # every positive missed: accuracy 0.95
    return p.tolist(), y.tolist(), [0.9] * N


def _precision_collapse(rng: np.random.Generator, after: bool) -> Stream:
    y = _imbalanced(rng, N)
    p = y.copy()
    if after:  # as many false alarms as true positives: accuracy about 0.95
        p[(y == 0) & (rng.random(N) < 0.05)] = 1
    return p.tolist(), y.tolist(), [0.9] * N


def _confidence_collapse(rng: np.random.Generator, after: bool) -> Stream:
    """Same decisions (accuracy 0.9), but confidence no longer says which ones are right."""
    y = (rng.random(N) < 0.5).astype(int)
    right = rng.random(N) < 0.9
    p = np.where(right, y, 1 - y)
    s = np.full(N, 0.95) if after else np.where(right, 0.95, 0.55)
    return p.tolist(), y.tolist(), s.tolist()


def _ranking_collapse(rng: np.random.Generator, after: bool) -> Stream:
    """Same decisions, but the confidence of the positives' scores ranks them last."""
    y = (rng.random(N) < 0.5).astype(int)
    right = rng.random(N) < 0.9
    p = np.where(right, y, 1 - y)
    good = np.where(right, 0.95, 0.55)
    s = np.where(right, 0.55, 0.95) if after else good
    return p.tolist(), y.tolist(), s.tolist()


def _heavy_tail(rng: np.random.Generator, after: bool) -> Stream:
    """MAE stays about 1; a few large errors raise MSE and RMSE."""
    y = rng.normal(0.0, 3.0, N)
    err = np.where(rng.random(N) < 0.5, 1.0, -1.0)
    if after:
        big = rng.random(N) < 0.02
        err = np.where(big, 10.0 * np.sign(err), 0.85 * err)
    return (y + err).tolist(), y.tolist(), [None] * N


def _variance_shrinks(rng: np.random.Generator, after: bool) -> Stream:
    """Same absolute errors (MAE 1), but the target varies less: R² falls from 0.9 to 0."""
    y = rng.normal(0.0, 1.0 if after else 3.0, N)
    err = np.where(rng.random(N) < 0.5, 1.0, -1.0)
    return (y + err).tolist(), y.tolist(), [None] * N


CASES: dict[str, Callable[[np.random.Generator, bool], Stream]] = {
    "recall": _recall_collapse, "f1": _recall_collapse, "precision": _precision_collapse,
    "brier": _confidence_collapse, "log_loss": _confidence_collapse, "roc_auc": _ranking_collapse,
    "mse": _heavy_tail, "rmse": _heavy_tail, "r2": _variance_shrinks,
}


def _run(metric: str, batch: int = 1_000, config: dict | None = None) -> tuple[list[dict], list[dict], list]:
    rng = np.random.default_rng(5)
    before, after = CASES[metric](rng, False), CASES[metric](rng, True)
    preds, labels, scores = (before[i] + after[i] for i in range(3))
    task_metric = "accuracy" if metric in ("recall", "f1", "precision", "brier", "log_loss", "roc_auc") else "mae"
    perf = {"metrics": [task_metric, metric], "max_increase": {"rmse": 0.2}}
    cfg = MonitorConfig.from_mapping(config or {"defaults": {"performance": perf, "concept_drift": {
        "classification": [{"type": "ddm", "warm_start": 500}], "regression": [{"type": "adwin", "delta": 0.002}]}}})
    m = ModelMonitor("m", None, cfg.for_model("m"))
    events, samples = [], []
    for lo in range(0, len(labels), batch):
        ids = range(lo, min(lo + batch, len(labels)))
        ts = [float(i) for i in ids]
        result = m.process({"pairs": {"pid": [f"p{i}" for i in ids], "ts": ts, "pred_ts": ts, "label_ts": ts,
                                      "prediction": preds[lo:lo + batch], "label": labels[lo:lo + batch],
                                      "score": scores[lo:lo + batch]}})
        events += [e for e in result.drift_events if e["kind"] == "performance"]
        samples += [s for s in result.samples if s["kind"] == "performance"]
    return events, samples, [preds, labels, scores]


@pytest.mark.parametrize("metric", sorted(CASES))
def test_each_metrics_collapse_is_detected_while_the_tasks_own_metric_stays_within_bounds(metric: str) -> None:
    events, samples, _ = _run(metric)
    drifts = [e for e in events if e["drift"]]
    assert {e["detector"] for e in drifts} == {metric}  # accuracy / MAE: no drift
    assert all(e["position"] >= N for e in drifts)  # nothing before the change
    assert drifts[0]["position"] < N + 1_000  # and within a window of it
    own = [s for s in samples if s["detector"] != metric]
    assert own and not any(s["drift"] for s in own)


def test_the_published_value_is_the_metric_of_the_last_window_of_pairs() -> None:
    events, _, (preds, labels, _) = _run("recall")
    first = next(e for e in events if e["drift"])
    end = first["position"] + 1
    y, p = labels[end - 1_000:end], preds[end - 1_000:end]
    tp = sum(1 for a, b in zip(y, p) if a == b == 1)
    assert first["statistic"] == tp / sum(y)
    assert first["direction"] == "below" and first["threshold"] == pytest.approx(1.0 - 0.1)  # baseline 1.0


def test_results_do_not_depend_on_batching_or_a_state_round_trip() -> None:
    whole, _, _ = _run("brier", batch=1_000)
    assert _run("brier", batch=333)[0] == whole
    # a changelog round trip half-way gives the same events
    rng = np.random.default_rng(5)
    before, after = _confidence_collapse(rng, False), _confidence_collapse(rng, True)
    preds, labels, scores = (before[i] + after[i] for i in range(3))
    cfg = MonitorConfig.from_mapping({"defaults": {"performance": {"metrics": ["accuracy", "brier"]}, "concept_drift": {
        "classification": [{"type": "ddm", "warm_start": 500}]}}})
    m = ModelMonitor("m", None, cfg.for_model("m"))
    events = []
    for lo in range(0, len(labels), 1_000):
        if lo == 5_000:
            m = ModelMonitor.from_state(orjson.loads(orjson.dumps(m.to_state())), cfg)
        ids = range(lo, lo + 1_000)
        ts = [float(i) for i in ids]
        result = m.process({"pairs": {"pid": [f"p{i}" for i in ids], "ts": ts, "pred_ts": ts, "label_ts": ts,
                                      "prediction": preds[lo:lo + 1_000], "label": labels[lo:lo + 1_000],
                                      "score": scores[lo:lo + 1_000]}})
        events += [e for e in result.drift_events if e["kind"] == "performance"]
    assert events == whole


def test_with_nothing_configured_classification_is_judged_by_accuracy_alone() -> None:
    m = ModelMonitor("m", None, MonitorConfig().for_model("m"))
    ts = [float(i) for i in range(1_000)]
    result = m.process({"pairs": {"pid": [f"p{i}" for i in range(1_000)], "ts": ts, "pred_ts": ts, "label_ts": ts,
                                  "prediction": [1] * 1_000, "label": [1] * 1_000, "score": [0.9] * 1_000}})
    assert m.checked == ["accuracy"] and m.window is None and m.baseline == 1.0
    assert result.drift_events == []
