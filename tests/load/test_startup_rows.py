"""``load_tests.startup``: its pair of events, and its rows in RESULTS.md (no broker)."""

from __future__ import annotations

from load_tests.results import render
from load_tests.startup import pair


def test_a_pair_is_one_prediction_and_its_label_of_one_model() -> None:
    items = pair("startup-x", seed=3)
    assert [role for role, _ in items] == ["predictions", "ground-truth"]
    assert {event["model_id"] for role, event in items if role == "predictions"} == {"startup-x"}
    assert items[0][1]["prediction_id"] == items[1][1]["prediction_id"]


def test_the_startup_rows_show_both_figures_their_targets_and_the_load() -> None:
    summary = {"launch_s": 3.2, "restart_s": [3.9, 4.4, 6.1], "restart_median_s": 4.4, "restart_max_s": 6.1,
               "until_first_log_line_s": [1.4, 1.6, None, 1.8], "load_average_1m": 7.5,
               "targets": {"launch_s": {"target": "< 5", "met": True}, "restart_s": {"target": "< 5", "met": False}}}
    table = render({"startup": summary}, smoke=False)
    assert "| start-up: s from launching a worker to its first event applied (embedded broker) | 3.200 | < 5 | yes |" in table
    assert "max of 3 (median 4.400) | 6.100 | < 5 | NO |" in table
    assert "launch / restarts' median | 1.400 / 1.700 |" in table
    # 3.9 - 1.6 and 6.1 - 1.8 (a restart whose first log line was not found is left out)
    assert "(the worker's own start), launch / restarts' median | 1.800 / 3.300 |" in table
    assert "| start-up: the machine's 1-minute load average at the end of the run | 7.500 |" in table
