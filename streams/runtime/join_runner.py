"""The join agent's runner: micro-batches of input records through the join stage, per
partition, with the state and outbox written before the outputs go out, and each join
partition's progress sent to every monitor-input partition after each group of records.

Per batch: the broker checks first (:class:`~streams.runtime.integrity.BrokerIntegrity`), then per
partition the state (loaded from the table after a rebalance, with what a crash kept its
last batch from writing redone and its outbox published), the gap guard, and the stage
(:class:`~streams.pipeline.stages.JoinStage`). The partitions run side by side: one's join runs
while another waits on the broker.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

import faust
from faust.types import TP, Message

from schemas import codec, topics

from streams.ops import metrics as metrics_module
from streams.ops.metrics import Metrics
from streams.pipeline.event_time import PROGRESS_KEY, progress_payload
from streams.pipeline.stages import InputRecord, JoinStage, Outputs, PartitionJoin, byte_groups, meta_key, owns_join_key
from streams.runtime.batch_guard import BatchGuard
from streams.runtime.faust_private import committed_offset
from streams.runtime.gaps import GapGuard
from streams.runtime.input_progress import InputProgress
from streams.runtime.integrity import BrokerIntegrity
from streams.runtime.publishing import Publisher, delivered
from streams.runtime.table_writes import TableWriter
from streams.settings import Settings

__all__ = ["JoinRunner"]

log = logging.getLogger(__name__)

#: join partition -> its progress (watermark, idle) as last sent
Progress = dict[int, tuple["float | None", bool]]


def _timestamp_ms(message: Message) -> int | None:
    """A record's Kafka timestamp in whole milliseconds (as the broker keeps it)."""
    timestamp = message.timestamp
    return None if timestamp is None else round(timestamp * 1000)


class JoinRunner:
    """The join partitions assigned here: their states, progress and pauses."""

    def __init__(
        self, app: faust.App, settings: Settings, metrics: Metrics, stage: JoinStage, table: faust.Table, *,
        writer: TableWriter, publisher: Publisher, integrity: BrokerIntegrity, gap_guard: GapGuard,
        guard: BatchGuard, on_progress: Callable[[], None],
    ) -> None:
        self.app = app
        self.settings = settings
        self.metrics = metrics
        self.stage = stage
        self.table = table
        self.writer = writer
        self.publisher = publisher
        self.integrity = integrity
        self.gap_guard = gap_guard
        self.guard = guard
        self.on_progress = on_progress  # the alignment looks again (Pipeline.align_inputs)
        self.lock = asyncio.Lock()  # a batch and a hand-over never interleave
        self.role_of = {settings.topic("predictions"): "predictions", settings.topic("ground-truth"): "ground-truth"}
        self.joins: dict[int, PartitionJoin] = {}
        self.messages: dict[int, Message] = {}  # a record of each join partition (its table writes' partition)
        # join partition -> the progress last sent, and when (resent now and then: after a
        # rebalance, an old owner's last record may land after the new owner's)
        self.progress_sent: dict[int, tuple[tuple[float | None, bool], float]] = {}
        self._outbox_checked: set[int] = set()  # join partitions idle before a batch, outbox published
        self.paused: set[int] = set()  # join partitions paused by the alignment
        self.processed_batches = 0
        self.input_progress = InputProgress(
            settings.topic("predictions"), settings.topic("ground-truth"), self._input_end, idle_after_s=settings.idle_after_s,
        )

    def reset(self) -> None:
        """A rebalance: the in-memory views of table state are rebuilt from the table."""
        self.joins.clear()
        self.messages.clear()
        self.progress_sent.clear()
        self._outbox_checked.clear()
        self.pause(set())  # the progress the alignment went by is gone with the caches
        self.input_progress.reset()

    def own_progress(self) -> Progress:
        return {partition: progress for partition, (progress, _) in self.progress_sent.items()}

    # -- state ----------------------------------------------------------------------------
    def _load(self, partition: int) -> PartitionJoin:
        # a recovered tombstone may linger as None: a deleted delta
        items = [(k, v) for k, v in self.table.data.items() if v is not None and owns_join_key(partition, k)]
        return PartitionJoin.load(partition, self.settings.join_window_s, items)

    def committed_offset(self, tp: TP) -> int | None:
        """The group's committed offset of ``tp`` as the consumer knows it; ``None`` when
        none (Faust also stores a committed 0 as ``None``)."""
        return committed_offset(self.app.consumer, tp)

    def applied(self, partition: int) -> dict[str, int | None]:
        """The last offset of each input topic of join partition ``partition`` applied
        here (before its state is loaded: the one before the committed offset)."""
        part = self.joins.get(partition)
        out: dict[str, int | None] = {}
        for role in topics.INPUTS:
            topic = self.settings.topic(role)
            if part is not None and role in part.offsets:
                out[topic] = part.offsets[role]
            else:
                committed = self.committed_offset(TP(topic, partition))
                out[topic] = None if committed is None else committed - 1
        return out

    def _input_end(self, topic: str, partition: int) -> int | None:
        """The end of a join input log as far as the event-time clock may trust it: as of a
        fetch since the alignment last resumed it (:meth:`streams.runtime.consumer.Consumer.fetched_end`);
        ``None`` (unknown: the partition counts as behind) while it is paused, since its last
        end would make it look caught up (and then idle) while records pile up on the broker."""
        return self.app.consumer.fetched_end(TP(topic, partition))  # type: ignore[attr-defined,no-any-return]

    # -- batches --------------------------------------------------------------------------
    async def run(self, messages: list[Message]) -> None:
        """Join a batch of input records, then report each partition's progress."""
        async with self.lock:
            with self.guard("join"):
                await self.handle(messages)
                await self.report_progress({msg.partition for msg in messages})

    async def handle(self, messages: list[Message]) -> None:
        if self.integrity.log_went_back(messages) or not await self.integrity.verified():
            return
        started = time.perf_counter()
        by_partition: dict[int, list[InputRecord]] = {}
        last_message: dict[int, Message] = {}
        role_of = self.role_of
        for msg in messages:
            last_message[msg.partition] = msg
            by_partition.setdefault(msg.partition, []).append(
                InputRecord(role_of[msg.topic], msg.topic, msg.partition, msg.offset, msg.value, _timestamp_ms(msg))
            )
        self.messages.update(last_message)
        m = self.metrics
        screened: list[tuple[PartitionJoin, list[InputRecord]]] = []
        for partition, all_records in by_partition.items():
            part = self.joins.get(partition)
            if part is None:
                part = self.joins[partition] = self._load(partition)
                log.info("join partition %d resumes after offsets %s (seq %d); this batch starts at %s",
                         partition, part.offsets, part.state.seq,
                         {r.role: r.offset for r in reversed(all_records)})  # the first offset per topic
                if part.redo:  # what a crash kept the last committed batch from writing
                    await self.writer.write(self.table, last_message[partition], part.redo)
                    part.redo = []
                if part.outbox:
                    await self.publisher.publish(Outputs.from_json(part.outbox))
            # before a record is skipped as a replay
            self.integrity.check_log_continuity(part.partition, part.offsets)
            screened.append((part, await self.gap_guard.screen(
                partition, {self.settings.topic(role): offset for role, offset in part.offsets.items()},
                all_records, key=lambda r: (r.topic, r.offset),
            )))
        await asyncio.gather(*(self.join_partition(part, records, last_message[part.partition]) for part, records in screened))
        for topic, count in Counter(msg.topic for msg in messages).items():
            m.records_consumed.labels(topic).inc(count)
        m.batch_size.labels("join").observe(len(messages))
        m.batch_duration_seconds.labels("join").observe(time.perf_counter() - started)
        m.table_size.labels("join-state").set(sum(len(p.state.alive) + 1 for p in self.joins.values()))
        self.processed_batches += 1

    async def join_partition(self, part: PartitionJoin, records: list[InputRecord], message: Message) -> None:
        in_flight: list[Any] = []
        for group in byte_groups(records, self.settings.batch_max_bytes):
            in_flight = await self._join_group(part, group, message, in_flight)
        await delivered(in_flight)

    async def _join_group(
        self, part: PartitionJoin, records: list[InputRecord], message: Message, in_flight: list[Any]
    ) -> list[Any]:
        """One bounded group of records: join, then (once the previous group's outputs are
        delivered, since this group's outbox replaces that one) persist state and outbox,
        then send the outputs; returns their delivery futures. The join itself overlaps
        the previous group's delivery."""
        m = self.metrics
        partition = part.partition
        through = self.input_progress.labels_through(partition, self.applied(partition), time.monotonic())
        result = self.stage.process(part, records, labels_through=through)
        if result.replaced is not None:
            topic, offset = result.replaced
            self.integrity.broker_lost_data(f"{topic}[{partition}] holds another record at offset {offset} than the one "
                                            "this partition's state applied there (another timestamp)")
            return in_flight
        if result.skipped_records:
            m.duplicates_skipped.labels("join").inc(result.skipped_records)
        for topic, first, last in result.gaps:
            m.offset_gaps.labels(topic).inc()
            log.warning("offset gap on %s[%d]: offsets %d..%d were never applied", topic, partition, first, last)
        if result.skipped_records == len(records):
            return in_flight
        await delivered(in_flight)
        await self.writer.write(self.table, message, self.stage.persist(part, result))
        futures = await self.publisher.send(result.outputs)
        for role, n in result.events.items():
            m.events_consumed.labels(self.settings.topic(role)).inc(n)
            m.last_event_timestamp.labels(self.settings.topic(role)).set(time.time())
        for reason, n in result.dead_letters.items():
            m.dead_letters.labels(reason).inc(n)
        if result.batch is not None:
            for outcome, n in result.batch.outcomes.items():
                m.join_outcomes.labels(outcome).inc(n)
            metrics_module.observe_many(m.label_lag_seconds, result.batch.label_lags)
        # progress after each group, not each batch: a backlog's batch takes seconds, and
        # the monitors apply what it released meanwhile, while this join waits on the broker
        await self.report_progress([partition])
        return futures

    async def settle(self) -> None:
        """Mark each join partition's last outbox delivered (:meth:`JoinStage.settle`), for
        the next owner (a hand-over)."""
        async with self.lock:
            for partition, part in self.joins.items():  # each loaded by a batch of the partition
                settled = self.stage.settle(part)
                if settled:
                    await self.writer.write(self.table, self.messages[partition], settled)

    # -- progress -------------------------------------------------------------------------
    async def report_idle_progress(self) -> None:
        """:meth:`report_progress` for every join partition assigned here (from a timer)."""
        if not self.app.tables.recovery.completed.is_set() or self.lock.locked():
            return  # a batch in progress reports when it is done
        # as a batch does first: nothing goes to a broker that could not be reached until it
        # is known to hold what this worker wrote (a restarted memory-only broker stops it)
        if not await self.integrity.verified():
            return
        async with self.lock:
            await self.report_progress()

    async def report_progress(self, partitions: Iterable[int] | None = None) -> None:
        """Send each join partition's progress (:mod:`streams.pipeline.event_time`) to every
        monitor-input partition when it changed (and every second regardless); all the
        predictions partitions assigned here when ``partitions`` is ``None`` (a timer: a
        partition whose input went idle sends nothing else). Call it under the join lock,
        after the batch's outputs went to the producer: a progress record must follow the
        events it covers."""
        if partitions is None:
            if not self.app.flow_control.is_active():
                return
            topic = self.settings.topic("predictions")
            partitions = [tp.partition for tp in self.app.consumer.assignment() if tp.topic == topic]
        now = time.monotonic()
        pred_topic, label_topic = self.settings.topic("predictions"), self.settings.topic("ground-truth")
        for partition in partitions:
            part = self.joins.get(partition)
            marks = None if part is None else {pred_topic: part.state.watermark, label_topic: part.state.label_watermark}
            progress = self.input_progress.report(partition, self.applied(partition), marks, now)
            if progress is None:
                continue
            if part is None and partition not in self._outbox_checked:
                # idle before any batch here: the last owner's outbox, if it never reached the
                # broker, must come before a progress record that covers it
                self._outbox_checked.add(partition)
                raw = self.table.data.get(meta_key(partition))
                outbox = codec.loads(raw).get("outbox") if raw is not None else None
                if outbox:
                    await self.publisher.publish(Outputs.from_json(outbox))
            sent = self.progress_sent.get(partition)
            if sent is not None and sent[0] == progress and now - sent[1] < 1.0:
                continue
            self.progress_sent[partition] = (progress, now)
            value = codec.dumps(progress_payload(partition, self.settings.partitions, *progress))
            topic = self.settings.topic("monitor-input")
            for target in range(self.settings.partitions):
                await self.app.producer.send(topic, PROGRESS_KEY, value, partition=target, timestamp=None, headers=None)
        self.on_progress()

    def pause(self, partitions: Iterable[int]) -> None:
        """Make the paused join partitions ``partitions`` (both input topics of each)."""
        want = set(partitions)
        if want == self.paused:
            return
        consumer = self.app.consumer
        tps = {p: [TP(self.settings.topic(role), p) for role in topics.INPUTS]
               for p in want | self.paused}
        assigned = set(consumer.assignment())
        resume = [tp for p in self.paused - want for tp in tps[p] if tp in assigned]
        pause = [tp for p in want - self.paused for tp in tps[p] if tp in assigned]
        if resume:
            consumer.resume_partitions(resume)
        if pause:
            consumer.pause_partitions(pause)
            self.metrics.alignment_pauses.inc(len(want - self.paused))
        self.paused = want
        self.metrics.join_paused_partitions.set(len(want))
