"""streams.consumer: which records the consumer delivers directly, and that an app gets it
(Faust objects, no broker; the delivery loop itself runs in every integration test)."""

from __future__ import annotations

import asyncio

import faust
import pytest
from faust.types import TP

from streams.batching import BatchedTopic
from streams.consumer import Consumer, install


def _app() -> faust.App:
    # never started: the broker URL is never dialled
    return faust.App("test-consumer", broker="kafka://127.0.0.1:1", store="memory://", web_enabled=False)


def test_install_gives_the_app_this_consumer_and_refuses_once_it_exists() -> None:
    app = _app()
    install(app)
    assert isinstance(app.consumer, Consumer)
    with pytest.raises(RuntimeError, match="before the app's consumer is created"):
        install(app)


def test_a_record_goes_directly_only_while_every_channel_of_its_partition_is_a_batch_buffer_with_room() -> None:
    async def test() -> None:
        app = _app()
        install(app)
        consumer = app.consumer
        tp = TP("t", 0)
        assert not consumer._delivers_without_waiting(tp)  # no channel: Faust's careful path
        channel = BatchedTopic(app, topics=["t"], maxsize=2, within_s=1.0).clone(is_iterator=True)
        app.topics._tp_index[tp].add(channel)  # as the conductor routes an assigned partition
        assert consumer._delivers_without_waiting(tp)
        channel.queue.put_nowait("a")
        channel.queue.put_nowait("b")  # full: the conductor would wait for room
        assert not consumer._delivers_without_waiting(tp)
        other = TP("changelog", 0)  # a Faust channel (a table's changelog in a recovery, say)
        app.topics._tp_index[other].add(app.topic("changelog").clone(is_iterator=True))
        assert not consumer._delivers_without_waiting(other)

    asyncio.run(test())
