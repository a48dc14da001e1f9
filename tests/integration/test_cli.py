"""The command line, as a user runs it: broker, publish, alerts, worker health, demo."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import tempfile
import sys
import time
from pathlib import Path

import pytest

from schemas import codec
from streams.offline.simulate import Simulation, SimulationConfig
from streams.runtime.topics import ensure_topics
from streams.runtime.worker_process import WorkerProcess
from streams.settings import Settings

from .support import read_topic, wait_for

pytestmark = pytest.mark.integration


def _cli(*args: str, settings: Settings | None = None, stdin: bytes | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **(settings.to_env() if settings else {})}
    return subprocess.run([sys.executable, "-m", "streams.cli", *args], input=stdin.decode() if stdin else None,
                          capture_output=True, text=True, timeout=timeout, env=env)


def _tansu_pids(address: str = "") -> set[int]:
    """Embedded broker processes (listening on ``address`` if given)."""
    out = subprocess.run(["pgrep", "-f", f"tansu.*broker.*{address}"], capture_output=True, text=True).stdout
    return {int(p) for p in out.split()}


def _workers_on(address: str) -> set[int]:
    """Worker processes whose DRIFTSTREAM_BROKER points at ``address``."""
    found = set()
    needle = f"DRIFTSTREAM_BROKER=kafka://{address}".encode()
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            if needle in environ.read_bytes():
                found.add(int(environ.parent.name))
        except OSError:
            continue
    return found


def test_broker_command_starts_answers_and_stops_cleanly() -> None:
    before = _tansu_pids()
    proc = subprocess.Popen([sys.executable, "-m", "streams.cli", "broker"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        first = proc.stdout.readline() if proc.stdout else ""
        assert "embedded broker (memory-only) ready at 127.0.0.1:" in first
        address = first.rsplit(" ", 1)[-1].strip()
        exports = proc.stdout.readline() if proc.stdout else ""
        # the variables to export: the broker, and the timings that start a worker in seconds there
        assert exports.split() == ["export", f"DRIFTSTREAM_BROKER=kafka://{address}", "DRIFTSTREAM_SESSION_TIMEOUT_S=4",
                                   "DRIFTSTREAM_HEARTBEAT_INTERVAL_S=1", "DRIFTSTREAM_REBALANCE_TIMEOUT_S=10",
                                   "DRIFTSTREAM_STATIC_MEMBERSHIP=false"], exports
        started = _tansu_pids() - before
        assert len(started) == 1
        settings = Settings.from_env({}).replace(broker=f"kafka://{address}", topic_prefix="clitest.")
        assert asyncio.run(ensure_topics(settings))[settings.topic("alerts")] == settings.partitions
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
        wait_for(lambda: not (_tansu_pids() & started), 10, "the broker process to exit")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)


def test_publish_reports_invalid_lines_and_publishes_the_rest(settings: Settings, tmp_path: Path) -> None:
    asyncio.run(ensure_topics(settings))
    preds, _ = Simulation(SimulationConfig(events=30, seed=9)).generate()
    lines = [codec.dumps(p).decode() for p in preds]
    lines.insert(3, "{broken json")
    lines.insert(10, codec.dumps({"prediction_id": "x", "model_id": "m", "timestamp": 1, "prediction": 1, "score": 7}).decode())
    lines.insert(12, "this is not json")
    path = tmp_path / "preds.jsonl"
    path.write_text("\n".join(lines) + "\n")
    result = _cli("publish", "predictions", str(path), settings=settings)
    assert result.returncode == 1, result.stderr  # lines were skipped: a script must notice
    assert result.stdout.splitlines() == [
        "published 30 predictions events; 3 invalid line(s) skipped (listed on stderr): exit status 1"]
    assert "line 4: not JSON (unexpected character, expected a string key at column 2) (skipped)" in result.stderr
    assert "line 11: predictions: field 'score' must be a number in [0, 1], got 7" in result.stderr
    assert ("line 13: not JSON (a JSON object starts with '{', this line starts with 'this is not json') (skipped)"
            in result.stderr)
    assert len(read_topic(settings, settings.topic("predictions"))) >= 1
    from_stdin = _cli("publish", "predictions", "-", settings=settings, stdin="\n".join(lines[:3]).encode())
    assert from_stdin.returncode == 0, from_stdin.stderr
    assert from_stdin.stdout.splitlines() == ["published 3 predictions events; 0 invalid line(s) skipped"]
    progress = [line for line in from_stdin.stderr.splitlines() if "predictions events/s" in line]
    assert len(progress) == 1 and progress[0].startswith("3 predictions events"), from_stdin.stderr


def test_alerts_says_so_on_stderr_when_there_are_none(settings: Settings) -> None:
    asyncio.run(ensure_topics(settings))
    result = _cli("alerts", "--from-beginning", settings=settings)
    assert (result.returncode, result.stdout) == (0, "")
    assert result.stderr.splitlines() == [f"driftstream alerts: no alerts on {settings.topic('alerts')}"]


def test_worker_health_endpoints_and_alerts_command(settings: Settings) -> None:
    asyncio.run(ensure_topics(settings))
    with WorkerProcess(settings) as worker:
        worker.wait_ready(90)
        status, body = worker.get("/ready")
        ready = codec.loads(body)
        assert status == 200 and ready["recovery_finished"] and ready["broker_reachable"]
        assert any(p.startswith(settings.topic("predictions")) for p in ready["assigned_partitions"])
        assert worker.get("/health") == (200, b'{"status":"ok"}')
        assert worker.get("/table")[0] == 404  # Faust's table browser is off
        config = SimulationConfig(events=6_000, seed=2, feature_drift_at=2_000, concept_drift_at=None)
        result = _cli("simulate", "--events", "6000", "--feature-drift-at", "2000", "--seed", "2", settings=settings)
        assert result.returncode == 0, result.stderr
        wait_for(lambda: worker.metric("driftstream_alerts_total") >= 1, 90, "an alert")
    alerts = _cli("alerts", "--from-beginning", settings=settings)
    lines = [codec.loads(line) for line in alerts.stdout.splitlines()]
    drift = [a for a in lines if a["kind"] == "data_drift" and a["feature"] == "sessions_7d"]
    assert drift and all(a["model_id"] == config.model_id for a in lines)


def test_demo_runs_end_to_end_and_leaves_no_process_behind() -> None:
    started = time.monotonic()
    # the default stream: after its concept drift it is long enough for the updater to train,
    # promote and serve v2 (a shorter one ends before the loop can close, and the demo says so)
    result = _cli("demo", "--rate", "40000", timeout=240)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    assert "driftstream demo summary" in out
    assert "the loop closed: every step happened" in out
    assert "data_drift" in out and "first fired at prediction #" in out
    detectors = " ".join(line for line in out.splitlines() if "detectors:" in line)
    assert "psi[sessions_7d]" in detectors
    assert any(name in detectors for name in ("adwin", "ddm", "accuracy")), detectors
    assert "worker and broker stopped, model store removed." in out
    store = out.split("stored in ", 1)[1].split(" (removed at the end)", 1)[0]
    assert store.startswith(tempfile.gettempdir()) and not os.path.exists(store)
    address = out.split("broker at ", 1)[1].split(";", 1)[0]
    assert _tansu_pids(address) == set()
    assert _workers_on(address) == set()
    assert time.monotonic() - started < 240
