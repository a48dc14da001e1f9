"""Faust's (and mode's) private internals that driftstream relies on, all of them, here.

Faust offers no public way to do what these do; everything else in driftstream uses its
public API. Each is tied to the minor versions of faust-streaming, mode-streaming and
aiokafka that pyproject.toml pins (:data:`TESTED`), and
``tests/unit/runtime/test_faust_private.py`` fails, naming the attribute, if an upgrade
changes one. On an upgrade, re-read Faust's
``faust/transport/consumer.py``, ``faust/transport/drivers/aiokafka.py`` and
``faust/types/tuples.py`` against the copies below (:meth:`ConsumerLoop._drain_messages`
with ``Consumer.getmany``, :meth:`ConsumerLoop._wait_next_records`, :func:`ack_messages`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping, MutableMapping, Set
from typing import Any, cast

import aiokafka
import faust
from faust.exceptions import ConsumerNotStarted
from faust.tables import TableManager as FaustTableManager
from faust.transport.consumer import CONSUMER_FETCHING
from faust.transport.drivers import aiokafka as aiokafka_driver
from faust.types import TP, ChannelT, Message
from faust.types.tuples import ack_lock
from mode import Service, ServiceT
from mode.utils.queues import ThrowableQueue

__all__ = [
    "TESTED", "TESTED_FAUST", "ConsumerLoop", "ConsumerThread", "RecordBufferTopic", "TableManager", "ThrowingQueue",
    "ack_messages", "channels_of",
    "committed_offset", "consumer_created", "kafka_consumer", "paused_partitions", "read_offsets",
]

#: The faust-streaming minor version these internals were checked against.
TESTED_FAUST = "0.15"
#: Each package whose internals this module uses, and the minor version checked.
TESTED = {"faust-streaming": TESTED_FAUST, "mode-streaming": "0.7", "aiokafka": "0.14"}


# -- state Faust keeps without a public accessor ---------------------------------------------
def read_offsets(consumer: faust.types.ConsumerT) -> MutableMapping[TP, int | None]:
    """Faust's read position per partition (the last offset handed to the conductor); the
    delivery loop moves it and the lag metric reads it."""
    return cast(MutableMapping[TP, "int | None"], consumer._read_offset)  # type: ignore[attr-defined]


def committed_offset(consumer: faust.types.ConsumerT, tp: TP) -> int | None:
    """The offset Faust last committed for ``tp`` (its public ``committed`` asks the broker)."""
    return cast("int | None", consumer._committed_offset.get(tp))  # type: ignore[attr-defined]


def channels_of(app: faust.App, tp: TP) -> Set[ChannelT]:
    """The channels the conductor routes ``tp``'s records to (its routing index); empty when
    none."""
    return cast(Set[ChannelT], app.topics._tp_index.get(tp, frozenset()))  # type: ignore[attr-defined]


def producer_backlog(app: faust.App) -> Callable[[], int]:
    """How many messages wait in Faust's producer buffer, as ``ProducerBuffer.size`` counts
    them, without reading the app's settings at each call (the conductor asks per record)."""
    buffer = app.producer.buffer
    if app.conf.producer_threaded:  # its queue comes with the producer's thread
        return lambda: buffer.size  # type: ignore[no-any-return]
    return buffer.pending._queue.__len__  # type: ignore[attr-defined, no-any-return]


def consumer_created(app: faust.App) -> bool:
    """Whether ``app`` has built its consumer (``app.consumer`` would build it)."""
    return app._consumer is not None


def paused_partitions(consumer: faust.types.ConsumerT) -> Set[TP]:
    """The partitions Faust has paused (backpressure or ``pause_partitions``)."""
    return cast(Set[TP], consumer._paused_partitions)  # type: ignore[attr-defined]


def kafka_consumer(consumer: faust.types.ConsumerT) -> aiokafka.AIOKafkaConsumer:
    """The aiokafka consumer behind Faust's (raises ``ConsumerNotStarted`` before it starts),
    for its per-partition fetch state (``highwater``, ``last_poll_timestamp``)."""
    return consumer._thread._ensure_consumer()  # type: ignore[attr-defined, no-any-return]


def group_coordinator(consumer: faust.types.ConsumerT) -> Any:
    """aiokafka's group coordinator behind Faust's consumer (``None`` before it starts), for
    the member id it resets when the group expired this member's session."""
    try:
        return kafka_consumer(consumer)._coordinator  # type: ignore[attr-defined]
    except (AttributeError, ConsumerNotStarted):
        return None


def on_heartbeat_ok(coordinator: Any, callback: Callable[[], None]) -> None:
    """Call ``callback`` after each heartbeat the group answered (aiokafka keeps that moment
    to itself): wraps the coordinator's ``_do_heartbeat``, once per coordinator."""
    if getattr(coordinator, "_driftstream_watched", False):
        return
    heartbeat = coordinator._do_heartbeat

    async def do_heartbeat() -> bool:
        ok = await heartbeat()
        if ok:  # a rebalance in progress counts: the member is still known
            callback()
        return bool(ok)

    coordinator._do_heartbeat = do_heartbeat
    coordinator._driftstream_watched = True


def ack_messages(consumer: faust.types.ConsumerT, messages: Iterable[Message]) -> None:
    """``message.ack(consumer)`` for each of ``messages``, under one hold of Faust's ack lock
    (``Message.ack`` takes it three times per record, through ``decref`` and the final ack)."""
    with ack_lock:
        for message in messages:
            if not message.acked:
                message.refcount = refcount = max(message.refcount - 1, 0)
                if not refcount:
                    message.on_final_ack(consumer)


def _stop_requested(service: ServiceT) -> Callable[[], bool]:
    """mode's "stop was requested" flag of ``service`` (Faust's own loop polls it)."""
    return cast(Service, service)._stopped.is_set


# -- the worker's aiokafka consumer ------------------------------------------------------------
class ConsumerThread(aiokafka_driver.AIOKafkaConsumerThread):
    """Faust's consumer thread; the aiokafka consumer it creates waits at most
    ``transport.fetch_max_wait_ms`` for a fetch (Faust hard-codes 1500 ms, and on a broker
    that holds an empty fetch that long every hop of the pipeline adds it)."""

    def _create_worker_consumer(self, transport: aiokafka_driver.Transport) -> aiokafka.AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        cap = getattr(transport, "fetch_max_wait_ms", None)
        if cap is not None:  # read by AIOKafkaConsumer.start, which has not run yet
            consumer._fetch_max_wait_ms = min(consumer._fetch_max_wait_ms, cap)
        return consumer


# mode names a service's logger after its class's module: keep Faust's, whose level the
# worker's logging configuration sets (this one would log every start and stop)
ConsumerThread.logger = aiokafka_driver.AIOKafkaConsumerThread.logger


# -- the fetch-and-deliver loop ----------------------------------------------------------------
#: Longest the loop waits on the partitions it fetches (Faust: 1 s) before it looks at the
#: active partitions again. A worker's start paid Faust's second: the fetch in flight when the
#: recovery finished covered the changelogs alone, and the inputs waited for it to time out.
IDLE_WAIT_S = 0.1

class ConsumerLoop(aiokafka_driver.Consumer):
    """Faust's aiokafka consumer with its private fetch-and-deliver loop overridden, so that
    a subclass decides through public-named hooks: :meth:`already_read` (skip a fetched
    record), :meth:`deliver` (hand it over), :meth:`deliver_run` (hand over many of a fetch
    at once) and :attr:`resets` (how many resets of the read offsets began or ended; a fetch
    that one overtook marks no gap)."""

    #: moved by the subclass around every reset of the read offsets
    resets: int = 0

    def _new_consumer_thread(self) -> aiokafka_driver.AIOKafkaConsumerThread:
        return ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    def already_read(self, tp: TP, offset: int) -> bool:
        """Faust's rule: a record below the read offset was delivered already."""
        read = read_offsets(self).get(tp)
        return read is not None and offset < read

    async def deliver(self, tp: TP, message: Message) -> None:
        """Faust's delivery: the conductor's callback, abandoned if the flow is suspended."""
        await self.wait_first(self.callback(message), self.suspend_flow.wait())
        read_offsets(self)[tp] = message.offset

    async def seek_in_thread(self, partition: TP, offset: int) -> None:
        """aiokafka's seek, in the consumer's own thread, as Faust's ``seek_wait`` runs it
        (in the caller's thread it raced the fetcher, which crashed on a ``KeyError``)."""
        await self._thread.call_thread(self._thread.seek, partition, offset)

    async def _seek(self, partition: TP, offset: int) -> None:
        await self.seek_in_thread(partition, offset)

    async def _wait_next_records(self, timeout: float) -> tuple[Any, frozenset[TP] | None]:
        """Faust's, except that the fetch and the delivery loop both work on a copy of the
        active partitions taken when the fetch starts: Faust passes its live set, which a
        revocation or a pause changes during the fetch, and the loop then dropped records the
        broker client had moved past (an empty set even means *every* partition to aiokafka)."""
        if not self.flow_active:
            await self.wait(self.can_resume_flow)  # type: ignore[arg-type]
        try:
            self.not_waiting_next_records.set()
            if self.app.client_only:
                return await self._getmany(active_partitions=None, timeout=timeout), None
            active = frozenset(self._get_active_partitions())
            if not active:
                await self.sleep(IDLE_WAIT_S)  # nothing to fetch: still yield to the event loop
                return {}, active
            return await self._getmany(active_partitions=active, timeout=timeout), active
        finally:
            self.not_waiting_next_records.set()

    def deliver_run(self, tp: TP, messages: list[Message], start: int = 0) -> int:
        """Hand over at once, without waiting, as many of ``messages[start:]`` (what a fetch
        returned for ``tp``, in offset order) as can go so; how many. The next goes through
        :meth:`deliver`, then the rest are offered here again. Only records
        :meth:`already_read` never skips may go this way. Faust's loop: none."""
        return 0

    async def _fetch(self) -> tuple[Any, frozenset[TP] | None, int | None]:
        """Faust's ``getmany`` up to its per-record loop: one fetch (``None`` when there is
        nothing to deliver), the partitions it covered and the consumer generation it was
        made in; with the flow suspended, Faust's seek back to the committed offsets."""
        records, active = await self._wait_next_records(IDLE_WAIT_S)
        generation = self.app.consumer_generation_id
        if records is None or self.should_stop:
            return None, active, generation
        if not self.flow_active:
            try:
                await self.perform_seek()
            except Exception as ex:
                self.log.warning(f"exception performing seek when flow not active {ex}")
            return None, active, generation
        return records, active, generation

    #: records handed over since the loop last yielded to the event loop (Faust's: every 100)
    _since_yield: int = 0

    async def _deliver_fetched(self, tp: TP, messages: list[Message], generation: int | None) -> bool:
        """Hand over what a fetch returned for ``tp``: as many at once as can go so
        (:meth:`deliver_run`), then one Faust's way (it waits for room, the flow, the
        producer), then the rest at once again. False when the flow stopped or the consumer
        generation changed before all went (Faust's ``getmany`` stops the whole fetch then)."""
        app = self.app
        i, n = 0, len(messages)
        while i < n:
            if not self.flow_active or app.consumer_generation_id != generation:
                return False
            done = self.deliver_run(tp, messages, i)
            if done:
                i += done
                self._since_yield += done
            else:
                message = messages[i]
                i += 1
                self._since_yield += 1
                if self.already_read(tp, message.offset):
                    continue
                await self._commit_if_due()
                await self.deliver(tp, message)
            if self._since_yield > 100:
                self._since_yield = 0
                await asyncio.sleep(0)
        return True

    async def _commit_if_due(self) -> None:
        """Faust's commit every ``broker_commit_every`` acks, checked before a delivery."""
        if self._commit_every is not None and self._n_acked >= self._commit_every:
            self._n_acked = 0
            await self.commit()

    async def _drain_messages(self, fetcher: ServiceT) -> None:  # pragma: no cover (Faust's loop)
        """Faust's loop, a partition's records at a time: what a fetch returned for a
        partition is made into Faust's messages at once, and as many as can go are handed
        over at once (:meth:`deliver_run`); the rest one at a time, skipped and delivered
        through :meth:`already_read` and :meth:`deliver`. No gap is marked by a fetch that a
        reset overtook. As Faust's, it stops delivering a fetch when the flow stops or the
        consumer generation changes."""
        consumer_should_stop = _stop_requested(self)
        fetcher_should_stop = _stop_requested(fetcher)
        get_read_offset = read_offsets(self).__getitem__
        set_flag = self.diag.set_flag
        unset_flag = self.diag.unset_flag
        acks_enabled_for = self.app.topics.acks_enabled_for
        track_end_offset = self.app.monitor.track_tp_end_offset
        to_message = self._to_message
        app = self.app
        try:
            while not (consumer_should_stop() or fetcher_should_stop()):
                set_flag(CONSUMER_FETCHING)
                await self.sleep(0)
                if not self.should_stop:
                    records, active, generation = await self._fetch()
                    fetched_after = self.resets
                    for tp, fetched in (records or {}).items():
                        if not self.flow_active or app.consumer_generation_id != generation:
                            break
                        if not (active is None or tp in active or tp in self._buffered_partitions) or not fetched:
                            continue
                        track_end_offset(tp, self.highwater(tp))
                        messages = [to_message(tp, record) for record in fetched]
                        await self._commit_if_due()
                        # the gaps Faust's loop marks record by record, before any delivery
                        if self.resets == fetched_after and acks_enabled_for(tp.topic):
                            for gap_from, gap_to in offset_gaps(get_read_offset(tp), messages):
                                await self._add_gap(tp, gap_from, gap_to)
                        if not await self._deliver_fetched(tp, messages, generation):
                            break  # the flow stopped or the generation changed: as Faust's getmany
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


def offset_gaps(read_offset: int | None, messages: list[Message]) -> list[tuple[int, int]]:
    """The gaps Faust's loop marks while it delivers ``messages`` (one fetch of a partition,
    in offset order) after ``read_offset``: for each record more than one past the read
    offset (which each record moves up to itself), from the one after it through the record's
    own offset (Faust's bounds); none while the read offset is unknown or 0 (Faust's rule)."""
    first, last = messages[0].offset, messages[-1].offset
    if (not read_offset or first - read_offset <= 1) and last - first == len(messages) - 1:
        return []  # consecutive: the usual case, without a loop
    gaps = []
    previous = read_offset
    for message in messages:
        offset = message.offset
        if previous and offset - previous > 1:
            gaps.append((previous + 1, offset))
        previous = offset if previous is None else max(previous, offset)
    return gaps


# -- the table manager ------------------------------------------------------------------------
class TableManager(FaustTableManager):
    """Faust's table manager without the second its ``on_start`` sleeps before it starts the
    tables' changelog channels and the recovery (the consumer joins the group only after
    that, so every worker start paid it). driftstream declares every table before the app
    starts (:func:`streams.runtime.app.create_app`), so there is nothing to wait for."""

    async def on_start(self) -> None:
        if not self.should_stop:
            await self._update_channels()
            await self.recovery.start()


TableManager.logger = FaustTableManager.logger  # Faust's logger, as for ConsumerThread


# -- channel buffers of our own making -------------------------------------------------------
class ThrowingQueue(ThrowableQueue):
    """mode's channel buffer with its private error hook forwarded to :meth:`thrown`: Faust
    stops an agent with ``channel.queue._throw(exc)``."""

    def _throw(self, exc: BaseException) -> None:
        self.thrown(exc)

    def thrown(self, exc: BaseException) -> None:
        """Keep ``exc`` for the next ``get`` (mode's own rule hands it to a waiting getter)."""
        super()._throw(exc)

    def keep_error(self, exc: BaseException) -> None:
        """Queue ``exc`` where mode's ``get_nowait`` raises it from."""
        self._errors.append(exc)

    def take_error(self) -> BaseException | None:
        """The oldest error thrown and not yet raised, removed; ``None`` when none."""
        return self._errors.popleft() if self._errors else None


class RecordBufferTopic(faust.Topic):
    """A Faust topic whose channels put the fetched records themselves (undecoded) into a
    buffer of the subclass's making (:meth:`new_buffer`), and whose clones keep the
    subclass's own arguments (:meth:`clone_kwargs`); both are Faust's private hooks."""

    def new_buffer(self) -> ThrowableQueue:
        raise NotImplementedError

    def clone_kwargs(self) -> dict[str, Any]:
        return {}

    def _clone_args(self) -> Mapping[str, Any]:
        return {**super()._clone_args(), **self.clone_kwargs()}

    def _compile_decode(self) -> None:
        async def records_as_they_are(message: Message, *, propagate: bool = False) -> Message:
            return message

        self.decode = records_as_they_are  # type: ignore[method-assign]

    @property
    def queue(self) -> ThrowableQueue:
        if self._queue is None:
            self._queue = self.new_buffer()
        return self._queue
