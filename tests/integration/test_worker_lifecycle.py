"""What an operator sees of a worker: its log lines from start to shutdown (text and JSON),
a bad log setting refused at start-up, and a shutdown bounded by the grace time when the
broker is gone."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time

import orjson
import pytest

from streams.ops.broker import EmbeddedBroker
from streams.ops.processes import signal_group
from streams.runtime.shutdown import EXIT_SHUTDOWN_TIMED_OUT
from streams.runtime.topics import ensure_topics
from streams.runtime.worker_process import WorkerProcess
from streams.settings import Settings

pytestmark = pytest.mark.integration


def _events(worker: WorkerProcess) -> list[dict]:
    """The worker's log as JSON objects; fails on any line that is not one."""
    return [orjson.loads(line) for line in worker.log_path.read_text().splitlines() if line.strip()]


def test_worker_logs_start_assignment_ready_and_shutdown(settings: Settings) -> None:
    asyncio.run(ensure_topics(settings))
    with WorkerProcess(settings) as worker:
        worker.wait_ready(90)
        assert worker.stop(30) == 0
    text = worker.log_path.read_text()
    lines = [line.split(" streams.runtime.worker: ", 1)[1] for line in text.splitlines() if " INFO streams.runtime.worker: " in line]
    assert lines[0].startswith("driftstream worker "), text
    assert (f"broker {settings.bootstrap_servers}, group {settings.app_id}, data dir {os.path.abspath(settings.data_dir)} "
            f"(store memory://), web {worker.base_url}") in lines[0]
    kinds = [line.split(" ", 1)[0].rstrip(":") for line in lines]
    assert kinds[1:] == ["partitions", "ready", "stopping", "stopped"], lines
    assert f"{settings.topic('predictions')}[0-1]" in lines[1]
    # Faust's own INFO chatter stays out
    assert "[^Worker]" not in text and "Starting..." not in text, text


def test_a_bad_log_format_is_refused_at_start_up_with_one_line() -> None:
    env = {**os.environ, "DRIFTSTREAM_LOG_FORMAT": "xml", "DRIFTSTREAM_BROKER": "kafka://127.0.0.1:1"}
    done = subprocess.run([sys.executable, "-m", "streams.cli", "worker"], env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "driftstream worker: error: DRIFTSTREAM_LOG_FORMAT='xml': expected text or json"]


def test_worker_exits_within_the_grace_time_when_the_broker_is_gone() -> None:
    grace_s = 4.0
    with EmbeddedBroker() as broker:
        settings = Settings.from_env({}).for_embedded_broker(broker.url).replace(
            topic_prefix="gone.", app_id="ds-gone", partitions=2, log_format="json", shutdown_grace_s=grace_s,
        )
        asyncio.run(ensure_topics(settings))
        worker = WorkerProcess(settings).start()
        try:
            worker.wait_ready(90)
            broker.stop()
            assert worker.process is not None
            sent = time.monotonic()
            signal_group(worker.process, signal.SIGTERM)
            # grace plus the time to start stopping; it waited for the broker forever before
            status = worker.process.wait(grace_s + 10)
            took = time.monotonic() - sent
        finally:
            worker.kill()
    events = _events(worker)  # every line parses as JSON
    names = [e["event"] for e in events if e["logger"] == "streams.runtime.worker"]
    assert names[:3] == ["start", "assigned", "ready"], names
    assert "stopping" in names
    assert status in (0, EXIT_SHUTDOWN_TIMED_OUT), worker.log_tail()
    if status == EXIT_SHUTDOWN_TIMED_OUT:
        assert names[-1] == "shutdown_timed_out" and grace_s <= took, names
    assert took < grace_s + 10
