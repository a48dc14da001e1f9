"""The detection-quality benchmark runs end to end in its smoke size, and what it reports
follows from what the pipeline and river did (not from constants)."""

from __future__ import annotations

from pathlib import Path

import orjson

from load_tests.bench_detection import Scenario, events, main, river_alone, run_one
from load_tests.results import render


def test_detection_bench_smoke(tmp_path: Path) -> None:
    out = tmp_path / "detection.json"
    main(["--smoke", "--json", str(out)])
    summary = orjson.loads(out.read_bytes())
    rows = {r["scenario"]: r for r in summary["scenarios"]}
    assert summary["smoke"] is True and set(rows) == {"sea/abrupt", "covariate/0.5sd", "two/shift+concept", "stationary"}
    sea = rows["sea/abrupt"]
    assert sea["detected"] == 1 and sea["delay_median"] > 0  # a 10 % error rise is found, after it happens
    assert sea["river_adwin_median"] is not None and sea["ratio"] == sea["delay_median"] / min(
        v for v in (sea["river_adwin_median"], sea["river_ddm_median"]) if v is not None)
    two = rows["two/shift+concept"]
    [run] = two["runs"]
    assert len(run["incidents_per_drift"]) == 2 == len(run["delays"]) and two["incidents_per_drift"] == run["incidents_per_drift"]
    assert run["incidents"] >= sum(run["incidents_per_drift"]) and two["met"] == (two["incidents_per_drift"] == [1, 1])
    assert isinstance(summary["targets"]["false_per_100k"]["met"], bool)
    # labels 5,000 late: the label-free estimate drifts before the realized metrics can, and
    # on calibrated scores it is close to what the labels later say
    [estimate] = summary["estimates"]
    assert estimate["label_delay"] == 5_000 and estimate["earlier_min"] > 0
    assert estimate["estimate_delay_median"] < estimate["label_delay"] <= estimate["realized_delay_median"]
    assert all(0 < mae < 0.05 for mae in estimate["mae_median"].values())
    assert summary["targets"]["estimate_before_labels"]["met"] is True
    table = render({"bench_detection": summary}, smoke=True)
    assert "| sea/abrupt | 1/1 |" in table


def test_a_stream_without_drift_gives_river_nothing_to_find_and_the_same_run_twice_the_same_figures() -> None:
    scenario = Scenario("stationary", "stationary", 6_000, None)
    _, errors = events(scenario, 3)
    assert 0.05 < sum(e for _, e in errors) / len(errors) < 0.4 and len(errors) < 6_000  # labels missing
    assert river_alone([(i, 0.0) for i in range(3_000)]) == {"adwin": [], "ddm": []}
    assert run_one(scenario, 3) == run_one(scenario, 3)


def test_two_drifts_are_counted_per_drift_from_each_onset_to_the_next() -> None:
    scenario = Scenario("two/shift+concept", "two", 10_000, 3_000, second=6_500)
    items, errors = events(scenario, 7)
    predictions = [e for role, e in items if role == "predictions"]
    # the first feature shifts at 3,000; the concept at 6,500: the model's error rises then
    shifted = [p["features"]["f0"] for p in predictions]
    assert sum(shifted[3_000:6_000]) / 3_000 - sum(shifted[:3_000]) / 3_000 > 0.3
    before = [e for i, e in errors if 3_000 <= i < 6_500]
    after = [e for i, e in errors if i >= 6_500]
    assert sum(after) / len(after) > sum(before) / len(before) + 0.15
    run = run_one(scenario, 7)
    assert run["detected"] and 0 < run["delays"][0] < 3_500 and 0 < run["delays"][1]
