"""Faust's recovery reads a changelog up to ``end_offsets``; on the embedded broker those
must be checked against a fetch (``streams.end_offsets.fetched_end_offsets``)."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from streams.end_offsets import fetched_end_offsets
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
