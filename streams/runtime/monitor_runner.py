"""The monitor agent's runner: monitor-input records to each model's monitor, in event
time.

Per batch and monitor-input partition: progress records move the partition's
:class:`~streams.pipeline.event_time.Frontier`; each model's payloads go to its slot (cached, else
loaded from the table, else new), which applies what the frontier releases
(:class:`~streams.pipeline.stages.MonitorStage`); the outputs go out before any state that
produced them is saved (a replay from the last checkpoint publishes the same outputs
again: a repeat, never a loss). Models past the cap, or whose saved state cannot be
loaded (quarantined), are dead-lettered while the others go on. What a checkpoint must
save is kept in :attr:`MonitorRunner.unsaved_monitors` and :attr:`MonitorRunner.unsaved_offsets`
(:mod:`streams.runtime.checkpoint`).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from typing import Any

import faust
from faust.types import Message

from schemas import codec

from streams.ops.metrics import Metrics
from streams.pipeline.cardinality import IdleModels, ModelCap
from streams.pipeline.event_time import Frontier, is_progress
from streams.pipeline.monitor_input import MonitorInput, from_json
from streams.pipeline.quarantine import Quarantine
from streams.pipeline.stages import ModelSlot, MonitorRun, MonitorStage
from streams.runtime.alignment import merge_progress
from streams.runtime.batch_guard import BatchGuard
from streams.runtime.exporting import Exporter
from streams.runtime.gaps import GapGuard
from streams.runtime.integrity import BrokerIntegrity
from streams.runtime.publishing import Publisher, delivered
from streams.settings import Settings

__all__ = ["MonitorRunner"]

log = logging.getLogger(__name__)

#: model key -> (a record of it, its payloads as (offset, payload))
ByModel = dict[str, tuple[Message, list[tuple[int, MonitorInput]]]]


class MonitorRunner:
    """The models of the monitor-input partitions assigned here, and their frontiers."""

    def __init__(
        self, app: faust.App, settings: Settings, metrics: Metrics, stage: MonitorStage, *,
        table: faust.Table, offsets_table: faust.Table, publisher: Publisher, exporter: Exporter,
        integrity: BrokerIntegrity, gap_guard: GapGuard, guard: BatchGuard, on_progress: Callable[[], None],
        committed_offset: Callable[[Any], "int | None"],
    ) -> None:
        self.app = app
        self.settings = settings
        self.metrics = metrics
        self.stage = stage
        self.table = table
        self.offsets_table = offsets_table
        self.publisher = publisher
        self.exporter = exporter
        self.integrity = integrity
        self.gap_guard = gap_guard
        self.guard = guard
        self.on_progress = on_progress
        self.committed_offset = committed_offset
        self.lock = asyncio.Lock()  # a batch and a checkpoint never interleave
        self.monitors: dict[str, ModelSlot] = {}
        self.offsets: dict[int, int] = {}  # monitor-input partition -> the last offset applied
        # monitor-input partition -> the progress of every join partition seen there (saved
        # with the offset), and the models there holding events for a later frontier
        self.frontiers: dict[int, Frontier] = {}
        self.waiting: dict[int, set[str]] = {}
        self._messages: dict[int, Message] = {}  # a record of each (its table writes' partition)
        self._released_at: dict[int, float] = {}  # the frontier each partition's models last saw
        # model key -> Kafka timestamp (s) of the newest monitor-input record that brought it
        # events: where processing_latency_seconds starts (a metric cache)
        self.record_time: dict[str, float] = {}
        self.model_cap = ModelCap(settings.max_models, settings.partitions)
        self.idle_models = IdleModels(settings.model_idle_evict_s)  # see evict_idle
        self.quarantine = Quarantine()  # models whose saved state cannot be loaded
        # changed since the last checkpoint: model key -> a record of its monitor-input
        # partition (the table write's partition), and partition -> its last record applied
        self.unsaved_monitors: dict[str, Message] = {}
        self.unsaved_offsets: dict[int, Message] = {}
        self._looked_again = asyncio.Event()  # a batch ran: when a release is due may have changed

    def reset(self) -> None:
        """A rebalance: the caches are rebuilt from the tables, and what the last checkpoint
        did not cover is applied again, from the checkpoint."""
        for cache in (self.monitors, self.offsets, self.frontiers, self.waiting, self._messages,
                      self._released_at, self.record_time, self.unsaved_monitors, self.unsaved_offsets):
            cache.clear()
        self.model_cap.reset()
        self.idle_models.clear()
        self.quarantine.clear()

    def held_events(self) -> int:
        return sum(len(slot.buffer) for slot in self.monitors.values())

    def seen_progress(self) -> dict[int, tuple[float, bool]]:
        """The join partitions' progress as the frontiers here have seen it."""
        return merge_progress(frontier.progress for frontier in self.frontiers.values())

    # -- state ----------------------------------------------------------------------------
    async def slot_for(self, key: str, payload: MonitorInput | None) -> ModelSlot | None:
        """The model's slot: cached, else from its last checkpoint, else new (``None`` for a
        model with no saved state and no payload to start one)."""
        cached = self.monitors.get(key)
        if cached is not None:
            return cached
        raw = self.table.data.get(key)  # memory and RocksDB stores alike
        if raw is None:
            if payload is None:
                return None
            cached = self.stage.new_slot(payload.model_id, payload.model_version)
        else:
            cached = self.stage.load(raw)
            log.info("monitor %s resumes after join batches %s", key, cached.applied)
        self.monitors[key] = cached
        return cached

    def _saved(self, partition: int) -> dict[str, Any]:
        raw = self.offsets_table.data.get(str(partition))
        return {} if raw is None else codec.loads(raw)

    def frontier(self, partition: int) -> Frontier:
        """The progress of the join partitions seen on monitor-input ``partition`` (as of
        the last checkpoint after a (re)assignment)."""
        if partition not in self.frontiers:
            saved = self._saved(partition)
            self.frontiers[partition] = Frontier.from_state(saved.get("frontier"), idle_after_s=self.settings.idle_after_s)
            self.waiting[partition] = set()
        return self.frontiers[partition]

    def offset(self, partition: int) -> int:
        """The last monitor-input offset of ``partition`` the monitors applied: as of the
        last checkpoint after a (re)assignment, -1 before any checkpoint."""
        if partition not in self.offsets:
            saved = self._saved(partition)
            self.offsets[partition] = int(saved["offset"]) if saved else -1
        return self.offsets[partition]

    def checkpoint_offset(self, partition: int) -> int:
        """The offset a checkpoint of monitor-input ``partition`` covers: the last applied,
        or just before the oldest payload whose events a model still holds (they are not in
        its saved state: a recovery reads them again)."""
        held = [self.monitors[key].buffer.oldest_offset() for key in self.waiting.get(partition, ()) if key in self.monitors]
        oldest = min((offset for offset in held if offset is not None), default=None)
        applied = self.offsets[partition]
        return applied if oldest is None else min(applied, oldest - 1)

    def _saved_models(self, partition: int) -> list[str]:
        """The model keys with state here (saved or in memory); :class:`ModelCap` keeps
        those of ``partition``."""
        return [*self.table.data.keys(), *self.monitors]

    # -- batches --------------------------------------------------------------------------
    async def _screen(self, messages: list[Message]) -> dict[int, list[Message]]:
        """The records to apply, by monitor-input partition. The gap guard re-reads what the
        consumer skipped and, after a crash or a rebalance, what came after the last
        checkpoint: the consumer's committed offsets run ahead of it."""
        by_partition: dict[int, list[Message]] = {}
        for msg in messages:
            by_partition.setdefault(msg.partition, []).append(msg)
        topic = self.settings.topic("monitor-input")
        for partition, group in by_partition.items():
            by_partition[partition] = await self.gap_guard.screen(
                partition, {topic: self.offset(partition)}, group, key=lambda msg: (msg.topic, msg.offset),
            )
        return by_partition

    async def apply(self, messages: list[Message]) -> None:
        """Apply a batch of monitor-input records and publish the outputs (call it under
        :attr:`lock`)."""
        if self.integrity.log_went_back(messages) or not await self.integrity.verified():
            return
        started = time.perf_counter()
        by_partition = await self._screen(messages)
        messages = [msg for group in by_partition.values() for msg in group]
        m = self.metrics
        sent: list[Any] = []
        applied_events = 0
        now = time.monotonic()
        for partition, group in by_partition.items():
            if not group:
                continue
            # the batch's progress first: the events after a progress record of their join
            # partition lie at or above its watermark, so none is released early
            frontier = self.frontier(partition)
            by_model: ByModel = {}
            for msg in group:
                payload = codec.loads(msg.value)
                if is_progress(payload):
                    frontier.update(payload, now)
                    continue
                key = msg.key.decode()
                if key in self.quarantine or not self.model_cap.admit(key, self._saved_models):
                    refuse = self.quarantine if key in self.quarantine else self.model_cap
                    sent.append(await self.publisher.dead_letter(
                        refuse.dead_letter(key, msg.topic, msg.partition, msg.offset, msg.value, time.time())))
                    continue
                by_model.setdefault(key, (msg, []))[1].append((msg.offset, from_json(payload)))
                if msg.timestamp is not None:
                    self.record_time[key] = msg.timestamp
            self._messages[partition] = group[-1]
            events, futures = await self._run_models(partition, by_model, now)
            applied_events += events
            sent += futures
            self.offsets[partition] = max(self.offset(partition), max(msg.offset for msg in group))
            self.unsaved_offsets[partition] = group[-1]
        await delivered(sent)
        self._looked_again.set()
        # predictions plus joined pairs the monitors applied (tests wait on this)
        m.events_consumed.labels(self.settings.topic("monitor-input")).inc(applied_events)
        self.on_progress()
        m.batch_size.labels("monitor").observe(len(messages))
        m.batch_duration_seconds.labels("monitor").observe(time.perf_counter() - started)
        m.table_size.labels("monitor-state").set(len(self.monitors))

    async def _run_models(self, partition: int, by_model: ByModel, now: float) -> tuple[int, list[Any]]:
        """Hand each model of monitor-input ``partition`` its payloads, and every model
        there holding events the frontier may now release; the events applied and the
        outputs' delivery futures."""
        m = self.metrics
        at = self.frontier(partition).value(now)
        self._released_at[partition] = at
        m.event_time_frontier.labels(str(partition)).set(at)
        waiting = self.waiting[partition]
        message = self._messages[partition]
        for key in sorted(waiting - set(by_model)):
            by_model[key] = (message, [])
        applied_events = 0
        sent: list[Any] = []
        for key, (msg, payloads) in by_model.items():
            try:
                slot = await self.slot_for(key, payloads[0][1] if payloads else None)
            except Exception as exc:  # this model's state only: quarantine it, the others go on
                self.quarantine.add(key, f"{type(exc).__name__}: {exc}")
                log.error("monitor %s is quarantined, its input dead-lettered: its state cannot be loaded: %s",
                          key, self.quarantine.reason(key))
                for offset, payload in payloads:
                    sent.append(await self.publisher.dead_letter(
                        self.quarantine.dead_letter(key, msg.topic, partition, offset, payload.to_json(), time.time())))
                waiting.discard(key)
                continue
            if slot is None:
                waiting.discard(key)
                continue
            self.idle_models.touch(key, now)
            run = self.stage.process_many(slot, payloads, at)
            if run.skipped:
                log.debug("monitor %s skips %d join batches: already applied", key, run.skipped)
                m.duplicates_skipped.labels("monitor").inc(run.skipped)
            if run.late:
                m.late_events.inc(run.late)
            if len(slot.buffer) or slot.retiring:  # a retiring version ends once the frontier passes its switch
                waiting.add(key)
            else:
                waiting.discard(key)
            if payloads or run.changed:
                applied_events += run.events
                sent += await self._outputs(slot, run, self.record_time.get(key))
                self.unsaved_monitors[key] = msg
        return applied_events, sent

    async def _outputs(self, slot: ModelSlot, run: MonitorRun, since: float | None) -> list[Any]:
        """Send what a model's run produced; returns the delivery futures. ``since``: the
        Kafka timestamp of the newest monitor-input record that brought the model events."""
        self.exporter.export(slot.monitor, run.result)
        newest = max((last[0] for last in slot.buffer.released.values() if last is not None), default=None)
        if run.events and newest is not None:
            self.exporter.event_time_lag(slot.monitor.model_id, time.time() - newest)
        return await self.publisher.send(self.stage.outputs(slot.monitor, run.result), since)

    def next_release(self, now: float) -> float | None:
        """When time alone may next let a frontier release events a model here holds
        (:meth:`Frontier.due`); ``None``: only more input can."""
        due = [self.frontiers[p].due(now) for p, keys in self.waiting.items() if keys and p in self._messages]
        return min((when for when in due if when is not None), default=None)

    async def wait_for_release(self, longest_s: float) -> None:
        """Wait until :meth:`next_release`, a batch has run (what is due may have changed), or
        ``longest_s`` has passed: an idle join partition's wait is over when it is, not at a
        timer's next tick (up to a tenth of a second later, on the latency of every alert)."""
        now = time.monotonic()
        due = self.next_release(now)
        # a millisecond past it: the event loop may wake a timer a hair early
        timeout = longest_s if due is None else min(longest_s, max(0.0, due - now) + 0.001)
        self._looked_again.clear()
        try:
            await asyncio.wait_for(self._looked_again.wait(), timeout=timeout)
        except asyncio.TimeoutError:
            pass

    async def release_due(self) -> None:
        """Apply what the frontiers release as time passes (an idle join partition vouches
        for more once ``idle_after_s`` has passed, with no record to show it): when
        :meth:`wait_for_release` returns."""
        if not self.waiting or self.lock.locked() or not await self.integrity.verified():
            return
        async with self.lock:
            with self.guard("monitor"):
                now = time.monotonic()
                sent: list[Any] = []
                applied = 0
                due = [p for p, keys in self.waiting.items() if keys and p in self._messages
                       and self.frontier(p).value(now) > self._released_at.get(p, -math.inf)]
                for partition in due:
                    events, futures = await self._run_models(partition, {}, now)
                    applied += events
                    sent += futures
                await delivered(sent)
                if applied:
                    self.metrics.events_consumed.labels(self.settings.topic("monitor-input")).inc(applied)
                    self.on_progress()
