"""The monitors' checkpoint and the hand-over of partitions.

The monitors save the state of the models they changed only every ``monitor_checkpoint_s``
(after a crash they apply again what came after it: :func:`streams.runtime.recovery.reapply_after_checkpoint`).
A checkpoint, in order:

1. skip it unless it is due and the last one was written (one at a time);
2. skip it while the broker cannot be asked, or no longer holds what this worker wrote
   (a write started now could land in a broker that came back empty);
3. dump the states changed since the last one, and each monitor-input partition's offset
   and frontier, at once (the monitor goes on meanwhile);
4. write the states, a chunk at a time, and wait for them;
5. then the offsets they cover (an offset may lag the states, never lead them), of the
   partitions still assigned here.

A hand-over (partitions revoked, shutdown) takes a checkpoint at once and marks each join
partition's last outbox delivered, so the next owner repeats no output.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import faust
from faust.types import TP, Message

from schemas import codec

from streams.ops.metrics import Metrics
from streams.runtime.batch_guard import BatchGuard
from streams.runtime.integrity import BrokerIntegrity
from streams.runtime.join_runner import JoinRunner
from streams.runtime.monitor_runner import MonitorRunner
from streams.runtime.table_writes import TableWriter
from streams.settings import Settings

__all__ = ["CHECKPOINT_CHUNK_BYTES", "Checkpointer"]

log = logging.getLogger(__name__)

#: A checkpoint sends its states this many bytes at a time: the producer has one request in
#: flight to a broker, and a join write queued behind 50 states (1.8 MB) waited for all of them.
CHECKPOINT_CHUNK_BYTES = 262_144


class Checkpointer:
    """Takes the monitors' checkpoints, and the hand-over."""

    def __init__(
        self, app: faust.App, settings: Settings, metrics: Metrics, *, monitors: MonitorRunner, joins: JoinRunner,
        writer: TableWriter, integrity: BrokerIntegrity, guard: BatchGuard,
    ) -> None:
        self.app = app
        self.settings = settings
        self.metrics = metrics
        self.monitors = monitors
        self.joins = joins
        self.writer = writer
        self.integrity = integrity
        self.guard = guard
        self.checkpointed_at = time.monotonic()
        self.task: asyncio.Future[None] | None = None  # its writes in flight
        self._skipped: str | None = None  # the outcome of the last due one, if skipped

    async def checkpoint(self) -> None:
        """:meth:`if_due`, under the monitor lock (from a timer: a quiet stream's last
        batches are saved too)."""
        async with self.monitors.lock:
            await self.if_due()

    async def if_due(self) -> None:
        """Start a checkpoint if one is due (steps 1-3); leave the waiting to a task (steps
        4-5). One that failed raises here. Call it under the monitor lock."""
        if self.guard.interrupted or time.monotonic() - self.checkpointed_at < self.settings.monitor_checkpoint_s:
            return
        if self.task is not None and not self.task.done():
            return  # the last one is still being written: the next turn takes this one
        await self.written()  # done: raises if it failed
        if not self.monitors.unsaved_monitors and not self.monitors.unsaved_offsets:
            self.checkpointed_at = time.monotonic()  # nothing changed: no probe, no write
            return
        if self._skip_if_member_lost():
            return
        problems = await self.integrity.changelog_problems()
        if problems != {}:
            self._skip(problems)
            return
        if self._skip_if_member_lost():  # found out while the probe waited on the broker
            return
        self._skipped = None
        self.metrics.checkpoints.labels("started").inc()
        self._start()

    @property
    def in_flight(self) -> bool:
        """A checkpoint's writes are on their way."""
        return self.task is not None and not self.task.done()

    def _skip_if_member_lost(self) -> bool:
        """Skip a checkpoint while the group may have dropped this worker (see
        :meth:`hand_over`): the rejoin drops what is unsaved, or a heartbeat confirms it."""
        if not self.integrity.membership_lost():
            return False
        self.metrics.checkpoints.labels("skipped_member_lost").inc()
        return True

    def _skip(self, problems: dict[TP, str] | None) -> None:
        """Count a checkpoint skipped for ``problems`` (``None``: the broker could not be
        asked); the first of a run of them is logged with its reason."""
        outcome = "skipped_unreachable" if problems is None else "skipped_changelog_lost"
        self.metrics.checkpoints.labels(outcome).inc()
        if self._skipped != outcome:
            reason = "the broker cannot be reached" if problems is None else next(iter(problems.values()))
            log.warning("monitor checkpoint skipped (%s): the states are saved once the changelogs check out", reason)
        self._skipped = outcome

    def _start(self) -> None:
        """Step 3: dump the states changed since the last checkpoint and start writing them."""
        started = time.perf_counter()
        self.checkpointed_at = time.monotonic()
        runner = self.monitors
        states, offsets = runner.unsaved_monitors, runner.unsaved_offsets
        if not states and not offsets:
            return
        runner.unsaved_monitors, runner.unsaved_offsets = {}, {}
        dumps = [(key, msg, runner.stage.dump(runner.monitors[key])) for key, msg in states.items()]
        done = {partition: (msg, codec.dumps({
            "offset": runner.checkpoint_offset(partition), "frontier": runner.frontier(partition).to_state(),
        })) for partition, msg in offsets.items()}
        self.task = asyncio.ensure_future(self.write(dumps, done, started))

    async def written(self) -> None:
        """Wait for the checkpoint in flight, if any (raises if it failed)."""
        task, self.task = self.task, None
        if task is not None:
            await task

    async def write(self, dumps: list[tuple[str, Message, bytes]], done: dict[int, tuple[Message, bytes]], started: float) -> None:
        """Steps 4 and 5 (a lagging offset only means records applied again, and skipped as
        already applied by the states that cover them)."""
        table = self.monitors.table
        chunk: list[Any] = []
        size = 0
        for key, msg, raw in dumps:
            if self.integrity.membership_lost():  # stopped mid-checkpoint past the session timeout (see hand_over)
                self._abandon(dumps, done)
                return
            chunk += await self.writer.send(table, msg, [(key, raw)])
            size += len(raw)
            if size >= CHECKPOINT_CHUNK_BYTES:
                await self.writer.wait(table, chunk)
                chunk, size = [], 0
        await self.writer.wait(table, chunk)
        if self.integrity.membership_lost():
            self._abandon(dumps, done)
            return
        assignment = self.app.consumer.assignment()
        topic = self.settings.topic("monitor-input")
        offsets_table = self.monitors.offsets_table
        writes = []
        for partition, (msg, progress) in done.items():
            if TP(topic, partition) in assignment:
                writes += await self.writer.send(offsets_table, msg, [(str(partition), progress)])
        await self.writer.wait(offsets_table, writes)
        self.metrics.batch_duration_seconds.labels("monitor-checkpoint").observe(time.perf_counter() - started)

    def _abandon(self, dumps: list[tuple[str, Message, bytes]], done: dict[int, tuple[Message, bytes]]) -> None:
        """Give a checkpoint up half-written, as unsaved again: if the group still holds this
        worker after all, the next checkpoint saves it whole (offsets written without every
        state they cover would skip events at a recovery); if not, the rejoin drops it."""
        log.warning("monitor checkpoint abandoned: the group may have dropped this worker")
        for key, msg, _ in dumps:
            self.monitors.unsaved_monitors.setdefault(key, msg)
        for partition, (msg, _) in done.items():
            self.monitors.unsaved_offsets.setdefault(partition, msg)

    async def hand_over(self) -> None:
        """Save what the next owner of this worker's partitions would otherwise do again:
        every monitor state changed since the last checkpoint, with its offsets, and each
        join partition's last outbox marked delivered. Called when partitions are revoked
        and at shutdown, once the agents are idle. Best effort, within
        ``handover_timeout_s``: what it leaves undone is applied again, and repeats outputs
        (same ids), as after a crash. Nothing to save is no hand-over."""
        runner = self.monitors
        if not (self.guard.interrupted or runner.unsaved_monitors or runner.unsaved_offsets or self.task
                or any(part.outbox for part in self.joins.joins.values())):
            return
        if self.integrity.membership_lost():
            # its partitions went to others while it was away (SIGSTOPped past the session
            # timeout), and they applied and saved more: this worker's older state would
            # overwrite theirs, and the events in between would be lost
            log.warning("the group dropped this worker (its session expired): its partitions may have other owners, "
                        "so nothing is handed over")
            self.metrics.handovers.labels("skipped_member_lost").inc()
            return
        started = time.perf_counter()
        try:
            await asyncio.wait_for(self._hand_over(), self.settings.handover_timeout_s)
        except Exception as exc:  # noqa: BLE001 - a crash here would lose nothing either
            log.warning("hand-over incomplete (%r): the next owner applies again what the last checkpoint does not cover", exc)
            self.metrics.handovers.labels("incomplete").inc()
            return
        self.metrics.handovers.labels("complete").inc()
        self.metrics.batch_duration_seconds.labels("hand-over").observe(time.perf_counter() - started)

    async def _hand_over(self) -> None:
        if self.guard.interrupted:
            raise RuntimeError("a batch was interrupted, and the caches may hold part of it")
        # never into a broker that lost what this worker wrote (a restarted memory-only
        # one rebalances the group too): the state would claim offsets its logs lack
        problems = await self.integrity.changelog_problems()
        if problems is None:
            raise RuntimeError("the broker cannot be reached")
        if problems:
            raise RuntimeError(next(iter(problems.values())))
        async with self.monitors.lock:
            await self.written()
            self._start()
            await self.written()
        await self.joins.settle()
