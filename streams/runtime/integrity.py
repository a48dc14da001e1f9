"""Broker integrity: stop the worker when the broker lost what it had applied or written.

A restarted memory-only broker, or topics deleted and recreated, leave logs that end
below the offsets applied, or that served an offset again with no seek, and changelogs
that no longer reach what this worker wrote. Against such a broker neither the state nor
the committed offsets mean anything, and Faust would wait forever to recover them: the
worker exits with :data:`EXIT_BROKER_LOST_DATA`, and restarted starts from what the broker
holds. A problem with the changelogs must be seen by two probes in a row (a missing topic
can be a passing metadata hiccup).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable

import faust
from aiokafka import TopicPartition
from aiokafka.consumer import AIOKafkaConsumer
from aiokafka.errors import KafkaError
from faust.exceptions import ConsumerNotStarted
from faust.types import TP, Message

from streams.ops.metrics import Metrics
from streams.runtime.end_offsets import first_offset_from
from streams.runtime.table_writes import TableWriter
from streams.settings import Settings

__all__ = ["CONNECT_TIMEOUT_S", "EXIT_BROKER_LOST_DATA", "VERIFY_RETRY_S", "BrokerIntegrity"]

log = logging.getLogger(__name__)

#: Exit status of a worker that found the broker's log behind what it had applied (sysexits
#: EX_TEMPFAIL): a supervisor restarts it, and the restarted worker starts from the broker's state.
EXIT_BROKER_LOST_DATA = 75
#: Seconds between the changelog probes of :meth:`BrokerIntegrity.verified`.
VERIFY_RETRY_S = 0.5
#: Seconds :meth:`BrokerIntegrity.check_broker` waits for the first bootstrap server to accept.
CONNECT_TIMEOUT_S = 1.0


class BrokerIntegrity:
    """The checks, and the consumers outside the group that they read the broker with."""

    def __init__(self, app: faust.App, settings: Settings, metrics: Metrics, writer: TableWriter,
                 on_fatal: Callable[[str, int], None]) -> None:
        self.app = app
        self.settings = settings
        self.metrics = metrics
        self.writer = writer
        self.on_fatal = on_fatal
        self.broker_reachable: bool | None = None  # None: not checked yet
        # the broker could not be reached since the changelogs were last found whole: what
        # comes back may be a broker that lost its data (see verified)
        self.unverified = False
        self._suspected: set[TP] = set()
        self._probe: AIOKafkaConsumer | None = None
        #: the gap guard's reader (assigned partitions, so not the probe); one read at a time
        self.reader: AIOKafkaConsumer | None = None
        self._reader_lock = asyncio.Lock()

    def highwater(self, tp: TP) -> int | None:
        """The end of ``tp``'s log as of the consumer's last fetch of it; ``None`` before
        one, or when ``tp`` is not (or no longer) assigned to this worker."""
        try:
            return self.app.consumer.highwater(tp)  # type: ignore[no-any-return]
        except (AssertionError, AttributeError, ConsumerNotStarted):  # aiokafka asserts the assignment
            return None

    def log_went_back(self, messages: Iterable[Message]) -> bool:
        """Stop before applying a batch from a log that served an offset at or below one
        already delivered, with no seek in between (:attr:`streams.runtime.consumer.Consumer.went_back`):
        its tail is gone, and the records to come are another log's, which this state would
        skip as replays, then join onto. :meth:`check_log_continuity` misses it once the new
        log has grown past the offsets applied. True if it stopped."""
        went_back = getattr(self.app.consumer, "went_back", None)
        if not went_back:
            return False
        for msg in messages:
            seen = went_back.get(msg.tp)
            if seen is None:
                continue
            if self._reaches(msg.tp, seen[0]) or msg.tp not in self.app.consumer.assignment():
                # the log still holds what was delivered: a re-read (a rebalance's seek to the
                # committed offsets that the consumer did not count), skipped as applied. Or
                # the partition is no longer this worker's and its end unknown here (a worker
                # rejoining after a pause past the session timeout re-read a record whose
                # batch came after the revocation): its new owner checks the log
                del went_back[msg.tp]
            else:
                self.broker_lost_data(
                    f"{msg.tp.topic}[{msg.tp.partition}] served offset {seen[1]} after offset {seen[0]} "
                    "with no seek in between: its log lost its tail"
                )
                return True
        return False

    def _reaches(self, tp: TP, offset: int) -> bool:
        """Whether ``tp``'s log, as of the last fetch, still reaches past ``offset`` (a new
        log grown that far is caught by the join's timestamp check at its last offset)."""
        highwater = self.highwater(tp)
        return highwater is not None and highwater > offset

    async def verified(self) -> bool:
        """Before a batch applies, after the broker could not be reached (:meth:`check_broker`):
        make sure it came back with what this worker wrote, and stop if not. A restarted
        memory-only broker comes back empty, and its new logs can grow past the read
        positions before the consumer fetches again. False if the worker stopped."""
        while self.unverified:
            problems = await self.changelog_problems()
            if problems is not None and self._stop_if_confirmed(problems):
                return False
            if problems == {}:
                self.unverified = False
                break
            await asyncio.sleep(VERIFY_RETRY_S)
        return True

    def check_log_continuity(self, partition: int, offsets: dict[str, int]) -> None:
        """Stop if an input log of join ``partition`` now ends below an offset it applied
        (``offsets``: role -> offset): new records would reuse old offsets, and the join
        would skip them as replays."""
        for role, applied in offsets.items():
            topic = self.settings.topic(role)
            highwater = self.highwater(TP(topic, partition))
            if highwater is not None and highwater <= applied:
                self.broker_lost_data(f"{topic}[{partition}] ends at offset {highwater}, below offset {applied} this worker applied")
                return

    async def check_changelogs(self) -> None:
        """Stop if a state changelog no longer reaches the first record this worker wrote
        to it (not the last: Tansu's end offset can lag a multi-record batch). A broker
        that cannot be reached is not checked (it may come back whole)."""
        problems = await self.changelog_problems()
        if problems is not None:
            self._stop_if_confirmed(problems)

    def _stop_if_confirmed(self, problems: dict[TP, str]) -> bool:
        """Stop on a changelog problem the previous probe saw too; True if it stopped."""
        confirmed = [problems[tp] for tp in problems if tp in self._suspected]
        self._suspected = set(problems)
        if confirmed:
            self.broker_lost_data(confirmed[0])
        return bool(confirmed)

    async def changelog_problems(self) -> dict[TP, str] | None:
        """Each state changelog that no longer reaches the first offset this worker wrote
        to it, with what is wrong; ``None`` when the broker cannot be asked."""
        written = dict(self.writer.written)
        if not written:
            return {}
        try:
            probe = await self._probe_consumer()
            topics = await asyncio.wait_for(probe.topics(), timeout=5.0)
            present = [tp for tp in written if tp.topic in topics]
            ends = await asyncio.wait_for(probe.end_offsets(present), timeout=5.0) if present else {}
        except (asyncio.TimeoutError, KafkaError, OSError):
            return None
        problems: dict[TP, str] = {}
        for tp, offset in written.items():
            end = ends.get(tp)
            if end is None or end <= offset:
                where = "is gone" if end is None else f"ends at offset {end}"
                problems[tp] = f"state changelog {tp.topic}[{tp.partition}] {where}, but this worker wrote offset {offset} (and later ones) to it"
        return problems

    async def _outside_consumer(self) -> AIOKafkaConsumer:
        """A started consumer outside the group (raises while the broker is unreachable)."""
        consumer = AIOKafkaConsumer(**self.settings.kafka_client_kwargs(), group_id=None, enable_auto_commit=False)
        await consumer.start()
        return consumer

    async def _probe_consumer(self) -> AIOKafkaConsumer:
        if self._probe is None:
            self._probe = await self._outside_consumer()
        return self._probe

    async def first_offset(self, topic: str, partition: int, offset: int) -> int | None:
        """The first offset the broker holds in ``topic[partition]`` at or after ``offset``
        (read by a consumer of our own, outside the group); ``None`` if none came in time."""
        async with self._reader_lock:
            if self.reader is None:
                self.reader = await self._outside_consumer()
            return await first_offset_from(self.reader, TopicPartition(topic, partition), offset)

    async def rewind(self, topic: str, partition: int, offset: int) -> None:
        self.metrics.offset_rewinds.labels(topic).inc()
        try:
            await self.app.consumer.seek(TP(topic, partition), offset)
        except KafkaError as exc:  # e.g. revoked meanwhile; the guard asks again later
            log.warning("could not rewind %s[%d] to %d: %r", topic, partition, offset, exc)

    def broker_lost_data(self, what: str) -> None:
        """Exit now with :data:`EXIT_BROKER_LOST_DATA`, writing nothing more to the broker."""
        self.metrics.broker_data_lost.inc()
        self.on_fatal(
            f"{what}: the broker lost its data (a restarted memory-only broker, or topics deleted and "
            f"recreated). Exiting with status {EXIT_BROKER_LOST_DATA}; restart the worker to start from "
            "the broker's current state.",
            EXIT_BROKER_LOST_DATA,
        )

    def membership_lost(self) -> bool:
        """Whether the group may have dropped this worker (see
        :meth:`streams.runtime.consumer.Consumer.membership_lost`): its partitions may have
        other owners that applied and saved more than it holds, so it saves nothing."""
        lost = getattr(self.app.consumer, "membership_lost", None)
        return bool(lost and lost())

    async def check_broker(self) -> None:
        """Whether the first bootstrap server accepts a connection (for ``/ready``), asked
        without blocking the event loop: the worker's agents and timers go on meanwhile."""
        host, port = self.settings.bootstrap_servers.split(",")[0].rsplit(":", 1)
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port)), timeout=CONNECT_TIMEOUT_S)
        except (OSError, asyncio.TimeoutError):
            self.broker_reachable = False
            self.unverified = True
            return
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        self.broker_reachable = True
