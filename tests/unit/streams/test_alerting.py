"""The alert policy: lifecycle, cooldown, grouping, severity, deterministic ids."""

from __future__ import annotations

from streams.alerting import AlertPolicy, Observation
from streams.monitor_config import MonitorConfig


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
