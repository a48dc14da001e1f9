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
    assert summary["smoke"] is True and set(rows) == {"sea/abrupt", "covariate/0.5sd", "stationary"}
    sea = rows["sea/abrupt"]
    assert sea["detected"] == 1 and sea["delay_median"] > 0  # a 10 % error rise is found, after it happens
    assert sea["river_adwin_median"] is not None and sea["ratio"] == sea["delay_median"] / min(
        v for v in (sea["river_adwin_median"], sea["river_ddm_median"]) if v is not None)
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
