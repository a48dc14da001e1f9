"""streams.runtime.batching: the micro-batch buffer (timing, size, backpressure, rebalances) and
how a batch's records are admitted and acked (Faust objects, no broker)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import faust
import pytest
from faust.types import ConsumerMessage
from mode.utils.queues import FlowControlEvent

from streams.runtime.batching import BatchedTopic, BatchQueue, acknowledge, admit, input_caught_up, record_bytes


def _queue(max_items: int = 100, within_s: float = 0.5, maxsize: int = 1_000) -> BatchQueue:
    flow = FlowControlEvent(initially_suspended=False)
    return BatchQueue(maxsize, flow_control=flow, max_items=max_items, within_s=within_s)


def _run(test: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(test(), timeout=30))


def test_a_batch_waits_within_from_its_first_item() -> None:
    async def test() -> None:
        queue = _queue(within_s=0.5)
        loop = asyncio.get_running_loop()
        started = loop.time()
        queue.put_nowait("a")
        queue.put_nowait("b")
        assert await queue.get() == ["a", "b"]
        assert loop.time() - started >= 0.45

    _run(test)


def test_a_full_batch_goes_at_once_and_the_rest_waits() -> None:
    async def test() -> None:
        queue = _queue(max_items=3, within_s=30.0)
        for item in "abcd":
            queue.put_nowait(item)
        assert await asyncio.wait_for(queue.get(), timeout=5) == ["a", "b", "c"]  # long before 30 s
        with pytest.raises(asyncio.TimeoutError):  # one item, 30 s to go
            await asyncio.wait_for(queue.get(), timeout=0.3)
        queue.put_nowait("e")
        queue.put_nowait("f")  # fills the waiting batch: it goes now
        assert await asyncio.wait_for(queue.get(), timeout=5) == ["d", "e", "f"]

    _run(test)


def test_a_batch_that_filled_while_the_last_was_processed_goes_at_once() -> None:
    async def test() -> None:
        within = 1.0
        queue = _queue(within_s=within)
        loop = asyncio.get_running_loop()
        queue.put_nowait("a")
        assert await queue.get() == ["a"]
        queue.put_nowait("b")  # while batch 1 is processed
        queue.put_nowait("c")
        await asyncio.sleep(within)  # the wait under test: batch 2's first item is now `within` old
        asked = loop.time()
        assert await queue.get() == ["b", "c"]
        assert loop.time() - asked < within / 2  # Faust's take_events would wait `within` again

    _run(test)


def test_size_counts_items_and_a_full_buffer_holds_the_producer_back() -> None:
    async def test() -> None:
        queue = _queue(max_items=2, within_s=0.01, maxsize=3)
        for item in "abc":
            queue.put_nowait(item)
        assert queue.qsize() == 3 and queue.full()
        blocked = asyncio.ensure_future(queue.put("d"))  # as Faust's conductor puts into a full buffer
        await asyncio.sleep(0.05)
        assert not blocked.done()
        assert await queue.get() == ["a", "b"]
        await asyncio.wait_for(blocked, timeout=5)  # room again: the put went through
        assert queue.qsize() == 2
        assert await queue.get() == ["c", "d"]
        assert queue.qsize() == 0 and queue.empty()

    _run(test)


def test_a_topic_bounded_in_bytes_weighs_each_record_by_its_bytes() -> None:
    """SDK records hold 500 events each: a bound in records would let the buffer take a
    whole backlog; one in bytes takes a few records of them, and any number of small ones."""
    async def test() -> None:
        topic = BatchedTopic(_app(), topics=["t"], max_records=100, within_s=0.01, max_bytes=10_000,
                             value_serializer="raw")
        queue = topic.clone(is_iterator=True).queue
        assert queue.maxsize == 10_000
        big = [ConsumerMessage("t", 0, offset, 0.0, 0, [], b"k", b"x" * 4_000, None) for offset in range(3)]
        for record in big[:2]:
            queue.put_nowait(record)
        assert record_bytes(big[0]) == 4_000 + 1 + 64
        assert queue.qsize() == 2 * 4_065 and not queue.full()
        queue.put_nowait(big[2])
        assert queue.full()
        assert await queue.get() == big
        assert queue.qsize() == 0

    _run(test)


def test_a_resumed_flow_keeps_what_it_holds() -> None:
    """A recovery resumes the flow after seeking the inputs to their committed offsets: what
    was fetched from there meanwhile must stay (the consumer read past it)."""

    async def test() -> None:
        flow = FlowControlEvent(initially_suspended=False)
        queue = BatchQueue(100, flow_control=flow, max_items=10, within_s=0.01)
        queue.put_nowait("fetched after the seek")
        flow.suspend()
        flow.resume()
        assert queue.qsize() == 1
        assert await queue.get() == ["fetched after the seek"]

    _run(test)


def test_an_error_thrown_into_the_channel_reaches_the_waiting_agent() -> None:
    async def test() -> None:
        queue = _queue()
        waiting = asyncio.ensure_future(queue.get())
        await asyncio.sleep(0)  # one yield: the get runs to its wait on the empty buffer
        assert not waiting.done()
        queue._throw(RuntimeError("boom"))
        with pytest.raises(RuntimeError, match="boom"):
            await asyncio.wait_for(waiting, timeout=5)

    _run(test)


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="max_items must be >= 1"):
        _queue(max_items=0)
    with pytest.raises(ValueError, match="within_s > 0"):
        BatchedTopic(_app(), topics=["t"], within_s=0.0)


def _app() -> faust.App:
    # never started: the broker URL is never dialled
    return faust.App("test-batching", broker="kafka://127.0.0.1:1", store="memory://", web_enabled=False)


def _message(offset: int, generation: int) -> ConsumerMessage:
    return ConsumerMessage("t", 0, offset, 0.0, 0, [], None, b"v", None, generation_id=generation)


def test_a_batched_topic_buffers_its_records_themselves() -> None:
    async def test() -> None:
        topic = BatchedTopic(_app(), topics=["t"], max_records=7, within_s=0.2, value_serializer="raw")
        channel = topic.clone(is_iterator=True)  # what an agent's stream iterates
        assert (channel.max_records, channel.within_s) == (7, 0.2)
        assert isinstance(channel.queue, BatchQueue) and channel.queue.max_items == 7
        record = _message(0, 1)
        assert await channel.decode(record, propagate=True) is record

    _run(test)


@pytest.mark.parametrize("when_caught_up", [True, False])
def test_a_batched_topic_hands_over_early_only_when_asked(when_caught_up: bool) -> None:
    """``DRIFTSTREAM_BATCH_WHEN_CAUGHT_UP=false`` keeps the buffers of the topic and its
    clones waiting ``within_s`` (no caught-up check), with the same minimum interval."""
    async def test() -> None:
        topic = BatchedTopic(_app(), topics=["t"], within_s=0.2, when_caught_up=when_caught_up)
        channel = topic.clone(is_iterator=True)
        assert channel.when_caught_up is when_caught_up
        assert (channel.queue.caught_up is not None) is when_caught_up and channel.queue.min_interval_s == 0.1

    _run(test)


def test_admit_skips_a_past_generation_tracks_the_rest_and_acknowledge_acks_them() -> None:
    async def test() -> None:
        app = _app()
        app.flow_control.resume()
        app.consumer_generation_id = 3
        app.topics._acking_topics.add("t")  # as the conductor does for a subscribed topic
        records = [_message(0, 3), _message(1, 2), _message(2, 3)]
        admitted = admit(app, records)
        assert [r.offset for r in admitted] == [0, 2]  # offset 1 came before the last rebalance
        assert set(app.consumer.unacked) == set(admitted)
        acknowledge(app, admitted)
        assert [r.acked for r in records] == [True, False, True]
        assert not app.consumer.unacked
        assert list(app.consumer._acked[records[0].tp]) == [0, 2]  # what Faust commits from
        app.flow_control.suspend()  # a rebalance under way: nothing is handed over
        assert admit(app, [_message(3, 3)]) == []

    _run(test)


def test_wake_makes_a_waiting_get_return_an_empty_batch_once() -> None:
    async def test() -> None:
        queue = _queue(within_s=0.01)
        waiting = asyncio.ensure_future(queue.get())
        await asyncio.sleep(0)
        assert not waiting.done()
        queue.wake()
        assert await asyncio.wait_for(waiting, timeout=5) == []
        again = asyncio.ensure_future(queue.get())  # one wake, one empty batch: this one waits
        await asyncio.sleep(0.05)
        assert not again.done()
        queue.put_nowait("a")
        assert await asyncio.wait_for(again, timeout=5) == ["a"]

    _run(test)


def test_the_topics_wake_reaches_the_buffer_its_agent_reads() -> None:
    """An agent reads a clone of the topic, with a buffer of its own."""

    async def test() -> None:
        app = faust.App("test-wake", broker="kafka://127.0.0.1:1", store="memory://", web_enabled=False)
        topic = BatchedTopic(app, topics=["t"], within_s=0.01)
        agents_channel = topic.clone(is_iterator=True)
        assert agents_channel.queue is not topic.queue
        waiting = asyncio.ensure_future(agents_channel.queue.get())
        await asyncio.sleep(0)
        topic.wake()
        assert await asyncio.wait_for(waiting, timeout=5) == []

    _run(test)


def test_a_caught_up_input_hands_its_batch_over_at_once() -> None:
    """Batches come from backlog: with nothing more on its way, waiting out ``within_s``
    only adds latency."""
    async def test() -> None:
        flow = FlowControlEvent(initially_suspended=False)
        caught_up = [True]
        queue = BatchQueue(1_000, flow_control=flow, max_items=100, within_s=30.0, caught_up=lambda: caught_up[0])
        queue.put_nowait("a")
        queue.put_nowait("b")
        assert await asyncio.wait_for(queue.get(), timeout=5) == ["a", "b"]  # long before 30 s
        caught_up[0] = False  # more fetched than delivered: the batch waits for it
        queue.put_nowait("c")
        waiting = asyncio.ensure_future(queue.get())
        await asyncio.sleep(0.1)
        assert not waiting.done()
        queue.put_nowait("d")
        await asyncio.sleep(0.02)
        assert not waiting.done()
        caught_up[0] = True  # the fetch delivered, with no record after it to say so
        assert await asyncio.wait_for(waiting, timeout=1) == ["c", "d"]

    _run(test)


class _Kafka:
    """The aiokafka consumer's fetch state that :func:`input_caught_up` reads."""

    def __init__(self, ends: dict[tuple[str, int], int | None]) -> None:
        self.ends = ends

    def assignment(self) -> set[tuple[str, int]]:
        return set(self.ends)

    def highwater(self, tp: tuple[str, int]) -> int | None:
        return self.ends[tp]


def test_input_caught_up_asks_every_unpaused_partition_of_its_topics(monkeypatch: pytest.MonkeyPatch) -> None:
    from faust.types import TP

    from streams.runtime import batching
    from streams.runtime.consumer import install

    app = _app()
    caught_up = input_caught_up(app, ["in"])
    assert caught_up() is False  # no consumer yet (and asking made none)
    assert not batching.consumer_created(app)
    install(app)
    consumer = app.consumer
    assert caught_up() is False  # not started
    ends: dict[tuple[str, int], int | None] = {TP("in", 0): 5, TP("in", 1): 0, TP("other", 0): 9}
    monkeypatch.setattr(batching, "kafka_consumer", lambda c: _Kafka(ends))
    assert caught_up() is False  # nothing of in[0] delivered
    consumer._read_offset[TP("in", 0)] = 3
    assert caught_up() is False  # offset 4 is fetched or on the broker
    consumer._read_offset[TP("in", 0)] = 4
    assert caught_up() is True  # in[1] is empty; another topic's lag is not this input's
    ends[TP("in", 2)] = None
    assert caught_up() is False  # not fetched yet
    consumer._paused_partitions.add(TP("in", 2))
    assert caught_up() is True  # paused: nothing comes from it until it resumes


def test_a_caught_up_batch_goes_no_sooner_than_min_interval_after_the_last() -> None:
    """A trickle of records is not a batch each: every batch costs the pipeline a fixed amount."""
    async def test() -> None:
        flow = FlowControlEvent(initially_suspended=False)
        queue = BatchQueue(1_000, flow_control=flow, max_items=100, within_s=30.0, caught_up=lambda: True,
                           min_interval_s=0.3)
        loop = asyncio.get_running_loop()
        queue.put_nowait("a")
        assert await asyncio.wait_for(queue.get(), timeout=5) == ["a"]  # the first goes at once
        handed = loop.time()
        queue.put_nowait("b")
        later = asyncio.ensure_future(queue.get())
        await asyncio.sleep(0.1)
        queue.put_nowait("c")
        assert await asyncio.wait_for(later, timeout=5) == ["b", "c"]
        assert 0.29 <= loop.time() - handed < 1.0

    _run(test)
