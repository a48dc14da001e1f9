"""A consumer group offset committed past records never applied (what Faust did after
SIGKILLs here), on an input topic and on the internal monitor-input topic: the restarted
worker notices, rewinds and applies them."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor

from schemas import codec
from streams.offline.simulate import Simulation, SimulationConfig
from streams.pipeline.monitor_config import MonitorConfig
from streams.pipeline.stages import InputRecord, JoinStage, PartitionJoin
from streams.runtime.topics import ensure_topics
from streams.runtime.worker_process import WorkerProcess
from streams.settings import Settings

from .support import model_counts, produce_raw, publish_events, wait_for

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
    settings = settings.replace(partitions=1, log_level="INFO")  # a failure shows the worker's rewinds
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
        # Faust's terminal spinner is off: it wrote escape codes into the log, and it put
        # the root logger at DEBUG, so every aiokafka request built a debug log record
        assert "\x1b[" not in worker.log_tail(100_000)
    second = publish_events(settings, items[half:], chunk=200)
    topic = settings.topic("predictions")
    _skip_committed(settings, topic, 5)  # five records of the second half, never applied
    with WorkerProcess(settings) as worker:
        worker.wait_ready(90)
        want = (first["predictions"] + second["predictions"], first["ground-truth"] + second["ground-truth"])
        worker.wait_until(lambda: model_counts(settings, config.model_id) == want, 120, "every event to be applied")
        assert worker.metric("driftstream_offset_rewinds_total", topic=topic) >= 1
        assert worker.metric("driftstream_offset_gaps_total") == 0
        assert "re-reading from" in worker.log_tail(20_000)


def _column_batches(settings: Settings, items: list, source: int) -> tuple[list[tuple[bytes, bytes]], tuple[int, int]]:
    """``items`` joined as a join partition ``source`` would: the monitor-input records and
    the (predictions, pairs) they carry."""
    stage = JoinStage(window_s=settings.join_window_s, max_message_bytes=settings.max_message_bytes,
                      monitor_config=MonitorConfig.from_mapping({}), clock=lambda: 0.0)
    part = PartitionJoin.fresh(source, settings.join_window_s)
    records = [InputRecord(role, role, source, i, codec.dumps(event)) for i, (role, event) in enumerate(items)]
    out: list[tuple[bytes, bytes]] = []
    preds = pairs = 0
    for start in range(0, len(records), 400):
        for key, payload in stage.process(part, records[start:start + 400]).outputs.messages.get("monitor-input", []):
            out.append((key.encode(), codec.dumps(payload)))
            preds += len(payload["pred"]["ts"]) if payload["pred"] else 0
            pairs += len(payload["pairs"]["ts"]) if payload["pairs"] else 0
    return out, (preds, pairs)


def test_monitor_input_records_skipped_by_the_committed_offset_are_re_read(settings: Settings) -> None:
    settings = settings.replace(partitions=1, log_level="INFO")  # a failure shows the worker's rewinds
    asyncio.run(ensure_topics(settings))
    config = SimulationConfig(events=3_000, seed=4)
    sent = publish_events(settings, Simulation(config).in_event_time_order(), chunk=200)
    with WorkerProcess(settings) as worker:
        worker.wait_ready(90)
        wait_for(lambda: model_counts(settings, config.model_id) == (sent["predictions"], sent["ground-truth"]),
                 120, "the published events to be applied")
        worker.stop()
    # while the worker is down: column batches of the same model from another join partition
    extra, (preds, pairs) = _column_batches(settings, Simulation(SimulationConfig(events=3_000, seed=5)).in_event_time_order(), 7)
    assert len(extra) > 5
    topic = settings.topic("monitor-input")
    produce_raw(settings, topic, extra)
    _skip_committed(settings, topic, 3)
    with WorkerProcess(settings) as worker:
        worker.wait_ready(90)
        want = (sent["predictions"] + preds, sent["ground-truth"] + pairs)
        wait_for(lambda: model_counts(settings, config.model_id) == want, 120, "every column batch to be applied")
        assert worker.metric("driftstream_offset_rewinds_total", topic=topic) >= 1


def _committed(settings: Settings, topic: str) -> tuple[int | None, int]:
    """The group's committed offset on ``topic[0]`` and the partition's end offset."""

    async def run() -> tuple[int | None, int]:
        consumer = AIOKafkaConsumer(**settings.kafka_client_kwargs(), group_id=settings.app_id, enable_auto_commit=False)
        await consumer.start()
        try:
            tp = TopicPartition(topic, 0)
            return await consumer.committed(tp), (await consumer.end_offsets([tp]))[tp]
        finally:
            await consumer.stop()

    return asyncio.run(run())


def test_monitor_input_applied_after_the_last_checkpoint_is_applied_again_with_nothing_new_arriving(settings: Settings) -> None:
    # the first worker never checkpoints its monitors: a SIGKILL loses every state change,
    # while the consumer has committed every monitor-input record (it acks per batch)
    settings = settings.replace(partitions=1, log_level="INFO")
    asyncio.run(ensure_topics(settings))
    config = SimulationConfig(events=3_000, seed=4)
    sent = publish_events(settings, Simulation(config).in_event_time_order(), chunk=200)
    topic = settings.topic("monitor-input")
    with WorkerProcess(settings.replace(monitor_checkpoint_s=3600.0)) as worker:
        worker.wait_ready(90)
        worker.wait_until(lambda: worker.metric("driftstream_events_consumed_total", topic=topic) == sent["predictions"] + sent["ground-truth"],
                          120, "the monitors to apply every event")
        wait_for(lambda: _committed(settings, topic)[0] == _committed(settings, topic)[1], 60, "the monitor-input offsets to be committed")
        assert model_counts(settings, config.model_id) is None  # no checkpoint
        worker.kill()
    # no new event arrives on monitor-input (the join's progress records may: either the
    # timer or the gap guard they wake rewinds the partition)
    with WorkerProcess(settings) as worker:
        worker.wait_ready(90)
        want = (sent["predictions"], sent["ground-truth"])
        wait_for(lambda: model_counts(settings, config.model_id) == want, 120, "the monitors' state to count every event")
        assert worker.metric("driftstream_offset_rewinds_total", topic=topic) >= 1
        log = worker.log_tail(20_000)
        assert "(after the last checkpoint)" in log or "re-reading from" in log, log
