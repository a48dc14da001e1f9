"""streams.runtime.faust_private: every private Faust/mode internal driftstream relies on is
still there, of the shape it uses (Faust objects, no broker).

Each test names the attribute it checks: when one fails after an upgrade of faust-streaming,
re-read that part of Faust against faust_private and move the pin in pyproject.toml.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib
import inspect
import re
from collections.abc import MutableMapping
from importlib.metadata import version
from pathlib import Path

import aiokafka
import faust
import pytest
from faust.exceptions import ConsumerNotStarted
from faust.transport import consumer as faust_consumer
from faust.transport.drivers import aiokafka as aiokafka_driver
from faust.types import TP
from mode.utils.queues import ThrowableQueue

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

from streams.runtime import faust_private
from streams.runtime.batching import BatchedTopic, BatchQueue
from streams.runtime.consumer import Consumer, install

ROOT = Path(__file__).resolve().parents[3]

#: sha256 of Faust's own source of the methods faust_private copies (faust-streaming 0.15.3):
#: a change means the copy must be compared with Faust's new version
COPIED = {
    "faust.transport.consumer.Consumer._drain_messages": "44a2500309e83c63",
    "faust.transport.consumer.Consumer._wait_next_records": "6218e1969a636b3f",
    "faust.transport.consumer.Consumer.getmany": "4b168d84882a70d6",
    "faust.types.tuples.Message.ack": "4751b72c4ed84153",
}


def _changed(what: str, why: str) -> str:
    return f"faust-streaming {version('faust-streaming')} changed {what}: {why} (see streams/runtime/faust_private.py)"


def _app() -> faust.App:
    # never started: the broker URL is never dialled
    return faust.App("test-faust-private", broker="kafka://127.0.0.1:1", store="memory://", web_enabled=False)


def _signature(function: object) -> list[str]:
    return list(inspect.signature(function).parameters)  # type: ignore[arg-type]


@pytest.mark.parametrize("package", sorted(faust_private.TESTED))
def test_the_installed_versions_are_the_minor_versions_checked_and_pinned(package: str) -> None:
    tested = faust_private.TESTED[package]
    installed = ".".join(version(package).split(".")[:2])
    assert installed == tested, f"faust_private was checked against {package} {tested}, {installed} is installed"
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    pin = next(d for d in dependencies if d.startswith(package + ">"))
    major, minor = tested.split(".")
    assert re.fullmatch(rf"{package}>={major}\.{minor}(\.\d+)?,<{major}\.{int(minor) + 1}", pin), pin


@pytest.mark.parametrize("name", sorted(COPIED))
def test_the_faust_methods_copied_into_faust_private_are_unchanged(name: str) -> None:
    module, cls, method = name.rsplit(".", 2)
    source = inspect.getsource(getattr(getattr(importlib.import_module(module), cls), method))
    assert hashlib.sha256(source.encode()).hexdigest()[:16] == COPIED[name], _changed(
        f"`{cls}.{method}`", "faust_private's copy must be compared with it")


def test_the_consumers_offset_books_are_per_partition_mappings() -> None:
    app = _app()
    install(app)
    consumer = app.consumer
    for name in ("_read_offset", "_committed_offset"):
        assert isinstance(getattr(consumer, name, None), MutableMapping), _changed(f"`Consumer.{name}`", "not a mapping")
    tp = TP("t", 0)
    faust_private.read_offsets(consumer)[tp] = 7
    assert consumer._read_offset[tp] == 7
    assert faust_private.committed_offset(consumer, tp) is None
    consumer._committed_offset[tp] = 5
    assert faust_private.committed_offset(consumer, tp) == 5
    # Faust's base seek moves the read offset through the same mapping
    assert "_read_offset" in inspect.getsource(faust_consumer.Consumer.seek), _changed(
        "`Consumer.seek`", "no longer sets `_read_offset`")


def test_the_conductors_routing_index_maps_a_partition_to_its_channels() -> None:
    app = _app()
    index = getattr(app.topics, "_tp_index", None)
    assert isinstance(index, MutableMapping), _changed("`Conductor._tp_index`", "not a mapping")
    tp = TP("t", 0)
    assert faust_private.channels_of(app, tp) == frozenset()
    assert tp not in index  # asking adds no entry
    channel = app.topic("t").clone(is_iterator=True)
    index[tp].add(channel)
    assert set(faust_private.channels_of(app, tp)) == {channel}


def test_the_app_builds_its_consumer_lazily_into_its_private_slot() -> None:
    app = _app()
    assert hasattr(app, "_consumer"), _changed("`App._consumer`", "gone")
    assert not faust_private.consumer_created(app)
    install(app)
    app.consumer
    assert faust_private.consumer_created(app)


def test_the_paused_partitions_and_the_aiokafka_consumer_behind_fausts_thread() -> None:
    app = _app()
    install(app)
    consumer = app.consumer
    assert isinstance(getattr(consumer, "_paused_partitions", None), set), _changed(
        "`Consumer._paused_partitions`", "not a set")
    assert faust_private.paused_partitions(consumer) is consumer._paused_partitions
    assert callable(getattr(consumer._thread, "_ensure_consumer", None)), _changed(
        "`AIOKafkaConsumerThread._ensure_consumer`", "gone")
    with pytest.raises(ConsumerNotStarted):  # not started: Faust's answer, which fetched_end catches
        faust_private.kafka_consumer(consumer)
    assert consumer.fetched_end(TP("t", 0)) is None


def test_a_services_stop_flag_is_an_event() -> None:
    app = _app()
    install(app)
    stopped = getattr(app.consumer, "_stopped", None)
    assert callable(getattr(stopped, "is_set", None)), _changed("mode's `Service._stopped`", "has no `is_set`")
    assert faust_private._stop_requested(app.consumer)() is False


def test_the_overridden_private_consumer_methods_exist_with_their_signatures() -> None:
    base = aiokafka_driver.Consumer
    expected = {
        "_new_consumer_thread": ["self"],
        "_seek": ["self", "partition", "offset"],
        "_wait_next_records": ["self", "timeout"],
        "_drain_messages": ["self", "fetcher"],
        "_getmany": ["self", "active_partitions", "timeout"],
        "_get_active_partitions": ["self"],
        "_add_gap": ["self", "tp", "offset_from", "offset_to"],
    }
    for name, parameters in expected.items():
        assert callable(getattr(base, name, None)), _changed(f"`Consumer.{name}`", "gone")
        assert _signature(getattr(base, name)) == parameters, _changed(
            f"`Consumer.{name}`", f"signature is now {_signature(getattr(base, name))}")
    app = _app()
    install(app)
    consumer = app.consumer
    assert isinstance(consumer._n_acked, int), _changed("`Consumer._n_acked`", "not an int")
    assert hasattr(consumer, "_commit_every"), _changed("`Consumer._commit_every`", "gone")
    # the base seek reaches aiokafka through _seek, which faust_private runs in the consumer's thread
    assert "self._seek(" in inspect.getsource(faust_consumer.Consumer.seek), _changed(
        "`Consumer.seek`", "no longer calls `_seek`")
    assert isinstance(consumer._thread, faust_private.ConsumerThread), _changed(
        "`Consumer._new_consumer_thread`", "not used to build the consumer's thread")
    assert consumer._thread.logger is aiokafka_driver.AIOKafkaConsumerThread.logger  # Faust's log levels apply


@pytest.mark.parametrize(("name", "parameters"), [
    ("perform_seek", ["self"]),
    ("seek", ["self", "partition", "offset"]),
    ("seek_wait", ["self", "partitions"]),
    ("seek_to_committed", ["self"]),
    ("on_partitions_revoked", ["self", "revoked"]),
    ("on_partitions_assigned", ["self", "assigned", "generation_id"]),
])
def test_the_methods_where_faust_resets_the_read_offsets_keep_their_signatures(name: str, parameters: list[str]) -> None:
    """Consumer counts a reset around each of these (public, but the count relies on Faust
    resetting the read offsets in them and nowhere else)."""
    method = getattr(aiokafka_driver.Consumer, name, None)
    assert callable(method), _changed(f"`Consumer.{name}`", "gone")
    assert _signature(method) == parameters, _changed(f"`Consumer.{name}`", f"signature is now {_signature(method)}")
    assert name in vars(Consumer), f"streams.runtime.consumer.Consumer no longer counts a reset around {name}"


def test_the_worker_consumer_factory_builds_an_aiokafka_consumer_whose_fetch_wait_is_capped() -> None:
    factory = aiokafka_driver.AIOKafkaConsumerThread._create_worker_consumer
    assert _signature(factory) == ["self", "transport"], _changed(
        "`AIOKafkaConsumerThread._create_worker_consumer`", f"signature is now {_signature(factory)}")
    assert "fetch_max_wait_ms=self._fetch_max_wait_ms" in inspect.getsource(aiokafka.AIOKafkaConsumer.start), (
        f"aiokafka {aiokafka.__version__} changed `AIOKafkaConsumer._fetch_max_wait_ms`: start() no longer reads it")

    async def build(cap: int | None) -> aiokafka.AIOKafkaConsumer:
        app = _app()
        install(app, fetch_max_wait_ms=cap)
        thread = app.consumer._thread
        created = thread._create_worker_consumer(app.transport)
        await created.stop()  # never started: closes it quietly
        return created

    assert asyncio.run(build(25))._fetch_max_wait_ms == 25
    assert asyncio.run(build(None))._fetch_max_wait_ms == 1500  # Faust's own, untouched


def test_fausts_recovery_reads_the_end_offsets_through_the_consumers_highwaters() -> None:
    from faust.tables import recovery

    assert "consumer.highwaters(" in inspect.getsource(recovery.Recovery._build_highwaters), _changed(
        "`Recovery._build_highwaters`", "no longer asks `consumer.highwaters` (Consumer.highwaters checks them)")
    assert Consumer.highwaters is not aiokafka_driver.Consumer.highwaters


def test_a_record_buffer_topics_clones_keep_its_arguments_buffer_and_undecoded_records() -> None:
    for name in ("_clone_args", "_compile_decode"):
        assert callable(getattr(faust.Topic, name, None)), _changed(f"`Topic.{name}`", "gone")
    assert "_compile_decode()" in inspect.getsource(faust.Topic.__init__), _changed(
        "`Topic.__init__`", "no longer calls `_compile_decode`")
    assert "self._queue" in inspect.getsource(faust.Channel.queue.fget), _changed("`Channel._queue`", "gone")

    async def test() -> None:
        app = _app()
        topic = BatchedTopic(app, topics=["t"], max_records=3, within_s=0.5)
        clone = topic.clone(is_iterator=True)
        assert isinstance(clone, BatchedTopic) and (clone.max_records, clone.within_s) == (3, 0.5)
        assert isinstance(clone.queue, BatchQueue) and clone.queue in topic.buffers
        record = object()
        assert await clone.decode(record) is record  # type: ignore[arg-type]

    asyncio.run(test())


def test_an_error_faust_throws_into_a_batch_buffer_is_raised_by_its_next_get() -> None:
    assert "queue._throw(" in inspect.getsource(faust.Channel._throw), _changed(
        "`Channel._throw`", "no longer calls the queue's `_throw`")

    async def test() -> None:
        app = _app()
        channel = BatchedTopic(app, topics=["t"], within_s=0.5).clone(is_iterator=True)
        queue = channel.queue
        assert isinstance(queue, ThrowableQueue) and hasattr(queue, "_errors"), _changed(
            "mode's `ThrowableQueue._errors`", "gone")
        channel._throw(StopAsyncIteration())  # how Faust stops an agent
        with pytest.raises(StopAsyncIteration):
            await asyncio.wait_for(queue.get(), timeout=5)

    asyncio.run(test())


def test_the_table_manager_starts_what_fausts_starts_less_its_second_of_sleep() -> None:
    from faust.tables import manager as faust_tables

    source = inspect.getsource(faust_tables.TableManager.on_start)
    # Faust's on_start: sleep(1.0), then the channels and the recovery; faust_private's is the rest
    assert hashlib.sha256(source.encode()).hexdigest()[:16] == "365dd25fbc0e0684", _changed(
        "`TableManager.on_start`", "faust_private.TableManager.on_start must be compared with it")
    app = faust.App("test-faust-private", broker="kafka://127.0.0.1:1", store="memory://", web_enabled=False,
                    TableManager=faust_private.TableManager)
    tables = app.tables
    assert isinstance(tables, faust_private.TableManager)
    assert inspect.iscoroutinefunction(tables._update_channels), _changed("`TableManager._update_channels`", "gone")
    assert hasattr(tables.recovery, "start"), _changed("`TableManager.recovery`", "gone")
    assert faust_private.TableManager.logger is faust_tables.TableManager.logger


def test_the_table_manager_starts_the_channels_and_the_recovery_at_once() -> None:
    started: list[str] = []

    class Recorded(faust_private.TableManager):
        async def _update_channels(self) -> None:
            started.append("channels")

    async def test() -> None:
        app = faust.App("test-faust-private", broker="kafka://127.0.0.1:1", store="memory://", web_enabled=False,
                        TableManager=Recorded)
        tables = app.tables

        async def recovery_started() -> None:
            started.append("recovery")

        tables.recovery.start = recovery_started  # type: ignore[method-assign]
        began = asyncio.get_running_loop().time()
        await tables.on_start()
        assert asyncio.get_running_loop().time() - began < 0.5

    asyncio.run(test())
    assert started == ["channels", "recovery"]


def test_the_producer_backlog_counts_what_the_producer_buffer_size_counts() -> None:
    """``ProducerBuffer.size`` (what the conductor waits on) reads the app's settings at each
    call; ``producer_backlog`` counts the same queue, read once."""

    async def test() -> None:
        app = _app()
        buffer = app.producer.buffer
        backlog = faust_private.producer_backlog(app)
        assert backlog() == buffer.size == 0
        buffer.pending.put_nowait(object())
        assert backlog() == buffer.size == 1

    asyncio.run(test())


def _fausts_gaps(read_offset: int | None, offsets: list[int]) -> list[tuple[int, int]]:
    """The gaps Faust's own loop marks record by record (``_drain_messages``): a record
    below the read offset is skipped, any other moves the read offset to itself."""
    gaps = []
    for offset in offsets:
        if read_offset is not None and offset < read_offset:
            continue
        if offset - (read_offset or 0) > 1 and read_offset:
            gaps.append((read_offset + 1, offset))
        read_offset = offset
    return gaps


@pytest.mark.parametrize("seed", range(200))
def test_the_gaps_of_a_fetch_taken_at_once_are_the_ones_fausts_loop_marks_record_by_record(seed: int) -> None:
    import random

    rng = random.Random(seed)
    start = rng.choice([0, 1, rng.randrange(2, 50)])
    span = rng.randrange(1, 40)
    offsets = sorted(rng.sample(range(start, start + span), rng.randrange(1, span + 1))
                     if rng.random() < 0.7 else range(start, start + span))
    read = rng.choice([None, 0, start - 1, start - 3, start + 2, offsets[-1] + 1])
    if read is not None and read < 0:
        read = None
    messages = [faust.types.Message("t", 0, o, None, None, None, b"k", b"v", None) for o in offsets]
    assert faust_private.offset_gaps(read, messages) == _fausts_gaps(read, offsets)


def test_acking_many_messages_at_once_is_acking_each() -> None:
    """:func:`ack_messages` against ``Message.ack`` one by one: the same acked flags,
    reference counts, and Faust's books of acked offsets."""
    from faust.types.tuples import ConsumerMessage

    def acked(at_once: bool) -> tuple[list[tuple[bool, int]], list[int], int]:
        app = _app()
        consumer = app.consumer
        tp = TP("t", 0)
        consumer._committed_offset[tp] = 3
        app.topics.acks_enabled_for = lambda topic: True  # type: ignore[method-assign]
        messages = [ConsumerMessage("t", 0, o, None, None, None, b"k", b"v", None, tp=tp) for o in range(8)]
        for message, refs in zip(messages, [1, 2, 0, 1, 1, 3, 1, 1]):
            message.refcount = refs
        messages[6].acked = True
        if at_once:
            faust_private.ack_messages(consumer, messages)
        else:
            for message in messages:
                message.ack(consumer)
        return [(m.acked, m.refcount) for m in messages], list(consumer._acked[tp]), consumer._n_acked

    assert acked(True) == acked(False)
    assert acked(True)[1] == [3, 4, 7]  # at or past the committed offset, one reference left to drop
