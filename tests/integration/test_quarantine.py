"""A model whose saved monitor state cannot be loaded is quarantined on a real worker: its
input is dead-lettered, every other model goes on, and the worker does not crash-loop."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import AIOKafkaProducer

from schemas import codec
from schemas.partitioning import partition_for
from schemas.records import DeadLetter
from streams.offline.simulate import Simulation, SimulationConfig
from streams.runtime.topics import ensure_topics
from streams.runtime.worker_process import WorkerProcess
from streams.settings import Settings

from .support import publish_events, read_table, read_topic, wait_for

pytestmark = pytest.mark.integration


def _corrupt_state(settings: Settings, key: str) -> None:
    """Write an unreadable state for model ``key`` where the worker keeps it."""

    async def run() -> None:
        producer = AIOKafkaProducer(**settings.kafka_client_kwargs())
        await producer.start()
        try:
            await producer.send_and_wait(f"{settings.app_id}-monitor-state-changelog", b"\x00not a state",
                                         key=codec.dumps(key), partition=partition_for(key, settings.partitions))
        finally:
            await producer.stop()

    asyncio.run(run())


def test_a_model_whose_state_cannot_be_loaded_is_quarantined_and_the_others_go_on(settings: Settings) -> None:
    asyncio.run(ensure_topics(settings))
    victim = Simulation(SimulationConfig(events=1_200, seed=3, model_id="victim", id_prefix="v",
                                         concept_drift_at=None, feature_drift_at=None))
    healthy = Simulation(SimulationConfig(events=600, seed=4, model_id="healthy", id_prefix="h",
                                          concept_drift_at=None, feature_drift_at=None))
    monitor_input = settings.topic("monitor-input")
    with WorkerProcess(settings) as worker:
        worker.wait_ready(90)
        first = publish_events(settings, victim.in_event_time_order(0, 600))
        wait_for(lambda: worker.metric("driftstream_events_consumed_total", topic=monitor_input)
                 >= first["predictions"] + first["ground-truth"], 60, "the victim's first events applied")
        wait_for(lambda: "victim" in read_table(settings, "monitor-state"), 30, "the victim's state checkpointed")
    _corrupt_state(settings, "victim")
    with WorkerProcess(settings) as worker:
        worker.wait_ready(90)
        publish_events(settings, victim.in_event_time_order(600, 600))
        sent = publish_events(settings, healthy.in_event_time_order())
        worker.wait_until(lambda: worker.metric("driftstream_dead_letters_total", reason="model_quarantined") >= 1,
                          60, "the victim's input dead-lettered")
        worker.wait_until(lambda: worker.metric("driftstream_events_consumed_total", topic=monitor_input)
                          >= sent["predictions"] + sent["ground-truth"], 60, "the healthy model's events applied")
        assert worker.alive()
    letters = [d for _, d in read_topic(settings, settings.topic("dead-letter")) if d["reason"] == "model_quarantined"]
    assert letters and all("model 'victim' is quarantined" in d["message"] for d in letters)
    assert {d["origin"]["topic"] for d in letters} == {monitor_input}
    DeadLetter.from_dict(letters[0])
    assert "healthy" in read_table(settings, "monitor-state")
