"""Detectors on a metric's checkpoint series: three_sigma on F1, a threshold on latency p95."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from streams.exceptions import ConfigError
from streams.pipeline.monitor import OBSERVE_EVERY, ModelMonitor
from streams.pipeline.monitor_config import MonitorConfig
from streams.pipeline.series import SeriesWatch

N = 8_000  # pairs before F1 slips, then as many after
SERIES = {"performance": {"metrics": ["accuracy", "f1"]},
          "metric_series": {"reference_points": 20, "detectors": {"f1": {"type": "three_sigma", "sigma_above": 4.0}}},
          "concept_drift": {"classification": [{"type": "ddm", "warm_start": 500}]}}


def test_a_flat_reference_slides_until_the_series_varies() -> None:
    w = SeriesWatch({"type": "three_sigma"}, reference_points=3)
    assert [w.update(v) for v in (1.0, 1.0, 1.0, 1.0)] == [None] * 4 and w.detector is None
    assert w.update(0.9) is None and w.detector is not None  # reference 1.0, 1.0, 0.9
    # mean 29/30, population SD sqrt(2)/30: 0.9 is 1/15 / (sqrt(2)/30) = sqrt(2) SDs away
    assert w.update(0.9) is False and w.detector.statistic == pytest.approx(2 ** 0.5)
    again = SeriesWatch.from_state(orjson.loads(orjson.dumps(w.to_state())))
    assert again.update(0.5) is True


def test_a_detector_that_needs_no_reference_starts_at_once() -> None:
    w = SeriesWatch({"type": "threshold", "above": 100.0}, reference_points=20)
    assert (w.update(90.0), w.update(120.0)) == (False, True)


def _pairs(seed: int = 11) -> tuple[list, list]:
    """Balanced classes; 90% right, then 85% right after N: F1 falls about 0.05, half its
    max_drop, but many checkpoint SDs."""
    rng = np.random.default_rng(seed)
    y = (rng.random(2 * N) < 0.5).astype(int)
    right = rng.random(2 * N) < np.where(np.arange(2 * N) < N, 0.90, 0.85)
    return np.where(right, y, 1 - y).tolist(), y.tolist()


def _run(config: dict, batch: int = 1_000, round_trip_at: int | None = None) -> tuple[list, list]:
    cfg = MonitorConfig.from_mapping({"defaults": config})
    preds, labels = _pairs()
    m = ModelMonitor("m", None, cfg.for_model("m"))
    events, alerts = [], []
    for lo in range(0, len(labels), batch):
        if lo == round_trip_at:
            m = ModelMonitor.from_state(orjson.loads(orjson.dumps(m.to_state())), cfg)
        ids = range(lo, min(lo + batch, len(labels)))
        ts = [float(i) for i in ids]
        result = m.process({"pairs": {"pid": [f"p{i}" for i in ids], "ts": ts, "pred_ts": ts, "label_ts": ts,
                                      "prediction": preds[lo:lo + batch], "label": labels[lo:lo + batch],
                                      "score": [None] * len(ids)}})
        events += [e for e in result.drift_events if e["kind"] in ("anomaly", "performance")]
        alerts += [a for a in result.alerts if a["kind"] == "anomaly"]
    return events, alerts


def test_three_sigma_on_f1_flags_a_slip_the_fixed_threshold_misses() -> None:
    events, alerts = _run(SERIES)
    drifts = [e for e in events if e["drift"]]
    assert {(e["kind"], e["detector"], e["feature"]) for e in drifts} == {("anomaly", "three_sigma", "f1")}
    assert N <= drifts[0]["position"] < N + 1_000
    assert drifts[0]["threshold"] == 4.0 and drifts[0]["statistic"] > 4.0
    assert alerts and alerts[0]["status"] == "firing" and alerts[0]["severity"] == "P3"
    # the reference: the first 20 checkpoints with a full window
    assert (drifts[0]["position"] + 1) % OBSERVE_EVERY == 0


def test_series_results_do_not_depend_on_batching_or_a_state_round_trip() -> None:
    whole = _run(SERIES)[0]
    assert _run(SERIES, batch=333)[0] == whole
    assert _run(SERIES, batch=1_000, round_trip_at=6_000)[0] == whole


def test_a_series_of_an_uncomputed_metric_or_an_unfit_detector_is_refused_at_start_up() -> None:
    with pytest.raises(ConfigError, match=r"metric_series\.detectors\.f1: f1 is not computed"):
        MonitorConfig.from_mapping({"defaults": {"metric_series": {"detectors": {"f1": {"type": "three_sigma"}}}}})
    with pytest.raises(ConfigError, match=r"metric_series\.detectors\.accuracy\.type: .*'psi'.*"
                                          r"expected one of: three_sigma, threshold, page_hinkley"):
        MonitorConfig.from_mapping({"defaults": {"metric_series": {"detectors": {"accuracy": {"type": "psi"}}}}})
    with pytest.raises(ConfigError, match=r"metric_series\.detectors\.f2: unknown metric series"):
        MonitorConfig.from_mapping({"defaults": {"metric_series": {"detectors": {"f2": {"type": "three_sigma"}}}}})
    with pytest.raises(ConfigError, match=r"metric_series\.reference_points: expected an int >= 2"):
        MonitorConfig.from_mapping({"defaults": {"metric_series": {"reference_points": 1}}})
    MonitorConfig.from_mapping({"defaults": {"metric_series": {"detectors": {
        "latency_p99": {"type": "page_hinkley"}, "accuracy": {"type": "threshold", "below": 0.8}}}}})
