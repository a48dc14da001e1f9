"""Label-free performance estimate (CBPE): the estimator, its windows and comparisons, its
config, and its alerts in the offline backtest before any label of the drift arrives."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import orjson
import pytest

from schemas import codec
from schemas.records import KINDS
from streams.exceptions import ConfigError
from streams.offline.backtest import evaluate, merge, read_events
from streams.offline.scoring import Drift
from streams.pipeline.estimation import ESTIMATED, EstimatedPerformance, confusion_metrics, estimate, roc_auc
from streams.pipeline.monitor import ModelMonitor
from streams.pipeline.monitor_config import MonitorConfig
from streams.pipeline.performance import PerformanceWindow

ALL = {"estimated_performance": {"metrics": list(ESTIMATED)}}


def test_the_expected_confusion_matrix_and_metrics_match_a_hand_computation() -> None:
    predicted = np.array([True, True, False, False, True])
    p = np.array([0.9, 0.6, 0.2, 0.4, 0.7])  # P(positive)
    # expected TP = .9 + .6 + .7 = 2.2, FP = .1 + .4 + .3 = .8, FN = .2 + .4 = .6, TN = .8 + .6 = 1.4
    values = estimate(predicted, p)
    assert values["accuracy"] == pytest.approx(3.6 / 5)
    assert values["precision"] == pytest.approx(2.2 / 3.0)
    assert values["recall"] == pytest.approx(2.2 / 2.8)
    assert values["f1"] == pytest.approx(4.4 / 5.8)
    # ranked .9 .7 .6 .4 .2: expected TPR steps .9 .7 .6 .4 .2 over 2.8, FPR steps .1 .3 .4 .6 .8 over 2.2
    tpr = np.cumsum([0.0, 0.9, 0.7, 0.6, 0.4, 0.2]) / 2.8
    fpr = np.cumsum([0.0, 0.1, 0.3, 0.4, 0.6, 0.8]) / 2.2
    assert values["roc_auc"] == pytest.approx(float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2)))


def test_the_estimated_auc_is_the_expected_share_of_correctly_ordered_pairs() -> None:
    """Independent of the curve: P(i positive) P(j negative) over pairs ranked i above j
    (a tie, an item with itself included, counts half), over E[positives] E[negatives]."""
    rng = np.random.default_rng(3)
    p = np.round(rng.random(60), 1)  # ties on purpose
    above = (p[:, None] > p[None, :]) + 0.5 * (p[:, None] == p[None, :])
    expected = float(np.sum(p[:, None] * (1 - p[None, :]) * above) / (p.sum() * (1 - p).sum()))
    assert roc_auc(p, p) == pytest.approx(expected)


def test_with_labels_in_place_of_probabilities_the_formulas_give_the_realized_metrics() -> None:
    rng = np.random.default_rng(5)
    labels = rng.integers(0, 2, 400).tolist()
    preds = rng.integers(0, 2, 400).tolist()
    scores = np.round(rng.uniform(0.5, 1.0, 400), 3).tolist()
    window = PerformanceWindow("classification", window=400, positive_class=None)
    window.update(preds, labels, scores)
    predicted = np.asarray(preds) == 1
    truth = np.asarray(labels, dtype=np.float64)
    realized = confusion_metrics(predicted, truth)
    for name in ("accuracy", "precision", "recall", "f1"):
        assert realized[name] == pytest.approx(window.value(name)), name
    p_positive = np.where(predicted, scores, 1 - np.asarray(scores))
    assert roc_auc(p_positive, truth) == pytest.approx(window.value("roc_auc"))
    assert math.isnan(roc_auc(p_positive, np.ones(400)))  # one class only: no curve


def _calibrated(rng: np.random.Generator, n: int, spread: float) -> tuple[list[int], list[float], list[int]]:
    """Predictions, scores (the predicted class's probability) and labels drawn from them."""
    p = 1.0 / (1.0 + np.exp(-rng.normal(0.0, spread, n)))
    labels = (rng.random(n) < p).astype(int)
    preds = (p >= 0.5).astype(int)
    return preds.tolist(), np.where(preds == 1, p, 1 - p).tolist(), labels.tolist()


@pytest.mark.parametrize("spread", [3.0, 0.8])  # a confident model, and one near its boundary
def test_on_calibrated_scores_each_estimate_is_within_sampling_error_of_the_realized_value(spread: float) -> None:
    rng = np.random.default_rng(11)
    preds, scores, labels = _calibrated(rng, 40_000, spread)
    p = np.asarray(scores)
    predicted = np.asarray(preds) == 1
    p_positive = np.where(predicted, p, 1 - p)
    estimated = estimate(predicted, p_positive)
    truth = np.asarray(labels, dtype=np.float64)
    realized = {**confusion_metrics(predicted, truth), "roc_auc": roc_auc(p_positive, truth)}
    for name in ESTIMATED:
        assert estimated[name] == pytest.approx(realized[name], abs=0.01), name


def test_windows_close_every_window_scored_predictions_and_skip_unscored_ones() -> None:
    est = EstimatedPerformance.from_reference([0, 1, 1], [0.9, 0.8, 0.7], None, window=3, max_windows=4)
    assert est is not None
    closed = est.add_predictions([1, 0, 1, 1, 0, 1, 1], [0.9, None, 0.8, 0.6, 0.7, 0.9, 0.5], [float(t) for t in range(7)])
    # scored: t0, t2, t3 | t4, t5, t6
    assert [(w.index, w.start, w.end, w.last) for w in closed] == [(0, 0.0, 3.0, 3), (1, 4.0, 6.0, 6)]
    assert closed[0].values["accuracy"] == pytest.approx((0.9 + 0.8 + 0.6) / 3)


def test_labels_go_to_their_predictions_window_and_each_window_is_compared_once() -> None:
    est = EstimatedPerformance.from_reference([0, 1], [0.9, 0.8], None, window=4, max_windows=8)
    assert est is not None
    ts = [float(t) for t in range(8)]
    est.add_predictions([1, 1, 0, 0, 1, 1, 0, 0], [0.8] * 8, ts)
    est.add_labels([1, 1], [0.8, 0.8], [1, 1], [4.0, 0.0])  # one label in each window: 1 of 4
    assert est.compared(0.5) == []
    est.add_labels([1], [0.8], [0], [5.0])  # the second window has half its labels
    [c] = est.compared(0.5)
    assert (c.index, c.labelled, c.realized["accuracy"], c.realized["precision"]) == (1, 2, 0.5, 0.5)
    assert c.estimated["accuracy"] == pytest.approx(0.8)  # P(positive) .8 .8 .2 .2, predicted 1 1 0 0
    assert est.compared(0.5) == []  # once
    est.add_labels([0], [0.8], [0], [7.0])  # a late label of a compared window changes nothing
    assert est.compared(0.5) == []


def test_a_window_is_compared_at_half_its_labels_and_old_windows_are_given_up() -> None:
    est = EstimatedPerformance.from_reference([0, 1], [0.9, 0.8], None, window=2, max_windows=2)
    assert est is not None
    est.add_predictions([1] * 6, [0.7] * 6, [float(t) for t in range(6)])
    assert [w["index"] for w in est.windows] == [1, 2]  # window 0 given up, unlabelled
    est.add_labels([1, 1], [0.7, 0.7], [1, 1], [0.0, 2.0])  # t0: before every window kept
    assert [(c.index, c.labelled) for c in est.compared(0.5)] == [(1, 1)]


def test_it_applies_to_binary_classifiers_with_scores_only() -> None:
    assert EstimatedPerformance.from_reference([0, 1, 2], [0.9, 0.8, 0.7], None, 10, 4) is None  # multiclass
    assert EstimatedPerformance.from_reference([0, 1, 1], [None, None, None], None, 10, 4) is None  # no scores
    assert EstimatedPerformance.from_reference([0.5, 1.5], [0.9, 0.8], None, 10, 4) is None  # regression
    named = EstimatedPerformance.from_reference(["churn", "stay"], [0.9, 0.6], "churn", 10, 4)
    assert named is not None and named.baseline["recall"] == pytest.approx(0.9 / (0.9 + 0.4))


def test_the_state_survives_a_json_round_trip_with_undefined_values() -> None:
    est = EstimatedPerformance.from_reference([0, 0], [0.9, 0.8], None, window=3, max_windows=4)
    assert est is not None and math.isnan(est.baseline["precision"])  # nothing predicted positive
    est.add_predictions([0, 0, 0, 1], [0.9, 0.9, 0.9, 0.8], [0.0, 1.0, 2.0, 3.0])
    est.add_labels([0, 0], [0.9, 0.9], [0, 1], [0.0, 1.0])
    back = EstimatedPerformance.from_state(orjson.loads(orjson.dumps(est.to_state())))
    assert math.isnan(back.baseline["precision"]) and math.isnan(back.windows[0]["estimated"]["precision"])
    for e in (est, back):
        e.add_labels([0], [0.9], [0], [2.0])
    assert [c.realized["accuracy"] for c in back.compared(0.5)] == [c.realized["accuracy"] for c in est.compared(0.5)]


# -- config --------------------------------------------------------------------------------
@pytest.mark.parametrize(("section", "key"), [
    ({"metrics": ["accuracy", "log_loss"]}, "estimated_performance.metrics"),
    ({"metrics": ["f1", "f1"]}, "estimated_performance.metrics"),
    ({"window": 1}, "estimated_performance.window"),
    ({"compare_after": 0}, "estimated_performance.compare_after"),
    ({"compare_after": 1.5}, "estimated_performance.compare_after"),
    ({"max_error": -0.1}, "estimated_performance.max_error"),
    ({"max_windows": 0}, "estimated_performance.max_windows"),
    ({"max_drop": {"roc_auc": 2}}, "estimated_performance.max_drop.roc_auc"),
    ({"max_drop": {"brier": 0.1}}, "estimated_performance.max_drop.brier"),
    ({"threshold": 0.1}, "estimated_performance.threshold"),
])
def test_a_bad_estimated_performance_key_is_refused_at_start_up_naming_it(section: dict, key: str) -> None:
    with pytest.raises(ConfigError) as info:
        MonitorConfig.from_mapping({"models": {"churn": {"estimated_performance": section}}})
    assert f"models.churn.{key}" in str(info.value) and "\n" not in str(info.value)


def test_a_bad_severity_is_refused_and_the_estimate_is_off_by_default() -> None:
    with pytest.raises(ConfigError, match="severity.estimated_performance"):
        MonitorConfig.from_mapping({"defaults": {"severity": {"estimated_performance": "P9"}}})
    assert MonitorConfig().for_model("m").estimated_performance["metrics"] == []
    assert "estimated_performance" in KINDS


# -- in the pipeline -----------------------------------------------------------------------
START = 1_700_000_000.0
N, AT, DELAY = 8_000, 4_000, 2_000  # predictions, where the shift starts, label delay (events)


def _shifted_stream(seed: int = 2) -> tuple[list[dict], list[dict]]:
    """A calibrated model (P(y=1|x) = sigmoid(3x)) whose inputs move towards its decision
    boundary at AT: its performance falls, its scores say so, labels come DELAY later."""
    rng = np.random.default_rng(seed)
    x = np.r_[rng.normal(0.0, 1.0, AT), rng.normal(0.0, 0.25, N - AT)]
    p = 1.0 / (1.0 + np.exp(-3.0 * x))
    labels = (rng.random(N) < p).astype(int)
    preds = (p >= 0.5).astype(int)
    scores = np.where(preds == 1, p, 1 - p)
    predictions = [{"prediction_id": f"p{i}", "model_id": "m", "timestamp": START + i, "features": {"x": round(float(x[i]), 5)},
                    "prediction": int(preds[i]), "score": round(float(scores[i]), 6)} for i in range(N)]
    truth = [{"prediction_id": f"p{i}", "model_id": "m", "label": int(labels[i]), "timestamp": START + i + DELAY}
             for i in range(N)]
    return predictions, truth


def _run_monitor(config: dict, batch: int, round_trip_at: int | None = None) -> list[dict]:
    predictions, truth = _shifted_stream()
    cfg = MonitorConfig.from_mapping({"defaults": config})
    m = ModelMonitor("m", None, cfg.for_model("m"))
    events = []
    for lo in range(0, N, batch):
        if lo == round_trip_at:
            m = ModelMonitor.from_state(orjson.loads(orjson.dumps(m.to_state())), cfg)
        rows = predictions[lo:lo + batch]
        pred = {"pid": [r["prediction_id"] for r in rows], "ts": [r["timestamp"] for r in rows],
                "prediction": [r["prediction"] for r in rows], "score": [r["score"] for r in rows],
                "latency_ms": [None] * len(rows), "features": {"x": [r["features"]["x"] for r in rows]}}
        done = [i for i in range(lo - DELAY, lo + len(rows) - DELAY) if i >= 0]  # labels known by now
        pairs = {"pid": [f"p{i}" for i in done], "ts": [START + i + DELAY for i in done],
                 "pred_ts": [START + i for i in done], "prediction": [predictions[i]["prediction"] for i in done],
                 "score": [predictions[i]["score"] for i in done], "label": [truth[i]["label"] for i in done]}
        result = m.process({"pred": pred, "pairs": pairs if done else None})
        events += [e for e in result.drift_events if e["kind"] == "estimated_performance"]
    return events


def test_estimates_and_comparisons_do_not_depend_on_batching_or_a_state_round_trip() -> None:
    config = {"estimated_performance": {**ALL["estimated_performance"], "window": 500}}
    whole = _run_monitor(config, batch=1_000)
    assert any(e["drift"] for e in whole) and any("realized" in e for e in whole)
    # within a batch the predictions' events come before the pairs': the order of the list
    # follows the batches, each event does not
    key = lambda e: e["event_id"]  # noqa: E731
    assert sorted(_run_monitor(config, batch=377), key=key) == sorted(whole, key=key)
    assert _run_monitor(config, batch=1_000, round_trip_at=5_000) == whole
    assert _run_monitor({}, batch=1_000) == []  # off by default


def _write(path: Path, events: list[dict]) -> Path:
    path.write_bytes(b"".join(codec.dumps(e) + b"\n" for e in events))
    return path


def test_in_the_backtest_the_estimate_alerts_before_any_label_of_the_shift_arrives(tmp_path: Path) -> None:
    predictions, truth = _shifted_stream()
    events = merge(read_events(_write(tmp_path / "p.jsonl", predictions), "predictions"),
                   read_events(_write(tmp_path / "l.jsonl", truth), "ground-truth"))
    config = MonitorConfig.from_mapping({"defaults": {
        "estimated_performance": {"metrics": ["accuracy", "roc_auc"], "window": 500},
        "performance": {"metrics": ["accuracy", "roc_auc"]},
    }})
    [run] = evaluate(events, [("cbpe", None, config)], drifts=[Drift("m", START + AT, kind="data")]).runs
    drift_events = run.result.drift_events
    onsets = {e["detector"]: e["timestamp"] for e in reversed(drift_events) if e["drift"]}
    estimated = min(onsets[f"estimated_{m}"] for m in ("accuracy", "roc_auc"))
    realized = min(onsets[m] for m in ("accuracy", "roc_auc"))  # its timestamp: when the label made it known
    first_label_of_the_shift = START + AT + DELAY
    assert START + AT <= estimated < first_label_of_the_shift <= realized
    members = [m for a in run.result.alerts for m in a["members"] if m["kind"] == "estimated_performance"]
    assert members and min(m["fired_at"] for m in members) == estimated
    # the estimate met its labels on calibrated scores: no comparison is a drift, and each carries both
    compared = [e for e in drift_events if "realized" in e]
    assert compared and not any(e["drift"] for e in compared)
    assert all(abs(e["estimated"] - e["realized"]) == pytest.approx(e["statistic"]) for e in compared)
    row = next(r for r in run.scores if r["detector"] == "estimated_accuracy")
    assert row["detected"] == 1


def test_each_comparison_is_exported_as_two_gauges_per_metric_and_no_more() -> None:
    """The worker's export of a batch (streams.runtime.exporting.Exporter): estimated and realized
    values of the latest window compared."""
    from prometheus_client import CollectorRegistry

    from streams.ops.metrics import create
    from streams.pipeline.cardinality import SeriesCap
    from streams.pipeline.monitor import MonitorResult
    from streams.runtime.exporting import Exporter

    registry = CollectorRegistry()
    exporter = Exporter(None, create(registry), SeriesCap(10), lambda tp: None)  # type: ignore[arg-type]
    monitor = ModelMonitor("m", None, MonitorConfig().for_model("m"))
    compared = [e for e in _run_monitor({"estimated_performance": {**ALL["estimated_performance"], "window": 500}}, 1_000)
                if "realized" in e]
    exporter.export(monitor, MonitorResult(drift_events=compared))
    samples = [s for f in registry.collect() if f.name == "driftstream_estimated_performance" for s in f.samples]
    assert sorted((s.labels["metric"], s.labels["source"]) for s in samples) == sorted(
        (m, source) for m in ESTIMATED for source in ("estimated", "realized"))
    last = {(e["metric"], source): e[source] for e in compared for source in ("estimated", "realized")}
    assert all(s.value == last[s.labels["metric"], s.labels["source"]] for s in samples)
