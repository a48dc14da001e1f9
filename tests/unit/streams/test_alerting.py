"""The alert policy: lifecycle, cooldown, grouping, severity, deterministic ids."""

from __future__ import annotations

from streams.pipeline.alerting import AlertPolicy, Observation
from streams.pipeline.monitor_config import MonitorConfig


def _policy(**alerts: float) -> AlertPolicy:
    config = MonitorConfig.from_mapping({"defaults": {"alerts": alerts}} if alerts else {})
    return AlertPolicy("m", "v1", config.for_model("m"))


def _obs(key: str = "data:age", drift: bool = True, ts: float = 1000.0, value: float = 0.4,
         kind: str = "data_drift", detector: str = "psi") -> Observation:
    return Observation(key, kind, detector, key.split(":")[1] if kind == "data_drift" else None, drift,
                       value, 0.25, "above", None, ts, int(ts), f"p{int(ts)}", f"ev{ts}")


def test_fires_once_then_resolves_after_a_quiet_period() -> None:
    policy = _policy(resolve_after_s=100.0)
    [alert] = policy.observe(_obs(ts=1000))
    assert (alert["status"], alert["severity"], alert["feature"], alert["timestamp"]) == ("firing", "P3", "age", 1000)
    assert policy.observe(_obs(ts=1010)) == []  # still the same drift: no second alert
    assert policy.observe(_obs(drift=False, ts=1050)) == []  # not quiet long enough
    [resolved] = policy.observe(_obs(drift=False, ts=1111))
    assert resolved["status"] == "resolved" and resolved["alert_id"] == alert["alert_id"]
    assert "back within threshold" in resolved["message"]


def test_cooldown_suppresses_a_refire() -> None:
    policy = _policy(resolve_after_s=10.0, cooldown_s=500.0)
    policy.observe(_obs(ts=1000))
    policy.observe(_obs(drift=False, ts=1020))
    assert policy.observe(_obs(ts=1100)) == []  # within the cooldown
    assert policy.members["data:age"]["suppressed"] == 1
    assert [a["status"] for a in policy.observe(_obs(ts=1600))] == ["firing"]


def test_detectors_firing_together_are_one_incident_with_the_highest_severity() -> None:
    policy = _policy(group_window_s=300.0)
    first = policy.observe(_obs("data:age", ts=1000))[0]
    second = policy.observe(_obs("concept:adwin", ts=1100, kind="concept_drift", detector="adwin"))[0]
    assert first["alert_id"] == second["alert_id"]
    assert [m["detector"] for m in second["members"]] == ["psi", "adwin"]
    assert second["severity"] == "P2" and second["related"] == ["ev1000", "ev1100"]


def test_many_drifting_features_raise_the_severity() -> None:
    policy = _policy()
    published = [policy.observe(_obs(f"data:f{i}", ts=1000 + i)) for i in range(3)]
    # the second feature adds nothing a reader acts on: it is not published
    assert [[(a["status"], a["severity"]) for a in p] for p in published] == [
        [("firing", "P3")], [], [("escalated", "P2")]]
    assert published[2][0]["timestamp"] == 1000 and published[2][0]["position"] == 1000


def test_each_state_change_is_one_publication_and_kind_names_the_most_severe() -> None:
    policy = _policy(group_window_s=300.0, resolve_after_s=50.0)
    [first] = policy.observe(_obs("data:age", ts=1000))
    perf = Observation("performance:accuracy", "performance", "accuracy", None, True, 0.75, 0.8, "below",
                       None, 1100.0, 1100, "p1100", "e1100", baseline=0.9)
    [escalated] = policy.observe(perf)
    assert (first["status"], first["severity"], first["kind"]) == ("firing", "P3", "data_drift")
    assert (escalated["status"], escalated["severity"], escalated["kind"]) == ("escalated", "P1", "performance")
    assert escalated["alert_id"] == first["alert_id"] and escalated["event_id"] != first["event_id"]
    assert escalated["timestamp"] == 1000 and escalated["position"] == 1000  # its first detection
    # the kind changed: said in so many words
    assert escalated["message"].startswith("escalated to P1, now performance (was data drift): performance and data drift")
    assert policy.observe(perf._replace(timestamp=1120.0)) == []  # a repeat with nothing new
    assert policy.observe(_obs(drift=False, ts=1060)) == []  # one member still firing
    [resolved] = policy.observe(perf._replace(drift=False, timestamp=1200.0))
    assert (resolved["status"], resolved["alert_id"]) == ("resolved", first["alert_id"])


def test_grouping_counts_the_window_from_the_first_detection_not_from_fixed_buckets() -> None:
    policy = _policy(group_window_s=300.0)
    # 290 and 310 straddle a fixed 300 s bucket edge; both are within 300 s of the first
    [a] = policy.observe(_obs("data:age", ts=290))
    assert policy.observe(_obs("data:income", ts=310)) == []
    assert policy.members["data:income"]["incident"] == a["alert_id"]
    [b] = policy.observe(_obs("data:tenure", ts=590))  # 300 s after the first: a new incident
    assert b["status"] == "firing" and b["alert_id"] != a["alert_id"]


def test_ids_are_deterministic() -> None:
    a = _policy().observe(_obs(ts=1000))[0]
    b = _policy().observe(_obs(ts=1000))[0]
    assert a == b


def test_performance_severity_follows_the_drop() -> None:
    policy = _policy()
    obs = Observation("performance:accuracy", "performance", "accuracy", None, True, 0.55, 0.8, "below",
                      None, 1000.0, 1, "p1", "e1", baseline=0.9)
    assert policy.observe(obs)[0]["severity"] == "P0"  # a drop of 0.35


def _concept(ts: float, drift: bool = True, key: str = "concept:adwin") -> Observation:
    return Observation(key, "concept_drift", key.split(":")[1], None, drift, 0.4, 0.2, "above",
                       None, ts, int(ts), f"p{int(ts)}", f"ev{ts}" if drift else "")


def test_a_new_problem_after_the_window_is_a_new_incident_and_a_continuing_one_stays() -> None:
    policy = _policy(group_window_s=300.0, resolve_after_s=100.0)
    [data] = policy.observe(_obs("data:age", ts=1000))
    assert policy.observe(_obs("data:age", ts=1500)) == []  # the shift continues: same member
    # the same feature's second detector, long after the window: the problem is still
    # firing in the open incident, so this is the same drift
    assert policy.observe(_obs("data:age", ts=1600, detector="ks")._replace(key="data:age:ks")) == []
    assert policy.members["data:age:ks"]["incident"] == data["alert_id"]
    # the concept flips 1,000 s later while the feature drift is still firing: its own incident
    [concept] = policy.observe(_concept(2000))
    assert concept["status"] == "firing" and concept["alert_id"] != data["alert_id"]
    assert (concept["timestamp"], concept["position"], concept["kind"]) == (2000, 2000, "concept_drift")
    assert [m["detector"] for m in concept["members"]] == ["adwin"]
    # ... and a second quality detector joins the concept drift's incident, not the data's
    policy.observe(_concept(2050, key="concept:ddm"))
    assert policy.members["concept:ddm"]["incident"] == concept["alert_id"]


def test_a_problem_that_cleared_and_fires_again_after_the_window_is_a_new_incident() -> None:
    policy = _policy(group_window_s=300.0, resolve_after_s=100.0, cooldown_s=200.0)
    [first] = policy.observe(_concept(1000))
    policy.observe(_obs("data:age", ts=1010))  # keeps the first incident open
    policy.observe(_concept(1050, drift=False))
    assert policy.observe(_concept(1150, drift=False)) == []  # resolved; age still firing
    assert policy.members["concept:adwin"]["status"] == "resolved"
    [again] = policy.observe(_concept(2000))  # after the cooldown and the window: a new drift
    assert again["status"] == "firing" and again["alert_id"] != first["alert_id"]
    assert [m["detector"] for m in again["members"]] == ["adwin"]
    # the first incident keeps the member as it resolved, and resolves with its own members
    [resolved] = policy.observe(_obs("data:age", drift=False, ts=2100))
    assert (resolved["status"], resolved["alert_id"]) == ("resolved", first["alert_id"])
    assert [(m["detector"], m["status"], m["fired_at"]) for m in resolved["members"]] == [
        ("adwin", "resolved", 1000), ("psi", "resolved", 1010)]
    assert policy.members["concept:adwin"]["status"] == "firing"  # the new incident's member


def test_a_member_joining_with_an_earlier_event_time_never_moves_the_incident_start_back() -> None:
    policy = _policy(group_window_s=300.0)
    [first] = policy.observe(_obs("data:age", ts=1000))
    perf = Observation("performance:accuracy", "performance", "accuracy", None, True, 0.6, 0.8, "below",
                       None, 950.0, 950, "p950", "e950", baseline=0.9)
    [escalated] = policy.observe(perf)  # 50 s before the first detection, within the window
    assert escalated["alert_id"] == first["alert_id"]
    assert (escalated["timestamp"], escalated["position"], escalated["prediction_id"]) == (1000, 1000, "p1000")
    assert [m["fired_at"] for m in escalated["members"]] == [950, 1000]  # members in event-time order


def test_an_escalation_that_keeps_the_kind_does_not_claim_a_change() -> None:
    policy = _policy()
    published = [policy.observe(_obs(f"data:f{i}", ts=1000 + i)) for i in range(3)]
    assert published[2][0]["message"].startswith("escalated to P2: data drift on model")


def test_state_written_before_the_first_detection_was_recorded_still_loads() -> None:
    policy = _policy()
    [alert] = policy.observe(_obs("data:age", ts=1000))
    state = policy.to_state()
    for incident in state["incidents"].values():  # the older layout
        incident.pop("first"), incident.pop("former"), incident.pop("kind")
        incident["opened_at"] = 1000.0
    restored = _policy()
    restored.load_state(state)
    [resolved] = restored.observe(_obs("data:age", drift=False, ts=2000))
    assert (resolved["alert_id"], resolved["position"]) == (alert["alert_id"], 1000)


def test_a_prediction_drift_while_an_input_still_drifts_is_the_same_incident() -> None:
    policy = _policy(group_window_s=300.0)
    [data] = policy.observe(_obs("data:age", ts=1000))
    score = Observation("prediction:score", "prediction_drift", "psi", "score", True, 0.12, 0.1, "above",
                        None, 5000.0, 5000, "p5000", "e5000")
    [escalated] = policy.observe(score)  # long after the window: the outputs follow the inputs
    assert (escalated["alert_id"], escalated["status"], escalated["kind"]) == (data["alert_id"], "escalated", "prediction_drift")
    # a data drift does not join an incident that only has a prediction drift firing
    policy.observe(_obs("data:age", drift=False, ts=6000))
    [other] = policy.observe(_obs("data:income", ts=7000))
    assert other["alert_id"] != data["alert_id"]


def test_messages_name_the_model_version_as_the_server_named_it() -> None:
    """A version ``v1`` was printed ``vv1``: the message added a ``v`` of its own."""
    policy = _policy(resolve_after_s=10.0)
    [fired] = policy.observe(_obs(ts=1000))
    [resolved] = policy.observe(_obs(drift=False, ts=1020))
    assert "on model m v1: psi[age] crossed threshold" in fired["message"]
    assert resolved["message"] == "resolved on model m v1: psi[age] back within threshold"
    dated = AlertPolicy("m", "2024-06-01", MonitorConfig.from_mapping({}).for_model("m"))
    assert "on model m 2024-06-01: " in dated.observe(_obs(ts=1000))[0]["message"]
    unversioned = AlertPolicy("m", None, MonitorConfig.from_mapping({}).for_model("m"))
    assert "on model m: " in unversioned.observe(_obs(ts=1000))[0]["message"]
