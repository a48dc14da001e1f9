"""The demo's served traffic and its loop check, without a broker: a promotion applied to
the served model mid-stream tags the rest of the predictions, accuracy recovers, and a
missing step is reported as missing."""

from __future__ import annotations

from streams.offline.demo_loop import ServedTraffic, check_loop
from streams.offline.simulate import SimulationConfig, event_time_of
from streams.updater.model_store import ModelStore
from streams.updater.decisions import Updater, UpdaterConfig

CONFIG = SimulationConfig(events=6000, seed=7, concept_drift_at=2000, feature_drift_at=None)


def _alert(status: str) -> dict:
    return {"alert_id": "a1", "model_id": CONFIG.model_id, "model_version": "v1", "kind": "performance",
            "severity": "P1", "status": status, "message": status, "members": [], "timestamp": 0.0}


def _served_through_a_promotion(tmp_path) -> tuple[ServedTraffic, list[dict]]:
    """v1 serves; the updater, fed the served predictions and labels, promotes v2 after the
    drift; the served model applies that promotion like the demo's follower does."""
    store = ModelStore(tmp_path, key=b"k" * 32)
    traffic = ServedTraffic.first_model(store, CONFIG, history=2000)
    updater = Updater(store, UpdaterConfig(training_events=500, evaluation_events=500))
    updates: list[dict] = []
    request = {"event_id": "r1", "model_id": CONFIG.model_id, "model_version": "v1", "action": "update_requested",
               "alert_ids": ["a1"], "from_timestamp": event_time_of(CONFIG, 2000), "reason": "concept drift",
               "metrics": {}}
    for start in range(0, CONFIG.events, 500):
        for role, event in traffic.serve(CONFIG, start, 500):
            decided = updater.add_prediction(event) if role == "predictions" else updater.add_label(event)
            for update in decided:
                updates.append(update)
                traffic.served.apply(update)
        if start == 2500:  # the alert fired a little after the drift
            updates.append(request)
            updates += updater.request_update(request)
        updates += traffic.served.take_events()
    return traffic, updates


def test_a_promotion_mid_stream_closes_the_loop(tmp_path):
    traffic, updates = _served_through_a_promotion(tmp_path)
    steps = check_loop(CONFIG.model_id, "v1", traffic, [_alert("firing"), _alert("resolved")], updates)
    assert [s.name for s in steps if not s.ok] == [], steps
    assert traffic.served_by["v2"] > 0 and traffic.served_by["v1"] > 0
    assert traffic.accuracy("v2", True) > traffic.accuracy("v1", True) + 0.3
    served = [u for u in updates if u["action"] == "served"]
    assert [(u["model_version"], u["new_version"]) for u in served] == [("v1", "v2")]


def test_a_missing_step_is_reported(tmp_path):
    traffic, updates = _served_through_a_promotion(tmp_path)
    no_served = [u for u in updates if u["action"] != "served"]
    steps = {s.name: s for s in check_loop(CONFIG.model_id, "v1", traffic, [_alert("firing")], no_served)}
    assert not steps["served"].ok and steps["served"].detail == "no served event for v2"
    assert not steps["alert resolved"].ok
    assert steps["promoted"].ok and steps["predictions tagged"].ok


def test_without_an_update_nothing_after_the_alert_passes(tmp_path):
    store = ModelStore(tmp_path)
    traffic = ServedTraffic.first_model(store, CONFIG, history=1000)
    for start in range(0, CONFIG.events, 1000):
        traffic.serve(CONFIG, start, 1000)
    steps = {s.name: s.ok for s in check_loop(CONFIG.model_id, "v1", traffic, [_alert("firing")], [])}
    assert steps == {"drift injected": True, "alert": True, "update requested": False, "challenger": False,
                     "promoted": False, "served": False, "predictions tagged": False,
                     "accuracy recovers": False, "alert resolved": False}
