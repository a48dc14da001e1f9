"""Scoring: exact delays and false alarms on hand-made cases, and the trivial baselines."""

from __future__ import annotations

from pathlib import Path

import pytest

from streams.exceptions import ConfigError
from streams.offline.scoring import ALERTS, ALWAYS, NEVER, Detection, Drift, config_summary, detections_from, load_drifts, rank, score

TIMELINE = [float(t) for t in range(1000)]  # one event per second, t = 0..999
TIMELINES = {("m", "predictions"): TIMELINE, ("m", "pairs"): TIMELINE[::2]}  # every other one labelled


def _rows(detections: list[Detection], drifts: list[Drift], tolerance_s: float = 50.0) -> dict[str, dict]:
    return {r["detector"]: r for r in score(detections, drifts, TIMELINES, tolerance_s)}


def test_delays_false_alarms_and_repeats_are_exact() -> None:
    drifts = [Drift("m", 200.0, width=10.0, kind="data", feature="age"), Drift("m", 600.0, kind="concept")]
    dets = [
        Detection("m", "psi", "data_drift", "age", 100.0, "predictions"),    # before: false alarm
        Detection("m", "psi", "data_drift", "age", 230.0, "predictions"),    # detects, 30 events late
        Detection("m", "psi", "data_drift", "age", 250.0, "predictions"),    # repeat inside the interval
        Detection("m", "psi", "data_drift", "age", 271.0, "predictions"),    # past 200+10+50: false alarm
        Detection("m", "adwin", "concept_drift", None, 640.0, "pairs"),      # 20 labelled events late
        Detection("m", "psi", "data_drift", "income", 605.0, "predictions"), # income never drifted
    ]
    rows = _rows(dets, drifts)
    age = rows["psi[age]"]
    assert (age["relevant_drifts"], age["detected"], age["missed"]) == (1, 1, 0)
    assert age["delays_events"] == [30] and age["delays_s"] == [30.0]
    assert age["false_alarms"] == 2 and age["false_alarms_per_10k"] == 20.0
    adwin = rows["adwin"]
    assert adwin["delays_events"] == [20] and adwin["delays_s"] == [40.0]
    assert adwin["events"] == 500 and adwin["false_alarms"] == 0
    income = rows["psi[income]"]
    assert (income["relevant_drifts"], income["false_alarms"]) == (0, 1)


def test_baselines_detect_everything_or_nothing() -> None:
    drifts = [Drift("m", 200.0, width=10.0, kind="data"), Drift("m", 600.0, kind="concept")]
    rows = _rows([], drifts, tolerance_s=40.0)
    always, never = rows[ALWAYS], rows[NEVER]
    assert always["detected"] == 2 and always["delays_events"] == [0, 0] and always["delays_s"] == [0.0, 0.0]
    inside = (250 - 200 + 1) + (640 - 600 + 1)
    assert always["false_alarms"] == 1000 - inside
    assert never["detected"] == 0 and never["missed"] == 2 and never["false_alarms"] == 0
    assert rows[ALERTS]["missed"] == 2


def test_detections_are_onsets_and_alert_members() -> None:
    def event(i: int, drift: bool, ts: float, detector: str = "psi", kind: str = "data_drift") -> dict:
        return {"event_id": f"e{i}", "model_id": "m", "model_version": None, "kind": kind,
                "detector": detector, "feature": "age" if kind == "data_drift" else None, "drift": drift, "timestamp": ts}

    events = [event(1, True, 10.0), event(2, True, 11.0), event(3, False, 12.0), event(4, True, 13.0),
              event(5, True, 20.0, "adwin", "concept_drift")]
    alerts = [
        {"alert_id": "a", "model_id": "m", "status": "firing", "related": ["e1"]},
        {"alert_id": "a", "model_id": "m", "status": "firing", "related": ["e1", "e2", "e5"]},
        {"alert_id": "a", "model_id": "m", "status": "resolved", "related": ["e1", "e2", "e5"]},
    ]
    found = detections_from(events, alerts)
    assert [(d.detector, d.timestamp) for d in found] == [
        ("psi", 10.0), ("psi", 13.0), ("adwin", 20.0), (ALERTS, 10.0), (ALERTS, 20.0),
    ]
    assert [d.stream for d in found if d.detector == ALERTS] == ["predictions", "pairs"]


def test_ranking_follows_the_stated_rule() -> None:
    summaries = {
        "noisy": {"detected": 2, "false_alarms_per_10k": 9.0, "mean_delay_s": 1.0},
        "quiet": {"detected": 2, "false_alarms_per_10k": 1.0, "mean_delay_s": 50.0},
        "blind": {"detected": 0, "false_alarms_per_10k": 0.0, "mean_delay_s": None},
        "quick": {"detected": 2, "false_alarms_per_10k": 1.0, "mean_delay_s": 5.0},
    }
    assert rank(summaries) == ["quick", "quiet", "noisy", "blind"]
    rows = score([], [Drift("m", 5.0)], TIMELINES, 1.0)
    assert config_summary(rows) == {"relevant_drifts": 1, "detected": 0, "false_alarms": 0,
                                    "false_alarms_per_10k": 0.0, "mean_delay_s": None}


def test_annotations_are_validated_with_clear_messages(tmp_path: Path) -> None:
    path = tmp_path / "drifts.json"
    path.write_text('[{"model_id": "m", "timestamp": 5, "kind": "data", "feature": "age", "width": 3}]')
    assert load_drifts(path) == [Drift("m", 5.0, 3.0, "data", "age")]
    path.write_text('[{"model_id": "m", "kind": "concept"}]')
    with pytest.raises(ConfigError, match=r"drift \[0\]: missing field 'timestamp'"):
        load_drifts(path)
    path.write_text('[{"model_id": "m", "timestamp": 1, "kind": "sudden"}]')
    with pytest.raises(ConfigError, match="kind must be one of"):
        load_drifts(path)
