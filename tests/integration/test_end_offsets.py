"""Faust's recovery reads a changelog up to ``end_offsets``; on the embedded broker those
must be checked against a fetch (``streams.runtime.end_offsets.fetched_end_offsets``)."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from streams.exceptions import DriftstreamError
from streams.runtime.end_offsets import fetch_until, fetched_end_offsets
from streams.settings import Settings

pytestmark = pytest.mark.integration


def test_end_offsets_reach_the_last_record_of_a_multi_record_batch(settings: Settings) -> None:
    topic = settings.topic_prefix + "end-offsets"
    tp = TopicPartition(topic, 0)

    async def run() -> tuple[int, int, int]:
        producer = AIOKafkaProducer(**settings.kafka_client_kwargs(), linger_ms=20)
        await producer.start()
        try:
            sent = [await producer.send(topic, b"x", partition=0) for _ in range(4)]
            await asyncio.gather(*sent)
            sent = [await producer.send(topic, b"y", partition=0) for _ in range(3)]  # one batch
            last = max(meta.offset for meta in await asyncio.gather(*sent))
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(**settings.kafka_client_kwargs(), group_id=None)
        await consumer.start()
        try:
            listed = (await consumer.end_offsets([tp]))[tp]
        finally:
            await consumer.stop()
        corrected = await fetched_end_offsets(settings.kafka_client_kwargs(), {tp: listed})
        return last, listed, corrected[tp]

    last, listed, corrected = asyncio.run(run())
    assert corrected == last + 1, (last, listed, corrected)
    assert listed <= corrected
    print(f"ListOffsets said {listed}, a fetch said {corrected}")


def test_the_gap_guard_probes_of_both_agents_may_overlap(settings: Settings) -> None:
    """The join and monitor agents run at once and share the worker's probe consumer; each
    probe must get its own partition's answer (a wrong "none there" loses records)."""
    from streams.runtime.app import create_app

    topics = [settings.topic_prefix + f"probe-{i}" for i in range(3)]

    async def run() -> list[int | None]:
        producer = AIOKafkaProducer(**settings.kafka_client_kwargs())
        await producer.start()
        try:
            for topic in topics:
                await asyncio.gather(*[await producer.send(topic, b"x", partition=0) for _ in range(10)])
        finally:
            await producer.stop()
        pipeline = create_app(settings).driftstream
        try:
            assert await pipeline.integrity.first_offset(topics[0], 0, 0) == 0  # the worker's probe consumer exists
            return await asyncio.wait_for(asyncio.gather(
                *[pipeline.integrity.first_offset(topic, 0, offset) for offset in (2, 5, 8) for topic in topics]
            ), timeout=30)
        finally:
            if pipeline.integrity.reader is not None:
                await pipeline.integrity.reader.stop()

    assert asyncio.run(run()) == [offset for offset in (2, 5, 8) for _ in topics]


def test_fetch_until_yields_each_partition_up_to_its_stop_and_fails_on_a_stop_past_the_end(settings: Settings) -> None:
    topic = settings.topic_prefix + "fetch-until"
    tps = [TopicPartition(topic, p) for p in (0, 1)]

    async def read(stops: dict[TopicPartition, int]) -> dict[int, list[bytes]]:
        consumer = AIOKafkaConsumer(**settings.kafka_client_kwargs(), group_id=None, enable_auto_commit=False)
        await consumer.start()
        try:
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            got: dict[int, list[bytes]] = {0: [], 1: []}
            async for tp, messages in fetch_until(consumer, stops, stall_s=1.0, what="the test"):
                got[tp.partition] += [m.value for m in messages]
            return got
        finally:
            await consumer.stop()

    async def run() -> tuple[dict[int, list[bytes]], str]:
        producer = AIOKafkaProducer(**settings.kafka_client_kwargs())
        await producer.start()
        try:
            for p, n in ((0, 5), (1, 3)):
                await asyncio.gather(*[await producer.send(topic, f"{p}-{i}".encode(), partition=p) for i in range(n)])
        finally:
            await producer.stop()
        got = await read({tps[0]: 4, tps[1]: 3})
        with pytest.raises(DriftstreamError, match=r"the test: no records from \[1\]") as failed:
            await read({tps[0]: 5, tps[1]: 4})  # partition 1 holds offsets 0..2 only
        return got, str(failed.value)

    got, _ = asyncio.run(run())
    assert got == {0: [b"0-0", b"0-1", b"0-2", b"0-3"], 1: [b"1-0", b"1-1", b"1-2"]}
