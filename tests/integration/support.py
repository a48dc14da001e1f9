"""Helpers for integration tests on the real embedded broker: publish, read topics and tables."""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition

from schemas import codec
from streams.pipeline.monitor import model_key
from streams.runtime.end_offsets import end_offsets, fetch_until
from streams.runtime.worker_process import WorkerProcess
from streams.sdk.client import DriftstreamClient
from streams.settings import Settings


def publish_events(settings: Settings, items: list[tuple[str, dict[str, Any]]], chunk: int = 2000) -> dict[str, int]:
    """Publish ``(role, event)`` pairs with the SDK, in order, ``chunk`` events at a time."""

    async def run() -> dict[str, int]:
        async with DriftstreamClient(settings) as client:
            return await client.publish_in_order(items, chunk)  # type: ignore[arg-type]

    return asyncio.run(run())


def produce_raw(settings: Settings, topic: str, values: list[tuple[bytes | None, bytes]]) -> None:
    """Produce raw records (no SDK, no validation): what a buggy foreign producer sends."""

    async def run() -> None:
        producer = AIOKafkaProducer(**settings.kafka_client_kwargs(), max_request_size=8_388_608)
        await producer.start()
        try:
            for key, value in values:
                await producer.send_and_wait(topic, value, key=key)
        finally:
            await producer.stop()

    asyncio.run(run())


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


def load_factor() -> float:
    """How many times over the machine's cores are asked for now (1-minute load average per
    core, at least 1): a deadline scaled by it holds on a loaded machine as on an idle one."""
    return max(1.0, os.getloadavg()[0] / (os.cpu_count() or 1))


def wait_for(condition: Callable[[], bool], deadline_s: float, what: str, poll_s: float = 0.25) -> None:
    """Poll ``condition`` until it holds; fail naming ``what`` after ``deadline_s``, stretched
    by the machine's load (:func:`load_factor`, read as it waits, capped at 3 times)."""
    start = time.monotonic()
    while time.monotonic() - start < deadline_s * min(3.0, load_factor()):
        if condition():
            return
        time.sleep(poll_s)
    raise AssertionError(f"timed out after {time.monotonic() - start:.0f} s (deadline {deadline_s:.0f} s, "
                         f"scaled for load) waiting for {what}")


def final_alerts(alerts: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The last publication of each alert id."""
    last: dict[str, dict[str, Any]] = {}
    for alert in alerts:
        last[alert["alert_id"]] = alert
    return last


def model_counts(settings: Settings, model_id: str) -> tuple[int, int] | None:
    """(predictions, joined pairs) the model's monitor state holds, from its changelog."""
    raw = read_table(settings, "monitor-state").get(model_key(model_id, None))
    if raw is None:
        return None
    monitor = codec.loads(raw)["monitor"]
    return monitor["n_predictions"], monitor["n_pairs"]


def monitored(worker: WorkerProcess, settings: Settings) -> float:
    """Predictions plus joined pairs the worker's model monitors applied."""
    return worker.metric("driftstream_events_consumed_total", topic=settings.topic("monitor-input"))


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
