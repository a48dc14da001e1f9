"""The command line's failures, as a user sees them: one line on stderr and an exit status."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from streams.cli import EXIT_UNAVAILABLE
from streams.ops.broker import free_port
from streams.settings import Settings


def _cli(*args: str, env: dict[str, str] | None = None, stdin: str | None = None,
         timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "streams.cli", *args], input=stdin, capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, **(env or {})})


@pytest.fixture(scope="module")
def closed_port() -> int:
    """A loopback port nothing listens on: connections are refused at once."""
    return free_port()


@pytest.mark.parametrize("command", [
    ["worker"], ["topics"], ["updater"], ["replay", "--out", "{tmp}/replay"], ["alerts"],
    ["alerts", "--follow"], ["publish", "predictions", "{tmp}/events.jsonl"], ["simulate", "--events", "10"],
], ids=" ".join)
def test_every_kafka_command_fails_in_one_line_when_kafka_cannot_be_reached(
    command: list[str], closed_port: int, tmp_path: Path,
) -> None:
    (tmp_path / "events.jsonl").write_text('{"prediction_id": "p"}\n')
    args = [part.replace("{tmp}", str(tmp_path)) for part in command]
    env = {"DRIFTSTREAM_BROKER": f"kafka://127.0.0.1:{closed_port}",
           "DRIFTSTREAM_MODEL_STORE_DIR": str(tmp_path / "models"), "DRIFTSTREAM_DATA_DIR": str(tmp_path / "data")}
    started = time.monotonic()
    result = _cli(*args, env=env, timeout=30)
    assert result.returncode == EXIT_UNAVAILABLE, result.stdout + result.stderr
    # the worker's own log lines (a timestamp first) may come before: its start line
    assert [line for line in result.stderr.splitlines() if not re.match(r"\d{4}-\d\d-\d\d ", line)] == [
        f"driftstream {command[0]}: error: cannot reach Kafka at 127.0.0.1:{closed_port} "
        f"([Errno 111] Connect call failed ('127.0.0.1', {closed_port})); "
        "check DRIFTSTREAM_BROKER and that the broker is up"
    ]
    assert result.stdout == ""
    assert time.monotonic() - started < 20  # a refused connection is not retried for long


BAD_CONFIG = "[defaults.data_drift.numeric]\npsi_abov = 0.1\n"
BAD_CONFIG_ERROR = ("defaults.data_drift.numeric.psi_abov: unknown parameter of psi; expected one of: "
                    "bins, window, step, psi_above, warning_psi_above, epsilon")


def test_worker_refuses_a_bad_config_in_one_line_before_it_touches_kafka(closed_port: int, tmp_path: Path) -> None:
    config = tmp_path / "monitor.toml"
    config.write_text(BAD_CONFIG)
    # Kafka is unreachable too: status 2, not 69, shows the config was checked first
    result = _cli("worker", env={"DRIFTSTREAM_BROKER": f"kafka://127.0.0.1:{closed_port}",
                                 "DRIFTSTREAM_CONFIG_PATH": str(config)})
    assert (result.returncode, result.stderr.splitlines()) == (2, [f"driftstream worker: error: {config}: {BAD_CONFIG_ERROR}"])


def test_replay_refuses_a_bad_config_before_it_reads_kafka(closed_port: int, tmp_path: Path) -> None:
    config = tmp_path / "monitor.toml"
    config.write_text(BAD_CONFIG)
    result = _cli("replay", "--out", str(tmp_path / "out"), "--config", str(config),
                  env={"DRIFTSTREAM_BROKER": f"kafka://127.0.0.1:{closed_port}"})
    assert (result.returncode, result.stderr.splitlines()) == (2, [f"driftstream replay: error: {config}: {BAD_CONFIG_ERROR}"])


def _recorded(tmp_path: Path) -> tuple[Path, Path]:
    from schemas import codec
    from streams.offline.simulate import Simulation, SimulationConfig

    preds, labels = Simulation(SimulationConfig(events=3000, seed=3, feature_drift_at=1500)).generate()
    paths = tmp_path / "p.jsonl", tmp_path / "l.jsonl"
    for path, events in zip(paths, (preds, labels)):
        path.write_bytes(b"".join(codec.dumps(e) + b"\n" for e in events))
    return paths


def test_backtest_refuses_a_bad_config_in_one_line(tmp_path: Path) -> None:
    config = tmp_path / "monitor.toml"
    config.write_text(BAD_CONFIG)
    preds, labels = _recorded(tmp_path)
    result = _cli("backtest", str(preds), str(labels), "--out", str(tmp_path / "out"), "--config", str(config))
    assert (result.returncode, result.stderr.splitlines()) == (2, [f"driftstream backtest: error: {config}: {BAD_CONFIG_ERROR}"])


def test_backtest_without_drifts_reports_no_false_alarms(tmp_path: Path) -> None:
    from schemas import codec

    preds, labels = _recorded(tmp_path)
    result = _cli("backtest", str(preds), str(labels), "--out", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    report = codec.loads((tmp_path / "out" / "report.json").read_bytes())
    fired = len({a["alert_id"] for a in report["runs"][0]["alerts"]})
    assert fired >= 1  # the injected feature drift: alerts that used to be counted as false alarms
    assert (f"not scored (no --drifts given): detections, delays and false alarms need annotated drifts; "
            f"alerts fired: {fired} (default)") in result.stdout
    alerts_row = next(r for r in report["runs"][0]["scores"] if r["detector"] == "alerts")
    assert alerts_row["false_alarms"] is None and alerts_row["detections"] >= 1
    assert report["runs"][0]["summary"]["false_alarms"] is None


def test_config_check_prints_the_effective_config_or_the_error(tmp_path: Path) -> None:
    from schemas import codec
    from streams.pipeline.config_defaults import DEFAULTS

    good = tmp_path / "good.toml"
    good.write_text("[defaults]\nreference_size = 500\n[models.churn.data_drift.numeric]\ntype = \"ks\"\n")
    result = _cli("config", "check", str(good), "--model", "churn")
    assert result.returncode == 0, result.stderr
    effective = codec.loads(result.stdout)
    assert effective["reference_size"] == 500 and effective["data_drift"]["numeric"] == {"type": "ks"}
    assert effective["alerts"] == DEFAULTS["alerts"]
    everything = codec.loads(_cli("config", "check", str(good)).stdout)
    assert set(everything) == {"defaults", "models"} and set(everything["models"]) == {"churn"}
    bad = tmp_path / "bad.toml"
    bad.write_text(BAD_CONFIG)
    result = _cli("config", "check", str(bad))
    assert (result.returncode, result.stdout, result.stderr.splitlines()) == (
        2, "", [f"driftstream config: error: {bad}: {BAD_CONFIG_ERROR}"])


def test_a_plain_progress_line_is_written_once_per_count() -> None:
    import io

    from streams.ops.progress import Progress

    out = io.StringIO()
    with Progress("events", stream=out) as bar:
        bar.update(3)
    lines = out.getvalue().splitlines()
    assert len(lines) == 1 and lines[0].startswith("3 events"), lines


def test_a_worker_runs_the_updater_beside_it_only_when_asked() -> None:
    from streams.cli import worker_tasks

    assert worker_tasks(Settings()) == []
    [task] = worker_tasks(Settings(run_updater=True))
    assert task.__name__ == "updater" and asyncio.iscoroutinefunction(task)
