"""A consumer group offset committed past records the join never applied (what Faust did
after SIGKILLs here): the restarted worker notices, rewinds and applies them."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor

from streams.settings import Settings
from streams.simulate import Simulation, SimulationConfig
from streams.topics import ensure_topics
from streams.worker_process import WorkerProcess

from .support import model_counts, publish_events, wait_for

pytestmark = pytest.mark.integration


class _NamedLikeFaust(RoundRobinPartitionAssignor):
    name = "faust"


def _skip_committed(settings: Settings, topic: str, skip: int) -> tuple[int, int]:
    """Commit the (idle) group's offset on ``topic[0]`` ``skip`` records further."""

    async def run() -> tuple[int, int]:
        # a member of the group (Tansu refuses commits from outside it), speaking the
        # worker's assignor protocol so that the group takes it
        consumer = AIOKafkaConsumer(topic, **settings.kafka_client_kwargs(), group_id=settings.app_id,
                                    enable_auto_commit=False, session_timeout_ms=6000, heartbeat_interval_ms=1000,
                                    partition_assignment_strategy=(_NamedLikeFaust,))
        await consumer.start()
        try:
            tp = TopicPartition(topic, 0)
            deadline = asyncio.get_running_loop().time() + 60
            while tp not in consumer.assignment():
                assert asyncio.get_running_loop().time() < deadline, "no assignment for the offset commit"
                await consumer.getmany(timeout_ms=200, max_records=1)
            committed = await consumer.committed(tp)
            assert committed is not None and committed > 0
            await consumer.commit({tp: committed + skip})
            assert await consumer.committed(tp) == committed + skip
            return committed, committed + skip
        finally:
            await consumer.stop()

    return asyncio.run(run())


def test_records_skipped_by_the_committed_offset_are_re_read(settings: Settings) -> None:
    settings = settings.replace(partitions=1)
    asyncio.run(ensure_topics(settings))
    config = SimulationConfig(events=8_000, seed=4)
    items = Simulation(config).in_event_time_order()
    half = len(items) // 2
    first = publish_events(settings, items[:half], chunk=200)
    with WorkerProcess(settings) as worker:
        worker.wait_ready(90)
        wait_for(lambda: model_counts(settings, config.model_id) == (first["predictions"], first["ground-truth"]),
                 120, "the first half to be applied")
        worker.stop()  # commits its offsets
    second = publish_events(settings, items[half:], chunk=200)
    topic = settings.topic("predictions")
    _skip_committed(settings, topic, 5)  # five records of the second half, never applied
    with WorkerProcess(settings) as worker:
        worker.wait_ready(90)
        want = (first["predictions"] + second["predictions"], first["ground-truth"] + second["ground-truth"])
        wait_for(lambda: model_counts(settings, config.model_id) == want, 120, "every event to be applied")
        assert worker.metric("driftstream_offset_rewinds_total", topic=topic) >= 1
        assert worker.metric("driftstream_offset_gaps_total") == 0
        assert "re-reading from" in worker.log_tail(20_000)
