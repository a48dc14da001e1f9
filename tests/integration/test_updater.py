"""The updater on the real embedded broker: a concept drift and the pipeline's update
request lead to a promoted challenger whose artifact is on disk with the stated sha256."""

from __future__ import annotations

import asyncio
import hashlib
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer

from schemas import codec
from schemas.ids import stable_id
from streams.offline.simulate import Simulation, SimulationConfig, event_time_of
from streams.runtime.topics import ensure_topics
from streams.settings import Settings
from streams.updater.service import run_updater

from .support import produce_raw, publish_events

pytestmark = pytest.mark.integration


async def _run_until_promoted(settings: Settings, deadline_s: float) -> tuple[list[dict[str, Any]], set[bytes]]:
    """Run the updater in this event loop until ``promoted`` is on ``model-updates``, then
    stop it cleanly; returns every ``model-updates`` event seen and the record keys."""
    stop = asyncio.Event()
    updater = asyncio.create_task(run_updater(settings, stop))
    consumer = AIOKafkaConsumer(settings.topic("model-updates"), **settings.kafka_client_kwargs(),
                                auto_offset_reset="earliest", group_id=None)
    await consumer.start()
    events: list[dict[str, Any]] = []
    keys: set[bytes] = set()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + deadline_s
    try:
        while not any(e["action"] == "promoted" for e in events):
            if updater.done():
                updater.result()  # surfaces the updater's exception
                raise AssertionError("the updater stopped before promoting anything")
            if loop.time() > deadline:
                raise AssertionError(f"timed out after {deadline_s:.0f} s waiting for a promotion; saw {events}")
            for messages in (await consumer.getmany(timeout_ms=500)).values():
                events.extend(codec.loads(m.value) for m in messages)
                keys.update(m.key for m in messages)
    finally:
        await consumer.stop()
        stop.set()
        await asyncio.wait_for(updater, 30)  # a clean shutdown, not a cancellation
    return events, keys


def test_a_concept_drift_request_leads_to_a_promoted_challenger(settings: Settings, tmp_path: Path) -> None:
    settings = settings.replace(model_store_dir=str(tmp_path / "models"))
    asyncio.run(ensure_topics(settings))
    config = SimulationConfig(events=6_000, seed=11, concept_drift_at=2_500, feature_drift_at=None)
    publish_events(settings, Simulation(config).in_event_time_order())
    detected = event_time_of(config, 2_700)  # where the pipeline's concept-drift alert fired
    request = {
        "event_id": stable_id("alert-1", "update_requested"), "model_id": config.model_id,
        "model_version": None, "action": "update_requested",
        "reason": "concept drift: adwin = 1.0 (above 0.5)", "alert_ids": ["alert-1"],
        "from_timestamp": detected, "to_timestamp": detected, "metrics": {"accuracy_baseline": 0.9},
        "new_version": None, "artifact_path": None, "artifact_sha256": None, "timestamp": detected,
    }
    produce_raw(settings, settings.topic("model-updates"), [(config.model_id.encode(), codec.dumps(request))])

    events, keys = asyncio.run(_run_until_promoted(settings, deadline_s=90))

    assert [e["action"] for e in events] == ["update_requested", "challenger_started", "promoted"]
    assert keys == {config.model_id.encode()}
    promoted = events[-1]
    m = promoted["metrics"]
    assert promoted["event_id"] == stable_id(request["event_id"], "promoted")
    assert (promoted["model_id"], promoted["new_version"], promoted["alert_ids"]) == (config.model_id, "v2", ["alert-1"])
    assert m["challenger_accuracy"] - m["champion_accuracy"] > 0.4, m
    assert m["challenger_accuracy"] > 0.8
    artifact = Path(promoted["artifact_path"])
    assert artifact.is_file() and artifact.resolve().is_relative_to((tmp_path / "models").resolve())
    assert hashlib.sha256(artifact.read_bytes()).hexdigest() == promoted["artifact_sha256"]


#: ``driftstream updater`` as the CLI will run it once ``add_cli`` is wired into ``streams.cli``.
CLI = """
import argparse, sys
from streams.updater.service import add_cli
parser = argparse.ArgumentParser(prog="driftstream")
add_cli(parser.add_subparsers(dest="command", required=True))
args = parser.parse_args(["updater"])
sys.exit(args.func(args))
"""


def test_the_updater_command_stops_cleanly_on_sigterm(settings: Settings, tmp_path: Path) -> None:
    env = {**os.environ, **settings.replace(model_store_dir=str(tmp_path)).to_env(), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-c", CLI], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            env=env, cwd=Path(__file__).resolve().parents[2])
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 60
        first = b""
        while b"\n" not in first and time.monotonic() < deadline and proc.poll() is None:
            if select.select([proc.stdout], [], [], 0.5)[0]:
                first += os.read(proc.stdout.fileno(), 4096)
        assert b"updater running on" in first, first
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, first + out
    assert b"updater stopped" in out
