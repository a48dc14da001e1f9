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
    alerts = [policy.observe(_obs(f"data:f{i}", ts=1000 + i))[0] for i in range(3)]
    assert [a["severity"] for a in alerts] == ["P3", "P3", "P2"]


def test_ids_are_deterministic() -> None:
    a = _policy().observe(_obs(ts=1000))[0]
    b = _policy().observe(_obs(ts=1000))[0]
    assert a == b


def test_performance_severity_follows_the_drop() -> None:
    policy = _policy()
    obs = Observation("performance:accuracy", "performance", "accuracy", None, True, 0.55, 0.8, "below",
                      None, 1000.0, 1, "p1", "e1", baseline=0.9)
    assert policy.observe(obs)[0]["severity"] == "P0"  # a drop of 0.35
