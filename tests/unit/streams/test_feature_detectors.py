"""Several detectors per feature: each has its own drift events; one incident groups them."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from streams.exceptions import ConfigError
from streams.pipeline.monitor import ModelMonitor
from streams.pipeline.monitor_config import MonitorConfig


def _stream(n: int = 8_000, change: int = 4_000) -> dict:
    """x and plan shift at ``change``; y does not."""
    rng = np.random.default_rng(3)
    shifted = np.arange(n) >= change
    plan = np.where(shifted, rng.choice(["a", "b", "c"], n, p=[0.1, 0.3, 0.6]),
                    rng.choice(["a", "b", "c"], n, p=[0.6, 0.3, 0.1]))
    return {"pid": [f"p{i}" for i in range(n)], "ts": [float(i) for i in range(n)], "prediction": [0] * n,
            "score": [None] * n, "latency_ms": [None] * n,
            "features": {"x": (rng.normal(0.0, 1.0, n) + shifted).tolist(), "y": rng.normal(0.0, 1.0, n).tolist(),
                         "plan": plan.tolist()}}


STREAM = _stream()


def _run(config: dict, batch: int = 1_000, round_trip_at: int | None = None) -> tuple[ModelMonitor, list, list]:
    cfg = MonitorConfig.from_mapping(config)
    m = ModelMonitor("m", None, cfg.for_model("m"))
    events, alerts = [], []
    for lo in range(0, 8_000, batch):
        if lo == round_trip_at:
            m = ModelMonitor.from_state(orjson.loads(orjson.dumps(m.to_state())), cfg)
        hi = min(lo + batch, 8_000)
        cols = {k: v[lo:hi] for k, v in STREAM.items() if k != "features"}
        cols["features"] = {k: v[lo:hi] for k, v in STREAM["features"].items()}
        result = m.process({"pred": cols})
        events += result.drift_events
        alerts += result.alerts
    return m, events, alerts


TWO = {"models": {"m": {"feature_detectors": {"x": [{"type": "psi"}, {"type": "ks", "window": 500, "step": 250}]}}}}


def test_a_list_of_detectors_on_one_feature_gives_each_its_own_drift_events_and_one_incident() -> None:
    m, events, alerts = _run(TWO)
    assert sorted(k for k, w in m.watched.items() if w.feature == "x") == ["data:x:ks", "data:x:psi"]
    assert m.watched["data:y"].detector.name == "psi"  # other features keep the default, one detector
    drifts = [e for e in events if e["drift"] and e["feature"] == "x"]
    assert {e["detector"] for e in drifts} == {"psi", "ks"}
    assert all(e["position"] >= 4_000 for e in drifts)
    assert len({e["event_id"] for e in events}) == len(events)
    assert [a["status"] for a in alerts] == ["firing"]  # the first detection; the others join it
    snapshots = [m.policy.snapshot(incident) for incident in sorted(m.policy.incidents)]
    with_x = [a for a in snapshots if any(m["feature"] == "x" for m in a["members"])]
    assert len(with_x) == 1  # one incident holds both detections of the feature
    assert sorted(m["detector"] for m in with_x[0]["members"] if m["feature"] == "x") == ["ks", "psi"]


def _canonical(run: tuple[ModelMonitor, list, list]) -> tuple[list, list]:
    """Events in stream order (within a batch they come detector by detector), and alerts."""
    return sorted(run[1], key=lambda e: (e["position"], e["event_id"])), run[2]


def test_several_detectors_give_the_same_events_however_batched_and_after_a_state_round_trip() -> None:
    whole = _canonical(_run(TWO))
    assert _canonical(_run(TWO, batch=700)) == whole
    assert _canonical(_run(TWO, round_trip_at=5_000)) == whole
    assert _canonical(_run(TWO, batch=700, round_trip_at=4_900)) == whole


def test_lists_in_data_drift_apply_to_every_feature_of_that_kind() -> None:
    config = {"defaults": {"data_drift": {"numeric": [{"type": "psi"}, {"type": "wasserstein"}],
                                          "categorical": [{"type": "psi_categorical"}, {"type": "chi2"}]}}}
    m, events, _ = _run(config)
    assert sorted(m.watched) == ["data:plan:chi2", "data:plan:psi_categorical", "data:x:psi", "data:x:wasserstein",
                                 "data:y:psi", "data:y:wasserstein", "prediction:prediction"]
    assert {(e["feature"], e["detector"]) for e in events if e["drift"] and e["kind"] == "data_drift"} >= {
        ("x", "psi"), ("plan", "psi_categorical"), ("plan", "chi2")}


def test_max_features_counts_features_not_detectors() -> None:
    config = {"defaults": {"max_features": 2, "data_drift": {"numeric": [{"type": "psi"}, {"type": "ks"}]}}}
    m, _, _ = _run(config)
    assert {w.feature for w in m.watched.values() if w.kind == "data_drift"} == {"plan", "x"}
    assert len([w for w in m.watched.values() if w.kind == "data_drift"]) == 3  # plan: one categorical


@pytest.mark.parametrize(("config", "message"), [
    ({"models": {"m": {"feature_detectors": {"x": [{"type": "psi"}, {"type": "psi", "bins": 5}]}}}},
     r"config: models.m.feature_detectors.x\[1\]: a second 'psi' detector; each type may appear once"),
    ({"models": {"m": {"feature_detectors": {"x": []}}}},
     r"config: models.m.feature_detectors.x: expected a detector or a non-empty list of detectors"),
    ({"defaults": {"data_drift": {"numeric": [{"type": "psi"}, {"type": "adwin"}]}}},
     r"config: defaults.data_drift.numeric\[1\].type: unknown or unsuitable detector 'adwin'"),
    ({"defaults": {"data_drift": {"categorical": [{"type": "chi2", "p_value_belw": 0.01}]}}},
     r"config: defaults.data_drift.categorical\[0\].p_value_belw: unknown parameter of chi2"),
    ({"defaults": {"prediction_drift": {"numeric": [{"type": "psi"}]}}},
     r"config: defaults.prediction_drift.numeric: expected a detector table"),
])
def test_a_bad_detector_list_is_refused_at_start_up_naming_the_entry(config: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        MonitorConfig.from_mapping(config)


def test_many_features_counts_drifting_features_not_their_detectors() -> None:
    from streams.pipeline.alerting import AlertPolicy, Observation

    config = MonitorConfig.from_mapping({"defaults": {"severity": {"many_features": 2}}}).for_model("m")
    policy = AlertPolicy("m", None, config)

    def obs(key: str, detector: str, feature: str, ts: float) -> Observation:
        return Observation(key, "data_drift", detector, feature, True, 0.4, 0.25, "above", None, ts, int(ts), "p", key)

    assert [a["severity"] for a in policy.observe(obs("data:x:psi", "psi", "x", 10.0))] == ["P3"]
    assert policy.observe(obs("data:x:ks", "ks", "x", 11.0)) == []  # same feature: no escalation
    assert [(a["status"], a["severity"]) for a in policy.observe(obs("data:y", "psi", "y", 12.0))] == [("escalated", "P2")]
