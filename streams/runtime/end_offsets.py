"""Offsets of topic partitions as a fetch sees them: their end, the first record at or
after an offset, and reading partitions up to such offsets.

Tansu answers ListOffsets(latest) with one past the *first* offset of a partition's last
record batch (measured: a batch at offsets 4..6 gave 5, while a fetch's high watermark said
7). Whatever reads "to the end" (Faust's table recovery, ``driftstream replay``, the load
tests' baselines) would miss the tail, so the end is checked against a fetch; on Kafka the
two agree.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Mapping

from aiokafka import ConsumerRecord, TopicPartition
from aiokafka.consumer import AIOKafkaConsumer

from streams.exceptions import DriftstreamError

log = logging.getLogger(__name__)

#: Connection settings a probe consumer copies from the consumer it checks.
_CONNECTION_KWARGS = (
    "bootstrap_servers", "client_id", "api_version", "security_protocol", "ssl_context",
    "sasl_mechanism", "sasl_plain_username", "sasl_plain_password", "request_timeout_ms",
)


#: Longest the probe waits for a fetch to answer, in seconds.
PROBE_DEADLINE_S = 10.0


async def fetched_end_offsets(kwargs: dict[str, object], ends: dict[TopicPartition, int]) -> dict[TopicPartition, int]:
    """``ends`` (from ListOffsets) corrected by the high watermark of a fetch: a short-lived
    consumer outside any group (connected with ``kwargs``) fetches each partition's last
    batch."""
    check = {tp: end for tp, end in ends.items() if end > 0}
    if not check:
        return ends
    probe = AIOKafkaConsumer(**{k: v for k, v in kwargs.items() if k in _CONNECTION_KWARGS},
                             group_id=None, enable_auto_commit=False, fetch_max_wait_ms=100)
    await probe.start()
    try:
        probe.assign(list(check))
        for tp, end in check.items():
            probe.seek(tp, end - 1)
        corrected = dict(ends)
        deadline = asyncio.get_running_loop().time() + PROBE_DEADLINE_S
        while check and asyncio.get_running_loop().time() < deadline:
            await probe.getmany(*check, timeout_ms=500)
            for tp in list(check):
                highwater = probe.highwater(tp)
                if highwater is not None:
                    corrected[tp] = max(check.pop(tp), highwater)
        if check:
            log.warning("no fetch answered for %s within %g s: their end offsets may be short of the real end",
                        ", ".join(f"{tp.topic}[{tp.partition}]" for tp in check), PROBE_DEADLINE_S)
        return corrected
    finally:
        await probe.stop()


async def end_offsets(consumer: AIOKafkaConsumer, partitions: list[TopicPartition], kwargs: dict[str, object]) -> dict[TopicPartition, int]:
    """``consumer.end_offsets(partitions)``, checked against a fetch (``kwargs``: how
    ``consumer`` was connected)."""
    return await fetched_end_offsets(kwargs, dict(await consumer.end_offsets(partitions)))


async def first_offset_from(consumer: AIOKafkaConsumer, tp: TopicPartition, offset: int) -> int | None:
    """The first offset ``tp`` holds at or after ``offset``, fetched by ``consumer`` (outside
    any group; it is assigned ``tp`` for this); ``None`` if no record comes within
    :data:`PROBE_DEADLINE_S`. One probe at a time per consumer: each assigns it the partition
    it asks about."""
    consumer.assign([tp])
    consumer.seek(tp, offset)
    deadline = asyncio.get_running_loop().time() + PROBE_DEADLINE_S
    while asyncio.get_running_loop().time() < deadline:
        batch = await consumer.getmany(tp, timeout_ms=500, max_records=1)
        found = [record.offset for record in batch.get(tp, ()) if record.offset >= offset]  # none fetched before the seek
        if found:
            return int(found[0])
    return None


async def fetch_until(
    consumer: AIOKafkaConsumer, stops: Mapping[TopicPartition, int], stall_s: float, what: str,
) -> AsyncIterator[tuple[TopicPartition, list[ConsumerRecord]]]:
    """Fetch the partitions of ``stops`` (assigned to ``consumer`` and positioned by the
    caller) until each position reaches its stop offset, yielding each fetched partition's
    records below it; a partition that is done is paused. Raises :class:`DriftstreamError`
    naming ``what`` when no record comes for ``stall_s`` seconds (a stop past what the
    broker serves would otherwise wait forever)."""
    todo = {tp for tp, stop in stops.items() if await consumer.position(tp) < stop}
    progress = time.monotonic()
    while todo:
        batches = await consumer.getmany(*todo, timeout_ms=500)
        if batches:
            progress = time.monotonic()
        elif time.monotonic() - progress > stall_s:
            raise DriftstreamError(f"{what}: no records from {sorted(tp.partition for tp in todo)} of "
                                   f"{', '.join(sorted({tp.topic for tp in todo}))} for {stall_s:.0f} s")
        for tp, messages in batches.items():
            yield tp, [msg for msg in messages if msg.offset < stops[tp]]
            if await consumer.position(tp) >= stops[tp]:
                todo.discard(tp)
                consumer.pause(tp)
