"""The worker's Faust consumer: Faust's aiokafka consumer with two mends to its delivery loop
and a cheaper path for records that cannot block.

- A record whose partition feeds only micro-batch buffers (the pipeline's input topics) goes
  straight into them when the flow is on, the producer's buffer needs no wait and every
  buffer has room: what Faust's conductor would do for it, without its per-record lock, flow
  and producer waits, decode coroutine and ``Service.wait_first`` (four tasks and an
  ``asyncio.wait``). Otherwise Faust's path, unchanged. A one-event record costs little
  more in the pipeline than this hand-over, so it matters (docs/performance.md).
- A delivery that outlasted a reset of the read offsets (seek, revocation, assignment) leaves
  the read offset where the reset put it, and no input record is dropped for being below it:
  Faust set it back to a stale record and then dropped the re-read backlog.
- A record served at or below one already delivered, with no reset in between, is recorded in
  :attr:`Consumer.went_back`: the log lost its tail, and the pipeline stops.
- :meth:`Consumer.membership_lost` says when the group may have dropped this member (its
  session expired, or no heartbeat succeeded for a session timeout): the pipeline then saves
  nothing of what it holds, since the group's other members may own those partitions already.

docs/delivery.md ("Two mends to Faust's consumer loop") says why; Faust's private hooks these
need are in :mod:`streams.runtime.faust_private`. :func:`install` makes an app's consumer one
of these; call it before the app starts.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import faust
from aiokafka.protocol.group import JoinGroupRequest
from faust.exceptions import ConsumerNotStarted
from faust.transport.drivers import aiokafka as aiokafka_driver
from faust.types import TP, Message

from streams.runtime.batching import BatchQueue
from streams.runtime.end_offsets import fetched_end_offsets
from streams.runtime.faust_private import (
    ConsumerLoop,
    channels_of,
    consumer_created,
    group_coordinator,
    kafka_consumer,
    on_heartbeat_ok,
    paused_partitions,
    producer_backlog,
    read_offsets,
)

__all__ = ["Consumer", "Transport", "install"]


class _Route:
    """Where a partition's records go on the direct path: its channels' micro-batch buffers
    (``None`` when any channel is not one), and the pressure callbacks the conductor passes
    for the partition (held here: a buffer keeps the drop callback it was given until the
    pressure drops, by identity). Valid while the conductor's channel set for the partition
    is the same object with the same size (it builds new sets at each assignment)."""

    __slots__ = ("channels", "size", "queues", "on_high", "on_drop")

    def __init__(self, app: faust.App, tp: TP, channels: Any) -> None:
        self.channels = channels  # held, so its id is not reused while this route lives
        self.size = len(channels)
        queues = [channel.queue for channel in channels]
        self.queues: list[BatchQueue] | None = (
            queues if queues and all(type(queue) is BatchQueue for queue in queues) else None)
        buffer_full, consumer = app.sensors.on_topic_buffer_full, app.consumer

        def on_high() -> None:
            buffer_full(tp)
            consumer.on_buffer_full(tp)

        def on_drop() -> None:
            consumer.on_buffer_drop(tp)

        self.on_high, self.on_drop = on_high, on_drop


class Consumer(ConsumerLoop):
    """Faust's aiokafka consumer; see the module docstring for the differences."""

    #: how many times the read offsets were reset (a delivery that spans one is stale)
    resets: int = 0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: partition -> the last record delivered, the reset count right after it and the
        #: consumer generation it was fetched in
        self._delivered: dict[TP, tuple[int, int, int]] = {}
        #: partition -> (an offset delivered, the offset served after it without a reset)
        #: for each log that went back (see :meth:`deliver`); the pipeline stops on one
        self.went_back: dict[TP, tuple[int, int]] = {}
        #: when the group last confirmed this member (an assignment, a heartbeat answered)
        self._confirmed_at: float | None = None
        #: partition -> when (ms since the epoch) :meth:`resume_partitions` last resumed it
        self._resumed_ms: dict[TP, float] = {}
        #: partition -> its :class:`_Route` as last looked up
        self._routes: dict[TP, _Route] = {}
        #: the producer buffer's backlog and the size at which the conductor waits for it
        self._producer_backlog: tuple[Callable[[], int], int] | None = None

    def _route(self, tp: TP) -> _Route:
        channels = channels_of(self.app, tp)
        route = self._routes.get(tp)
        if route is None or route.channels is not channels or route.size != len(channels):
            # Faust's own tuple for the callbacks: the fetch loop's is aiokafka's, which
            # Faust's partition sets refuse (the conductor's callbacks take its index's)
            route = self._routes[tp] = _Route(self.app, TP(tp.topic, tp.partition), channels)
        return route

    def _feeds_batch_buffers(self, tp: TP) -> bool:
        """Whether every channel ``tp``'s records go to is a micro-batch buffer (the
        pipeline's input topics; no channel, no answer)."""
        return self._route(tp).queues is not None

    def already_read(self, tp: TP, offset: int) -> bool:
        """Whether the loop skips a fetched record as already read: below the read offset,
        of one of Faust's own topics (an input record re-read after a race is one the
        pipeline has not applied, or skips itself)."""
        return super().already_read(tp, offset) and not self._feeds_batch_buffers(tp)

    def _direct_queues(self, tp: TP) -> list[BatchQueue] | None:
        """The buffers a record of ``tp`` goes straight into, when the conductor would put
        it into every one of them at once: the flow is on (the conductor waits for the app's
        flow control first), the producer's buffer needs no flush (the conductor waits for
        that too), and every channel is a micro-batch buffer with room. ``None``: Faust's
        path."""
        if not self.app.flow_control.is_active():
            return None
        queues = self._route(tp).queues
        if queues is None or any(queue.full() for queue in queues):
            return None
        if self._producer_backlog is None:
            self._producer_backlog = producer_backlog(self.app), self.app.producer.buffer.max_messages
        backlog, most = self._producer_backlog
        return None if backlog() > most else queues

    def _hand_over(self, tp: TP, message: Message, queues: list[BatchQueue]) -> None:
        """Put ``message`` into each of ``queues`` as the conductor's handler does (a
        reference per channel, pressure callbacks that pause and resume ``tp``'s fetches)."""
        route = self._routes[tp]
        message.incref(len(queues))
        for queue in queues:
            queue.put_nowait_enhanced(message, on_pressure_high=route.on_high, on_pressure_drop=route.on_drop)

    def deliver_run(self, tp: TP, messages: list[Message], start: int = 0) -> int:
        """Put ``messages[start:]``, of a fetch of ``tp``, into its micro-batch buffer at once
        while the direct path is open (:meth:`_direct_queues`, one buffer), up to where the
        buffer is full, as :meth:`deliver` would record by record; how many went. The read offset moves
        to the last of them, and a first record at or below one already delivered with no
        reset in between is recorded in :attr:`went_back`."""
        if self.suspend_flow.is_set():
            return 0
        queues = self._direct_queues(tp)
        if queues is None or len(queues) != 1:
            return 0
        route = self._routes[tp]
        resets = self.resets
        first = messages[start]
        generation = first.generation_id
        self._check_went_back(tp, first.offset, resets, generation)
        done = queues[0].put_run(messages, start, on_pressure_high=route.on_high, on_pressure_drop=route.on_drop)
        if done:
            self._read_up_to(tp, messages[start + done - 1].offset, resets, generation)
        return done

    def _check_went_back(self, tp: TP, offset: int, resets: int, generation: int | None) -> None:
        """Record in :attr:`went_back` a record served at or below one already delivered of
        ``tp`` with no reset of the read offsets and no rebalance in between (a rebalance
        re-reads from the committed offsets, even when no reset was seen here): the broker
        client reset a read position past the log's end, so the log lost its tail, and what
        follows is another log's records."""
        last = self._delivered.get(tp)
        if last is not None and last[1] == resets and last[2] == generation and offset <= last[0]:
            self.went_back.setdefault(tp, (last[0], offset))

    def _read_up_to(self, tp: TP, offset: int, resets: int, generation: int | None) -> None:
        """``tp``'s read offset moves to ``offset``, delivered in ``resets`` and ``generation``."""
        read_offsets(self)[tp] = offset
        self._delivered[tp] = (offset, resets, generation)

    async def deliver(self, tp: TP, message: Message) -> None:
        """Hand one fetched record to the conductor and move ``tp``'s read offset to it,
        unless the read offsets were reset meanwhile (then it stays where the reset put it).
        A record served at or below one already delivered with no reset in between is
        recorded in :attr:`went_back` first."""
        resets = self.resets
        generation = getattr(message, "generation_id", None)
        self._check_went_back(tp, message.offset, resets, generation)
        queues = None if self.suspend_flow.is_set() else self._direct_queues(tp)
        if queues is not None:
            self._hand_over(tp, message, queues)
        else:
            await self.wait_first(self.callback(message), self.suspend_flow.wait())
        if self.resets == resets:
            self._read_up_to(tp, message.offset, resets, generation)
        else:  # stale: the reset decides where reading goes on
            self._delivered.pop(tp, None)

    # -- the resets of the read offsets, counted where they begin and where they end
    @contextlib.contextmanager
    def _resetting(self) -> Iterator[None]:
        """Around a reset of the read offsets: :attr:`resets` moves when it begins and when
        it ends, so a delivery that overlaps it in any way sees another count."""
        self.resets += 1
        try:
            yield
        finally:
            self.resets += 1

    async def perform_seek(self) -> None:
        with self._resetting():
            await super().perform_seek()

    async def seek(self, partition: TP, offset: int) -> None:
        with self._resetting():
            await super().seek(partition, offset)

    async def seek_wait(self, partitions: Mapping[TP, int]) -> None:
        with self._resetting():
            await super().seek_wait(partitions)

    async def seek_to_committed(self) -> Mapping[TP, int]:
        with self._resetting():
            return await super().seek_to_committed()

    async def highwaters(self, *partitions: TP) -> Mapping[TP, int]:
        """Faust's (the recovery reads changelogs up to these), checked against a fetch's
        high watermark: Tansu's ListOffsets can fall short of the real end
        (:mod:`streams.runtime.end_offsets`)."""
        ends = await super().highwaters(*partitions)
        connection = getattr(self.transport, "probe_connection", None)
        if connection is None or self.in_transaction:  # in a transaction Faust reads no end offsets
            return ends
        return await fetched_end_offsets(connection, dict(ends))

    def resume_partitions(self, tps: Iterable[TP]) -> None:
        tps = list(tps)
        now_ms = time.time() * 1000
        self._resumed_ms.update((tp, now_ms) for tp in tps)
        super().resume_partitions(tps)

    def fetched_end(self, tp: TP) -> int | None:
        """The end of ``tp``'s log as of a fetch it was in; ``None`` while it is paused, and
        after a resume until a fetch has brought its end up to date (a paused partition is
        not fetched, so its last end goes stale while records pile up on the broker), or
        when it is not assigned here."""
        if tp in paused_partitions(self):
            return None
        try:
            consumer = kafka_consumer(self)
            fetched_ms = consumer.last_poll_timestamp(tp)
            if fetched_ms is None or fetched_ms <= self._resumed_ms.get(tp, -math.inf):
                return None
            return consumer.highwater(tp)  # type: ignore[no-any-return]
        except (AssertionError, AttributeError, ConsumerNotStarted):  # aiokafka asserts the assignment
            return None

    def membership_lost(self) -> bool:
        """Whether the group may have dropped this worker: the coordinator forgot its member
        id (aiokafka resets it when a heartbeat or commit finds the session expired), or no
        heartbeat has succeeded for a session timeout (a process SIGSTOPped or paused that
        long: the broker expired it meanwhile, and its own heartbeat has not found out yet).
        Its partitions may have other owners then, which applied and saved more than it
        holds. False before the first assignment (nothing is held then)."""
        coordinator = group_coordinator(self)
        if coordinator is None:
            return False
        if coordinator.member_id == JoinGroupRequest.UNKNOWN_MEMBER_ID:
            return True
        return self._confirmed_at is not None and time.monotonic() - self._confirmed_at > self.app.conf.broker_session_timeout

    def _watch_heartbeats(self) -> None:
        """Note when the group last confirmed this member: now (an assignment just came), and
        at each heartbeat that succeeds."""
        coordinator = group_coordinator(self)
        if coordinator is None:
            return
        self._confirmed_at = time.monotonic()
        on_heartbeat_ok(coordinator, self._confirmed)

    def _confirmed(self) -> None:
        self._confirmed_at = time.monotonic()

    async def on_partitions_revoked(self, revoked: set[TP]) -> None:
        with self._resetting():
            await super().on_partitions_revoked(revoked)

    async def on_partitions_assigned(self, assigned: set[TP], generation_id: int = 0) -> None:
        self._watch_heartbeats()
        with self._resetting():
            await super().on_partitions_assigned(assigned, generation_id)


class Transport(aiokafka_driver.Transport):
    """Faust's aiokafka transport, creating :class:`Consumer`."""

    Consumer = Consumer
    #: the longest a fetch of the worker's consumer waits (``None``: Faust's 1500 ms)
    fetch_max_wait_ms: int | None = None
    #: how the end-offset probe connects (``None``: Faust's end offsets unchecked)
    probe_connection: dict[str, Any] | None = None


def install(
    app: faust.App, *, fetch_max_wait_ms: int | None = None, probe_connection: dict[str, Any] | None = None,
) -> None:
    """Give ``app`` the transport whose consumer is :class:`Consumer` (before it starts);
    its fetches wait at most ``fetch_max_wait_ms``, and the end offsets its recovery reads
    up to are checked by a probe connected with ``probe_connection``."""
    if consumer_created(app):
        raise RuntimeError("install the transport before the app's consumer is created")
    transport = Transport(app.conf.broker_consumer, app)
    transport.fetch_max_wait_ms = fetch_max_wait_ms
    transport.probe_connection = probe_connection
    app.transport = transport
