"""Helpers for integration tests on the real embedded broker: publish, read topics and tables."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaProducer

from load_tests.readback import (  # noqa: F401 - the integration tests import them from here
    assigned_partitions,
    final_alerts,
    read_table,
    read_topic,
    repeated_event_ids,
)
from schemas import codec
from streams.pipeline.monitor import model_key
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
