"""Helpers for integration tests on the real embedded broker: publish, read topics and tables."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from schemas import codec
from streams.monitor import model_key
from streams.sdk import DriftstreamClient
from streams.settings import Settings
from streams.worker_process import WorkerProcess


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


def read_topic(settings: Settings, topic: str, idle_s: float = 1.5) -> list[tuple[bytes | None, Any]]:
    """Every record of ``topic`` from the beginning: ``(key, decoded value or None)``."""

    async def run() -> list[tuple[bytes | None, Any]]:
        consumer = AIOKafkaConsumer(topic, **settings.kafka_client_kwargs(), auto_offset_reset="earliest", group_id=None)
        await consumer.start()
        out: list[tuple[bytes | None, Any]] = []
        try:
            while True:
                batches = await consumer.getmany(timeout_ms=int(idle_s * 1000))
                if not batches:
                    return out
                for messages in batches.values():
                    for m in messages:
                        out.append((m.key, codec.loads(m.value) if m.value is not None else None))
        finally:
            await consumer.stop()

    return asyncio.run(run())


def read_table(settings: Settings, table: str) -> dict[str, bytes]:
    """The latest value of every key of a Faust table, read from its changelog topic."""
    state: dict[str, bytes] = {}

    async def run() -> None:
        topic = f"{settings.app_id}-{table}-changelog"
        consumer = AIOKafkaConsumer(topic, **settings.kafka_client_kwargs(), auto_offset_reset="earliest", group_id=None)
        await consumer.start()
        try:
            while True:
                batches = await consumer.getmany(timeout_ms=1500)
                if not batches:
                    return
                for messages in batches.values():
                    for m in messages:
                        key = codec.loads(m.key)
                        if m.value is None:
                            state.pop(key, None)
                        else:
                            state[key] = m.value
        finally:
            await consumer.stop()

    asyncio.run(run())
    return state


def wait_for(condition: Callable[[], bool], deadline_s: float, what: str, poll_s: float = 0.25) -> None:
    """Poll ``condition`` until it holds; fail naming ``what`` after ``deadline_s``."""
    start = time.monotonic()
    while time.monotonic() - start < deadline_s:
        if condition():
            return
        time.sleep(poll_s)
    raise AssertionError(f"timed out after {deadline_s:.0f} s waiting for {what}")


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
