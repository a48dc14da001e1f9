"""The Faust application: one factory, two thin agents, state in changelog-backed tables.

``join`` consumes ``predictions`` and ``ground-truth`` (co-partitioned by prediction id)
in micro-batches; ``monitor`` consumes the per-model column batches the join emits on
``monitor-input`` (partitioned by model). Their streams yield lists of records
(:mod:`streams.runtime.batching`), delivered by a consumer that skips Faust's per-record wait when
it cannot block (:mod:`streams.runtime.consumer`): Faust's per-event machinery is paid per batch,
not per record. Event time is the only clock for results (:mod:`streams.pipeline.event_time`).

The agents hand their batches to runners, each one job:

- :mod:`streams.runtime.join_runner`: the join stage per partition; state and outbox written
  before the outputs go out; progress records to the monitors;
- :mod:`streams.runtime.monitor_runner`: each model's monitor, in event-time order;
- :mod:`streams.runtime.checkpoint`: the monitors' checkpoints and the hand-over at a rebalance;
- :mod:`streams.runtime.integrity`: stop when the broker lost what was applied or written;
- :mod:`streams.runtime.publishing`, :mod:`streams.runtime.table_writes`, :mod:`streams.runtime.exporting`:
  records out, table writes, Prometheus series;
- :mod:`streams.runtime.batch_guard`: a batch that raises ends the worker, saving nothing more.

:class:`Pipeline` builds them and joins them where they meet: the watermark alignment and
the rebalance hooks. Only after a batch's outputs are delivered does Faust ack it and may
commit its offsets.

The worker's web server serves ``/metrics``, ``/health`` and ``/ready``; Faust's own table
and graph views are off.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import faust
from faust.types import TP, Message
from prometheus_client import CollectorRegistry

from schemas import codec

from streams.ops import metrics as metrics_module
from streams.ops.gpu import register_gpu_collector
from streams.pipeline.cardinality import SeriesCap
from streams.pipeline.monitor_config import MonitorConfig
from streams.pipeline.stages import JoinStage, MonitorStage
from streams.runtime.alignment import Alignment
from streams.runtime.batch_guard import EXIT_BATCH_FAILED, BatchGuard
from streams.runtime.batching import BatchedTopic, acknowledge, admit
from streams.runtime.checkpoint import Checkpointer
from streams.runtime.consumer import install as install_consumer
from streams.runtime.exporting import Exporter
from streams.runtime.faust_private import TableManager
from streams.runtime.gaps import GapGuard
from streams.runtime.integrity import EXIT_BROKER_LOST_DATA, BrokerIntegrity
from streams.runtime.join_runner import JoinRunner
from streams.runtime.monitor_runner import MonitorRunner
from streams.runtime.publishing import Publisher
from streams.runtime.recovery import evict_idle, reapply_after_checkpoint
from streams.runtime.table_writes import TableWriter
from streams.runtime.worker_log import STATUS_EVERY_S, WorkerLog
from streams.settings import Settings

log = logging.getLogger(__name__)

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
        "TableManager": TableManager,  # Faust's, less a second's sleep at every start
    }
    if settings.client_id is not None:
        conf["broker_client_id"] = settings.client_id
    if settings.instance_id is not None and settings.static_membership:
        conf["consumer_group_instance_id"] = settings.instance_id
    credentials = _credentials(settings)
    if credentials is not None:
        conf["broker_credentials"] = credentials
    return conf


def _probe_connection(settings: Settings, app: faust.App) -> dict[str, Any]:
    """How the end-offset probe connects: as the worker's consumer does."""
    return {
        **settings.kafka_client_kwargs(), "client_id": app.conf.broker_client_id,
        "request_timeout_ms": int(app.conf.broker_request_timeout * 1000.0),
    }


def exit_now(message: str, status: int) -> None:
    """Leave at once, writing nothing more to the broker (see :mod:`streams.runtime.integrity` and
    :mod:`streams.runtime.batch_guard`)."""
    log.critical(message)
    print(f"driftstream worker: {message}", file=sys.stderr, flush=True)
    os._exit(status)


class Pipeline:
    """The agents' runners and what they share; one per app.

    The join (:class:`~streams.runtime.join_runner.JoinRunner`) and the monitors
    (:class:`~streams.runtime.monitor_runner.MonitorRunner`) meet here only in the watermark
    alignment (:meth:`align_inputs`), and in the checkpoint and hand-over
    (:class:`~streams.runtime.checkpoint.Checkpointer`)."""

    def __init__(
        self, app: faust.App, settings: Settings, monitor_config: MonitorConfig, registry: CollectorRegistry,
        on_fatal: Callable[[str, int], None] = exit_now, writer: TableWriter | None = None,
    ) -> None:
        self.app = app
        self.settings = settings
        self.registry = registry
        self.on_fatal = on_fatal
        fatal = lambda message, status: self.on_fatal(message, status)  # noqa: E731 - replaceable after construction
        self.metrics = metrics = metrics_module.create(registry)
        self.guard = BatchGuard(fatal)
        self.writer = writer or TableWriter(app)
        self.integrity = BrokerIntegrity(app, settings, metrics, self.writer, fatal)
        series = SeriesCap(settings.max_model_series)
        self.publisher = Publisher(app, settings, metrics, series)
        self.exporter = Exporter(app, metrics, series, self.integrity.highwater)
        self.gap_guard = GapGuard(self.integrity.first_offset, self.integrity.rewind)
        self.alignment = Alignment(settings.max_held_events)
        # keys: JSON strings; values: our own explicit JSON state as raw bytes (never pickle)
        join_table = app.Table("join-state", partitions=settings.partitions, value_type=bytes)
        monitor_table = app.Table("monitor-state", partitions=settings.partitions, value_type=bytes)
        # monitor-input partition -> the last offset the monitors applied, and their frontier
        offsets_table = app.Table("monitor-offsets", partitions=settings.partitions, value_type=bytes)
        join_stage = JoinStage(
            window_s=settings.join_window_s, max_message_bytes=settings.max_message_bytes, monitor_config=monitor_config,
            max_clock_skew_s=settings.max_clock_skew_s, label_topic=settings.topic("ground-truth"),
        )
        shared = {"integrity": self.integrity, "gap_guard": self.gap_guard, "guard": self.guard, "publisher": self.publisher}
        self.joins = JoinRunner(app, settings, metrics, join_stage, join_table, writer=self.writer,
                                on_progress=self.align_inputs, **shared)
        self.monitors = MonitorRunner(app, settings, metrics, MonitorStage(monitor_config), table=monitor_table,
                                      offsets_table=offsets_table, exporter=self.exporter, on_progress=self.align_inputs,
                                      committed_offset=self.joins.committed_offset, **shared)
        self.checkpointer = Checkpointer(app, settings, metrics, monitors=self.monitors, joins=self.joins,
                                         writer=self.writer, integrity=self.integrity, guard=self.guard)

    # -- rebalances -------------------------------------------------------------------------
    async def on_revoked(self, *_: Any, **__: Any) -> None:
        """Partitions revoked (Faust sends this once the agents are idle): hand them over
        (nothing is saved if the group dropped this worker), then drop the caches
        (:meth:`on_rebalance`)."""
        await self.checkpointer.hand_over()
        await self.on_rebalance()

    async def on_shutdown(self, *_: Any, **__: Any) -> None:
        """Shutting down (Faust sends this once the agents are idle, before the producer
        stops): hand the partitions over, and give the alert sink a moment to drain."""
        await self.checkpointer.hand_over()
        await self.publisher.close()

    async def on_rebalance(self, *_: Any, **__: Any) -> None:
        """Drop the in-memory views of table state (rebuilt from the tables) and the
        per-model series."""
        self.joins.reset()
        self.monitors.reset()
        self.exporter.clear()
        self.gap_guard.reset()

    # -- the agents ---------------------------------------------------------------------------
    async def join_batch(self, messages: list[Message]) -> None:
        await self.joins.run(messages)

    async def handle_monitor(self, messages: list[Message]) -> None:
        """Apply a batch of monitor-input records and publish the outputs; checkpoint the
        models' states when one is due."""
        async with self.monitors.lock:
            with self.guard("monitor"):
                await self.monitors.apply(messages)
                await self.checkpointer.if_due()

    async def evict_idle_models(self) -> None:
        """:func:`streams.runtime.recovery.evict_idle`, between checkpoints (from a timer)."""
        if not self.checkpointer.in_flight:
            await evict_idle(self.monitors)

    def align_inputs(self) -> None:
        """Pause the join partitions ahead of the slowest while this worker's monitors hold
        too many events, resume them once they hold few (:mod:`streams.runtime.alignment`)."""
        held = self.monitors.held_events()
        self.metrics.monitor_held_events.set(held)
        self.joins.pause(self.alignment.paused(
            held, self.joins.own_progress(), self.monitors.seen_progress(), self.settings.partitions, time.monotonic()))

    # -- health ---------------------------------------------------------------------------
    async def readiness(self) -> dict[str, Any]:
        assignment = self.app.consumer.assignment() if self.app.consumer else set()
        recovered = self.app.tables.recovery.completed.is_set()
        if self.integrity.broker_reachable is None:  # before the first housekeeping check: ask now
            await self.integrity.check_broker()
        return {
            "ready": bool(assignment) and recovered and bool(self.integrity.broker_reachable),
            "assigned_partitions": sorted(f"{tp.topic}[{tp.partition}]" for tp in assignment),
            "recovery_finished": recovered,
            "broker_reachable": self.integrity.broker_reachable,
        }


def create_app(
    settings: Settings | None = None,
    *,
    monitor_config: MonitorConfig | None = None,
    registry: CollectorRegistry | None = None,
    tasks: Sequence[Callable[..., Awaitable[None]]] = (),
) -> faust.App:
    """Build the driftstream Faust app (agents, tables, web endpoints) from settings;
    ``tasks`` run beside it once the worker is ready (the command line adds the updater's);
    one that takes an argument is given the app (Faust's rule), whose ``driftstream.metrics``
    it may export to."""
    settings = settings or Settings.from_env()
    monitor_config = monitor_config or MonitorConfig.load(settings.config_path)
    registry = registry or CollectorRegistry()
    codec.register_faust_codec()
    app = faust.App(settings.app_id, **faust_settings(settings))
    install_consumer(  # before anything creates Faust's own
        app, fetch_max_wait_ms=settings.fetch_max_wait_ms, probe_connection=_probe_connection(settings, app),
    )
    pipeline = Pipeline(app, settings, monitor_config, registry)
    register_gpu_collector(registry)
    app.driftstream = pipeline  # type: ignore[attr-defined]
    app.on_partitions_revoked.connect(pipeline.on_revoked)
    app.on_partitions_assigned.connect(pipeline.on_rebalance)
    app.on_before_shutdown.connect(pipeline.on_shutdown)
    worker_log = WorkerLog(registry, [settings.topic("predictions"), settings.topic("ground-truth")],
                           static_member=settings.instance_id is not None and settings.static_membership)
    app.driftstream_log = worker_log  # type: ignore[attr-defined]
    app.on_partitions_assigned.connect(worker_log.on_assigned)
    app.on_partitions_revoked.connect(worker_log.on_revoked)

    inputs = BatchedTopic(
        app, topics=[settings.topic("predictions"), settings.topic("ground-truth")],
        max_records=settings.batch_max_records, within_s=settings.batch_within_s,
        when_caught_up=settings.batch_when_caught_up,
        max_bytes=settings.input_buffer_bytes, key_serializer="raw", value_serializer="raw",
    )
    monitor_batches = BatchedTopic(
        app, topics=[settings.topic("monitor-input")],
        max_records=settings.batch_max_records, within_s=settings.monitor_batch_within_s,
        when_caught_up=settings.batch_when_caught_up,
        max_bytes=settings.input_buffer_bytes, key_serializer="raw", value_serializer="raw",
    )
    model_updates = app.topic(settings.topic("model-updates"), key_serializer="raw", value_serializer="raw")

    # the two pipeline agents' streams yield micro-batches of records (streams.runtime.batching)
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
        """A re-baseline request, or a server's switch to a new version (which retires the
        old version's monitor): forward a control message into that monitor's monitor-input
        partition, so it applies in stream order."""
        async for event in stream.events():
            try:
                update = codec.loads(event.message.value)
                pipeline.exporter.model_update(update)
                control = MonitorStage.control_for(update)
            except (ValueError, KeyError, TypeError, AttributeError):
                continue  # not an update event driftstream understands: other teams share the topic
            if control is not None:
                key, payload = control
                await (await pipeline.publisher.produce("monitor-input", key.encode(), codec.dumps(payload.to_json())))

    for task in tasks:
        app.task(task)

    @app.timer(2.0)
    async def housekeeping() -> None:
        await pipeline.integrity.check_broker()
        pipeline.exporter.update_lag()
        await pipeline.integrity.check_changelogs()
        await pipeline.gap_guard.retry_overdue()

    @app.timer(settings.monitor_checkpoint_s / 2)
    async def monitor_checkpoint() -> None:
        await reapply_after_checkpoint(pipeline.monitors)
        await pipeline.checkpointer.checkpoint()
        await pipeline.evict_idle_models()

    @app.timer(0.1)
    async def join_progress() -> None:
        """A join partition whose input went idle has no batch to report it: this does."""
        await pipeline.joins.report_idle_progress()

    @app.task
    async def monitor_release() -> None:
        """What the frontiers release as time passes, as soon as it is due."""
        while not app.should_stop:
            await pipeline.monitors.wait_for_release(longest_s=0.1)
            await pipeline.monitors.release_due()

    @app.timer(1.0)
    async def lifecycle() -> None:
        recovery = app.tables.recovery
        worker_log.tick(await pipeline.readiness(), recovery.active_remaining_total() if recovery.in_recovery else None)

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
        state = await pipeline.readiness()
        worker_log.readiness(state)
        return web.json(state, status=200 if state["ready"] else 503)

    return app


__all__ = ["EXIT_BATCH_FAILED", "EXIT_BROKER_LOST_DATA", "TP", "Pipeline", "create_app", "faust_settings"]
