"""The smoke mode of every load test: each script runs end to end in seconds and its JSON
summary is sane. The full runs stay out of the default test command
(``python -m load_tests.results`` runs them)."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(240)]


def _run(module: Any, tmp_path: Path, *extra: str, timeout_s: float = 220) -> dict[str, Any]:
    """Run the script as a user does (its own process, its own signal handling)."""
    out = tmp_path / "summary.json"
    proc = subprocess.run(
        [sys.executable, "-m", module.__name__, "--smoke", "--json", str(out), *extra],
        check=False, capture_output=True, text=True, timeout=timeout_s,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    written = orjson.loads(out.read_bytes())
    assert written["smoke"] is True and written["machine"]["cores"] >= 1
    return written


def _positive(summary: dict[str, Any], *keys: str) -> None:
    for key in keys:
        value = summary[key]
        assert isinstance(value, (int, float)) and math.isfinite(value) and value > 0, (key, value)


def test_throughput_smoke(tmp_path: Path) -> None:
    pytest.importorskip("confluent_kafka")
    pytest.importorskip("quixstreams")
    from load_tests import kcat, throughput

    try:
        kcat.kcat_binary()
    except kcat.KcatUnavailable as exc:
        pytest.skip(str(exc))
    s = _run(throughput, tmp_path)
    _positive(s, "sdk_predictions_per_s", "foreign_predictions_per_s", "raw_aiokafka_per_s", "faust_noop_per_s",
              "raw_aiokafka_json_per_s", "sdk_vs_raw_aiokafka", "foreign_vs_faust_noop", "stages_in_process_per_s",
              "stages_us_per_prediction", "sdk_vs_stages_in_process", "minimum_in_process_per_s",
              "minimum_us_per_prediction", "minimum_vs_raw_aiokafka", "sdk_publish_per_s")
    _positive(s["publisher"], "sync_us_per_call", "sync_predictions_per_s_with_flush", "async_cpu_predictions_per_s")
    # the foreign path's peers ran on the same records (they check their own joins)
    _positive(s["foreign_peers"], "aiokafka_loop_per_s", "quix_per_s", "quix_noop_per_s")
    _positive(s, "foreign_vs_quix", "foreign_vs_aiokafka_loop")
    # the least work bounds the pipeline: on the same records, in the same process
    assert s["minimum_in_process_per_s"] > s["stages_in_process_per_s"], s
    assert s["sdk_run"]["dead_letters"] == 0 and s["foreign_run"]["dead_letters"] == 0
    assert all(isinstance(t["met"], bool) for t in s["targets"].values())


def test_latency_smoke(tmp_path: Path) -> None:
    from load_tests import latency

    s = _run(latency, tmp_path)
    assert s["alerts"] >= 1
    _positive(s, "p50_s", "p99_s")
    assert s["p50_s"] <= s["p99_s"]
    assert s["events_monitored"] == s["events_produced"]
    assert s["idle_partitions"] == 1  # the monitors did not wait for the partition with no events


def test_latency_smoke_with_a_30_s_webhook(tmp_path: Path) -> None:
    """Alerts go to a receiver that takes 30 s per request: the monitors never wait on it."""
    from load_tests import latency

    s = _run(latency, tmp_path, "--slow-sink", "30")
    assert s["slow_sink_s"] == 30.0 and s["slow_sink_requests"] >= 1
    assert s["events_monitored"] == s["events_produced"]
    assert s["alerts"] >= 1
    _positive(s, "p50_s", "p99_s")


def test_memory_models_smoke(tmp_path: Path) -> None:
    from load_tests import memory_models

    s = _run(memory_models, tmp_path)
    assert s["models"] == 1_000 and s["models_held"] == 1_000 + memory_models.WARMUP_MODELS
    _positive(s, "rss_warm_mb", "rss_end_mb")
    assert s["rss_end_mb"] >= s["rss_warm_mb"]


def test_memory_smoke(tmp_path: Path) -> None:
    from load_tests import memory

    s = _run(memory, tmp_path)
    assert s["events_applied"] == s["predictions"] + s["labels"]
    _positive(s, "rss_start_mb", "rss_end_mb", "join_windows")
    assert s["join_expired"] > 0  # the short window expired the unlabelled predictions
    assert Path(s["plot"]).stat().st_size > 0
    assert len(Path(s["samples_csv"]).read_text().splitlines()) == s["samples"] + 1  # a header, then every sample


def test_scaling_smoke(tmp_path: Path) -> None:
    from load_tests import scaling

    s = _run(scaling, tmp_path)
    assert s["workers"] == [1, 2] and [r["workers"] for r in s["runs"]] == [1, 2] and s["cores"] >= 1
    for run in s["runs"]:
        _positive(run, "predictions_per_s", "elapsed_s")
        assert len(run["per_worker_predictions_per_s"]) == run["workers"]
        inputs = [{x for x in a if ".predictions[" in x} for a in run["assigned"]]
        assert all(inputs) and sum(map(len, inputs)) == len(set().union(*inputs)) == s["partitions"]
        assert run["models_intact"] and run["lost"] == 0
        # the group formed before the backlog was applied: nothing applied or published twice
        assert run["applied_again"] == 0
        assert run["repeated_outputs"] == {"drift-events": 0, "alerts": 0}
    two = s["runs"][1]
    assert two["vs_one_worker"] > 0 and isinstance(two["met"], bool) and "0.9 x N" in two["target"]


def test_startup_smoke(tmp_path: Path) -> None:
    from load_tests import startup

    s = _run(startup, tmp_path)
    _positive(s, "launch_s", "restart_max_s")
    assert len(s["restart_s"]) == 1 and s["instance_id"] == "startup-w1"
    assert s["targets"]["launch_s"]["target"] == "< 5"


@pytest.mark.timeout(450)
def test_faults_smoke(tmp_path: Path) -> None:
    from load_tests import faults

    # the broker-restart fault waits out the worker's reaction for minutes: full runs only
    s = _run(faults, tmp_path, "--fault", "kill", "--fault", "poison", "--fault", "duplicates", timeout_s=420)
    rows = s["faults"]
    assert set(rows) == {"kill", "poison", "duplicates"}
    kill = rows["kill"]
    assert kill.get("error") is None, kill.get("error")
    assert kill["lost"] == 0 and not kill["alerts_missing"] and not kill["alerts_extra"] and not kill["alerts_differing"]
    poison = rows["poison"]
    assert poison["lost"] == 0 and poison["dead_letters_metric"] == poison["injected"] == poison["dead_letters_topic"]
    dup = rows["duplicates"]
    # the live worker's detectors, the concept ones included, end as the clean offline
    # run's (event-time order), and the offline doubled run equals the clean one exactly
    assert dup["lost"] == 0 and not dup["live_alerts_missing"] and not dup["live_alerts_extra"]
    assert dup["live_detector_state_equal"] and dup["offline_detector_state_equal"] and dup["offline_alerts_equal"]
