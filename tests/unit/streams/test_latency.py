"""Prediction latency percentiles per model, and the SLO check on them."""

from __future__ import annotations

import math

import numpy as np
import orjson
import pytest

from schemas.records import KINDS
from streams.exceptions import ConfigError
from streams.pipeline.latency import LatencyWindow
from streams.pipeline.monitor import OBSERVE_EVERY, ModelMonitor
from streams.pipeline.monitor_config import MonitorConfig

N = 3_000  # predictions before the slowdown, and after it


def test_percentiles_are_linear_interpolations_of_the_window_by_hand() -> None:
    w = LatencyWindow(window=5)
    w.update([100.0, 1.0, 2.0, 3.0, 4.0, 5.0])  # the 100 falls out of the window
    # sorted 1..5: p50 at index 2 -> 3; p95 at 3.8 -> 4.8; p99 at 3.96 -> 4.96
    assert (w.percentile("p50"), w.percentile("p95"), w.percentile("p99")) == (3.0, pytest.approx(4.8),
                                                                                pytest.approx(4.96))
    assert w.full and len(w) == 5


def test_missing_latencies_are_skipped_and_an_empty_window_is_undefined() -> None:
    w = LatencyWindow(window=3)
    assert math.isnan(w.percentile("p99"))
    w.update([None, None, 7.0])
    assert (len(w), w.full, w.percentile("p50")) == (1, False, 7.0)
    restored = LatencyWindow.from_state(orjson.loads(orjson.dumps(w.to_state())))
    assert (len(restored), restored.percentile("p50")) == (1, 7.0)


def _stream(slow_from: int = N) -> dict:
    rng = np.random.default_rng(3)
    n = 2 * N
    latency = rng.gamma(2.0, 10.0, n)  # median ~17 ms, p99 ~66 ms
    latency[slow_from:] += 200.0
    return {"pid": [f"p{i}" for i in range(n)], "ts": [float(i) for i in range(n)], "prediction": [0] * n,
            "score": [None] * n, "latency_ms": latency.tolist(), "features": {"x": rng.normal(0, 1, n).tolist()}}


def _run(stream: dict, config: dict, batch: int = 1_000, round_trip_at: int | None = None) -> tuple[list, list, list]:
    cfg = MonitorConfig.from_mapping(config)
    m = ModelMonitor("m", None, cfg.for_model("m"))
    samples, events, alerts = [], [], []
    for lo in range(0, len(stream["ts"]), batch):
        if lo == round_trip_at:
            m = ModelMonitor.from_state(orjson.loads(orjson.dumps(m.to_state())), cfg)
        cols = {k: v[lo:lo + batch] for k, v in stream.items() if k != "features"}
        cols["features"] = {k: v[lo:lo + batch] for k, v in stream["features"].items()}
        result = m.process({"pred": cols})
        samples += [s for s in result.samples if s["kind"] == "latency"]
        events += [e for e in result.drift_events if e["kind"] == "latency"]
        alerts += [a for a in result.alerts if a["kind"] == "latency"]
    return samples, events, alerts


def test_percentiles_are_sampled_at_every_checkpoint_by_default_and_never_judged() -> None:
    stream = _stream()
    samples, events, alerts = _run(stream, {})
    assert (events, alerts) == ([], [])
    p99 = [s for s in samples if s["detector"] == "latency_p99"]
    assert {s["detector"] for s in samples} == {"latency_p50", "latency_p95", "latency_p99"}
    # the reference (1000) and a full window (1000) first, then every checkpoint
    assert [s["position"] for s in p99][:2] == [1_999, 1_999 + OBSERVE_EVERY]
    window = np.asarray(stream["latency_ms"][1_000:2_000])
    assert p99[0]["statistic"] == pytest.approx(float(np.quantile(window, 0.99)))
    assert all(s["threshold"] == math.inf and not s["drift"] for s in samples)


def test_an_slo_breach_is_a_latency_drift_and_alert_at_a_fixed_position_whatever_the_batches() -> None:
    config = {"models": {"m": {"latency": {"slo_ms": {"p95": 150.0}}}}}
    stream = _stream()
    samples, events, alerts = _run(stream, config)
    drifts = [e for e in events if e["drift"]]
    assert {(e["detector"], e["feature"]) for e in events} == {("latency_p95", None)}
    # p95 of the last 1000 crosses 150 once more than 5% of them are slow: within the first 250 after N
    assert N < drifts[0]["position"] < N + OBSERVE_EVERY + 1 and drifts[0]["threshold"] == 150.0
    assert alerts and alerts[0]["status"] == "firing" and alerts[0]["severity"] == "P2"
    assert "latency" in KINDS
    for batch, round_trip in ((7, None), (333, 999), (6_000, None)):
        again = _run(stream, config, batch=batch, round_trip_at=round_trip)
        assert [e["event_id"] for e in again[1]] == [e["event_id"] for e in events]
        assert [s["statistic"] for s in again[0]] == [s["statistic"] for s in samples]


def test_latency_config_is_checked_at_start_up() -> None:
    with pytest.raises(ConfigError, match=r"models\.m\.latency\.slo_ms\.p99: .*not in latency\.percentiles"):
        MonitorConfig.from_mapping({"models": {"m": {"latency": {"percentiles": ["p50"], "slo_ms": {"p99": 9}}}}})
    with pytest.raises(ConfigError, match=r"latency\.slo_ms\.p99: expected a number of milliseconds > 0"):
        MonitorConfig.from_mapping({"models": {"m": {"latency": {"slo_ms": {"p99": -1}}}}})
    with pytest.raises(ConfigError, match=r"latency\.percentiles: expected a list of distinct percentiles"):
        MonitorConfig.from_mapping({"models": {"m": {"latency": {"percentiles": ["p90"]}}}})
    with pytest.raises(ConfigError, match=r"latency\.slo_ms\.p90: unknown key"):
        MonitorConfig.from_mapping({"models": {"m": {"latency": {"slo_ms": {"p90": 10}}}}})


def test_no_percentiles_is_off() -> None:
    samples, _, _ = _run(_stream(), {"models": {"m": {"latency": {"percentiles": []}}}})
    assert samples == []
