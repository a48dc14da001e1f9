"""Faust's Kafka consumer, with a delivery loop that costs less per record.

Faust's consumer hands each fetched record to the conductor through
``Service.wait_first(callback(message), suspend_flow.wait())``: four tasks and an
``asyncio.wait`` per record, so that a delivery blocked on a full stream buffer can be
abandoned when a rebalance suspends the flow. Measured with one event per record (kcat),
that was about a tenth of the worker's time. :class:`Consumer` calls the callback directly
when it cannot block: the flow is not suspended and every channel of the record's partition
is a micro-batch buffer (:class:`~streams.batching.BatchQueue`, the pipeline's input
topics) with room (so the conductor puts the record without waiting). Otherwise (table
changelogs during a recovery, Faust's own streams, a full buffer) it takes Faust's path,
unchanged. Everything else (gap tracking, commit cadence) is Faust's loop as it is.

Two fixes to Faust's loop, for both paths. A delivery can outlast a reset of the read
offsets: a record fetched before a rebalance waits in the conductor while the recovery seeks
the partitions back to their committed offsets (:meth:`perform_seek`), then the flow resumes,
the waiting delivery ends, and Faust set the partition's read offset to that stale record's
offset, after the seek. Its loop then dropped every re-read record below that offset as
already read: a worker restarted after a SIGKILL read its whole backlog and applied none of
it (seen here in 3 runs), and Faust skipping 28-37 records after a SIGKILL is likely the same
race. So:

- the consumer counts the resets of its read offsets (seeks, revocations, assignments), and
  a delivery during which one began leaves the read offset where the reset put it (nor does
  a fetch that a reset overtook mark offsets it skipped over as a gap to commit past);
- no record of the pipeline's input topics that the broker client returns is dropped for
  being below the read offset: outside these races that never happens, and within them the
  record is one the pipeline has not applied. A record delivered twice costs nothing (the
  pipeline's state keeps the offsets it applied and skips what they cover). Faust's own
  topics (table changelogs) keep Faust's rule.
- a record served at or below one already delivered of its partition, with no reset in
  between, is recorded in :attr:`Consumer.went_back`: aiokafka reset a read position past
  the end of the log to its start, so the log lost its tail (a restarted memory-only
  broker), and the pipeline stops rather than apply another log's records to its state.

A fetch works on a copy of the active partitions taken when it starts. Faust passes the
set itself to the broker client, which waits up to a second for records of those partitions
while Faust's rebalance and pause methods change the set in place; the delivery loop then
drops the records of every partition no longer in it, although the client has moved past
them. Two ways that lost records:

- a revocation empties the set, and aiokafka reads an empty set as *every* partition: the
  fetch returned the table changelog records that a recovery was about to read, the loop
  dropped them, and the recovery waited for them forever (a worker that kept partitions in
  a rebalance applied nothing more; seen under load in about 1 run of 3);
- a pause (the join's watermark alignment) dropped the rest of what was fetched of the
  partitions it paused, which the gap guard then re-read after offset-gap warnings.

With the copy, what the client returns is delivered (a revoked partition's records are
still dropped, by Faust's generation check, and read again by its next owner from the
committed offsets).

:meth:`Consumer.membership_lost` tells the pipeline when the group may have dropped this
member (its session expired, or no heartbeat succeeded for a session timeout): it then saves
nothing of what it holds, since the group's other members may own those partitions already.

And one to Faust's ``seek`` (the gap guard's rewinds): it called aiokafka's seek in the
caller's thread, while the consumer's thread fetched, and aiokafka's fetcher crashed on a
``KeyError`` for the partition (seen in a kill run). The seek now runs in the consumer's
thread, as Faust's own ``seek_wait`` does.

:func:`install` makes an app's consumer one of these; call it before the app starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from typing import Any, cast

import faust
from aiokafka.protocol.group import JoinGroupRequest
from faust.exceptions import ConsumerNotStarted
from faust.transport.consumer import CONSUMER_FETCHING
from faust.transport.drivers import aiokafka as aiokafka_driver
from faust.types import TP, Message
from mode import Service, ServiceT

from .batching import BatchQueue

__all__ = ["Consumer", "Transport", "install"]

#: The attribute of aiokafka's group coordinator that holds when the group last confirmed
#: this member (see :meth:`Consumer.membership_lost`).
_HEARTBEAT_OK_AT = "_driftstream_heartbeat_ok_at"


class Consumer(aiokafka_driver.Consumer):
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
        #: partition -> when (ms since the epoch) :meth:`resume_partitions` last resumed it
        self._resumed_ms: dict[TP, float] = {}

    def _feeds_batch_buffers(self, tp: TP) -> bool:
        """Whether every channel ``tp``'s records go to is a micro-batch buffer (the
        pipeline's input topics; no channel, no answer)."""
        channels = self.app.topics._tp_index.get(tp)  # the conductor's own routing index
        return bool(channels) and all(type(channel.queue) is BatchQueue for channel in channels)

    def _already_read(self, tp: TP, offset: int) -> bool:
        """Whether the loop skips a fetched record as already read: below the read offset,
        of one of Faust's own topics (see the module docstring)."""
        read = self._read_offset.get(tp)
        return read is not None and offset < read and not self._feeds_batch_buffers(tp)

    def _delivers_without_waiting(self, tp: TP) -> bool:
        """True when the conductor would put a record of ``tp`` into every subscribed
        channel's micro-batch buffer at once: the flow is on (the conductor waits for the
        app's flow control first) and every channel is a micro-batch buffer with room."""
        return (
            self.app.flow_control.is_active()
            and self._feeds_batch_buffers(tp)
            and not any(channel.queue.full() for channel in self.app.topics._tp_index[tp])
        )

    async def deliver(self, tp: TP, message: Message) -> None:
        """Hand one fetched record to the conductor and move ``tp``'s read offset to it,
        unless the read offsets were reset meanwhile (then it stays where the reset put it).
        A record served at or below one already delivered with no reset in between is
        recorded in :attr:`went_back` first."""
        resets = self.resets
        last = self._delivered.get(tp)
        generation = getattr(message, "generation_id", None)
        # a rebalance in between (another generation) re-reads from the committed offsets,
        # even when no reset of the read offsets was seen here
        if last is not None and last[1] == resets and last[2] == generation and message.offset <= last[0]:
            # served at or below a record already delivered, with no seek, revocation or
            # assignment since: the broker client reset a read position that the log no
            # longer reached, past its end. The log lost its tail (a restarted memory-only
            # broker, a topic deleted and recreated); what follows is another log's records.
            self.went_back.setdefault(tp, (last[0], message.offset))
        if not self.suspend_flow.is_set() and self._delivers_without_waiting(tp):
            await self.callback(message)
        else:
            await self.wait_first(self.callback(message), self.suspend_flow.wait())
        if self.resets == resets:
            self._read_offset[tp] = message.offset
            self._delivered[tp] = (message.offset, resets, generation)
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

    async def _seek(self, partition: TP, offset: int) -> None:
        """aiokafka's seek, run in the consumer's own thread, as Faust's ``seek_wait`` runs
        it (see the module docstring)."""
        await self._thread.call_thread(self._thread.seek, partition, offset)

    async def seek(self, partition: TP, offset: int) -> None:
        with self._resetting():
            await super().seek(partition, offset)

    async def seek_wait(self, partitions: Mapping[TP, int]) -> None:
        with self._resetting():
            await super().seek_wait(partitions)

    async def seek_to_committed(self) -> Mapping[TP, int]:
        with self._resetting():
            return await super().seek_to_committed()

    async def _wait_next_records(self, timeout: float) -> tuple[Any, frozenset[TP] | None]:
        """Faust's, except that the fetch and the delivery loop both work on a copy of the
        active partitions taken when the fetch starts (see the module docstring)."""
        if not self.flow_active:
            await self.wait(self.can_resume_flow)  # type: ignore[arg-type]
        try:
            self.not_waiting_next_records.set()
            if self.app.client_only:
                return await self._getmany(active_partitions=None, timeout=timeout), None
            active = frozenset(self._get_active_partitions())
            if not active:
                await self.sleep(1)  # nothing to fetch: still yield to the event loop
                return {}, active
            return await self._getmany(active_partitions=active, timeout=timeout), active
        finally:
            self.not_waiting_next_records.set()

    def resume_partitions(self, tps: Iterable[TP]) -> None:
        tps = list(tps)
        now_ms = time.time() * 1000
        self._resumed_ms.update((tp, now_ms) for tp in tps)
        super().resume_partitions(tps)

    def membership_lost(self) -> bool:
        """Whether the group may have dropped this worker: the coordinator forgot its member
        id (aiokafka resets it when a heartbeat or commit finds the session expired), or no
        heartbeat has succeeded for a session timeout (a process SIGSTOPped or paused that
        long: the broker expired it meanwhile, and its own heartbeat has not found out yet).
        Its partitions may have other owners then, which applied and saved more than it
        holds. False before the first assignment (nothing is held then)."""
        coordinator = self._coordinator()
        if coordinator is None:
            return False
        if coordinator.member_id == JoinGroupRequest.UNKNOWN_MEMBER_ID:
            return True
        confirmed = getattr(coordinator, _HEARTBEAT_OK_AT, None)
        return confirmed is not None and time.monotonic() - confirmed > self.app.conf.broker_session_timeout

    def _coordinator(self) -> Any:
        try:
            return self._thread._ensure_consumer()._coordinator
        except (AttributeError, ConsumerNotStarted):
            return None

    def _watch_heartbeats(self) -> None:
        """Stamp the group coordinator with when the group last confirmed this member: now
        (an assignment just came), and at each heartbeat that succeeds (aiokafka keeps that
        time to itself). Installed once per coordinator."""
        coordinator = self._coordinator()
        if coordinator is None:
            return
        setattr(coordinator, _HEARTBEAT_OK_AT, time.monotonic())
        if getattr(coordinator, "_driftstream_watched", False):
            return
        heartbeat = coordinator._do_heartbeat

        async def do_heartbeat() -> bool:
            ok = await heartbeat()
            if ok:  # a rebalance in progress counts: the member is still known
                setattr(coordinator, _HEARTBEAT_OK_AT, time.monotonic())
            return bool(ok)

        coordinator._do_heartbeat = do_heartbeat
        coordinator._driftstream_watched = True

    def fetched_end(self, tp: TP) -> int | None:
        """The end of ``tp``'s log as of a fetch it was in; ``None`` while it is paused, and
        after a resume until a fetch has brought its end up to date (a paused partition is
        not fetched, so its last end goes stale while records pile up on the broker), or
        when it is not assigned here."""
        if tp in self._paused_partitions:
            return None
        try:
            consumer = self._thread._ensure_consumer()
            fetched_ms = consumer.last_poll_timestamp(tp)
            if fetched_ms is None or fetched_ms <= self._resumed_ms.get(tp, -math.inf):
                return None
            return consumer.highwater(tp)  # type: ignore[no-any-return]
        except (AssertionError, AttributeError, ConsumerNotStarted):  # aiokafka asserts the assignment
            return None

    async def on_partitions_revoked(self, revoked: set[TP]) -> None:
        with self._resetting():
            await super().on_partitions_revoked(revoked)

    async def on_partitions_assigned(self, assigned: set[TP], generation_id: int = 0) -> None:
        self._watch_heartbeats()
        with self._resetting():
            await super().on_partitions_assigned(assigned, generation_id)

    async def _drain_messages(self, fetcher: ServiceT) -> None:  # pragma: no cover (Faust's loop)
        getmany = self.getmany
        consumer_should_stop = cast(Service, self)._stopped.is_set
        fetcher_should_stop = cast(Service, fetcher)._stopped.is_set
        get_read_offset = self._read_offset.__getitem__
        set_flag = self.diag.set_flag
        unset_flag = self.diag.unset_flag
        commit_every = self._commit_every
        acks_enabled_for = self.app.topics.acks_enabled_for
        deliver = self.deliver
        yield_every = 100
        num_since_yield = 0
        sleep = asyncio.sleep
        try:
            while not (consumer_should_stop() or fetcher_should_stop()):
                set_flag(CONSUMER_FETCHING)
                ait = cast(AsyncIterator[tuple[TP, Any]], getmany(timeout=1.0))
                await self.sleep(0)
                if not self.should_stop:
                    fetched_after = self.resets
                    async for tp, message in ait:
                        num_since_yield += 1
                        if num_since_yield > yield_every:
                            await sleep(0)
                            num_since_yield = 0
                        offset = message.offset
                        r_offset = get_read_offset(tp)
                        if self._already_read(tp, offset):
                            continue
                        gap = offset - (r_offset or 0)
                        if gap > 1 and r_offset and self.resets == fetched_after and acks_enabled_for(message.topic):
                            await self._add_gap(tp, r_offset + 1, offset)
                        if commit_every is not None and self._n_acked >= commit_every:
                            self._n_acked = 0
                            await self.commit()
                        await deliver(tp, message)
                    unset_flag(CONSUMER_FETCHING)
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                self.log.info("Broker stopped consumer, shutting down...")
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                self.log.info("Consumer shutting down for user cancel.")
                return
            raise
        except Exception:
            self.log.exception("Drain messages raised")
            raise
        finally:
            unset_flag(CONSUMER_FETCHING)


class Transport(aiokafka_driver.Transport):
    """Faust's aiokafka transport, creating :class:`Consumer`."""

    Consumer = Consumer


def install(app: faust.App) -> None:
    """Give ``app`` the transport whose consumer is :class:`Consumer` (before it starts)."""
    if app._consumer is not None:  # Faust builds it lazily, on first use
        raise RuntimeError("install the transport before the app's consumer is created")
    app.transport = Transport(app.conf.broker_consumer, app)
