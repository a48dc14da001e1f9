"""The Faust application: one factory, two thin agents, state in changelog-backed tables.

``join`` consumes ``predictions`` and ``ground-truth`` (co-partitioned by prediction id)
in micro-batches; ``monitor`` consumes the per-model column batches the join emits on
``monitor-input`` (partitioned by model). Their streams yield lists of records
(:mod:`streams.batching`), delivered by a consumer that skips Faust's per-record wait when
it cannot block (:mod:`streams.consumer`): Faust's per-event machinery is paid per batch,
not per record. Event time is the only clock for results: the join closes its window no
further than the labels it applied while its label topic lags, and after each batch tells
every monitor-input partition how far it got (a progress record); the monitors apply each
model's events in one canonical order once every join partition has passed them
(:mod:`streams.event_time`, :mod:`streams.input_progress`). Each agent groups its
micro-batch by partition, loads state (from the table after a rebalance) and runs the
stage (:mod:`streams.stages`). The join writes the state and the batch's outbox to the
table and waits for the changelog, then publishes the outputs and waits for them. The
monitor publishes its outputs and waits for them. Only then does Faust ack a batch and may
commit its offsets. The monitor writes the state of the models it changed only every
``monitor_checkpoint_s`` (a checkpoint), and after a crash applies again what came after
it (:meth:`Pipeline.resume_monitors`); a rebalance or a shutdown saves it first
(:meth:`Pipeline.hand_over`). The offsets each state reflects are stored with it, so a
record Faust hands over twice is applied once. A batch that raises ends the worker
(:meth:`Pipeline._batch_guard`).

The worker's web server serves ``/metrics``, ``/health`` and ``/ready``; Faust's own table
and graph views are off.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import socket
import sys
import time
import weakref
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import faust
from aiokafka import TopicPartition
from aiokafka.consumer import (
    AIOKafkaConsumer,  # not the worker's patched subclass: no fetch per check
)
from aiokafka.errors import KafkaError
from faust.exceptions import ConsumerNotStarted
from faust.streams import _current_event
from faust.types import TP, Message
from prometheus_client import CollectorRegistry

from schemas import codec

from . import metrics as metrics_module
from .alignment import Alignment, merge_progress
from .batching import BatchedTopic, acknowledge, admit
from .event_time import PROGRESS_KEY, Frontier, is_progress, progress_payload
from .cardinality import IdleModels, ModelCap, SeriesCap
from .quarantine import Quarantine
from .consumer import install as install_consumer
from .end_offsets import first_offset_from
from .gaps import GapGuard
from .gpu import register_gpu_collector
from .input_progress import InputProgress
from .monitor_config import MonitorConfig
from .settings import Settings
from .stages import (
    InputRecord,
    JoinStage,
    ModelSlot,
    MonitorRun,
    MonitorStage,
    Outputs,
    PartitionJoin,
    byte_groups,
    meta_key,
    owns_join_key,
)
from .sinks import CircuitBreaker, QueuedSink, Undelivered
from .webhook import WebhookSink
from .worker_log import STATUS_EVERY_S, WorkerLog, log_alert

log = logging.getLogger(__name__)

#: Exit status of a worker that found the broker's log behind what it had applied (sysexits
#: EX_TEMPFAIL): a supervisor restarts it, and the restarted worker starts from the broker's state.
EXIT_BROKER_LOST_DATA = 75
#: Exit status of a worker whose join or monitor batch raised (sysexits EX_SOFTWARE): the
#: in-memory state may hold half that batch, so it is never saved; a supervisor restarts the
#: worker, which resumes from its tables.
EXIT_BATCH_FAILED = 70
#: Seconds between the changelog probes of :meth:`Pipeline._broker_verified`.
VERIFY_RETRY_S = 0.5
#: A monitor checkpoint sends its states this many bytes at a time (see
#: :meth:`Pipeline._finish_checkpoint`).
CHECKPOINT_CHUNK_BYTES = 262_144

def _credentials(settings: Settings) -> Any:
    kwargs = settings.kafka_client_kwargs()
    if settings.security_protocol.startswith("SASL"):
        return faust.SASLCredentials(
            username=settings.sasl_username,
            password=settings.sasl_password.get_secret_value() if settings.sasl_password else None,
            ssl_context=kwargs.get("ssl_context"),
            mechanism=settings.sasl_mechanism,
        )
    if settings.security_protocol == "SSL":
        return faust.SSLCredentials(kwargs["ssl_context"])
    return None


def faust_settings(settings: Settings) -> dict[str, Any]:
    """The Faust configuration derived from driftstream's settings (also used by tests)."""
    conf: dict[str, Any] = {
        "broker": settings.broker,
        "store": settings.store,
        "datadir": settings.data_dir,
        "topic_partitions": settings.partitions,
        "topic_replication_factor": settings.replication_factor,
        "broker_session_timeout": settings.session_timeout_s,
        "broker_heartbeat_interval": settings.heartbeat_interval_s,
        "broker_rebalance_timeout": settings.rebalance_timeout_s,
        "broker_commit_interval": settings.commit_interval_s,
        "producer_linger": settings.producer_linger_ms / 1000.0,
        "producer_max_request_size": max(16 * settings.max_message_bytes, 16_777_216),
        # aiokafka's 16 KiB default holds one ~36 KB monitor state per partition per request:
        # a batch's states then took a broker round trip per few models
        "producer_max_batch_size": 1_048_576,
        "consumer_max_fetch_size": max(8 * settings.max_message_bytes, 8_388_608),
        "consumer_auto_offset_reset": "earliest",
        "stream_buffer_maxsize": 8192,
        "web_enabled": True,
        "web_bind": settings.web_host,
        "web_host": settings.web_host,
        "web_port": settings.web_port,
        "web_tables_enabled": False,
        "web_router_enabled": False,
        "web_graph_enabled": False,
        "web_stats_enabled": False,
        "web_metrics_enabled": False,
        "table_standby_replicas": 0,
    }
    credentials = _credentials(settings)
    if credentials is not None:
        conf["broker_credentials"] = credentials
    return conf


def exit_now(message: str, status: int) -> None:
    """Leave at once, writing nothing more to the broker (see :meth:`Pipeline.broker_lost_data`
    and :meth:`Pipeline._batch_guard`)."""
    log.critical(message)
    print(f"driftstream worker: {message}", file=sys.stderr, flush=True)
    os._exit(status)


def _timestamp_ms(message: Message) -> int | None:
    """A record's Kafka timestamp in whole milliseconds (as the broker keeps it)."""
    timestamp = message.timestamp
    return None if timestamp is None else round(timestamp * 1000)


class Pipeline:
    """The agents' logic and caches; one per app."""

    def __init__(
        self, app: faust.App, settings: Settings, monitor_config: MonitorConfig, registry: CollectorRegistry,
        on_fatal: Callable[[str, int], None] = exit_now,
    ) -> None:
        self.app = app
        self.on_fatal = on_fatal
        self.settings = settings
        self.metrics = metrics_module.create(registry)
        self.registry = registry
        self.join_stage = JoinStage(
            window_s=settings.join_window_s,
            max_message_bytes=settings.max_message_bytes,
            monitor_config=monitor_config,
            max_clock_skew_s=settings.max_clock_skew_s,
            label_topic=settings.topic("ground-truth"),
        )
        self.monitor_stage = MonitorStage(monitor_config)
        self.role_of = {settings.topic("predictions"): "predictions", settings.topic("ground-truth"): "ground-truth"}
        # keys: JSON strings; values: our own explicit JSON state as raw bytes (never pickle)
        self.join_table = app.Table("join-state", partitions=settings.partitions, value_type=bytes)
        self.monitor_table = app.Table("monitor-state", partitions=settings.partitions, value_type=bytes)
        # monitor-input partition -> the last offset the monitors applied (for the gap guard)
        self.monitor_offsets_table = app.Table("monitor-offsets", partitions=settings.partitions, value_type=bytes)
        self._monitor_offsets: dict[int, int] = {}
        # changed since the last checkpoint: model key -> a record of its monitor-input
        # partition (the table write's partition), and partition -> its last record applied
        self._unsaved_monitors: dict[str, Message] = {}
        self._unsaved_offsets: dict[int, Message] = {}
        self._checkpointed_at = time.monotonic()
        self._checkpoint_task: asyncio.Future[None] | None = None  # its writes in flight
        self._checkpoint_skipped: str | None = None  # the outcome of the last due one, if skipped
        self._monitor_lock = asyncio.Lock()  # a batch and a checkpoint never interleave
        self._join_lock = asyncio.Lock()  # a batch and a hand-over never interleave
        self._interrupted = False  # a batch raised: the caches may hold half of it (see _batch_guard)
        self._joins: dict[int, PartitionJoin] = {}
        self._join_messages: dict[int, Message] = {}  # a record of each join partition (its table writes' partition)
        self._monitors: dict[str, ModelSlot] = {}
        # monitor-input partition -> the progress of every join partition seen there (saved
        # with the offset), and the models there holding events for a later frontier
        self._frontiers: dict[int, Frontier] = {}
        self._waiting: dict[int, set[str]] = {}
        self._partition_messages: dict[int, Message] = {}  # a record of each (its table writes' partition)
        self._released_at: dict[int, float] = {}  # the frontier each partition's models last saw
        # join partition -> the progress last sent, and when (resent now and then: after a
        # rebalance, an old owner's last record may land after the new owner's)
        self._progress_sent: dict[int, tuple[tuple[float | None, bool], float]] = {}
        self._outbox_checked: set[int] = set()  # join partitions idle before a batch, outbox published
        self.alignment = Alignment(settings.max_held_events)
        self._paused: set[int] = set()  # join partitions paused by the alignment
        self._alerts_firing: dict[str, dict[str, str]] = {}
        # model key -> Kafka timestamp (s) of the newest monitor-input record that brought it
        # events: where processing_latency_seconds starts (a metric cache; dropped at a rebalance)
        self._record_time: dict[str, float] = {}
        self.model_cap = ModelCap(settings.max_models, settings.partitions)
        self.series = SeriesCap(settings.max_model_series)
        self.idle_models = IdleModels(settings.model_idle_evict_s)  # see evict_idle_models
        self.quarantine = Quarantine()  # models whose saved state cannot be loaded
        # alerts reach the webhook from a queue of their own: a slow receiver never holds
        # up the monitors (streams.sinks)
        webhook = WebhookSink.from_settings(settings, self.metrics)
        self.alert_sink = None if webhook is None else QueuedSink(
            webhook, self._dead_letter_alert, topic=settings.topic("alerts"), queue_size=settings.webhook_queue_size,
            breaker=CircuitBreaker(settings.webhook_breaker_failures, settings.webhook_breaker_open_s), metrics=self.metrics,
        )
        self.broker_reachable: bool | None = None  # None: not checked yet
        self.processed_batches = 0
        # changelog partition -> the first offset this worker wrote there (see check_changelogs)
        self._written: dict[TP, int] = {}
        self._probe: AIOKafkaConsumer | None = None
        self._suspected: set[TP] = set()
        # the broker could not be reached since the changelogs were last found whole: what
        # comes back may be a broker that lost its data (see _broker_verified)
        self._unverified = False
        self._reader: AIOKafkaConsumer | None = None
        # the join and monitor agents both ask it; one probe at a time (each assigns it a partition)
        self._reader_lock = asyncio.Lock()
        self.gap_guard = GapGuard(self._first_offset, self._rewind)
        self.input_progress = InputProgress(
            settings.topic("predictions"), settings.topic("ground-truth"),
            self._input_end, idle_after_s=settings.idle_after_s,
        )

    # -- caches vs rebalances -----------------------------------------------------------
    async def on_revoked(self, *_: Any, **__: Any) -> None:
        """Partitions revoked (Faust sends this once the agents are idle): hand them over
        (:meth:`hand_over`, which saves nothing if the group dropped this worker), then
        drop the caches (:meth:`on_rebalance`)."""
        await self.hand_over()
        await self.on_rebalance()

    def _membership_lost(self) -> bool:
        """Whether the group may have dropped this worker (see
        :meth:`streams.consumer.Consumer.membership_lost`)."""
        lost = getattr(self.app.consumer, "membership_lost", None)
        return bool(lost and lost())

    async def on_shutdown(self, *_: Any, **__: Any) -> None:
        """Shutting down (Faust sends this once the agents are idle, before the producer
        stops): hand the partitions over (:meth:`hand_over`), and give the alert sink a
        moment to drain (what it cannot deliver is dead-lettered)."""
        await self.hand_over()
        if self.alert_sink is not None:
            await self.alert_sink.close(grace_s=min(5.0, self.settings.shutdown_grace_s / 4))

    async def on_rebalance(self, *_: Any, **__: Any) -> None:
        """Drop the in-memory views of table state (rebuilt from the tables) and the
        per-model series: models that moved to another worker must not keep their last
        values here; the ones that stay are exported again with their next batch."""
        self._joins.clear()
        self._join_messages.clear()
        self._monitors.clear()
        self._monitor_offsets.clear()
        self._frontiers.clear()
        self._waiting.clear()
        self._partition_messages.clear()
        self._released_at.clear()
        self._progress_sent.clear()
        self._outbox_checked.clear()
        self._record_time.clear()
        self.model_cap.reset()
        self.series.reset()
        self.idle_models.clear()
        self.quarantine.clear()
        self._pause({})  # the progress the alignment went by is gone with the caches
        # what the last checkpoint did not cover is applied again, from the checkpoint
        self._unsaved_monitors.clear()
        self._unsaved_offsets.clear()
        self.gap_guard.reset()
        self.input_progress.reset()
        m = self.metrics
        for gauge in (m.detector_statistic, m.detector_threshold, m.detector_window_size,
                      m.detector_p_value, m.detector_drift, m.label_coverage, m.event_time_lag):
            gauge.clear()

    # -- table writes ---------------------------------------------------------------------
    @contextlib.contextmanager
    def _in_partition_of(self, message: Message) -> Iterator[None]:
        """Make an event of ``message`` the current event: Faust's RocksDB store picks the
        partition's database from it (the memory store ignores it)."""
        event = self.app.create_event(message.key, message.value, message.headers, message)
        token = _current_event.set(weakref.ref(event))
        try:
            yield
        finally:
            _current_event.reset(token)

    async def _write(self, table: faust.Table, partition: int, key: str, value: bytes | None) -> Any:
        """Set or delete ``key`` in ``table`` and send the changelog record straight to the
        producer, serialized as the table's own ``send_changelog`` does (Faust's changelog
        buffer forwards one record per loop turn, through its topic send: see :meth:`send`).
        Returns the delivery future (see :meth:`_written_all`)."""
        if value is None:
            table.data.pop(key, None)
        else:
            table.data[key] = value
        topic = table.changelog_topic
        key_bytes, _ = topic.prepare_key(key, table.key_serializer)
        value_bytes, _ = topic.prepare_value(value, table.value_serializer if value is not None else "raw")
        return await self.app.producer.send(
            topic.get_topic_name(), key_bytes, value_bytes, partition=partition, timestamp=None, headers=None,
        )

    async def _write_all(self, table: faust.Table, message: Message, writes: Iterable[tuple[str, bytes | None]]) -> None:
        await self._written_all(table, await self._send_writes(table, message, writes))

    async def _send_writes(self, table: faust.Table, message: Message, writes: Iterable[tuple[str, bytes | None]]) -> list[Any]:
        """Hand table writes (to ``message``'s partition) to the producer; returns their
        delivery futures."""
        partition = message.partition
        with self._in_partition_of(message):
            return [await self._write(table, partition, key, value) for key, value in writes]

    async def _written_all(self, table: faust.Table, futures: list[Any]) -> None:
        """Wait until the broker has the table writes (see :meth:`check_changelogs`); record
        their offsets in the table's store, as Faust's changelog callback does (a RocksDB
        store starts its recovery after them)."""
        for sent in await asyncio.gather(*futures):
            self._written.setdefault(sent.topic_partition, sent.offset)
            table.data.set_persisted_offset(sent.topic_partition, sent.offset)

    async def publish(self, outputs: Outputs) -> None:
        """Publish outputs and wait until the broker has them."""
        await self.delivered(await self.send(outputs))

    async def send(self, outputs: Outputs, since: float | None = None) -> list[Any]:
        """Hand outputs to the producer; returns the delivery futures to wait on. ``since``:
        the record timestamp the alerts' processing latency is measured from."""
        futures = []
        for role, items in outputs.encoded().items():
            for key, value in items:
                futures.append(await self.produce(role, key.encode() if key is not None else None, value))
        for alert in outputs.messages.get("alerts", ()):
            await self._on_alert(alert[1], since)
        return futures

    async def produce(self, role: str, key: bytes | None, value: bytes) -> Any:
        """Hand one record to the producer for the topic of ``role`` (the key picks the
        partition, as a Faust topic's send does); returns its delivery future.

        Straight to the producer: through a Faust topic, a third of the pipeline's sends
        took over 2 ms (9 ms on average: other work ran in between), a join batch's sends
        50-80 ms (now 2 ms), and Faust's message futures, sensors and callbacks were half
        the CPU of a send."""
        return await self.app.producer.send(self.settings.topic(role), key, value, partition=None, timestamp=None, headers=None)

    @staticmethod
    async def delivered(futures: list[Any]) -> None:
        if futures:
            await asyncio.gather(*futures)

    async def _on_alert(self, alert: dict[str, Any], since: float | None = None) -> None:
        m = self.metrics
        log_alert(alert)
        if alert["status"] == "firing" and since is not None:
            # processing time; the event's age is event_time_lag_seconds
            m.processing_latency_seconds.observe(max(0.0, time.time() - since))
        if alert["status"] != "resolved" and self.alert_sink is not None:
            await self.alert_sink.submit(alert)  # queued: delivery never holds up the monitors
        if not self.series.exports(alert["model_id"]):  # past DRIFTSTREAM_MAX_MODEL_SERIES
            return
        m.alerts.labels(alert["model_id"], alert["severity"], alert["status"]).inc()
        firing = self._alerts_firing.setdefault(alert["model_id"], {})
        if alert["status"] != "resolved":
            firing[alert["alert_id"]] = alert["severity"]
        else:
            firing.pop(alert["alert_id"], None)
        for severity in ("P0", "P1", "P2", "P3"):
            m.alerts_firing.labels(alert["model_id"], severity).set(sum(1 for s in firing.values() if s == severity))

    async def _dead_letter_alert(self, undelivered: Undelivered) -> None:
        """An alert the sink gave up on goes to the dead-letter topic (from the sink's task)."""
        record = undelivered.record
        await self.produce("dead-letter", record["dead_letter_id"].encode(), codec.dumps(record))
        self.metrics.dead_letters.labels("webhook_failed").inc()

    # -- join ---------------------------------------------------------------------------
    def _load_join(self, partition: int) -> PartitionJoin:
        # a recovered tombstone may linger as None: a deleted delta
        items = [(k, v) for k, v in self.join_table.data.items() if v is not None and owns_join_key(partition, k)]
        return PartitionJoin.load(partition, self.settings.join_window_s, items)

    def _committed_offset(self, tp: TP) -> int | None:
        """The group's committed offset of ``tp`` as the consumer knows it; ``None`` when
        none (Faust also stores a committed 0 as ``None``)."""
        return self.app.consumer._committed_offset.get(tp)  # type: ignore[no-any-return]  # Faust exposes no public accessor

    def _applied(self, partition: int) -> dict[str, int | None]:
        """The last offset of each input topic of join partition ``partition`` applied
        here (before its state is loaded: the one before the committed offset)."""
        part = self._joins.get(partition)
        out: dict[str, int | None] = {}
        for role in ("predictions", "ground-truth"):
            topic = self.settings.topic(role)
            if part is not None and role in part.offsets:
                out[topic] = part.offsets[role]
            else:
                committed = self._committed_offset(TP(topic, partition))
                out[topic] = None if committed is None else committed - 1
        return out

    async def join_batch(self, messages: list[Message]) -> None:
        """Join a batch of input records, then report each partition's progress."""
        async with self._join_lock:
            with self._batch_guard("join"):
                await self.handle_join(messages)
                await self.report_progress({msg.partition for msg in messages})

    async def report_idle_progress(self) -> None:
        """:meth:`report_progress` for every join partition assigned here (from a timer)."""
        if not self.app.tables.recovery.completed.is_set() or self._join_lock.locked():
            return  # a batch in progress reports when it is done
        # as a batch does first: nothing goes to a broker that could not be reached until it
        # is known to hold what this worker wrote (a restarted memory-only broker stops it)
        if not await self._broker_verified():
            return
        async with self._join_lock:
            await self.report_progress()

    async def report_progress(self, partitions: Iterable[int] | None = None) -> None:
        """Send each join partition's progress (:mod:`streams.event_time`) to every
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
            part = self._joins.get(partition)
            marks = None if part is None else {pred_topic: part.state.watermark, label_topic: part.state.label_watermark}
            progress = self.input_progress.report(partition, self._applied(partition), marks, now)
            if progress is None:
                continue
            if part is None and partition not in self._outbox_checked:
                # idle before any batch here: the last owner's outbox, if it never reached the
                # broker, must come before a progress record that covers it
                self._outbox_checked.add(partition)
                raw = self.join_table.data.get(meta_key(partition))
                outbox = codec.loads(raw).get("outbox") if raw is not None else None
                if outbox:
                    await self.publish(Outputs.from_json(outbox))
            sent = self._progress_sent.get(partition)
            if sent is not None and sent[0] == progress and now - sent[1] < 1.0:
                continue
            self._progress_sent[partition] = (progress, now)
            value = codec.dumps(progress_payload(partition, self.settings.partitions, *progress))
            topic = self.settings.topic("monitor-input")
            for target in range(self.settings.partitions):
                await self.app.producer.send(topic, PROGRESS_KEY, value, partition=target, timestamp=None, headers=None)
        self.align_inputs()

    def align_inputs(self) -> None:
        """Pause the join partitions ahead of the slowest while this worker's monitors hold
        too many events, resume them once they hold few (:mod:`streams.alignment`)."""
        held = sum(len(slot.buffer) for slot in self._monitors.values())
        self.metrics.monitor_held_events.set(held)
        own = {partition: progress for partition, (progress, _) in self._progress_sent.items()}
        seen = merge_progress(frontier.progress for frontier in self._frontiers.values())
        self._pause(self.alignment.paused(held, own, seen, self.settings.partitions, time.monotonic()))

    def _pause(self, partitions: Iterable[int]) -> None:
        """Make the paused join partitions ``partitions`` (both input topics of each)."""
        want = set(partitions)
        if want == self._paused:
            return
        consumer = self.app.consumer
        tps = {p: [TP(self.settings.topic(role), p) for role in ("predictions", "ground-truth")]
               for p in want | self._paused}
        assigned = set(consumer.assignment())
        resume = [tp for p in self._paused - want for tp in tps[p] if tp in assigned]
        pause = [tp for p in want - self._paused for tp in tps[p] if tp in assigned]
        if resume:
            consumer.resume_partitions(resume)
        if pause:
            consumer.pause_partitions(pause)
            self.metrics.alignment_pauses.inc(len(want - self._paused))
        self._paused = want
        self.metrics.join_paused_partitions.set(len(want))

    async def handle_join(self, messages: list[Message]) -> None:
        if self._log_went_back(messages) or not await self._broker_verified():
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
        self._join_messages.update(last_message)
        m = self.metrics
        screened: list[tuple[PartitionJoin, list[InputRecord]]] = []
        for partition, all_records in by_partition.items():
            part = self._joins.get(partition)
            if part is None:
                part = self._joins[partition] = self._load_join(partition)
                log.info("join partition %d resumes after offsets %s (seq %d); this batch starts at %s",
                         partition, part.offsets, part.state.seq,
                         {r.role: r.offset for r in reversed(all_records)})  # the first offset per topic
                if part.redo:  # what a crash kept the last committed batch from writing
                    await self._write_all(self.join_table, last_message[partition], part.redo)
                    part.redo = []
                if part.outbox:
                    await self.publish(Outputs.from_json(part.outbox))
            self.check_log_continuity(part)  # before a record is skipped as a replay
            screened.append((part, await self.gap_guard.screen(
                partition, {self.settings.topic(role): offset for role, offset in part.offsets.items()},
                all_records, key=lambda r: (r.topic, r.offset),
            )))
        # the partitions side by side: one's join runs while another waits on the broker
        await asyncio.gather(*(self._join_partition(part, records, last_message[part.partition]) for part, records in screened))
        for topic, count in Counter(msg.topic for msg in messages).items():
            m.records_consumed.labels(topic).inc(count)
        m.batch_size.labels("join").observe(len(messages))
        m.batch_duration_seconds.labels("join").observe(time.perf_counter() - started)
        m.table_size.labels("join-state").set(sum(len(p.state.alive) + 1 for p in self._joins.values()))
        self.processed_batches += 1

    async def _join_partition(self, part: PartitionJoin, records: list[InputRecord], message: Message) -> None:
        in_flight: list[Any] = []
        for group in byte_groups(records, self.settings.batch_max_bytes):
            in_flight = await self._join_group(part, group, message, in_flight)
        await self.delivered(in_flight)

    async def _join_group(
        self, part: PartitionJoin, records: list[InputRecord], message: Message, in_flight: list[Any]
    ) -> list[Any]:
        """One bounded group of records: join, then (once the previous group's outputs are
        delivered, since this group's outbox replaces that one) persist state and outbox,
        then send the outputs; returns their delivery futures. The join itself overlaps
        the previous group's delivery."""
        m = self.metrics
        partition = part.partition
        through = self.input_progress.labels_through(partition, self._applied(partition), time.monotonic())
        result = self.join_stage.process(part, records, labels_through=through)
        if result.replaced is not None:
            topic, offset = result.replaced
            self.broker_lost_data(f"{topic}[{partition}] holds another record at offset {offset} than the one "
                                  "this partition's state applied there (another timestamp)")
            return in_flight
        if result.skipped_records:
            m.duplicates_skipped.labels("join").inc(result.skipped_records)
        for topic, first, last in result.gaps:
            m.offset_gaps.labels(topic).inc()
            log.warning("offset gap on %s[%d]: offsets %d..%d were never applied", topic, partition, first, last)
        if result.skipped_records == len(records):
            return in_flight
        await self.delivered(in_flight)
        await self._write_all(self.join_table, message, self.join_stage.persist(part, result))
        futures = await self.send(result.outputs)
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

    def _input_end(self, topic: str, partition: int) -> int | None:
        """The end of a join input log as far as the event-time clock may trust it: as of a
        fetch since the alignment last resumed it (:meth:`streams.consumer.Consumer.fetched_end`);
        ``None`` (unknown: the partition counts as behind) while it is paused, since its last
        end would make it look caught up (and then idle) while records pile up on the broker."""
        return self.app.consumer.fetched_end(TP(topic, partition))  # type: ignore[attr-defined,no-any-return]

    def _highwater(self, tp: TP) -> int | None:
        """The end of ``tp``'s log as of the consumer's last fetch of it; ``None`` before
        one, or when ``tp`` is not (or no longer) assigned to this worker."""
        try:
            return self.app.consumer.highwater(tp)  # type: ignore[no-any-return]
        except (AssertionError, AttributeError, ConsumerNotStarted):  # aiokafka asserts the assignment
            return None

    def _log_went_back(self, messages: list[Message]) -> bool:
        """Stop (:meth:`broker_lost_data`) before applying a batch from a log that served an
        offset at or below one already delivered, with no seek in between
        (:attr:`streams.consumer.Consumer.went_back`): its tail is gone, and the records to
        come are another log's. They would be applied to this state (the join skips offsets
        it applied as replays, then joins the rest), and the outputs, with this state's
        sequence numbers, would make the monitors skip the next worker's as applied.
        :meth:`check_log_continuity` misses it once the new log has grown past the offsets
        applied. True if it stopped."""
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
                # the partition is no longer this worker's, and its end unknown here: a
                # re-read by a worker rejoining after a pause past the session timeout, whose
                # batch came after the revocation, once stopped both workers as if the broker
                # had lost data. Its new owner checks the log against its own state.
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
        highwater = self._highwater(tp)
        return highwater is not None and highwater > offset

    async def _broker_verified(self) -> bool:
        """Before a batch applies, after the broker could not be reached (:meth:`check_broker`):
        make sure it came back with what this worker wrote, as the periodic check does (a
        problem seen twice in a row), and stop if not. A restarted memory-only broker comes
        back empty, and its new logs can grow past the read positions before the consumer
        fetches again: the records after them would be joined onto this state with no sign
        in their offsets. False if the worker stopped."""
        while self._unverified:
            problems = await self._changelog_problems()
            if problems is not None and self._stop_if_confirmed(problems):
                return False
            if problems == {}:
                self._unverified = False
                break
            await asyncio.sleep(VERIFY_RETRY_S)
        return True

    def check_log_continuity(self, part: PartitionJoin) -> None:
        """Stop if an input log now ends below an offset this partition already applied:
        new records would reuse old offsets, and the join would skip them as replays."""
        for role, applied in part.offsets.items():
            topic = self.settings.topic(role)
            highwater = self._highwater(TP(topic, part.partition))
            if highwater is not None and highwater <= applied:
                self.broker_lost_data(f"{topic}[{part.partition}] ends at offset {highwater}, below offset {applied} this worker applied")
                return

    async def check_changelogs(self) -> None:
        """Stop if a state changelog no longer reaches the first record this worker wrote
        to it (not the last: Tansu's end offset can lag a multi-record batch).

        That is what a broker that lost its data looks like (a restarted memory-only broker,
        topics deleted and recreated): against it, neither the changelogs nor the committed
        offsets mean anything, and Faust would wait forever to recover them. A broker that
        cannot be reached is not checked (it may come back whole); a problem must be seen
        by two checks in a row."""
        problems = await self._changelog_problems()
        if problems is not None:
            self._stop_if_confirmed(problems)

    def _stop_if_confirmed(self, problems: dict[TP, str]) -> bool:
        """Stop (:meth:`broker_lost_data`) on a changelog problem the previous probe saw too
        (a missing topic can be a passing metadata hiccup: act when two probes agree, the
        periodic check's or :meth:`_broker_verified`'s); True if it stopped."""
        confirmed = [problems[tp] for tp in problems if tp in self._suspected]
        self._suspected = set(problems)
        if confirmed:
            self.broker_lost_data(confirmed[0])
        return bool(confirmed)

    async def _changelog_problems(self) -> dict[TP, str] | None:
        """Each state changelog that no longer reaches the first offset this worker wrote
        to it, with what is wrong; ``None`` when the broker cannot be asked."""
        written = dict(self._written)
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

    async def _first_offset(self, topic: str, partition: int, offset: int) -> int | None:
        """The first offset the broker holds in ``topic[partition]`` at or after ``offset``
        (read by a consumer of our own, outside the group); ``None`` if none came in time."""
        async with self._reader_lock:
            if self._reader is None:  # not the changelog probe: this one is assigned partitions
                self._reader = await self._outside_consumer()
            return await first_offset_from(self._reader, TopicPartition(topic, partition), offset)

    async def _rewind(self, topic: str, partition: int, offset: int) -> None:
        self.metrics.offset_rewinds.labels(topic).inc()
        try:
            await self.app.consumer.seek(TP(topic, partition), offset)
        except KafkaError as exc:  # e.g. revoked meanwhile; the guard asks again later
            log.warning("could not rewind %s[%d] to %d: %r", topic, partition, offset, exc)

    def broker_lost_data(self, what: str) -> None:
        """Exit now with :data:`EXIT_BROKER_LOST_DATA`, writing nothing more to the broker;
        restarted (by a supervisor), the worker starts from what the broker holds."""
        self.metrics.broker_data_lost.inc()
        self.on_fatal(
            f"{what}: the broker lost its data (a restarted memory-only broker, or topics deleted and "
            f"recreated). Exiting with status {EXIT_BROKER_LOST_DATA}; restart the worker to start from "
            "the broker's current state.",
            EXIT_BROKER_LOST_DATA,
        )

    # -- monitor ------------------------------------------------------------------------
    async def _monitor_for(self, key: str, payload: dict[str, Any] | None) -> ModelSlot | None:
        """The model's slot: cached, else from its last checkpoint, else new (``None`` for a
        model with no saved state and no payload to start one)."""
        cached = self._monitors.get(key)
        if cached is not None:
            return cached
        raw = self.monitor_table.data.get(key)  # memory and RocksDB stores alike
        if raw is None:
            if payload is None:
                return None
            cached = self.monitor_stage.new_slot(payload["model_id"], payload["model_version"])
        else:
            cached = self.monitor_stage.load(raw)
            log.info("monitor %s resumes after join batches %s", key, cached.applied)
        self._monitors[key] = cached
        return cached

    def _saved_progress(self, partition: int) -> dict[str, Any]:
        raw = self.monitor_offsets_table.data.get(str(partition))
        return {} if raw is None else codec.loads(raw)

    def _frontier(self, partition: int) -> Frontier:
        """The progress of the join partitions seen on monitor-input ``partition`` (as of
        the last checkpoint after a (re)assignment)."""
        if partition not in self._frontiers:
            saved = self._saved_progress(partition)
            self._frontiers[partition] = Frontier.from_state(saved.get("frontier"), idle_after_s=self.settings.idle_after_s)
            self._waiting[partition] = set()
        return self._frontiers[partition]

    def _checkpoint_offset(self, partition: int) -> int:
        """The offset a checkpoint of monitor-input ``partition`` covers: the last applied,
        or just before the oldest payload whose events a model still holds (they are not in
        its saved state: a recovery reads them again)."""
        held = [self._monitors[key].buffer.oldest_offset() for key in self._waiting.get(partition, ()) if key in self._monitors]
        oldest = min((offset for offset in held if offset is not None), default=None)
        applied = self._monitor_offsets[partition]
        return applied if oldest is None else min(applied, oldest - 1)

    def _monitor_offset(self, partition: int) -> int:
        """The last monitor-input offset of ``partition`` the monitors applied: as of the
        last checkpoint after a (re)assignment, -1 before any checkpoint."""
        if partition not in self._monitor_offsets:
            raw = self.monitor_offsets_table.data.get(str(partition))
            self._monitor_offsets[partition] = -1 if raw is None else int(codec.loads(raw)["offset"])
        return self._monitor_offsets[partition]

    async def _screen_monitor_input(self, messages: list[Message]) -> dict[int, list[Message]]:
        """The records to apply, by monitor-input partition. The gap guard re-reads what the
        consumer skipped (the join's own inputs get the same, see :meth:`handle_join`) and,
        after a crash or a rebalance, what came after the last checkpoint: the consumer's
        committed offsets run ahead of it."""
        by_partition: dict[int, list[Message]] = {}
        for msg in messages:
            by_partition.setdefault(msg.partition, []).append(msg)
        topic = self.settings.topic("monitor-input")
        for partition, group in by_partition.items():
            by_partition[partition] = await self.gap_guard.screen(
                partition, {topic: self._monitor_offset(partition)}, group, key=lambda msg: (msg.topic, msg.offset),
            )
        return by_partition

    async def handle_monitor(self, messages: list[Message]) -> None:
        """Apply a batch of monitor-input records and publish the outputs; checkpoint the
        models' states when one is due (:meth:`checkpoint_monitors`)."""
        async with self._monitor_lock:
            with self._batch_guard("monitor"):
                await self._apply_monitor_input(messages)
                await self._checkpoint_monitors_if_due()

    async def _apply_monitor_input(self, messages: list[Message]) -> None:
        if self._log_went_back(messages) or not await self._broker_verified():
            return
        started = time.perf_counter()
        by_partition = await self._screen_monitor_input(messages)
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
            frontier = self._frontier(partition)
            by_model: dict[str, tuple[Message, list[tuple[int, dict[str, Any]]]]] = {}
            for msg in group:
                payload = codec.loads(msg.value)
                if is_progress(payload):
                    frontier.update(payload, now)
                else:
                    key = msg.key.decode()
                    if key in self.quarantine or not self.model_cap.admit(key, self._saved_models):
                        refuse = self.quarantine if key in self.quarantine else self.model_cap
                        record = refuse.dead_letter(key, msg.topic, msg.partition, msg.offset, msg.value, time.time())
                        sent.append(await self.produce("dead-letter", record["dead_letter_id"].encode(), codec.dumps(record)))
                        m.dead_letters.labels(record["reason"]).inc()
                        continue
                    by_model.setdefault(key, (msg, []))[1].append((msg.offset, payload))
                    if msg.timestamp is not None:
                        self._record_time[key] = msg.timestamp
            self._partition_messages[partition] = group[-1]
            events, futures = await self._run_models(partition, by_model, now)
            applied_events += events
            sent += futures
            self._monitor_offsets[partition] = max(self._monitor_offset(partition), max(msg.offset for msg in group))
            self._unsaved_offsets[partition] = group[-1]
        # published before the state that produced them is saved: a replay from the last
        # checkpoint publishes the same outputs again (a repeat, never a loss)
        await self.delivered(sent)
        # predictions plus joined pairs the monitors applied (tests wait on this)
        m.events_consumed.labels(self.settings.topic("monitor-input")).inc(applied_events)
        self.align_inputs()
        m.batch_size.labels("monitor").observe(len(messages))
        m.batch_duration_seconds.labels("monitor").observe(time.perf_counter() - started)
        m.table_size.labels("monitor-state").set(len(self._monitors))

    def _saved_models(self, partition: int) -> list[str]:
        """The model keys with state here (saved or in memory); :class:`ModelCap` keeps
        those of ``partition``."""
        return [*self.monitor_table.data.keys(), *self._monitors]

    async def _run_models(
        self, partition: int, by_model: dict[str, tuple[Message, list[tuple[int, dict[str, Any]]]]], now: float,
    ) -> tuple[int, list[Any]]:
        """Hand each model of monitor-input ``partition`` its payloads, and every model
        there holding events the frontier may now release; the events applied and the
        outputs' delivery futures."""
        m = self.metrics
        at = self._frontier(partition).value(now)
        self._released_at[partition] = at
        m.event_time_frontier.labels(str(partition)).set(at)
        waiting = self._waiting[partition]
        message = self._partition_messages[partition]
        for key in sorted(waiting - set(by_model)):
            by_model[key] = (message, [])
        applied_events = 0
        sent: list[Any] = []
        for key, (msg, payloads) in by_model.items():
            try:
                slot = await self._monitor_for(key, payloads[0][1] if payloads else None)
            except Exception as exc:  # this model's state only: quarantine it, the others go on
                self.quarantine.add(key, f"{type(exc).__name__}: {exc}")
                log.error("monitor %s is quarantined, its input dead-lettered: its state cannot be loaded: %s",
                          key, self.quarantine.reason(key))
                for offset, payload in payloads:
                    record = self.quarantine.dead_letter(key, msg.topic, partition, offset, payload, time.time())
                    sent.append(await self.produce("dead-letter", record["dead_letter_id"].encode(), codec.dumps(record)))
                    m.dead_letters.labels(record["reason"]).inc()
                waiting.discard(key)
                continue
            if slot is None:
                waiting.discard(key)
                continue
            self.idle_models.touch(key, now)
            run = self.monitor_stage.process_many(slot, payloads, at)
            if run.skipped:
                log.debug("monitor %s skips %d join batches: already applied", key, run.skipped)
                m.duplicates_skipped.labels("monitor").inc(run.skipped)
            if run.late:
                m.late_events.inc(run.late)
            if len(slot.buffer):
                waiting.add(key)
            else:
                waiting.discard(key)
            if payloads or run.events:
                applied_events += run.events
                sent += await self._monitor_outputs(slot, run, self._record_time.get(key))
                self._unsaved_monitors[key] = msg
        return applied_events, sent

    async def release_due(self) -> None:
        """Apply what the frontiers release as time passes (an idle join partition vouches
        for more once ``idle_after_s`` has passed, with no record to show it): from a timer."""
        if not self._waiting or self._monitor_lock.locked() or not await self._broker_verified():
            return
        async with self._monitor_lock:
            with self._batch_guard("monitor"):
                now = time.monotonic()
                sent: list[Any] = []
                applied = 0
                due = [p for p, keys in self._waiting.items() if keys and p in self._partition_messages
                       and self._frontier(p).value(now) > self._released_at.get(p, -math.inf)]
                for partition in due:
                    events, futures = await self._run_models(partition, {}, now)
                    applied += events
                    sent += futures
                await self.delivered(sent)
                if applied:
                    self.metrics.events_consumed.labels(self.settings.topic("monitor-input")).inc(applied)
                    self.align_inputs()

    async def _monitor_outputs(self, slot: ModelSlot, run: MonitorRun, since: float | None) -> list[Any]:
        """Send what a model's run produced; returns the delivery futures. ``since``: the
        Kafka timestamp of the newest monitor-input record that brought the model events."""
        self._export(slot.monitor, run.result)
        newest = max((last[0] for last in slot.buffer.released.values() if last is not None), default=None)
        if run.events and newest is not None and self.series.exports(slot.monitor.model_id):
            self.metrics.event_time_lag.labels(slot.monitor.model_id).set(time.time() - newest)
        return await self.send(self.monitor_stage.outputs(slot.monitor, run.result), since)

    async def resume_monitors(self) -> None:
        """After a (re)assignment, once the consumer is positioned: rewind each monitor-input
        partition whose committed offset is past its last checkpoint to just after that
        checkpoint, so the monitors apply again what it does not cover (with new records,
        the gap guard does the same; this covers a partition with none). Call it from a timer."""
        # a first assignment's recovery is not over until ``completed``; a later rebalance
        # suspends the flow until its recovery has sought the partitions to their offsets
        if not (self.app.tables.recovery.completed.is_set() and self.app.flow_control.is_active()):
            return
        topic = self.settings.topic("monitor-input")
        async with self._monitor_lock:
            for tp in self.app.consumer.assignment():
                if tp.topic != topic or tp.partition in self._monitor_offsets:
                    continue
                checkpoint = self._monitor_offset(tp.partition)
                committed = self._committed_offset(tp)
                if committed is not None and committed > checkpoint + 1:
                    log.info("%s[%d]: applying offsets %d..%d again (after the last checkpoint)",
                             topic, tp.partition, checkpoint + 1, committed - 1)
                    await self.gap_guard.rewind(topic, tp.partition, checkpoint + 1)

    async def evict_idle_models(self) -> None:
        """Drop from memory the models idle for ``model_idle_evict_s`` whose state is saved:
        not changed since the last checkpoint, none in flight (its writes update the table
        as they go), no events held for the frontier. The next event loads the saved state
        (:meth:`_monitor_for`), the state a rebalance would load, so no result changes.
        Call it from a timer."""
        if self._checkpoint_task is not None and not self._checkpoint_task.done():
            return
        async with self._monitor_lock:
            held = set().union(*self._waiting.values())
            evicted = 0
            for key in self.idle_models.idle(time.monotonic()):
                if key in self._unsaved_monitors or key in held or key not in self.monitor_table.data:
                    continue  # saved by a later checkpoint, then evicted at a later turn
                self._monitors.pop(key, None)
                self._record_time.pop(key, None)
                self.idle_models.forget(key)
                evicted += 1
            if evicted:
                self.metrics.models_evicted.inc(evicted)
                self.metrics.table_size.labels("monitor-state").set(len(self._monitors))

    async def checkpoint_monitors(self) -> None:
        """Save the state of every model changed since the last checkpoint, then the
        monitor-input offsets that state covers, if ``monitor_checkpoint_s`` has passed
        since it (call it from a timer: a quiet stream's last batches are saved too)."""
        async with self._monitor_lock:
            await self._checkpoint_monitors_if_due()

    async def _checkpoint_monitors_if_due(self) -> None:
        """Hand a checkpoint's state writes to the producer and leave the waiting to a task
        (:meth:`_finish_checkpoint`): the monitor goes on with the next batch meanwhile
        (50 models' states took a fifth of a second to reach the broker, and every monitor
        batch waited for them). One checkpoint at a time; one that failed raises here."""
        if self._interrupted or time.monotonic() - self._checkpointed_at < self.settings.monitor_checkpoint_s:
            return
        if self._checkpoint_task is not None and not self._checkpoint_task.done():
            return  # the last one is still being written: the next turn takes this one
        await self._checkpoint_written()  # done: raises if it failed
        if not self._unsaved_monitors and not self._unsaved_offsets:
            self._checkpointed_at = time.monotonic()  # nothing changed: no probe, no write
            return
        if self._skip_if_member_lost():
            return
        problems = await self._changelog_problems()
        if problems != {}:
            # the broker cannot be asked, or no longer has what this worker wrote: a write
            # started now could land in a broker that came back empty (a restarted
            # memory-only one), and the next worker would recover it (Tansu even counts such
            # a record in the end offset without ever serving it, and recovery waits forever)
            self._skip_checkpoint(problems)
            return
        if self._skip_if_member_lost():  # found out while the probe waited on the broker
            return
        self._checkpoint_skipped = None
        self.metrics.checkpoints.labels("started").inc()
        self._start_checkpoint()

    def _skip_if_member_lost(self) -> bool:
        """Skip a checkpoint while the group may have dropped this worker (see
        :meth:`hand_over`): the rejoin drops what is unsaved, or a heartbeat confirms it."""
        if not self._membership_lost():
            return False
        self.metrics.checkpoints.labels("skipped_member_lost").inc()
        return True

    def _skip_checkpoint(self, problems: dict[TP, str] | None) -> None:
        """Count a checkpoint skipped for ``problems`` (``None``: the broker could not be
        asked); the first of a run of them is logged with its reason."""
        outcome = "skipped_unreachable" if problems is None else "skipped_changelog_lost"
        self.metrics.checkpoints.labels(outcome).inc()
        if self._checkpoint_skipped != outcome:
            reason = "the broker cannot be reached" if problems is None else next(iter(problems.values()))
            log.warning("monitor checkpoint skipped (%s): the states are saved once the changelogs check out", reason)
        self._checkpoint_skipped = outcome

    def _start_checkpoint(self) -> None:
        """Dump the states changed since the last checkpoint and start writing them."""
        started = time.perf_counter()
        self._checkpointed_at = time.monotonic()
        states, offsets = self._unsaved_monitors, self._unsaved_offsets
        if not states and not offsets:
            return
        self._unsaved_monitors, self._unsaved_offsets = {}, {}
        dumps = [(key, msg, self.monitor_stage.dump(self._monitors[key])) for key, msg in states.items()]
        done = {partition: (msg, codec.dumps({
            "offset": self._checkpoint_offset(partition), "frontier": self._frontier(partition).to_state(),
        })) for partition, msg in offsets.items()}
        self._checkpoint_task = asyncio.ensure_future(self._finish_checkpoint(dumps, done, started))

    async def _checkpoint_written(self) -> None:
        """Wait for the checkpoint in flight, if any (raises if it failed)."""
        task, self._checkpoint_task = self._checkpoint_task, None
        if task is not None:
            await task

    async def hand_over(self) -> None:
        """Save what the next owner of this worker's partitions would otherwise do again:
        every monitor state changed since the last checkpoint, with its offsets, and each
        join partition's last outbox marked delivered (:meth:`JoinStage.settle`). Called
        when partitions are revoked and at shutdown, once the agents are idle, so a
        rebalance or a rolling restart repeats no output. Best effort, within
        ``handover_timeout_s``: what it leaves undone is applied again, and repeats
        outputs (same ids), as after a crash. Nothing to save (a first assignment revokes
        nothing) is no hand-over."""
        if not (self._interrupted or self._unsaved_monitors or self._unsaved_offsets or self._checkpoint_task
                or any(part.outbox for part in self._joins.values())):
            return
        if self._membership_lost():
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
        if self._interrupted:
            raise RuntimeError("a batch was interrupted, and the caches may hold part of it")
        # never into a broker that lost what this worker wrote (a restarted memory-only
        # one rebalances the group too): the state would claim offsets its logs lack
        problems = await self._changelog_problems()
        if problems is None:
            raise RuntimeError("the broker cannot be reached")
        if problems:
            raise RuntimeError(next(iter(problems.values())))
        async with self._monitor_lock:
            await self._checkpoint_written()
            self._start_checkpoint()
            await self._checkpoint_written()
        async with self._join_lock:
            for partition, part in self._joins.items():  # each loaded by a batch of the partition
                settled = self.join_stage.settle(part)
                if settled:
                    await self._write_all(self.join_table, self._join_messages[partition], settled)

    @contextlib.contextmanager
    def _batch_guard(self, stage: str) -> Iterator[None]:
        """Around a join or monitor batch: one that raised may have left part of itself in
        the caches (a join's offsets, a model's detectors), which a checkpoint or a hand-over
        would then save as applied, so nothing is saved after it. A batch that fails
        (a bug, a broker that stays unreachable past the producer's timeout) ends the worker
        with :data:`EXIT_BATCH_FAILED` rather than leave it running with that agent dead;
        restarted, it resumes from its tables. A cancelled batch (shutdown) ends quietly."""
        try:
            yield
        except asyncio.CancelledError:
            self._interrupted = True
            raise
        except Exception as exc:
            self._interrupted = True
            log.exception("%s batch failed", stage)
            self.on_fatal(
                f"a {stage} batch failed ({exc!r}); exiting with status {EXIT_BATCH_FAILED} without saving "
                "anything more. Restarted, the worker resumes from its last saved state.",
                EXIT_BATCH_FAILED,
            )
            raise

    async def _finish_checkpoint(
        self, dumps: list[tuple[str, Message, bytes]], done: dict[int, tuple[Message, bytes]], started: float,
    ) -> None:
        """Write a checkpoint's states, then the monitor-input offsets they cover (after the
        states: an offset may lag them, never lead them) of the partitions still assigned
        here (a lagging one only means records applied again, and skipped as already applied
        by the states that cover them).

        The states go about :data:`CHECKPOINT_CHUNK_BYTES` at a time: the producer has one
        request in flight to a broker, and a join write queued behind 50 states (1.8 MB)
        waited for all of them. (A wait per state cost a round trip each, and held every
        monitor batch for a few tenths of a second when the monitors still waited for it.)"""
        chunk: list[Any] = []
        size = 0
        for key, msg, raw in dumps:
            if self._membership_lost():  # stopped mid-checkpoint past the session timeout (see hand_over)
                self._abandon_checkpoint(dumps, done)
                return
            chunk += await self._send_writes(self.monitor_table, msg, [(key, raw)])
            size += len(raw)
            if size >= CHECKPOINT_CHUNK_BYTES:
                await self._written_all(self.monitor_table, chunk)
                chunk, size = [], 0
        await self._written_all(self.monitor_table, chunk)
        if self._membership_lost():
            self._abandon_checkpoint(dumps, done)
            return
        assignment = self.app.consumer.assignment()
        topic = self.settings.topic("monitor-input")
        writes = []
        for partition, (msg, progress) in done.items():
            if TP(topic, partition) in assignment:
                writes += await self._send_writes(self.monitor_offsets_table, msg, [(str(partition), progress)])
        await self._written_all(self.monitor_offsets_table, writes)
        self.metrics.batch_duration_seconds.labels("monitor-checkpoint").observe(time.perf_counter() - started)

    def _abandon_checkpoint(self, dumps: list[tuple[str, Message, bytes]], done: dict[int, tuple[Message, bytes]]) -> None:
        """Give a checkpoint up half-written, as unsaved again: if the group still holds
        this worker after all, the next checkpoint saves it whole (the offsets written
        without every state they cover would skip events at a recovery); if not, the
        rejoin drops it."""
        log.warning("monitor checkpoint abandoned: the group may have dropped this worker")
        for key, msg, _ in dumps:
            self._unsaved_monitors.setdefault(key, msg)
        for partition, (msg, _) in done.items():
            self._unsaved_offsets.setdefault(partition, msg)

    def _export(self, monitor: ModelMonitor, result: Any) -> None:
        m = self.metrics
        if not self.series.exports(monitor.model_id):  # past DRIFTSTREAM_MAX_MODEL_SERIES
            m.model_series_capped.set(self.series.capped)
            return
        version = monitor.model_version or ""
        latest: dict[str, dict[str, Any]] = {}
        for sample in result.samples:
            latest[sample["key"]] = sample
        for sample in latest.values():
            labels = (monitor.model_id, version, sample["detector"], sample["feature"] or "")
            m.detector_statistic.labels(*labels, sample["direction"]).set(sample["statistic"])
            m.detector_threshold.labels(*labels, sample["direction"]).set(sample["threshold"])
            m.detector_drift.labels(*labels).set(1.0 if sample["drift"] else 0.0)
            if sample["window_size"] is not None:
                m.detector_window_size.labels(*labels).set(sample["window_size"])
            if sample["p_value"] is not None:
                m.detector_p_value.labels(*labels).set(sample["p_value"])
        for event in result.drift_events:
            if event["drift"]:
                m.drift_events.labels(monitor.model_id, event["kind"]).inc()
        coverage = monitor.label_coverage()
        if coverage is not None:
            m.label_coverage.labels(monitor.model_id).set(coverage)

    # -- health ---------------------------------------------------------------------------
    def readiness(self) -> dict[str, Any]:
        assignment = self.app.consumer.assignment() if self.app.consumer else set()
        recovered = self.app.tables.recovery.completed.is_set()
        if self.broker_reachable is None:  # before the first housekeeping check: ask now
            self.check_broker()
        return {
            "ready": bool(assignment) and recovered and bool(self.broker_reachable),
            "assigned_partitions": sorted(f"{tp.topic}[{tp.partition}]" for tp in assignment),
            "recovery_finished": recovered,
            "broker_reachable": self.broker_reachable,
        }

    def check_broker(self) -> None:
        host, port = self.settings.bootstrap_servers.split(",")[0].rsplit(":", 1)
        try:
            with socket.create_connection((host, int(port)), timeout=1.0):
                self.broker_reachable = True
        except OSError:
            self.broker_reachable = False
            self._unverified = True

    def update_lag(self) -> None:
        consumer = self.app.consumer
        for tp in consumer.assignment():
            highwater = self._highwater(tp)  # the assignment can change under it (the consumer's thread)
            read = consumer._read_offset.get(tp)  # Faust exposes no public accessor
            if highwater is not None and read is not None:
                self.metrics.consumer_lag.labels(tp.topic, str(tp.partition)).set(max(0, highwater - read - 1))


def create_app(
    settings: Settings | None = None,
    *,
    monitor_config: MonitorConfig | None = None,
    registry: CollectorRegistry | None = None,
) -> faust.App:
    """Build the driftstream Faust app (agents, tables, web endpoints) from settings."""
    settings = settings or Settings.from_env()
    monitor_config = monitor_config or MonitorConfig.load(settings.config_path)
    registry = registry or CollectorRegistry()
    codec.register_faust_codec()
    app = faust.App(settings.app_id, **faust_settings(settings))
    install_consumer(app)  # before anything creates Faust's own
    pipeline = Pipeline(app, settings, monitor_config, registry)
    register_gpu_collector(registry)
    app.driftstream = pipeline  # type: ignore[attr-defined]
    app.on_partitions_revoked.connect(pipeline.on_revoked)
    app.on_partitions_assigned.connect(pipeline.on_rebalance)
    app.on_before_shutdown.connect(pipeline.on_shutdown)
    worker_log = WorkerLog(registry, [settings.topic("predictions"), settings.topic("ground-truth")])
    app.driftstream_log = worker_log  # type: ignore[attr-defined]
    app.on_partitions_assigned.connect(worker_log.on_assigned)
    app.on_partitions_revoked.connect(worker_log.on_revoked)

    inputs = BatchedTopic(
        app, topics=[settings.topic("predictions"), settings.topic("ground-truth")],
        max_records=settings.batch_max_records, within_s=settings.batch_within_s,
        max_bytes=settings.input_buffer_bytes, key_serializer="raw", value_serializer="raw",
    )
    monitor_batches = BatchedTopic(
        app, topics=[settings.topic("monitor-input")],
        max_records=settings.batch_max_records, within_s=settings.monitor_batch_within_s,
        max_bytes=settings.input_buffer_bytes, key_serializer="raw", value_serializer="raw",
    )
    model_updates = app.topic(settings.topic("model-updates"), key_serializer="raw", value_serializer="raw")

    # the two pipeline agents' streams yield micro-batches of records (streams.batching)
    @app.agent(inputs, name="join", concurrency=1)
    async def join(stream: faust.StreamT) -> None:
        async for batch in stream:
            records = admit(app, batch)
            if records:
                await pipeline.join_batch(records)
                acknowledge(app, records)

    @app.agent(monitor_batches, name="monitor", concurrency=1)
    async def monitor(stream: faust.StreamT) -> None:
        async for batch in stream:
            records = admit(app, batch)
            if records:
                await pipeline.handle_monitor(records)
                acknowledge(app, records)

    @app.agent(model_updates, name="rebaseline", concurrency=1)
    async def rebaseline(stream: faust.StreamT) -> None:
        """A promoted (or rolled back) model re-baselines its monitor: forward a control
        message into the model's monitor-input partition, so it applies in stream order."""
        async for event in stream.events():
            try:
                control = MonitorStage.rebaseline_control(codec.loads(event.message.value))
            except (ValueError, KeyError, TypeError, AttributeError):
                continue  # not an update event driftstream understands: other teams share the topic
            if control is not None:
                key, payload = control
                await (await pipeline.produce("monitor-input", key.encode(), codec.dumps(payload)))

    if settings.run_updater:
        from .updater import run_updater

        @app.task
        async def updater() -> None:
            await run_updater(settings, asyncio.Event())

    @app.timer(2.0)
    async def housekeeping() -> None:
        pipeline.check_broker()
        pipeline.update_lag()
        await pipeline.check_changelogs()
        await pipeline.gap_guard.retry_overdue()

    @app.timer(settings.monitor_checkpoint_s / 2)
    async def monitor_checkpoint() -> None:
        await pipeline.resume_monitors()
        await pipeline.checkpoint_monitors()
        await pipeline.evict_idle_models()

    @app.timer(0.1)
    async def join_progress() -> None:
        """A join partition whose input went idle has no batch to report it: this does."""
        await pipeline.report_idle_progress()

    @app.timer(0.1)
    async def monitor_release() -> None:
        await pipeline.release_due()

    @app.timer(1.0)
    async def lifecycle() -> None:
        recovery = app.tables.recovery
        worker_log.tick(pipeline.readiness(), recovery.active_remaining_total() if recovery.in_recovery else None)

    @app.timer(STATUS_EVERY_S)
    async def status() -> None:
        worker_log.status()

    @app.page("/metrics")
    async def metrics_view(web: Any, request: Any) -> Any:
        body, content_type = metrics_module.render(registry, request.headers.get("Accept"))
        return web.bytes(body, content_type=content_type.split(";")[0])

    @app.page("/health")
    async def health_view(web: Any, request: Any) -> Any:
        return web.json({"status": "ok"})

    @app.page("/ready")
    async def ready_view(web: Any, request: Any) -> Any:
        state = pipeline.readiness()
        worker_log.readiness(state)
        return web.json(state, status=200 if state["ready"] else 503)

    return app


__all__ = ["TP", "Pipeline", "create_app", "faust_settings"]
