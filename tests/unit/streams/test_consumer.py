"""streams.runtime.consumer: which records the consumer delivers directly, and that an app gets it
(Faust objects, no broker; the delivery loop itself runs in every integration test)."""

from __future__ import annotations

import asyncio

import faust
import pytest
from faust.types import TP, Message

from streams.runtime.batching import BatchedTopic
from streams.runtime.consumer import Consumer, install
from streams.runtime.faust_private import read_offsets


class _Record:
    def __init__(self, offset: int) -> None:
        self.offset = offset


def _app() -> faust.App:
    # never started: the broker URL is never dialled
    return faust.App("test-consumer", broker="kafka://127.0.0.1:1", store="memory://", web_enabled=False)


def test_install_gives_the_app_this_consumer_and_refuses_once_it_exists() -> None:
    app = _app()
    install(app)
    assert isinstance(app.consumer, Consumer)
    with pytest.raises(RuntimeError, match="before the app's consumer is created"):
        install(app)


def test_a_record_goes_directly_only_while_every_channel_of_its_partition_is_a_batch_buffer_with_room() -> None:
    async def test() -> None:
        app = _app()
        install(app)
        consumer = app.consumer
        tp = TP("t", 0)
        app.flow_control.resume()  # suspended until the first recovery ends
        assert consumer._direct_queues(tp) is None  # no channel: Faust's careful path
        channel = BatchedTopic(app, topics=["t"], maxsize=2, within_s=1.0).clone(is_iterator=True)
        app.topics._tp_index[tp].add(channel)  # as the conductor routes an assigned partition
        assert consumer._direct_queues(tp) == [channel.queue]
        app.flow_control.suspend()  # a rebalance: the conductor would wait for the flow
        assert consumer._direct_queues(tp) is None
        app.flow_control.resume()
        channel.queue.put_nowait("a")
        channel.queue.put_nowait("b")  # full: the conductor would wait for room
        assert consumer._direct_queues(tp) is None
        other = TP("changelog", 0)  # a Faust channel (a table's changelog in a recovery, say)
        app.topics._tp_index[other].add(app.topic("changelog").clone(is_iterator=True))
        assert consumer._direct_queues(other) is None

    asyncio.run(test())


def test_a_delivery_that_outlasts_a_seek_leaves_the_read_offset_where_the_seek_put_it() -> None:
    """A record fetched before a rebalance waits in the conductor while the recovery seeks
    the partition back to its committed offset; when it is finally delivered, the read offset
    must stay at the seek's, or the consumer drops every re-read record below the stale one."""

    async def test() -> None:
        app = _app()
        install(app)
        consumer = app.consumer
        tp = TP("t", 0)
        read_offsets(consumer)[tp] = 40

        async def no_broker_seek(partition: TP, offset: int) -> None:
            pass

        consumer.seek_in_thread = no_broker_seek  # type: ignore[method-assign]
        delivered = []

        async def plain(message: _Record) -> None:
            delivered.append(message.offset)

        consumer.callback = plain
        await consumer.deliver(tp, _Record(41))  # type: ignore[arg-type]
        assert read_offsets(consumer)[tp] == 41

        async def seeked_meanwhile(message: _Record) -> None:
            delivered.append(message.offset)
            await consumer.seek(tp, 10)  # what the recovery does while the delivery waits

        consumer.callback = seeked_meanwhile
        await consumer.deliver(tp, _Record(42))  # type: ignore[arg-type]
        assert read_offsets(consumer)[tp] == 10
        assert delivered == [41, 42]

    asyncio.run(test())


def test_records_below_the_read_offset_are_skipped_only_on_fausts_own_topics() -> None:
    app = _app()
    install(app)
    consumer = app.consumer
    ours, fausts = TP("input", 0), TP("changelog", 0)
    app.topics._tp_index[ours].add(BatchedTopic(app, topics=["input"]).clone(is_iterator=True))
    app.topics._tp_index[fausts].add(app.topic("changelog").clone(is_iterator=True))
    read_offsets(consumer).update({ours: 10, fausts: 10})
    assert not consumer.already_read(ours, 5)  # re-read after a race: the pipeline skips what it applied
    assert consumer.already_read(fausts, 5)
    assert not consumer.already_read(fausts, 10) and not consumer.already_read(fausts, 11)


def test_a_seek_runs_in_the_consumers_own_thread() -> None:
    """Faust's seek called aiokafka's in the caller's thread while the consumer's thread was
    fetching, and aiokafka's fetcher crashed (a KeyError for the partition); it is handed to
    that thread now, as Faust's own ``seek_wait`` is."""

    async def test() -> None:
        app = _app()
        install(app)
        consumer = app.consumer
        thread = consumer._thread  # not started here: record what it is asked to run
        calls: list[tuple[object, tuple[object, ...]]] = []

        async def call_thread(fun: object, *args: object) -> None:
            calls.append((fun, args))

        thread.call_thread = call_thread
        await consumer.seek(TP("t", 0), 42)
        assert calls == [(thread.seek, (TP("t", 0), 42))]
        assert read_offsets(consumer)[TP("t", 0)] == 42

    asyncio.run(test())


def test_a_log_that_serves_an_offset_again_without_a_seek_is_recorded_as_gone_back() -> None:
    """aiokafka resets a read position past the end of the log (a restarted memory-only
    broker) to the log's start and serves its records: offsets at or below those delivered,
    with no seek of ours. After a seek, re-reading lower offsets is what was asked for."""

    async def test() -> None:
        app = _app()
        install(app)
        consumer = app.consumer
        lost, rewound = TP("t", 0), TP("t", 1)

        async def no_broker_seek(partition: TP, offset: int) -> None:
            pass

        async def plain(message: _Record) -> None:
            pass

        consumer.seek_in_thread = no_broker_seek  # type: ignore[method-assign]
        consumer.callback = plain
        for tp in (lost, rewound):
            for offset in (40, 41):
                await consumer.deliver(tp, _Record(offset))  # type: ignore[arg-type]
        assert consumer.went_back == {}
        await consumer.deliver(lost, _Record(0))  # type: ignore[arg-type]
        await consumer.seek(rewound, 10)
        await consumer.deliver(rewound, _Record(10))  # type: ignore[arg-type]
        await consumer.deliver(rewound, _Record(11))  # type: ignore[arg-type]
        assert consumer.went_back == {lost: (41, 0)}

    asyncio.run(test())


@pytest.mark.parametrize("change", ["revocation", "pause"])
def test_what_a_fetch_returns_is_delivered_whatever_happens_to_the_active_partitions_meanwhile(change: str) -> None:
    """The broker client waits for records of the active partitions while a rebalance or a
    pause changes them: a revocation empties Faust's set (and aiokafka reads an empty set as
    every partition), a pause takes partitions out of it. Faust's loop then dropped what the
    client returned for partitions no longer in it, although the client had moved past them:
    a recovery waited forever for changelog records dropped that way."""

    async def test() -> None:
        app = _app()
        install(app)
        consumer = app.consumer
        tp = TP("t", 0)
        consumer._set_active_tps({tp, TP("t", 1)})
        consumer.flow_active = True
        passed = {}

        async def getmany(active_partitions: frozenset[TP] | None, timeout: float) -> dict[TP, list[_Record]]:
            passed["partitions"] = set(active_partitions or ())
            if change == "revocation":
                consumer._get_active_partitions().clear()
            else:
                consumer.pause_partitions([tp])
            return {tp: [_Record(7)]}

        consumer._getmany = getmany  # type: ignore[method-assign]
        records, active = await consumer._wait_next_records(1.0)
        assert passed["partitions"] == {tp, TP("t", 1)}  # the client was asked for both, as they were
        assert tp in active and list(records) == [tp]  # so the loop keeps what it returned

    asyncio.run(test())


def test_the_end_offsets_a_recovery_reads_up_to_are_checked_against_a_fetch(monkeypatch: pytest.MonkeyPatch) -> None:
    """Faust's recovery reads each changelog up to ``consumer.highwaters``; Tansu's
    ListOffsets can fall short of the real end, so the installed consumer asks a probe."""
    from faust.transport.drivers import aiokafka as aiokafka_driver

    from streams.runtime import consumer as consumer_module

    tp = TP("changelog", 0)

    async def listed(self: object, *partitions: TP) -> dict[TP, int]:
        return {partition: 5 for partition in partitions}

    probes: list[tuple[dict[str, object], dict[TP, int]]] = []

    async def fetched(connection: dict[str, object], ends: dict[TP, int]) -> dict[TP, int]:
        probes.append((connection, ends))
        return {partition: end + 2 for partition, end in ends.items()}

    monkeypatch.setattr(aiokafka_driver.Consumer, "highwaters", listed)  # Faust's ListOffsets, no broker
    monkeypatch.setattr(consumer_module, "fetched_end_offsets", fetched)
    checked, unchecked = _app(), _app()
    install(checked, probe_connection={"bootstrap_servers": "127.0.0.1:1"})
    install(unchecked)
    assert asyncio.run(checked.consumer.highwaters(tp)) == {tp: 7}
    assert probes == [({"bootstrap_servers": "127.0.0.1:1"}, {tp: 5})]
    assert asyncio.run(unchecked.consumer.highwaters(tp)) == {tp: 5}


def test_membership_is_lost_once_aiokafka_resets_the_member_after_an_expired_session() -> None:
    """aiokafka forgets the member id when a heartbeat or commit finds the session expired
    (its own ``reset_generation``, run here on a stand-in coordinator): the consumer must
    read that as "the group dropped this worker". Fails loudly if aiokafka changes it."""
    from types import SimpleNamespace

    from aiokafka.consumer.group_coordinator import GroupCoordinator

    app = _app()
    install(app)
    consumer = app.consumer
    coordinator = SimpleNamespace(generation=4, member_id="worker-1", request_rejoin=lambda: None)
    consumer._thread._consumer = SimpleNamespace(_coordinator=coordinator)
    assert not consumer.membership_lost()
    GroupCoordinator.reset_generation(coordinator)  # type: ignore[arg-type]
    assert consumer.membership_lost()


def test_membership_is_in_doubt_while_no_heartbeat_succeeded_for_a_session_timeout() -> None:
    """A process stopped past the session timeout was dropped by the broker before its own
    heartbeat can find out: from the moment it resumes, no success for that long says so."""
    import time
    from types import SimpleNamespace

    async def test() -> None:
        app = _app()
        install(app)
        consumer = app.consumer
        answers = [True, False]

        async def do_heartbeat() -> bool:
            return answers.pop(0)

        coordinator = SimpleNamespace(member_id="worker-1", _do_heartbeat=do_heartbeat)
        consumer._thread._consumer = SimpleNamespace(_coordinator=coordinator)
        consumer._watch_heartbeats()  # an assignment: the group just confirmed the member
        assert not consumer.membership_lost()
        stale = time.monotonic() - app.conf.broker_session_timeout - 1
        consumer._confirmed_at = stale  # stopped that long ago
        assert consumer.membership_lost()
        assert await coordinator._do_heartbeat() is True  # it answers: the member is still known
        assert not consumer.membership_lost()
        consumer._confirmed_at = stale
        assert await coordinator._do_heartbeat() is False  # a failure confirms nothing
        assert consumer.membership_lost()
        wrapped = coordinator._do_heartbeat
        consumer._watch_heartbeats()  # a later assignment confirms again, and wraps nothing twice
        assert coordinator._do_heartbeat is wrapped and not consumer.membership_lost()

    asyncio.run(test())


def test_a_direct_record_goes_into_the_buffer_as_the_conductor_puts_it_until_the_route_changes() -> None:
    """The direct path puts the record itself into the partition's micro-batch buffer (one
    reference per channel, the read offset moved), without the conductor; a new channel set
    (the conductor builds one at each assignment) is looked up again, and a partition that
    also feeds a Faust channel goes through the conductor."""

    async def test() -> None:
        app = _app()
        install(app)
        consumer = app.consumer
        tp = TP("t", 0)
        app.flow_control.resume()
        via_conductor: list[int] = []

        async def conductor(message: Message) -> None:
            via_conductor.append(message.offset)

        consumer.callback = conductor
        channel = BatchedTopic(app, topics=["t"], within_s=1.0).clone(is_iterator=True)
        app.topics._tp_index[tp].add(channel)
        first = Message("t", 0, 7, None, None, None, b"k", b"v", None, tp=tp)
        await consumer.deliver(tp, first)
        assert via_conductor == [] and first.refcount == 1 and read_offsets(consumer)[tp] == 7
        assert channel.queue.get_nowait() == [first]
        app.topics._tp_index[tp] = {channel, app.topic("t").clone(is_iterator=True)}  # a new assignment
        await consumer.deliver(tp, Message("t", 0, 8, None, None, None, b"k", b"v", None, tp=tp))
        assert via_conductor == [8]

    asyncio.run(test())


def test_the_direct_path_pauses_and_resumes_a_partition_under_pressure_by_fausts_own_partition_tuple() -> None:
    """The fetch loop names a partition with aiokafka's tuple; the pressure callbacks must pass
    Faust's ``TP`` (its sets of active partitions assert it), as the conductor's do."""
    from aiokafka import TopicPartition

    async def test() -> None:
        app = _app()
        install(app)
        consumer = app.consumer
        app.flow_control.resume()
        full: list[object] = []
        dropped: list[object] = []
        consumer.on_buffer_full = full.append  # type: ignore[method-assign]
        consumer.on_buffer_drop = dropped.append  # type: ignore[method-assign]
        channel = BatchedTopic(app, topics=["t"], maxsize=10, max_records=1, within_s=1.0).clone(is_iterator=True)
        app.topics._tp_index[TP("t", 0)].add(channel)
        fetched = TopicPartition("t", 0)
        for offset in range(9):
            await consumer.deliver(fetched, Message("t", 0, offset, None, None, None, b"k", b"v", None, tp=TP("t", 0)))
        assert full and all(type(tp) is TP for tp in full)
        while channel.queue.qsize() > 1:
            await channel.queue.get()
        await channel.queue.get()  # below the drop size: the partition is resumed
        assert dropped and all(type(tp) is TP for tp in dropped)

    asyncio.run(test())


def _messages(tp: TP, offsets: range, generation: int | None = None) -> list[Message]:
    return [Message(tp.topic, tp.partition, o, None, None, None, b"k", b"v" * 10, None, tp=tp, generation_id=generation)
            for o in offsets]


def test_a_fetch_goes_into_the_buffer_at_once_as_record_by_record_delivery_puts_it() -> None:
    """The run path puts a fetch's records into the micro-batch buffer as :meth:`deliver`
    would one at a time: the same batches, one reference each, the read offset at the last;
    it stops where the buffer is full (the rest wait for room record by record)."""

    async def delivered(run: bool, maxsize: int) -> tuple[list[list[int]], int, int | None, list[int]]:
        app = _app()
        install(app)
        consumer = app.consumer
        tp = TP("t", 0)
        app.flow_control.resume()
        channel = BatchedTopic(app, topics=["t"], maxsize=maxsize, max_records=4, within_s=1.0).clone(is_iterator=True)
        app.topics._tp_index[tp].add(channel)
        messages = _messages(tp, range(10, 20))
        if run:
            done = consumer.deliver_run(tp, messages)
        else:
            done = 0
            while consumer._direct_queues(tp) is not None and done < len(messages):
                await consumer.deliver(tp, messages[done])
                done += 1
        batches = []
        while channel.queue.qsize():
            batches.append([m.offset for m in channel.queue.get_nowait()])
        return batches, done, read_offsets(consumer).get(tp), [m.refcount for m in messages]

    async def test() -> None:
        for maxsize in (1000, 3):  # room for all, room for three records
            assert await delivered(True, maxsize) == await delivered(False, maxsize)
        batches, done, read, refs = await delivered(True, 1000)
        assert batches == [[10, 11, 12, 13], [14, 15, 16, 17], [18, 19]] and done == 10 and read == 19
        assert refs == [1] * 10
        assert (await delivered(True, 3))[1] == 3

    asyncio.run(test())


def test_a_fetch_goes_at_once_only_on_the_direct_path_and_a_log_that_went_back_is_recorded() -> None:
    async def test() -> None:
        app = _app()
        install(app)
        consumer = app.consumer
        tp = TP("t", 0)
        app.flow_control.resume()
        assert consumer.deliver_run(tp, _messages(tp, range(3))) == 0  # no channel: Faust's path
        channel = BatchedTopic(app, topics=["t"], within_s=1.0).clone(is_iterator=True)
        app.topics._tp_index[tp].add(channel)
        app.flow_control.suspend()
        assert consumer.deliver_run(tp, _messages(tp, range(3))) == 0
        app.flow_control.resume()
        consumer.suspend_flow.set()
        assert consumer.deliver_run(tp, _messages(tp, range(3))) == 0
        consumer.suspend_flow.clear()
        assert consumer.deliver_run(tp, _messages(tp, range(3))) == 3
        assert consumer.went_back == {}
        assert consumer.deliver_run(tp, _messages(tp, range(1, 4))) == 3  # served again, no reset
        assert consumer.went_back == {tp: (2, 1)}
        other = TP("t", 1)  # a partition that also feeds a Faust channel
        app.topics._tp_index[other] = {channel, app.topic("t").clone(is_iterator=True)}
        assert consumer.deliver_run(other, _messages(other, range(3))) == 0
        rest = _messages(tp, range(10, 15))
        assert consumer.deliver_run(tp, rest, 3) == 2 and read_offsets(consumer)[tp] == 14  # the rest of a fetch
        assert [m.refcount for m in rest] == [0, 0, 0, 1, 1]

    asyncio.run(test())


def test_a_fetch_goes_at_once_a_record_that_must_wait_goes_faust_s_way_and_the_rest_at_once_again() -> None:
    async def test() -> None:
        app = _app()
        install(app)
        consumer = app.consumer
        tp = TP("t", 0)
        app.flow_control.resume()
        consumer.flow_active = True
        channel = BatchedTopic(app, topics=["t"], maxsize=3, max_records=100, within_s=1.0).clone(is_iterator=True)
        app.topics._tp_index[tp].add(channel)
        via_conductor: list[int] = []

        async def conductor(message: Message) -> None:  # waits for room, as Faust's handler
            via_conductor.append(message.offset)
            taken.extend(m.offset for m in channel.queue.get_nowait())
            channel.queue.put_nowait(message)

        taken: list[int] = []
        consumer.callback = conductor
        generation = app.consumer_generation_id
        assert await consumer._deliver_fetched(tp, _messages(tp, range(5), generation), generation)
        assert taken == [0, 1, 2] and via_conductor == [3]  # three went at once, then the buffer was full
        assert [m.offset for m in channel.queue.get_nowait()] == [3, 4]  # the rest at once again
        assert read_offsets(consumer)[tp] == 4
        app.consumer_generation_id = generation + 1  # a rebalance: the rest of the fetch is dropped
        assert not await consumer._deliver_fetched(tp, _messages(tp, range(5, 7), generation), generation)
        assert channel.queue.qsize() == 0

    asyncio.run(test())
