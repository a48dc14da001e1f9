"""Reading back what a worker wrote, for the load tests and the integration tests: topics and
tables to their end offsets, alerts' last publications, repeated ids, a worker's partitions."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from schemas import codec
from streams.runtime.end_offsets import end_offsets, fetch_until
from streams.runtime.worker_process import WorkerProcess
from streams.settings import Settings


#: Longest a read of a topic to its end waits for the next record, in seconds.
READ_STALL_S = 60.0


async def _records_to_end(settings: Settings, topic: str) -> list[ConsumerRecord]:
    """Every record of ``topic`` from its beginning up to its end as of the call (checked
    against a fetch, :mod:`streams.runtime.end_offsets`), partition by partition in offset order.
    Reads to those offsets, not until the topic goes quiet: a loaded broker can take longer
    than any idle timeout to answer the first fetch. Fails when a partition yields nothing
    for :data:`READ_STALL_S`."""
    consumer = AIOKafkaConsumer(**settings.kafka_client_kwargs(), group_id=None, enable_auto_commit=False,
                                auto_offset_reset="earliest")
    await consumer.start()
    try:
        if topic not in await consumer.topics():
            return []
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        begin = await consumer.beginning_offsets(tps)
        end = await end_offsets(consumer, tps, settings.kafka_client_kwargs())
        consumer.assign(tps)
        for tp in tps:
            consumer.seek(tp, begin[tp])
        records: dict[TopicPartition, list[ConsumerRecord]] = {tp: [] for tp in tps}
        async for tp, messages in fetch_until(consumer, end, READ_STALL_S, f"reading {topic} to its end offsets {end}"):
            records[tp] += messages
        return [record for tp in tps for record in records[tp]]
    finally:
        await consumer.stop()


def read_topic(settings: Settings, topic: str) -> list[tuple[bytes | None, Any]]:
    """Every record of ``topic`` up to its end: ``(key, decoded value or None)``."""
    records = asyncio.run(_records_to_end(settings, topic))
    return [(m.key, codec.loads(m.value) if m.value is not None else None) for m in records]


def read_table(settings: Settings, table: str) -> dict[str, bytes]:
    """The latest value of every key of a Faust table, read from its changelog topic."""
    state: dict[str, bytes] = {}
    for m in asyncio.run(_records_to_end(settings, f"{settings.app_id}-{table}-changelog")):
        key = codec.loads(m.key)
        if m.value is None:
            state.pop(key, None)
        else:
            state[key] = m.value
    return state


def final_alerts(alerts: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The last publication of each alert id."""
    last: dict[str, dict[str, Any]] = {}
    for alert in alerts:
        last[alert["alert_id"]] = alert
    return last


def repeated_event_ids(settings: Settings, role: str) -> dict[str, int]:
    """The ``event_id`` values published more than once on the topic of ``role``, with
    their counts."""
    ids = Counter(value["event_id"] for _, value in read_topic(settings, settings.topic(role)))
    return {event_id: n for event_id, n in ids.items() if n > 1}


def assigned_partitions(worker: WorkerProcess) -> list[str]:
    """The partitions a ready worker reports on ``/ready`` (``[]`` while it is not ready)."""
    try:
        status, body = worker.get("/ready")
    except OSError:
        return []
    return list(codec.loads(body).get("assigned_partitions", [])) if status == 200 else []
