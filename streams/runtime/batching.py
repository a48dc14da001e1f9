"""Micro-batches of an input topic's records, made where Faust delivers them.

Faust hands each Kafka record to a stream as an :class:`~faust.Event` (decoding, sensors,
a queue hop, the stream iterator's step and an ack), which costs more than the pipeline
spends on an event that arrives one per record (docs/performance.md). A :class:`BatchedTopic` is a Faust topic whose
channel buffer holds *lists of records*: the conductor appends each record it fetches to
the list being filled, and the agent's stream yields one list per step, so Faust's
per-item cost is paid once per micro-batch. The records stay Faust's (group membership,
flow control on rebalances, backpressure by pausing partitions, offsets committed from
acks): :func:`admit` tracks a batch's records as Faust's stream would, and
:func:`acknowledge` acks them once the agent is done with them, never before.

A batch is handed over at once when the topic is caught up (:func:`input_caught_up`: the
consumer has delivered every record the broker held for the topic's partitions as of its
last fetch, so nothing more is on its way; but no sooner than ``within_s / 2`` after the
previous batch, since every batch has a fixed cost), at once when it holds ``max_records``,
and otherwise once ``within_s`` has passed since its first record arrived. Batches therefore come
from backlog, as in Kafka Streams: a worker that keeps up hands each fetch over as it comes
(no wait added to the latency), and one that falls behind gets records faster than it takes
them, so its batches fill. Records that arrive while one batch is being processed gather in
the next (not ``within_s`` after the previous batch, as Faust's ``take_events`` waits).

    topic = BatchedTopic(app, topics=["predictions"], max_records=2000, within_s=0.1,
                         key_serializer="raw", value_serializer="raw")

    @app.agent(topic)
    async def join(stream):
        async for batch in stream:
            records = admit(app, batch)
            await handle(records)
            acknowledge(app, records)
"""

from __future__ import annotations

import asyncio
import itertools
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import faust
from faust.exceptions import ConsumerNotStarted
from faust.types import Message
from mode.utils.queues import FlowControlEvent

from streams.runtime.faust_private import (
    RecordBufferTopic,
    ThrowingQueue,
    ack_messages,
    consumer_created,
    kafka_consumer,
    paused_partitions,
    read_offsets,
)

__all__ = ["BatchQueue", "BatchedTopic", "acknowledge", "admit", "current_generation", "input_caught_up", "record_bytes"]

#: How often a batch waiting on a caught-up check looks again when no record arrives: the
#: consumer finishes delivering a fetch without telling the buffer, so the last records of
#: a fetch are handed over at most this late.
CAUGHT_UP_POLL_S = 0.005


class _Batch:
    __slots__ = ("first_at", "items", "weight")

    def __init__(self, first_at: float) -> None:
        self.first_at = first_at
        self.items: list[Any] = []
        self.weight = 0


class BatchQueue(ThrowingQueue):
    """A Faust channel buffer whose ``get`` returns a list of the items put into it.

    ``maxsize`` and the pressure thresholds count what ``weigh`` gives for each item (1 by
    default), not lists, so Faust's backpressure (pausing a partition's fetches) works as
    with its own buffer. The pipeline's topics weigh a record by its bytes: an SDK record
    holds hundreds of events, and a bound in records let the buffer take a whole backlog,
    ahead of what :mod:`streams.runtime.alignment` pauses.

    ``caught_up`` (``None``: never) says when nothing more is on its way: the oldest batch
    then goes at once instead of waiting out ``within_s``, but no sooner than
    ``min_interval_s`` after the previous one. Each batch costs the pipeline a fixed amount
    (per model and partition: a payload, a run of its monitor, their sends; about 13 ms of
    CPU with 50 models and 4 partitions), so a producer that trickles would otherwise keep
    the worker busy with batches of a few records.

    Unlike Faust's buffer, the flow control does not clear it when the flow resumes: a
    recovery's last resume would drop records fetched from the committed offsets, which
    this buffer holds for up to ``within_s`` (docs/delivery.md). Records of an ended
    consumer generation, what a clear protects against, :func:`admit` leaves out itself.
    """

    def __init__(
        self, maxsize: int, *, flow_control: FlowControlEvent, max_items: int, within_s: float,
        weigh: Callable[[Any], int] | None = None, caught_up: Callable[[], bool] | None = None,
        min_interval_s: float = 0.0,
    ) -> None:
        if max_items < 1 or not within_s > 0:
            raise ValueError(f"max_items must be >= 1 and within_s > 0, got {max_items} and {within_s}")
        self.max_items = max_items
        self.within_s = within_s
        self.weigh = weigh
        self.caught_up = caught_up
        self.min_interval_s = min_interval_s
        self._handed_at = -float("inf")  # when the last batch was handed over (loop time)
        self._size = 0
        self._arrived = asyncio.Event()  # something to hand over: an item or an error
        self._head_full = asyncio.Event()  # the oldest batch holds max_items
        self._put_seen = asyncio.Event()  # an item arrived since the getter last looked
        self._woken = False  # an empty batch asked for (wake)
        super().__init__(maxsize, flow_control=flow_control, clear_on_resume=False)

    # -- asyncio.Queue's storage hooks: a deque of batches -------------------------------
    def _init(self, maxsize: int) -> None:
        self._queue: deque[_Batch] = deque()
        self._size = 0

    def _put(self, item: Any) -> None:
        batches = self._queue
        if not batches or len(batches[-1].items) >= self.max_items:
            batches.append(_Batch(asyncio.get_running_loop().time()))
        tail = batches[-1]
        tail.items.append(item)
        weight = 1 if self.weigh is None else self.weigh(item)
        tail.weight += weight
        self._size += weight
        if len(tail.items) >= self.max_items and tail is batches[0]:
            self._head_full.set()
        self._arrived.set()
        self._put_seen.set()

    def _get(self) -> list[Any]:
        batch = self._queue.popleft()
        self._size -= batch.weight
        if not self._queue or len(self._queue[0].items) < self.max_items:
            self._head_full.clear()
        else:
            self._head_full.set()
        if not self._queue:
            self._arrived.clear()
        return batch.items

    def put_run(self, messages: list[Message], start: int = 0, *, on_pressure_high: Callable[[], None],
                on_pressure_drop: Callable[[], None]) -> int:
        """Put ``messages[start:]`` (records held by nothing else yet) in order as long as the buffer
        has room, each as ``put_nowait_enhanced`` puts an item (the pressure callbacks
        included) with one reference taken for this buffer; how many went. The getters are
        woken once."""
        done = 0
        for message in itertools.islice(messages, start, None):
            if self.full():
                break
            if self.in_pressure_high_state(on_pressure_drop):
                on_pressure_high()
            message.refcount = 1  # incref without its lock: no other thread holds it yet
            self._put(message)
            done += 1
        if done:
            self._unfinished_tasks += done
            self._finished.clear()
            self._wakeup_next(self._getters)  # type: ignore[attr-defined]
        return done

    def qsize(self) -> int:
        return self._size

    def thrown(self, exc: BaseException) -> None:
        self.keep_error(exc)
        self._arrived.set()

    def wake(self) -> None:
        """Make a ``get`` waiting on an empty buffer return an empty batch (the agent has
        held records to look at again)."""
        self._woken = True
        self._arrived.set()

    # -- the consumer side ---------------------------------------------------------------
    async def get(self) -> list[Any]:  # type: ignore[override]
        """The oldest batch, once it is full (a later batch behind it means it is full), the
        input is caught up, or ``within_s`` has passed since its first item arrived."""
        loop = asyncio.get_running_loop()
        while True:
            error = self.take_error()
            if error is not None:
                raise error
            if not self._queue:
                self.maybe_endorse_pressure_drop()
                if self._woken:
                    self._woken = False
                    self._arrived.clear()
                    return []
                await self._arrived.wait()
                continue
            head = self._queue[0]
            now = loop.time()
            remaining = head.first_at + self.within_s - now
            spaced = self._handed_at + self.min_interval_s - now  # > 0: too soon for a caught-up hand-over
            if (remaining <= 0 or len(self._queue) > 1 or self._head_full.is_set()
                    or (self.caught_up is not None and spaced <= 0 and self.caught_up())):
                self._woken = False  # a batch is a wake-up too
                self._handed_at = now
                return self.get_nowait()  # type: ignore[no-any-return]
            if self.caught_up is None:
                ready, timeout = self._head_full, remaining
            else:  # look again at the next record, or soon (the fetch may be delivered)
                self._put_seen.clear()
                ready, timeout = self._put_seen, min(remaining, max(spaced, CAUGHT_UP_POLL_S))
            try:
                await asyncio.wait_for(ready.wait(), timeout=timeout)
            except asyncio.TimeoutError:
                pass


class BatchedTopic(RecordBufferTopic):
    """A Faust topic whose stream yields lists of its records (:class:`~faust.types.Message`),
    up to ``max_records`` each, handed over once the topic is caught up (but no sooner than
    ``within_s / 2`` after the previous batch; ``when_caught_up=False``: never early), and
    at the latest ``within_s`` after their first record arrived."""

    def __init__(
        self, *args: Any, max_records: int = 2_000, within_s: float = 0.1, max_bytes: int | None = None,
        buffers: list[BatchQueue] | None = None, when_caught_up: bool = True, **kwargs: Any,
    ) -> None:
        if max_records < 1 or not within_s > 0:
            raise ValueError(f"max_records must be >= 1 and within_s > 0, got {max_records} and {within_s}")
        self.max_records = max_records
        self.within_s = within_s
        self.when_caught_up = when_caught_up
        #: the buffer's bound in record bytes (``None``: Faust's, in records)
        self.max_bytes = max_bytes
        #: the buffers of this topic and of its clones (an agent reads a clone's)
        self.buffers: list[BatchQueue] = [] if buffers is None else buffers
        super().__init__(*args, **kwargs)

    def clone_kwargs(self) -> dict[str, Any]:
        return {"max_records": self.max_records, "within_s": self.within_s, "max_bytes": self.max_bytes,
                "buffers": self.buffers, "when_caught_up": self.when_caught_up}

    def wake(self) -> None:
        """Make the agents reading this topic take an empty batch if they wait on an empty
        buffer (:meth:`BatchQueue.wake`)."""
        for buffer in self.buffers:
            buffer.wake()

    def new_buffer(self) -> BatchQueue:
        """This channel's buffer (the records go into it undecoded: the agent decodes a batch
        at once)."""
        buffer = BatchQueue(
            self.max_bytes or self.maxsize or self.app.conf.stream_buffer_maxsize,
            flow_control=self.app.flow_control, max_items=self.max_records, within_s=self.within_s,
            weigh=None if self.max_bytes is None else record_bytes,
            caught_up=input_caught_up(self.app, self.topics) if self.when_caught_up else None,
            min_interval_s=self.within_s / 2,
        )
        self.buffers.append(buffer)
        return buffer


def input_caught_up(app: faust.App, topics: Iterable[str]) -> Callable[[], bool]:
    """Whether the consumer has delivered, for every partition of ``topics`` assigned here
    and not paused, each record up to the end of its log as of the last fetch: nothing
    fetched is still to come, and the broker held nothing more (a paused partition brings
    nothing until it resumes). False before the consumer starts, and for a partition not
    fetched yet or with nothing delivered since the read offsets were last reset."""
    names = frozenset(topics)

    def caught_up() -> bool:
        if not consumer_created(app):  # asking app.consumer would make Faust's own
            return False
        consumer = app.consumer
        try:
            kafka = kafka_consumer(consumer)
            paused = paused_partitions(consumer)
            read = read_offsets(consumer)
            for tp in kafka.assignment():
                if tp.topic not in names or tp in paused:
                    continue
                end = kafka.highwater(tp)
                if end is None:
                    return False
                last = read.get(tp)
                if end > 0 and (last is None or last + 1 < end):
                    return False
        except (AssertionError, AttributeError, ConsumerNotStarted):  # no consumer, or an assignment changing
            return False
        return True

    return caught_up


def record_bytes(message: Message) -> int:
    """A record's weight in a buffer bounded in bytes (its key and value, and 64 for the
    rest of it, so that empty records weigh something too)."""
    return len(message.value or b"") + len(message.key or b"") + 64


def current_generation(app: faust.App, batch: Sequence[Message]) -> list[Message]:
    """The records of ``batch`` the agent may process, as Faust's stream would: none while
    the flow is suspended for a rebalance, and none fetched in a consumer generation that
    has ended (a rebalance came in between; the consumer reads them again from the
    committed offsets)."""
    if not app.flow_control.is_active():
        return []
    generation = app.consumer_generation_id
    return [message for message in batch if message.generation_id == generation]


def admit(app: faust.App, batch: Sequence[Message]) -> list[Message]:
    """The records of ``batch`` to process (:func:`current_generation`), tracked as pending
    acks (as Faust's stream tracks an event it hands over, so a rebalance waits for them)."""
    consumer = app.consumer
    admitted = current_generation(app, batch)
    for message in admitted:
        if not message.tracked:
            message.tracked = True
            consumer.track_message(message)
    return admitted


def acknowledge(app: faust.App, records: Sequence[Message]) -> None:
    """Ack records the agent is done with: Faust may then commit their offsets."""
    ack_messages(app.consumer, records)
