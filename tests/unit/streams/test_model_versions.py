"""Monitoring follows the served model version: a new version gets its own monitor, a
switch (``served``) drains and ends the old one, and a promotion alone resolves nothing."""

from __future__ import annotations

from typing import Any

import orjson

from streams.offline.pipeline import OfflinePipeline
from streams.offline.simulate import Simulation, SimulationConfig
from streams.pipeline.stages import MonitorStage

V1 = SimulationConfig(events=14_000, seed=5, model_version="v1", feature_drift_at=None, concept_drift_at=6_000)
#: v2 starts serving where v1 stops, with no drift of its own
V2 = SimulationConfig(events=8_000, seed=6, model_version="v2", feature_drift_at=None, concept_drift_at=None,
                      start=V1.start + V1.events / V1.event_rate, id_prefix="q")
SWITCH = V2.start


def _update(action: str, version: str | None, new_version: str | None, timestamp: float, event_id: str) -> dict[str, Any]:
    return {"event_id": event_id, "model_id": V1.model_id, "model_version": version, "action": action,
            "reason": f"{action} by test", "alert_ids": [], "from_timestamp": timestamp, "to_timestamp": timestamp,
            "metrics": {}, "new_version": new_version, "artifact_path": None, "artifact_sha256": None, "timestamp": timestamp}


def _run(updates: list[tuple[int, dict[str, Any]]]) -> OfflinePipeline:
    """v1's events then v2's, with each update fed after the given number of v1 items."""
    items = Simulation(V1).in_event_time_order() + Simulation(V2).in_event_time_order()
    items.sort(key=lambda item: item[1]["timestamp"])
    pipe = OfflinePipeline(window_s=3600)
    done = 0
    for at, update in sorted(updates, key=lambda u: u[0]):
        pipe.feed_events(items[done:at])
        pipe.feed_update(update)
        done = at
    pipe.feed_events(items[done:])
    pipe.finish()
    return pipe


def _last_status(alerts: list[dict[str, Any]], key_prefix: str) -> dict[str, str]:
    final: dict[str, dict[str, Any]] = {}
    for alert in alerts:
        if (alert.get("model_version") or "") == key_prefix:
            final[alert["alert_id"]] = alert
    return {alert_id: a["status"] for alert_id, a in final.items()}


def test_a_new_version_has_its_own_monitor_and_a_promotion_alone_resolves_nothing() -> None:
    promoted = _update("promoted", "v1", "v2", SWITCH - 10, "u-promoted")
    pipe = _run([(len(Simulation(V1).in_event_time_order()) // 2, promoted)])
    assert set(pipe.monitors) == {"churn-model@v1", "churn-model@v2"}
    v1 = _last_status(pipe.result.alerts, "v1")
    assert set(v1.values()) & {"firing", "escalated"}, v1  # nothing resolved v1's drift
    assert _last_status(pipe.result.alerts, "v2") == {}  # v2 serves without drift
    assert pipe.monitors["churn-model@v1"].monitor.retired is None


def test_a_served_switch_drains_the_old_version_then_ends_it_with_its_alerts_resolved() -> None:
    served = _update("served", "v1", "v2", SWITCH, "u-served")
    items_v1 = len(Simulation(V1).in_event_time_order())
    pipe = _run([(items_v1 // 2, served)])  # the switch is announced early: v1 still drains to it
    slot = pipe.monitors["churn-model@v1"]
    assert slot.monitor.retired == {"at": SWITCH, "reason": f"version retired: v2 serves churn-model from event time {SWITCH}"}
    assert slot.monitor.n_predictions == V1.events  # every v1 prediction before the switch applied
    v1 = [a for a in pipe.result.alerts if a["model_version"] == "v1"]
    assert v1 and v1[-1]["status"] == "resolved" and "version retired: v2" in v1[-1]["message"]
    assert all(a["timestamp"] < SWITCH for a in v1[:-1])
    assert slot.monitor.watched == {} and slot.monitor.concept == {}  # its detectors are gone
    assert pipe.monitors["churn-model@v2"].monitor.n_predictions == V2.events


def test_v1_events_after_its_switch_are_not_monitored_and_a_second_switch_changes_nothing() -> None:
    early = SWITCH - 40.0  # 2,000 v1 predictions come after the switch (a lagging server)
    first, again = _update("served", "v1", "v2", early, "u1"), _update("served", "v1", "v3", SWITCH, "u2")
    pipe = _run([(1_000, first), (2_000, again)])
    slot = pipe.monitors["churn-model@v1"]
    assert slot.monitor.retired is not None and slot.monitor.retired["at"] == early
    assert slot.monitor.n_predictions == round((early - V1.start) * V1.event_rate)


def test_a_retiring_monitor_survives_a_state_round_trip() -> None:
    pipe = OfflinePipeline(window_s=3600)
    pipe.feed_events(Simulation(V1).in_event_time_order()[:24_000])  # past the drift, before the switch
    pipe.feed_update(_update("served", "v1", "v2", SWITCH, "u-served"))
    stage = MonitorStage(pipe.monitor_config)
    slot = pipe.monitors["churn-model@v1"]
    assert slot.monitor.policy.incidents, "the round trip must start with an alert open"
    restored = stage.load(orjson.dumps(orjson.loads(stage.dump(slot))))
    assert restored.retiring and restored.applied["retire"]["timestamp"] == SWITCH
    run = stage.release(restored, float("inf"))
    assert restored.monitor.retired is not None and not restored.retiring
    again = stage.load(stage.dump(restored))
    assert again.monitor.retired == restored.monitor.retired
    assert run.result.alerts and {a["status"] for a in run.result.alerts} == {"resolved"}


def test_an_explicit_rebaseline_request_resolves_the_versions_alerts_once() -> None:
    request = _update("rebaseline_requested", "v1", None, SWITCH - 1, "u-rebaseline")
    items_v1 = Simulation(V1).in_event_time_order()
    pipe = OfflinePipeline(window_s=3600)
    pipe.feed_events(items_v1)
    pipe.feed_update(request)
    pipe.feed_update(request)  # a replay applies it once
    pipe.finish()
    v1 = [a for a in pipe.result.alerts if a["status"] == "resolved" and "re-baselined on request" in a["message"]]
    assert len(v1) >= 1 and len({a["alert_id"] for a in v1}) == len(v1)
    assert pipe.monitors["churn-model@v1"].monitor.retired is None


def test_updates_that_ask_for_nothing_make_no_control() -> None:
    for action in ("update_requested", "challenger_started", "promoted", "rejected", "rolled_back"):
        assert MonitorStage.control_for(_update(action, "v1", "v2", 1.0, "e")) is None
    assert MonitorStage.control_for(_update("served", "v2", "v2", 1.0, "e")) is None  # no switch
    key, payload = MonitorStage.control_for(_update("served", None, "v2", 1.0, "e"))  # type: ignore[misc]
    assert (key, payload.control) == ("churn-model", "retire")
