"""The pipeline in one process, without Kafka: what ``backtest`` (and ``replay``) run.

It goes through the same stages as the live worker (:mod:`streams.pipeline.stages`): events are
packed into records the way the SDK packs them, decoded and validated by the same code,
joined per partition, and handed to the same model monitors in the same canonical
event-time order (:mod:`streams.pipeline.event_time`), so the same events give the same drift
events and alerts, with the same ids. Call :meth:`OfflinePipeline.finish` after the last
records: what the monitors still hold for a later frontier applies then.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

from schemas import codec
from schemas.columns import to_columns
from schemas.partitioning import partitions_for

from streams.pipeline.cardinality import ModelCap
from streams.pipeline.event_time import Frontier, progress_payload
from streams.pipeline.monitor_config import MonitorConfig
from streams.pipeline.monitor_input import MonitorInput, from_json
from streams.pipeline.stages import InputRecord, JoinStage, ModelSlot, MonitorRun, MonitorStage, PartitionJoin


@dataclass
class OfflineResult:
    """Everything a run produced, in the order it was produced."""

    alerts: list[dict[str, Any]] = field(default_factory=list)
    update_requests: list[dict[str, Any]] = field(default_factory=list)
    drift_events: list[dict[str, Any]] = field(default_factory=list)
    dead_letters: list[dict[str, Any]] = field(default_factory=list)
    join_records: list[dict[str, Any]] = field(default_factory=list)
    samples: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    counts: Counter[str] = field(default_factory=Counter)
    events: int = 0


class OfflinePipeline:
    """Feed ``(topic role, raw record bytes or event dict)`` in order; read ``result``."""

    def __init__(
        self,
        monitor_config: MonitorConfig | None = None,
        *,
        window_s: float = 86_400.0,
        partitions: int = 1,
        max_message_bytes: int = 1_048_576,
        keep_samples: bool = True,
        max_clock_skew_s: float = 3_600.0,
        max_models: int = 1_000,
    ) -> None:
        self.monitor_config = monitor_config or MonitorConfig()
        self.partitions = partitions
        self.join_stage = JoinStage(window_s=window_s, max_message_bytes=max_message_bytes, monitor_config=self.monitor_config, clock=lambda: 0.0,
                                    max_clock_skew_s=max_clock_skew_s)
        self.monitor_stage = MonitorStage(self.monitor_config)
        # as the worker's monitors admit models, per monitor-input partition (streams.pipeline.cardinality)
        self.model_cap = ModelCap(max_models, partitions)
        self.joins = {p: PartitionJoin.fresh(p, window_s) for p in range(partitions)}
        self.monitors: dict[str, ModelSlot] = {}
        # every join partition reports its progress, as the live join does: the input is all
        # there, so neither of its topics is ever idle before :meth:`finish`
        self.frontier = Frontier(partitions)
        self.monitor_offset = -1  # of monitor-input, as if it were one partition
        self.finished = False
        self.offsets: Counter[tuple[str, int]] = Counter()
        self.keep_samples = keep_samples
        self.result = OfflineResult()

    def _record(self, role: str, partition: int, value: bytes) -> InputRecord:
        offset = self.offsets[(role, partition)]
        self.offsets[(role, partition)] += 1
        return InputRecord(role, role, partition, offset, value)

    def feed_records(self, records: Iterable[InputRecord]) -> None:
        """Process one micro-batch of raw records (each names its partition)."""
        by_partition: dict[int, list[InputRecord]] = {}
        for record in records:
            by_partition.setdefault(record.partition, []).append(record)
        to_monitor: dict[str, list[tuple[int, MonitorInput]]] = {}  # as the worker's monitor batches them
        for partition, group in by_partition.items():
            part = self.joins.setdefault(partition, PartitionJoin.fresh(partition, self.join_stage.window_s))
            outcome = self.join_stage.process(part, group, labels_through=-float("inf"))
            res = self.result
            res.counts.update({f"events:{k}": v for k, v in outcome.events.items()})
            res.counts.update({f"dead_letter:{k}": v for k, v in outcome.dead_letters.items()})
            if outcome.batch is not None:
                res.counts.update({f"join:{k}": v for k, v in outcome.batch.outcomes.items()})
            for role, items in outcome.outputs.messages.items():
                for key, value in items:
                    if role == "monitor-input":
                        self.monitor_offset += 1
                        to_monitor.setdefault(str(key), []).append((self.monitor_offset, from_json(value)))
                    elif role == "dead-letter":
                        res.dead_letters.append(value)
                    elif role == "join-outcomes":
                        res.join_records.append(value)
        for partition in by_partition:
            state = self.joins[partition].state
            self.frontier.update(progress_payload(partition, self.partitions, state.clock(-math.inf), False))
        self._monitor_all(to_monitor)

    def finish(self) -> OfflineResult:
        """The end of the input: every partition is idle, and the monitors apply all they hold."""
        if not self.finished:
            self.finished = True
            for partition in range(self.partitions):
                self.frontier.update(progress_payload(partition, self.partitions, None, True))
            self._monitor_all({})
        return self.result

    def _monitor_all(self, to_monitor: dict[str, list[tuple[int, MonitorInput]]]) -> None:
        """Hand each model its payloads, and let every model with events held apply what
        the frontier now releases."""
        frontier = self.frontier.value()
        for key, payloads in to_monitor.items():
            self._monitor(key, payloads, frontier)
        for key, slot in self.monitors.items():
            if key not in to_monitor and (len(slot.buffer) or slot.retiring):
                self._collect(key, self.monitor_stage.release(slot, frontier))

    def feed_update(self, update: dict[str, Any]) -> None:
        """A ``model-updates`` event, at this point of the input: the monitor-input control
        it asks for (a re-baseline, a served version's switch), as the worker's
        ``rebaseline`` agent forwards it; nothing for the other actions."""
        control = MonitorStage.control_for(update)
        if control is not None:
            self.monitor_offset += 1
            key, payload = control
            self._monitor(key, [(self.monitor_offset, payload)], self.frontier.value())

    def feed_events(self, items: Iterable[tuple[str, dict[str, Any]]], batch_size: int = 500) -> None:
        """Feed ``(role, event)`` pairs in order, packed as the SDK packs a published chunk:
        every ``batch_size`` events become one record per topic and partition (so within a
        chunk predictions apply before labels). Publishing the same chunks with the SDK
        gives the live worker the same records, hence the same results."""
        events = iter(items)
        while chunk := list(islice(events, batch_size)):
            pending: dict[tuple[str, int], list[dict[str, Any]]] = {}
            order: list[tuple[str, int]] = []
            partitions = partitions_for([str(event.get("prediction_id", "")) for _, event in chunk], self.partitions)
            for (role, event), partition in zip(chunk, partitions.tolist()):
                key = (role, partition)
                if key not in pending:
                    pending[key] = []
                    order.append(key)
                pending[key].append(event)
            self._flush(pending, order)

    def _flush(self, pending: dict[tuple[str, int], list[dict[str, Any]]], order: list[tuple[str, int]]) -> None:
        if pending:
            self.feed_records(self._record(role, p, _packed(pending[(role, p)])) for role, p in order)

    def _monitor(self, key: str, payloads: list[tuple[int, MonitorInput]], frontier: float) -> None:
        if not self.model_cap.admit(key, lambda _: self.monitors):
            for offset, payload in payloads:
                record = self.model_cap.dead_letter(key, "monitor-input", self.model_cap.partition_of(key), offset, payload.to_json(), 0.0)
                self.result.dead_letters.append(record)
                self.result.counts[f"dead_letter:{record['reason']}"] += 1
            return
        if key not in self.monitors:
            self.monitors[key] = self.monitor_stage.new_slot(payloads[0][1].model_id, payloads[0][1].model_version)
        self._collect(key, self.monitor_stage.process_many(self.monitors[key], payloads, frontier))

    def _collect(self, key: str, run: MonitorRun) -> None:
        result = run.result
        res = self.result
        res.events += run.predictions
        res.counts["late"] += run.late
        res.alerts.extend(result.alerts)
        res.update_requests.extend(result.update_requests)
        res.drift_events.extend(result.drift_events)
        if self.keep_samples:
            for sample in result.samples:
                res.samples.setdefault(f"{key}|{sample['key']}", []).append(sample)


def _packed(events: list[dict[str, Any]]) -> bytes:
    """One record of ``events`` as the SDK packs it: a column batch, or a JSON array of the
    event objects when they cannot be columns (:func:`schemas.columns.to_columns`)."""
    batch = to_columns(events)
    return codec.dumps(batch if batch is not None else events)
