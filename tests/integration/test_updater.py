"""The updater on the real embedded broker: a concept drift and the pipeline's update
request lead to a promoted challenger whose artifact is on disk with the stated sha256."""

from __future__ import annotations

import asyncio
import hashlib
import math
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
from streams.runtime.end_offsets import end_offsets
from streams.runtime.topics import ensure_topics
from streams.settings import SecretStr, Settings
from streams.updater.service import run_updater

from .support import produce_raw, publish_events, read_topic, wait_for

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


# --------------------------------------------------------------------------- durability

DURABLE = SimulationConfig(events=6_000, seed=11, concept_drift_at=2_500, feature_drift_at=None)


class _Updater:
    """``driftstream updater`` in a child process (as a worker's own process would be killed)."""

    def __init__(self, settings: Settings) -> None:
        env = {**os.environ, **settings.to_env(), "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen([sys.executable, "-c", CLI], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     env=env, cwd=Path(__file__).resolve().parents[2])

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def stop(self) -> str:
        self.proc.send_signal(signal.SIGTERM)
        out, _ = self.proc.communicate(timeout=60)
        assert self.proc.returncode == 0, out.decode(errors="replace")[-3000:]
        return out.decode(errors="replace")

    def __enter__(self) -> _Updater:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


async def _lagging(settings: Settings) -> dict[str, int]:
    """What each updater step has not yet committed: the router of its inputs, the deciding
    step of ``updater-input`` (its commit follows its checkpoint), by topic."""
    from aiokafka import TopicPartition

    out: dict[str, int] = {}
    for group, roles in (("updater-router", ("predictions", "ground-truth", "model-updates")), ("updater", ("updater-input",))):
        consumer = AIOKafkaConsumer(**settings.kafka_client_kwargs(), group_id=f"{settings.app_id}-{group}",
                                    enable_auto_commit=False)
        await consumer.start()
        try:
            tps = [TopicPartition(settings.topic(role), p) for role in roles for p in range(settings.partitions)]
            end = await end_offsets(consumer, tps, settings.kafka_client_kwargs())
            for tp in tps:
                committed = await consumer.committed(tp)
                out[tp.topic] = out.get(tp.topic, 0) + end[tp] - (committed or 0)
        finally:
            await consumer.stop()
    return out


def _wait_caught_up(settings: Settings, what: str) -> None:
    lag: dict[str, int] = {}

    def caught_up() -> bool:
        lag.update(asyncio.run(_lagging(settings)))
        return not any(lag.values())

    try:
        wait_for(caught_up, 120, f"the updater to commit all of {what}", poll_s=0.5)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; records not committed: {lag}") from None


def _decisions(settings: Settings) -> list[tuple[str, str, str | None, str | None]]:
    """The updater's decisions on ``model-updates``, each once (a replay publishes a decision
    again with the same id), in order."""
    seen: dict[str, tuple[str, str, str | None, str | None]] = {}
    for _, e in read_topic(settings, settings.topic("model-updates")):
        if e["action"] != "update_requested":
            seen.setdefault(e["event_id"], (e["action"], e["event_id"], e["new_version"], e["model_version"]))
    return list(seen.values())


def _stages() -> list[list[tuple[str, dict[str, Any]]]]:
    """The stream in four parts: the champion warms up; the request comes (for events after
    the drift) and waits; the challenger half trains; the rest."""
    items = Simulation(DURABLE).in_event_time_order()
    bounds = [event_time_of(DURABLE, n) for n in (2_300, 2_600, 3_300)]
    parts = [[item for item in items if lo <= item[1]["timestamp"] < hi]
             for lo, hi in zip([-math.inf, *bounds], [*bounds, math.inf], strict=True)]
    detected = event_time_of(DURABLE, 2_700)
    request = {
        "event_id": stable_id("alert-7", "update_requested"), "model_id": DURABLE.model_id, "model_version": None,
        "action": "update_requested", "reason": "concept drift: adwin = 1.0 (above 0.5)", "alert_ids": ["alert-7"],
        "from_timestamp": detected, "to_timestamp": detected, "metrics": {}, "new_version": None,
        "artifact_path": None, "artifact_sha256": None, "timestamp": detected,
    }
    parts[1].insert(0, ("model-updates", request))
    return parts


def _publish(settings: Settings, part: list[tuple[str, dict[str, Any]]]) -> None:
    requests = [event for role, event in part if role == "model-updates"]
    if requests:
        produce_raw(settings, settings.topic("model-updates"), [(e["model_id"].encode(), codec.dumps(e)) for e in requests])
    publish_events(settings, [item for item in part if item[0] != "model-updates"])


def _lineage(store: Path) -> list[tuple[str, str | None]]:
    from streams.updater.model_store import ModelStore

    s = ModelStore(store)
    return [(a.version, a.metadata["parent_version"]) for a in s.versions(DURABLE.model_id)] + \
        [("champion", s.champion(DURABLE.model_id).version)]  # type: ignore[union-attr]


def test_an_updater_sigkilled_at_any_point_of_an_update_decides_as_one_that_never_stopped(settings: Settings, tmp_path: Path) -> None:
    settings = settings.replace(model_store_key=SecretStr("k" * 32))  # checkpoints load in a new process only with it
    straight = settings.replace(model_store_dir=str(tmp_path / "straight"))
    killed = settings.replace(model_store_dir=str(tmp_path / "killed"), topic_prefix=f"k{settings.topic_prefix}",
                              app_id=f"k{settings.app_id}")
    stages = _stages()
    for s in (straight, killed):
        asyncio.run(ensure_topics(s))

    for part in stages:
        _publish(straight, part)
    with _Updater(straight) as updater:
        _wait_caught_up(straight, "the stream")
        updater.stop()
    expected = _decisions(straight)
    assert [d[0] for d in expected] == ["challenger_started", "promoted"], expected

    for i, part in enumerate(stages[:3]):  # SIGKILL once each part is in: warmed up, request waiting, half trained
        _publish(killed, part)
        with _Updater(killed) as updater:
            _wait_caught_up(killed, f"part {i}")
            updater.kill()
    _publish(killed, stages[3])
    with _Updater(killed) as updater:  # SIGKILL as soon as the challenger is announced, mid-stream
        wait_for(lambda: any(d[0] == "challenger_started" for d in _decisions(killed)), 120, "challenger_started")
        updater.kill()
    with _Updater(killed) as updater:
        _wait_caught_up(killed, "the stream")
        updater.stop()

    assert _decisions(killed) == expected
    assert _lineage(tmp_path / "killed") == _lineage(tmp_path / "straight") == [("v1", None), ("v2", "v1"), ("champion", "v2")]


def test_two_updaters_keep_one_lineage_per_model_through_a_rebalance_mid_update(settings: Settings, tmp_path: Path) -> None:
    settings = settings.replace(model_store_key=SecretStr("k" * 32), model_store_dir=str(tmp_path / "models"))
    asyncio.run(ensure_topics(settings))
    stages = _stages()
    request_id = stages[1][0][1]["event_id"]
    with _Updater(settings) as first:
        for part in stages[:2]:  # the champion warms up, the request waits: all on the first updater
            _publish(settings, part)
        _wait_caught_up(settings, "the request")
        with _Updater(settings) as second:  # joins: the partitions are shared out (a rebalance)
            _publish(settings, stages[2])
            _wait_caught_up(settings, "the challenger's first events")
            first.kill()  # the second owns every partition once the group drops the first
            _publish(settings, stages[3])
            _wait_caught_up(settings, "the stream")
            second.stop()

    assert _decisions(settings) == [("challenger_started", stable_id(request_id, "challenger_started"), "v2", None),
                                    ("promoted", stable_id(request_id, "promoted"), "v2", None)]
    assert _lineage(tmp_path / "models") == [("v1", None), ("v2", "v1"), ("champion", "v2")]


# --------------------------------------------------------------------------- a rollback from the CLI

def test_a_rollback_from_the_cli_is_followed_by_the_running_updater(settings: Settings, tmp_path: Path) -> None:
    """``driftstream model rollback`` while the updater runs: the next challenger is judged
    against the rolled-back champion and is its child (the updater used to keep its own
    champion in memory until a restart)."""
    settings = settings.replace(model_store_key=SecretStr("k" * 32), model_store_dir=str(tmp_path / "models"))
    asyncio.run(ensure_topics(settings))
    config = SimulationConfig(events=9_000, seed=11, concept_drift_at=2_500, feature_drift_at=None)
    items = Simulation(config).in_event_time_order()
    split = event_time_of(config, 6_000)

    def request(alert: str, at: int) -> tuple[str, dict[str, Any]]:
        ts = event_time_of(config, at)
        return ("model-updates", {
            "event_id": stable_id(alert, "update_requested"), "model_id": config.model_id, "model_version": None,
            "action": "update_requested", "reason": "concept drift", "alert_ids": [alert], "from_timestamp": ts,
            "to_timestamp": ts, "metrics": {}, "new_version": None, "artifact_path": None, "artifact_sha256": None,
            "timestamp": ts})

    with _Updater(settings) as updater:
        _publish(settings, [request("alert-1", 2_700), *[i for i in items if i[1]["timestamp"] < split]])
        _wait_caught_up(settings, "the first update")
        assert [(d[0], d[2]) for d in _decisions(settings)] == [("challenger_started", "v2"), ("promoted", "v2")]
        env = {**os.environ, **settings.to_env()}
        cli = subprocess.run([sys.executable, "-m", "streams.cli", "model", "rollback", config.model_id], env=env,
                             cwd=Path(__file__).resolve().parents[2], capture_output=True, text=True, timeout=60)
        assert cli.returncode == 0 and "published rolled_back" in cli.stdout, cli.stdout + cli.stderr
        _publish(settings, [request("alert-2", 6_100), *[i for i in items if i[1]["timestamp"] >= split]])
        _wait_caught_up(settings, "the second update")
        updater.stop()

    events = {e["event_id"]: e for _, e in read_topic(settings, settings.topic("model-updates"))}.values()
    decided = [(e["action"], e["new_version"], e["metrics"].get("champion_version")) for e in events if e["action"] != "update_requested"]
    assert decided == [("challenger_started", "v2", "v1"), ("promoted", "v2", "v1"), ("rolled_back", "v1", None),
                       ("challenger_started", "v3", "v1"), ("promoted", "v3", "v1")], decided
    assert _lineage(tmp_path / "models") == [("v1", None), ("v2", "v1"), ("v3", "v1"), ("champion", "v3")]
