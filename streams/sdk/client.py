"""Client SDK for model owners: publish predictions and ground truth, subscribe to alerts.

Events are validated against the topic contracts before they leave the process, so a
model server finds out about a bad event at the call site, not in the dead-letter topic.
Many events go into one Kafka record, one record per partition of ``prediction_id``: a
column batch (:mod:`schemas.columns`, a JSON array per field) by default, or a JSON array
of event objects (``record_format="rows"``). A prediction and its label still meet in the
same partition.

Async use::

    async with DriftstreamClient(settings) as client:
        await client.publish_predictions([{"prediction_id": "p1", "model_id": "churn", ...}])
        async for alert in client.alerts(from_beginning=True):
            print(alert["message"])

Sync use (a background thread owns the event loop; single events are queued and sent in
batches, so a request handler does not wait for the broker)::

    with SyncDriftstreamClient(settings) as client:
        client.publish_prediction({"prediction_id": "p1", ...})
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import uuid
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from concurrent.futures import Future
from types import TracebackType
from typing import Any, Literal

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaError

from schemas import codec
from schemas.columns import ColumnsError, gather, is_column_batch, to_columns, to_rows
from schemas.errors import ContractError
from schemas.parsing import validate_ground_truth, validate_prediction
from schemas.partitioning import group_by_partition

from streams.exceptions import PublishError
from streams.runtime.kafka_connect import start_client
from streams.sdk.packing import encode_columns, fit, pack
from streams.settings import Settings

EventRole = Literal["predictions", "ground-truth"]
RecordFormat = Literal["columns", "rows"]

_VALIDATORS = {"predictions": validate_prediction, "ground-truth": validate_ground_truth}


def _as_mapping(event: Any) -> Any:
    to_dict = getattr(event, "to_dict", None)
    return to_dict() if callable(to_dict) else event


def encode_batches(
    events: Sequence[Mapping[str, Any]], partitions: int, batch_size: int, max_bytes: int,
    record_format: RecordFormat = "columns",
) -> list[tuple[int, bytes]]:
    """Pack validated events into ``(partition, record bytes)`` records under ``max_bytes``:
    column batches, or JSON arrays of event objects (``record_format="rows"``, and for
    events that cannot be columns)."""
    columns = gather(events) if record_format == "columns" else None
    if columns is not None and set(map(type, columns.get("prediction_id", (None,)))) == {str}:
        return encode_columns(columns, partitions, batch_size, max_bytes)  # the same records, a column at a time
    records: list[tuple[int, bytes]] = []
    for partition, group in group_by_partition(events, partitions).items():
        for start in range(0, len(group), batch_size):
            chunk = group[start : start + batch_size]
            records.extend((partition, raw) for raw in _encode_chunk(chunk, max_bytes, record_format))
    return records


def _encode_chunk(chunk: Sequence[Mapping[str, Any]], max_bytes: int, record_format: RecordFormat) -> list[bytes]:
    def encode(events: Sequence[Mapping[str, Any]]) -> bytes:
        batch = to_columns(events) if record_format == "columns" else None
        return codec.dumps(batch if batch is not None else list(events))

    return fit(chunk, encode, max_bytes, lambda one: one[0].get("prediction_id"))


class DriftstreamClient:
    """Asynchronous client: batched, validated publishing and an alert subscription."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        batch_size: int = 500,
        validate: bool = True,
        record_format: RecordFormat = "columns",
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if record_format not in ("columns", "rows"):
            raise ValueError(f"record_format must be 'columns' or 'rows', got {record_format!r}")
        self.settings = settings or Settings.from_env()
        self.batch_size = batch_size
        self.validate = validate
        self.record_format: RecordFormat = record_format
        self._producer: AIOKafkaProducer | None = None
        self._partitions: dict[str, int] = {}

    async def start(self) -> DriftstreamClient:
        request_bytes = max(self.settings.max_message_bytes * 2, 2_097_152)
        producer = AIOKafkaProducer(
            **self.settings.kafka_client_kwargs(),
            linger_ms=self.settings.producer_linger_ms,
            max_request_size=request_bytes,
            # a partition's records of one publish go in one batch: with aiokafka's 16 KB
            # batches, each record (tens of KB) was a batch of its own, and the next one of its
            # partition waited for it to be sent, so a publish took one request per record
            max_batch_size=request_bytes,
            acks="all",
            enable_idempotence=False,
        )
        await start_client(producer, self.settings)
        self._producer = producer
        return self

    async def stop(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            await producer.stop()

    async def __aenter__(self) -> DriftstreamClient:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def _require_producer(self) -> AIOKafkaProducer:
        if self._producer is None:
            raise PublishError("client is not started: use 'async with DriftstreamClient()'")
        return self._producer

    async def _partition_count(self, topic: str) -> int:
        if topic not in self._partitions:
            found = await self._require_producer().partitions_for(topic)
            if not found:
                raise PublishError(
                    f"topic {topic!r} does not exist; start a worker (it creates the topics) "
                    f"or run 'driftstream topics create'"
                )
            self._partitions[topic] = len(found)
        return self._partitions[topic]

    def prepare(self, role: EventRole, events: Iterable[Any]) -> list[dict[str, Any]]:
        """Validate events against the topic contract; raises ``PublishError`` naming the event."""
        validator = _VALIDATORS[role]
        prepared: list[dict[str, Any]] = []
        for number, event in enumerate(events):
            mapping = _as_mapping(event)
            if not self.validate:
                prepared.append(dict(mapping))
                continue
            try:
                prepared.append(validator(mapping))
            except ContractError as exc:
                raise PublishError(f"{role} event #{number}: {exc}") from exc
        return prepared

    async def publish(self, role: EventRole, events: Iterable[Any]) -> int:
        """Validate and publish events of one topic; returns how many were sent (and acked)."""
        events = list(events)
        if set(map(type, events)) != {dict}:  # records with to_dict(), other mappings
            events = [event if type(event) is dict else _as_mapping(event) for event in events]
        return await self._send(role, events, prepared=False)

    async def publish_prepared(self, role: EventRole, prepared: list[dict[str, Any]]) -> int:
        """Publish events :meth:`prepare` returned; returns how many were sent (and acked)."""
        return await self._send(role, prepared, prepared=True)

    async def _send(self, role: EventRole, events: list[Any], prepared: bool) -> int:
        if not events:
            return 0
        producer = self._require_producer()
        topic = self.settings.topic(role)
        partitions = await self._partition_count(topic)
        records = self.records(role, events, partitions, prepared=prepared)
        futures = [await producer.send(topic, raw, partition=p) for p, raw in records]
        try:
            await asyncio.gather(*futures)
        except KafkaError as exc:
            raise PublishError(f"publishing to {topic!r} failed: {exc}") from exc
        return len(events)

    def records(self, role: EventRole, events: list[Any], partitions: int, *, prepared: bool = False) -> list[tuple[int, bytes]]:
        """The ``(partition, bytes)`` records of events: validated and packed a column at a
        time when they allow it (:func:`streams.sdk.packing.pack`), else validated one by
        one (:meth:`prepare`) and packed; ``prepared`` events (what :meth:`prepare`
        returned) are packed as they are. Raises ``PublishError``."""
        max_bytes = self.settings.max_message_bytes
        if self.validate and self.record_format == "columns" and not prepared:
            packed = pack(role, events, partitions, self.batch_size, max_bytes)
            if packed is not None:
                return packed
        if not prepared:
            events = self.prepare(role, events)
        return encode_batches(events, partitions, self.batch_size, max_bytes, self.record_format)

    async def publish_in_order(
        self, items: Sequence[tuple[EventRole, Any]], chunk: int = 5000, progress: Any = None
    ) -> dict[str, int]:
        """Publish ``(role, event)`` pairs in order, ``chunk`` at a time: each chunk's
        predictions, then its labels (how a recorded or simulated stream is replayed)."""
        sent = {"predictions": 0, "ground-truth": 0}
        for start in range(0, len(items), chunk):
            part = items[start : start + chunk]
            for role in ("predictions", "ground-truth"):
                events = [event for r, event in part if r == role]
                if events:
                    sent[role] += await self.publish(role, events)  # type: ignore[arg-type]
            if progress is not None:
                progress.update(len(part))
        return sent

    async def publish_predictions(self, events: Iterable[Any]) -> int:
        return await self.publish("predictions", events)

    async def publish_prediction(self, event: Any) -> int:
        return await self.publish("predictions", [event])

    async def publish_ground_truth(self, events: Iterable[Any]) -> int:
        return await self.publish("ground-truth", events)

    async def publish_label(self, event: Any) -> int:
        return await self.publish("ground-truth", [event])

    async def alerts(
        self,
        *,
        from_beginning: bool = False,
        follow: bool = True,
        idle_timeout_s: float = 2.0,
        group_id: str | None = None,
    ) -> AsyncIterator[dict[str, Any]]:
        """Alerts as dicts. ``follow=False`` stops once no alert arrived for ``idle_timeout_s``."""
        async for value in subscribe(
            self.settings,
            self.settings.topic("alerts"),
            from_beginning=from_beginning,
            follow=follow,
            idle_timeout_s=idle_timeout_s,
            group_id=group_id,
        ):
            yield value


async def subscribe(
    settings: Settings,
    topic: str,
    *,
    from_beginning: bool = False,
    follow: bool = True,
    idle_timeout_s: float = 2.0,
    group_id: str | None = None,
) -> AsyncIterator[dict[str, Any]]:
    """Decoded JSON values of ``topic`` (a batch record, array or column batch, yields each
    of its events)."""
    consumer = AIOKafkaConsumer(
        topic,
        **settings.kafka_client_kwargs(),
        group_id=group_id,
        auto_offset_reset="earliest" if from_beginning else "latest",
        enable_auto_commit=group_id is not None,
        client_id=f"driftstream-subscriber-{uuid.uuid4().hex[:8]}",
        # aiokafka's default (500 ms) is how late an alert may reach a subscriber on a
        # broker that holds an empty fetch for its whole wait (the embedded one does)
        fetch_max_wait_ms=settings.fetch_max_wait_ms,
    )
    await start_client(consumer, settings)
    try:
        while True:
            batches = await consumer.getmany(timeout_ms=int(idle_timeout_s * 1000))
            if not batches and not follow:
                return
            for messages in batches.values():
                for message in messages:
                    value = codec.loads(message.value)
                    if isinstance(value, list):
                        for item in value:
                            yield item
                    elif is_column_batch(value):
                        try:
                            events = to_rows(value["columns"], "predictions")
                        except ColumnsError:  # the wrong shape: handed on as it is, like any JSON
                            events = [value]
                        for item in events:
                            yield item
                    else:
                        yield value
    finally:
        await consumer.stop()


class SyncDriftstreamClient:
    """Blocking client for model servers without an event loop.

    Single events (:meth:`publish_prediction`, :meth:`publish_label`) are validated at the
    call and queued: a background thread publishes what is queued every ``linger_s``, or as
    soon as ``batch_size`` wait, so a request handler pays microseconds, not a broker round
    trip. :meth:`flush` waits until everything queued is acked; a delivery that failed is
    raised (as :class:`PublishError`) by the next call, :meth:`flush` or :meth:`close`. At
    most ``max_queued`` events wait: past that a call blocks until the thread catches up
    (backpressure, never a drop). Lists (:meth:`publish_predictions`) are published and
    acked before the call returns, after what was queued before them."""

    def __init__(self, settings: Settings | None = None, *, batch_size: int = 500, linger_s: float = 0.005,
                 max_queued: int = 100_000) -> None:
        if not linger_s > 0 or max_queued < 1:
            raise ValueError(f"linger_s must be > 0 and max_queued >= 1, got {linger_s} and {max_queued}")
        self._client = DriftstreamClient(settings, batch_size=batch_size)
        self._linger_s = linger_s
        self._max_queued = max_queued
        self._batch_size = batch_size
        # queued events by role, and how many are queued or in flight; guarded by _cond
        self._lock = threading.Lock()  # entered in C on every call; the condition waits on it
        self._cond = threading.Condition(self._lock)
        self._queued: dict[EventRole, list[dict[str, Any]]] = {"predictions": [], "ground-truth": []}
        self._unacked = 0
        self._failed: BaseException | None = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="driftstream-sdk", daemon=True)
        self._thread.start()
        self._wake = asyncio.Event()
        self._closing = False
        self._run(self._client.start())
        self._sender = asyncio.run_coroutine_threadsafe(self._send_queued(), self._loop)

    def _run(self, coro: Any) -> Any:
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coro, self._loop)
        return future.result()

    # -- the background thread ----------------------------------------------------------
    async def _send_queued(self) -> None:
        """Publish what is queued every ``linger_s`` (sooner once a batch waits), until closed."""
        while True:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._linger_s)
            self._wake.clear()
            await self._send_batch()
            if self._closing and not self._unacked:
                return

    async def _send_batch(self) -> None:
        with self._cond:
            batch, self._queued = self._queued, {"predictions": [], "ground-truth": []}
        sent = 0
        try:
            for role in ("predictions", "ground-truth"):  # a label's prediction goes first
                if batch[role]:  # type: ignore[index]
                    sent += await self._client.publish_prepared(role, batch[role])  # type: ignore[arg-type,index]
        except Exception as exc:  # noqa: BLE001 - handed to the caller's thread
            with self._cond:
                self._failed = exc
        finally:
            with self._cond:
                self._unacked -= sum(len(events) for events in batch.values())
                self._cond.notify_all()

    # -- the caller's thread ------------------------------------------------------------
    def _raise_failed(self) -> None:
        failed, self._failed = self._failed, None
        if failed is not None:
            raise failed if isinstance(failed, PublishError) else PublishError(f"publishing failed: {failed}") from failed

    def _enqueue(self, role: EventRole, event: Any) -> int:
        # the validator itself, not prepare() over a list of one: this is the call a model
        # server pays on every request (the message is prepare()'s)
        try:
            prepared = _VALIDATORS[role](event if type(event) is dict else _as_mapping(event))
        except ContractError as exc:
            raise PublishError(f"{role} event #0: {exc}") from exc
        with self._lock:
            if self._failed is not None or self._unacked >= self._max_queued:
                self._raise_failed()
                self._cond.wait_for(lambda: self._unacked < self._max_queued or self._failed is not None)
                self._raise_failed()
            queued = self._queued[role]
            queued.append(prepared)
            self._unacked += 1
            if len(queued) == self._batch_size:  # once per batch: the thread takes all that wait
                self._loop.call_soon_threadsafe(self._wake.set)
        return 1

    def flush(self, timeout_s: float = 30.0) -> None:
        """Wait until every queued event is acked by the broker; raises what failed."""
        self._loop.call_soon_threadsafe(self._wake.set)
        with self._cond:
            if not self._cond.wait_for(lambda: self._unacked == 0, timeout=timeout_s):
                raise PublishError(f"{self._unacked} queued events were not acked within {timeout_s} s")
            self._raise_failed()

    def publish_prediction(self, event: Any) -> int:
        """Validate and queue one prediction (see the class docstring); returns 1."""
        return self._enqueue("predictions", event)

    def publish_label(self, event: Any) -> int:
        """Validate and queue one label (see the class docstring); returns 1."""
        return self._enqueue("ground-truth", event)

    def publish_predictions(self, events: Iterable[Any]) -> int:
        self.flush()
        return int(self._run(self._client.publish_predictions(list(events))))

    def publish_ground_truth(self, events: Iterable[Any]) -> int:
        self.flush()
        return int(self._run(self._client.publish_ground_truth(list(events))))

    def close(self) -> None:
        """Publish what is queued, then stop; raises what failed."""
        if not self._loop.is_running():
            return
        try:
            self.flush()
        finally:
            self._closing = True
            self._loop.call_soon_threadsafe(self._wake.set)
            with contextlib.suppress(Exception):
                self._sender.result(timeout=10)
            self._run(self._client.stop())
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
            self._loop.close()

    def __enter__(self) -> SyncDriftstreamClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
