"""What the monitors apply again after a crash or a rebalance, and what they may forget.

The monitors save their states only at checkpoints (:mod:`streams.runtime.checkpoint`),
while the consumer commits offsets as batches are acked: after a crash or a rebalance the
committed offset of a monitor-input partition can be past what its last checkpoint covers.
:func:`reapply_after_checkpoint` rewinds such a partition to just after the checkpoint (the
gap guard does the same when new records arrive; this covers a partition with none).
:func:`evict_idle` is the other side of the same rule: a model whose saved state is all it
has can be dropped from memory and loaded again, as a rebalance would.
"""

from __future__ import annotations

import logging
import time

from streams.runtime.monitor_runner import MonitorRunner

__all__ = ["evict_idle", "reapply_after_checkpoint"]

log = logging.getLogger(__name__)


async def reapply_after_checkpoint(runner: MonitorRunner) -> None:
    """After a (re)assignment, once the consumer is positioned: rewind each monitor-input
    partition whose committed offset is past its last checkpoint to just after that
    checkpoint, so the monitors apply again what it does not cover. Call it from a timer."""
    app = runner.app
    # a first assignment's recovery is not over until ``completed``; a later rebalance
    # suspends the flow until its recovery has sought the partitions to their offsets
    if not (app.tables.recovery.completed.is_set() and app.flow_control.is_active()):
        return
    topic = runner.settings.topic("monitor-input")
    async with runner.lock:
        for tp in app.consumer.assignment():
            if tp.topic != topic or tp.partition in runner.offsets:
                continue
            checkpoint = runner.offset(tp.partition)
            committed = runner.committed_offset(tp)
            if committed is not None and committed > checkpoint + 1:
                log.info("%s[%d]: applying offsets %d..%d again (after the last checkpoint)",
                         topic, tp.partition, checkpoint + 1, committed - 1)
                await runner.gap_guard.rewind(topic, tp.partition, checkpoint + 1)


async def evict_idle(runner: MonitorRunner) -> None:
    """Drop from memory the models idle for ``model_idle_evict_s`` whose state is saved: not
    changed since the last checkpoint (call it only with none in flight: its writes update
    the table as they go), no events held for the frontier. The next event loads the saved
    state (:meth:`MonitorRunner.slot_for`), the state a rebalance would load, so no result
    changes. Call it from a timer."""
    async with runner.lock:
        held = set().union(*runner.waiting.values())
        evicted = 0
        for key in runner.idle_models.idle(time.monotonic()):
            if key in runner.unsaved_monitors or key in held or key not in runner.table.data:
                continue  # saved by a later checkpoint, then evicted at a later turn
            runner.monitors.pop(key, None)
            runner.record_time.pop(key, None)
            runner.idle_models.forget(key)
            evicted += 1
        if evicted:
            runner.metrics.models_evicted.inc(evicted)
            runner.metrics.table_size.labels("monitor-state").set(len(runner.monitors))
