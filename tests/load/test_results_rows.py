"""RESULTS.md's rows for the targets of #27 (no broker): the throughput ratios, the memory
slope's method, the latency target as the script states it, scaling per number of workers."""

from __future__ import annotations

from typing import Any

from load_tests.results import render


def _rows(name: str, summary: dict[str, Any]) -> list[str]:
    return [line for line in render({name: summary}, smoke=False).splitlines() if line.startswith(f"| {name}:")]


def _met(target: str, met: bool) -> dict[str, Any]:
    return {"target": target, "met": met}


def test_throughput_judges_the_worker_against_its_stages_and_drops_the_raw_aiokafka_target() -> None:
    t = {"sdk_predictions_per_s": 60_000.0, "raw_aiokafka_per_s": 1_800_000.0, "raw_aiokafka_json_per_s": 700_000.0,
         "sdk_vs_raw_aiokafka": 0.033, "stages_in_process_per_s": 80_000.0, "stages_us_per_prediction": 12.5,
         "sdk_vs_stages_in_process": 0.75, "minimum_in_process_per_s": 400_000.0, "minimum_vs_raw_aiokafka": 0.22,
         "foreign_predictions_per_s": 7_000.0, "faust_noop_per_s": 4_000.0, "foreign_vs_faust_noop": 1.75,
         "targets": {"sdk_predictions_per_s": _met(">= 100,000", False), "sdk_vs_stages_in_process": _met(">= 0.70", True),
                     "stages_in_process_per_s": _met(">= 200,000", False), "foreign_vs_faust_noop": _met(">= 2.00", False)}}
    rows = "\n".join(_rows("throughput", t))
    assert "| throughput: SDK / the stages alone (the same run) | 0.750 | >= 0.70 | yes |" in rows
    assert "| throughput: the stages alone (in process, no Kafka) predictions/s | 80,000 | >= 200,000 | NO |" in rows
    assert "| throughput: SDK / raw aiokafka | 0.033 |  |  |" in rows
    assert "(an upper bound of SDK / raw aiokafka) | 0.220 |  |  |" in rows
    assert ">= 0.30" not in rows


def test_the_memory_headline_is_the_windows_slope_with_theil_sen_beside_it() -> None:
    mem = {"events_applied": 19_000_000, "rss_mb_per_million_events_windows": -0.12, "rss_slope_windows": 8,
           "rss_mb_per_million_events_theil_sen": -0.8, "rss_mb_per_million_events": -1.08,
           "join_entries_max": 31, "join_entries_end": 19,
           "targets": {"rss_flat": _met("|MB per million events| <= 0.5 (median slope of 8 windows)", True),
                       "join_state_bounded": _met("last-quarter max <= 1.5 x second-quarter max", True)}}
    rows = _rows("memory", mem)
    assert rows[1] == ("| memory: RSS MB per million events after warm-up (median slope of 8 windows) | -0.120 | "
                       "\\|MB per million events\\| <= 0.5 (median slope of 8 windows) | yes |")
    assert rows[2] == "| memory: RSS MB per million events after warm-up (Theil-Sen) | -0.800 |  |  |"


def test_the_latency_row_states_the_scripts_own_target() -> None:
    run = {"partitions": 4, "idle_partitions": 0, "alerts": 100, "p50_s": 0.3, "p99_s": 0.45,
           "target": {"p99_s": "< 0.5", "alerts": ">= 100", "met": True}}
    rows = _rows("latency", {"rate_per_s": 5000.0, "models": 50, "runs": [run]})
    assert rows[-1] == "| latency: p99 s, 4 partitions, 0 idle | 0.450 | < 0.5 | yes |"


def test_scaling_has_rows_per_number_of_workers_and_says_when_the_cores_are_too_few() -> None:
    def run(n: int, rate: float, ratio: float, enough: bool) -> dict[str, Any]:
        assigned = [[f"lt1.predictions[{p}]", f"lt1.ground-truth[{p}]"] for p in range(n)]
        r = {"workers": n, "predictions_per_s": rate, "vs_one_worker": ratio, "assigned": assigned,
             "repeated_outputs": {"drift-events": 0, "alerts": 1}}
        if n > 1:
            r.update(target=f">= {0.9 * n:.1f} (0.9 x N, with >= {n + 1} cores)", met=ratio >= 0.9 * n, enough_cores=enough)
        return r

    sc = {"cores": 2, "runs": [run(1, 25_000.0, 1.0, True), run(2, 40_000.0, 1.6, False), run(4, 90_000.0, 3.6, True)],
          "models_intact": True, "applied_again": 0}
    rows = "\n".join(_rows("scaling", sc))
    assert "| scaling: 1 worker in one group, predictions/s (the same pre-published backlog) | 25,000 |  |  |" in rows
    assert ("| scaling: 2 workers in one group / one worker (the same run; this machine has 2 cores, 2 workers and the broker "
            "want 3: as it is) | 1.600 | >= 1.8 (0.9 x N, with >= 3 cores) | NO |") in rows
    assert "| scaling: 4 workers in one group / one worker (the same run) | 3.600 | >= 3.6 (0.9 x N, with >= 5 cores) | yes |" in rows
    assert "| scaling: 2 workers in one group, input partitions per worker | predictions[0] / predictions[1] |" in rows
    assert "| scaling: drift events / alerts published more than once (all runs) | 0 / 3 |" in rows
