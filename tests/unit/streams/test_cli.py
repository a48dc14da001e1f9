"""The command line's failures, as a user sees them: one line on stderr and an exit status."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from streams.broker import free_port
from streams.cli import EXIT_UNAVAILABLE


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
    assert result.stderr.splitlines() == [
        f"driftstream {command[0]}: error: cannot reach Kafka at 127.0.0.1:{closed_port} "
        f"([Errno 111] Connect call failed ('127.0.0.1', {closed_port})); "
        "check DRIFTSTREAM_BROKER and that the broker is up"
    ]
    assert result.stdout == ""
    assert time.monotonic() - started < 20  # a refused connection is not retried for long
