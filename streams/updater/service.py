"""The updater on Kafka: routing the inputs by model, one :class:`~streams.updater.decisions.Updater`
per ``updater-input`` partition, its decisions published and its checkpoints kept
(docs/model-updates.md), and ``driftstream updater``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Iterable
from typing import Any

from aiokafka import ConsumerRebalanceListener

from schemas import codec

from streams.ops.metrics import Metrics
from streams.runtime.kafka_connect import start_client
from streams.settings import Settings
from streams.updater.decisions import Updater, UpdaterConfig
from streams.updater.model_store import ModelStore
from streams.updater.ownership import PartitionUpdater
from streams.updater.routing import ROLES, Routed, Router

__all__ = ["UpdaterService", "add_cli", "run_updater"]

log = logging.getLogger(__name__)

INPUT_ROLES = ROLES


class UpdaterService:
    """Runs the updater on Kafka in two steps, each its own consumer group:

    - **route** (``<app_id>-updater-router``): ``predictions``, ``ground-truth`` and
      ``model-updates`` re-keyed by model id onto ``updater-input``
      (:mod:`streams.updater.routing`); offsets committed once the broker has them.
    - **decide** (``<app_id>-updater``): one :class:`Updater` per ``updater-input``
      partition assigned here (:mod:`streams.updater.ownership`), so each model has one
      owner whatever the number of updaters. Per batch: decisions published, then each
      partition's checkpoint saved with the offset it covers, then offsets committed; on
      revocation and shutdown the checkpoint is saved too, and on assignment the partition
      resumes from it, its consumer sought to just after it.
    """

    def __init__(self, settings: Settings, config: UpdaterConfig | None = None, metrics: Metrics | None = None) -> None:
        self.settings = settings
        self.config = config or UpdaterConfig.from_settings(settings)
        self.metrics = metrics  # the worker's, when it runs inside one (none standalone)
        self.store = ModelStore.from_settings(settings)
        if not self.store.keyed:
            log.warning("DRIFTSTREAM_MODEL_STORE_KEY is not set: the updater's checkpoints and artifacts load only in the "
                        "process that wrote them, so an update in flight is lost on a restart or a rebalance")
        self.owners: dict[int, PartitionUpdater] = {}
        self.lock = asyncio.Lock()  # a batch and a rebalance's checkpoint never interleave
        self.router: Router | None = None
        self.checkpointed_at = 0.0  # time.monotonic() of the last checkpoint and commit

    @property
    def rejected_records(self) -> int:
        return self.router.rejected_records if self.router else 0

    def owner(self, partition: int) -> PartitionUpdater:
        """The updater of ``updater-input`` ``partition``, resumed from its checkpoint."""
        if partition not in self.owners:
            self.owners[partition] = PartitionUpdater.resume(partition, Updater(self.store, self.config), self.store,
                                                             self.settings.max_message_bytes)
            log.info("updater-input[%d]: owned here, from offset %d", partition, self.owners[partition].offset + 1)
        return self.owners[partition]

    async def run(self, stop_event: asyncio.Event) -> None:
        """Route, decide and publish until ``stop_event`` is set, then checkpoint and close."""
        from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

        s = self.settings
        producer = AIOKafkaProducer(**s.kafka_client_kwargs(), linger_ms=s.producer_linger_ms,
                                    max_request_size=max(s.max_message_bytes, 1_048_576) * 2)

        def consumer(group: str) -> AIOKafkaConsumer:
            return AIOKafkaConsumer(
                **s.kafka_client_kwargs(), group_id=f"{s.app_id}-{group}", auto_offset_reset="earliest",
                enable_auto_commit=False, session_timeout_ms=int(s.session_timeout_s * 1000),
                heartbeat_interval_ms=int(s.heartbeat_interval_s * 1000),
                rebalance_timeout_ms=int(s.rebalance_timeout_s * 1000),
                max_partition_fetch_bytes=max(s.max_message_bytes, 1_048_576) * 2, fetch_max_wait_ms=s.fetch_max_wait_ms,
            )

        router, decider = consumer("updater-router"), consumer("updater")
        await start_client(producer, s)
        try:
            self.router = Router(len(await producer.partitions_for(s.topic("updater-input"))), s.max_message_bytes)
            router.subscribe([s.topic(role) for role in INPUT_ROLES])
            decider.subscribe([s.topic("updater-input")], listener=_Handover(self, decider))
            await start_client(router, s)
            try:
                await start_client(decider, s)
                try:
                    # two loops side by side: neither step's fetch waits behind the other's
                    halted = asyncio.Event()
                    outcomes = await asyncio.gather(self._loop(stop_event, halted, self._route, router, producer),
                                                    self._loop(stop_event, halted, self._decide, decider, producer),
                                                    return_exceptions=True)
                    for outcome in outcomes:
                        if isinstance(outcome, BaseException):
                            raise outcome
                finally:
                    async with self.lock:
                        self._checkpoint(list(self.owners))
                        with contextlib.suppress(Exception):  # the checkpoint is what a restart resumes from
                            await self._commit(decider, [tp for tp in decider.assignment() if tp.partition in self.owners])
                    await decider.stop()
            finally:
                await router.stop()
        finally:
            await producer.stop()

    @staticmethod
    async def _loop(stop_event: asyncio.Event, halted: asyncio.Event, step: Any, consumer: Any, producer: Any) -> None:
        """Run ``step`` until ``stop_event``, or until the other loop ``halted``: a step that
        fails stops its sibling after the sibling's current batch (never halfway through one,
        whose decisions the checkpoint on the way out must cover)."""
        try:
            while not (stop_event.is_set() or halted.is_set()):
                await step(consumer, producer)
        finally:
            halted.set()

    async def _route(self, consumer: Any, producer: Any) -> None:
        batches = await consumer.getmany(timeout_ms=100)
        if not batches:
            return
        roles = {self.settings.topic(role): role for role in INPUT_ROLES}
        assert self.router is not None
        routed = self.router.route((roles[tp.topic], tp.partition, m.offset, m.value)
                                   for tp, messages in batches.items() for m in messages)
        topic = self.settings.topic("updater-input")
        for record in routed:
            await producer.send(topic, record.value, key=record.key, partition=record.partition, headers=record.headers())
        await producer.flush()
        await consumer.commit()

    async def _decide(self, consumer: Any, producer: Any) -> None:
        batches = await consumer.getmany(timeout_ms=100)
        if not batches:
            if any(owner.dirty for owner in self.owners.values()) and time.monotonic() - self.checkpointed_at >= self.settings.commit_interval_s:
                async with self.lock:  # the input went quiet: what was applied is checkpointed all the same
                    await self._commit(consumer, [tp for tp in consumer.assignment() if tp.partition in self.owners])
            return
        async with self.lock:
            assigned = {tp.partition for tp in consumer.assignment()}
            decisions: list[dict[str, Any]] = []
            for tp, messages in batches.items():
                if tp.partition not in assigned:
                    continue  # revoked while this batch was fetched
                owner = self.owner(tp.partition)
                for m in messages:
                    decisions += owner.apply(m.offset, Routed.origin_of(m.headers), m.value)
            s = self.settings
            for decision in decisions:
                await producer.send(s.topic("model-updates"), codec.dumps(decision), key=decision["model_id"].encode())
            for owner in self.owners.values():
                for role, events in owner.take_applied().items():
                    if self.metrics is not None:
                        self.metrics.updater_events.labels(role).inc(events)
                for letter in owner.updater.take_dead_letters():  # a quarantined model's requests
                    await producer.send(s.topic("dead-letter"), codec.dumps(letter), key=letter["dead_letter_id"].encode())
            await producer.flush()
            if time.monotonic() - self.checkpointed_at >= self.settings.commit_interval_s:
                await self._commit(consumer, [tp for tp in consumer.assignment() if tp.partition in self.owners])

    async def _commit(self, consumer: Any, tps: list[Any]) -> None:
        """Checkpoint the partitions of ``tps`` changed since their last checkpoint, then
        commit what the checkpoints cover (call it once their decisions are published)."""
        self._checkpoint(tp.partition for tp in tps)
        self.checkpointed_at = time.monotonic()
        offsets = {tp: self.owners[tp.partition].offset + 1 for tp in tps if self.owners[tp.partition].offset >= 0}
        if offsets:
            await consumer.commit(offsets)

    def _checkpoint(self, partitions: Iterable[int]) -> None:
        for partition in partitions:
            owner = self.owners.get(partition)
            if owner is not None and owner.dirty:
                owner.save(self.store)

    async def handover(self, consumer: Any, revoked: Iterable[Any]) -> None:
        """Partitions leave: checkpoint them and commit (best effort: the checkpoint is what
        the next owner resumes from), and forget them here."""
        async with self.lock:
            gone = [tp for tp in revoked if tp.partition in self.owners]
            self._checkpoint(tp.partition for tp in gone)
            with contextlib.suppress(Exception):  # a commit during a rebalance may be refused
                await self._commit(consumer, gone)
            for tp in gone:
                del self.owners[tp.partition]

    async def take_over(self, consumer: Any, assigned: Iterable[Any]) -> None:
        """Partitions arrive: resume each from its checkpoint and read just after it."""
        async with self.lock:
            for tp in assigned:
                owner = self.owner(tp.partition)
                if owner.offset >= 0:
                    consumer.seek(tp, owner.offset + 1)


class _Handover(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, service: UpdaterService, consumer: Any) -> None:
        self.service = service
        self.consumer = consumer

    async def on_partitions_revoked(self, revoked: Any) -> None:
        await self.service.handover(self.consumer, revoked)

    async def on_partitions_assigned(self, assigned: Any) -> None:
        await self.service.take_over(self.consumer, assigned)


async def run_updater(settings: Settings, stop_event: asyncio.Event, config: UpdaterConfig | None = None,
                      metrics: Metrics | None = None) -> None:
    """Create the topics the updater uses if missing, then run it until ``stop_event``
    (``config`` defaults to :meth:`UpdaterConfig.from_settings`; ``metrics``: the worker's, to
    export the updater's progress beside it)."""
    from streams.runtime.topics import ensure_topics

    await ensure_topics(settings, (*INPUT_ROLES, "updater-input", "dead-letter"))
    await UpdaterService(settings, config, metrics).run(stop_event)


def _cmd_updater(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    config = UpdaterConfig.from_settings(settings)  # a bad DRIFTSTREAM_COMPARISON_* stops it here
    logging.basicConfig(level=settings.log_level)

    async def main() -> None:
        from streams.runtime.topics import ensure_topics

        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await ensure_topics(settings, (*INPUT_ROLES, "updater-input", "dead-letter"))  # says "running" only once Kafka answered
        print(f"updater running on {settings.bootstrap_servers} (models in {settings.model_store_dir}); "
              "Ctrl-C stops it", flush=True)
        await run_updater(settings, stop, config)

    asyncio.run(main())
    print("updater stopped", flush=True)
    return 0


def add_cli(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``driftstream updater`` to the command line."""
    p = subparsers.add_parser("updater", help="run the reference model updater (challengers, promotions, rollbacks)")
    p.set_defaults(func=_cmd_updater)
