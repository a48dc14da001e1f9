"""The monitors' checkpoint and the hand-over (streams.runtime.checkpoint), and the broker checks
around a batch (streams.runtime.integrity): what they write, in
which order, and what a failed checkpoint or batch does (an unstarted Faust app and recorded
writes; the broker path runs in the integration and fault tests)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import faust
import pytest
from faust.types import TP
from prometheus_client import CollectorRegistry

from streams.pipeline.monitor_config import MonitorConfig
from streams.runtime import integrity as integrity_module
from streams.runtime.app import Pipeline
from streams.runtime.checkpoint import CHECKPOINT_CHUNK_BYTES
from streams.runtime.table_writes import TableWriter
from streams.settings import Settings


class RecordingWriter(TableWriter):
    """Table writes recorded as ``(send|wait, table, keys)`` instead of produced."""

    def __init__(self, app: faust.App) -> None:
        super().__init__(app)
        self.events: list[tuple[str, str, list[Any]]] = []

    async def send(self, table: Any, message: Any, writes: Any) -> list[Any]:
        keys = [key for key, _ in writes]
        self.events.append(("send", table.name, keys))
        return keys

    async def wait(self, table: Any, futures: list[Any]) -> None:
        self.events.append(("wait", table.name, list(futures)))


def _pipeline() -> tuple[Pipeline, list[tuple[str, str, list[Any]]]]:
    app = faust.App("test-checkpoint", broker="kafka://127.0.0.1:1", store="memory://", web_enabled=False)
    writer = RecordingWriter(app)
    pipeline = Pipeline(app, Settings(), MonitorConfig(), CollectorRegistry(), writer=writer)
    return pipeline, writer.events


def _fatal_calls(pipeline: Pipeline) -> list[tuple[str, int]]:
    """Where ``pipeline``'s fatal exits go instead: ``(message, status)`` each."""
    fatal: list[tuple[str, int]] = []
    pipeline.on_fatal = lambda message, status: fatal.append((message, status))
    return fatal


def _probe_answers(pipeline: Pipeline, answers: list[dict[TP, str] | None]) -> list[dict[TP, str] | None]:
    """Make ``pipeline``'s changelog probe give ``answers`` in turn; the answers it gave."""
    given: list[dict[TP, str] | None] = []

    async def probe() -> dict[TP, str] | None:
        given.append(answers.pop(0))
        return given[-1]

    pipeline.integrity.changelog_problems = probe  # type: ignore[method-assign]
    return given


def test_a_checkpoint_sends_its_states_in_pieces_then_the_offsets_of_partitions_still_assigned() -> None:
    async def test() -> None:
        pipeline, events = _pipeline()
        topic = pipeline.settings.topic("monitor-input")
        pipeline.app.consumer.assignment = lambda: {TP(topic, 0)}  # partition 1 was revoked meanwhile
        first, second = SimpleNamespace(partition=0), SimpleNamespace(partition=1)
        big = b"x" * (CHECKPOINT_CHUNK_BYTES // 2 + 1)
        await pipeline.checkpointer.write(
            [("a", first, big), ("b", second, big), ("c", first, b"{}")], {0: (first, 7), 1: (second, 9)}, 0.0,
        )
        assert events == [
            ("send", "monitor-state", ["a"]), ("send", "monitor-state", ["b"]), ("wait", "monitor-state", ["a", "b"]),
            ("send", "monitor-state", ["c"]), ("wait", "monitor-state", ["c"]),
            ("send", "monitor-offsets", ["0"]), ("wait", "monitor-offsets", ["0"]),
        ]

    asyncio.run(test())


def test_a_failed_checkpoint_raises_at_the_next_one_and_one_in_flight_is_not_overtaken() -> None:
    async def test() -> None:
        pipeline, events = _pipeline()
        pipeline.checkpointer.checkpointed_at = 0.0  # long due
        pipeline.monitors.unsaved_offsets = {0: SimpleNamespace(partition=0)}
        pipeline.monitors.offsets = {0: 5}
        in_flight = asyncio.get_running_loop().create_future()
        pipeline.checkpointer.task = in_flight
        await pipeline.checkpointer.if_due()
        assert pipeline.checkpointer.task is in_flight and pipeline.monitors.unsaved_offsets  # waits its turn
        in_flight.set_exception(OSError("broker gone"))
        with pytest.raises(OSError, match="broker gone"):
            await pipeline.checkpointer.if_due()
        assert pipeline.checkpointer.task is None and events == []

    asyncio.run(test())


def test_a_hand_over_writes_the_unsaved_states_then_settles_each_join_partition() -> None:
    async def test() -> None:
        pipeline, events = _pipeline()
        topic = pipeline.settings.topic("monitor-input")
        pipeline.app.consumer.assignment = lambda: {TP(topic, 0)}
        message = SimpleNamespace(partition=0)
        pipeline.checkpointer.checkpointed_at = float("inf")  # not due: the hand-over checkpoints anyway
        pipeline.monitors.monitors = {"m": pipeline.monitors.stage.new_slot("m", None)}
        pipeline.monitors.unsaved_monitors, pipeline.monitors.unsaved_offsets = {"m": message}, {0: message}
        pipeline.monitors.offsets = {0: 11}
        settled = SimpleNamespace(outbox={"monitor-input": []})
        pipeline.joins.joins = {0: settled, 1: SimpleNamespace(outbox=None)}  # type: ignore[dict-item]
        pipeline.joins.messages = {0: message, 1: SimpleNamespace(partition=1)}  # type: ignore[dict-item]
        pipeline.joins.stage.settle = lambda part: [("0:meta", b"{}")] if part.outbox else []  # type: ignore[method-assign]
        await pipeline.checkpointer.hand_over()
        assert events == [
            ("send", "monitor-state", ["m"]), ("wait", "monitor-state", ["m"]),
            ("send", "monitor-offsets", ["0"]), ("wait", "monitor-offsets", ["0"]),
            ("send", "join-state", ["0:meta"]), ("wait", "join-state", ["0:meta"]),
        ]
        assert pipeline.metrics.handovers.labels("complete")._value.get() == 1

    asyncio.run(test())


def test_a_worker_the_group_dropped_saves_nothing_at_the_revocation_and_drops_its_caches() -> None:
    """SIGSTOPped past the session timeout, a worker's partitions went to another, which
    applied more and saved it; the resumed worker's hand-over overwrote that with its older
    state, and the events in between were lost. Dropped by the group, it saves nothing."""

    async def test() -> None:
        pipeline, events = _pipeline()
        lost = [True]
        pipeline.app.consumer.membership_lost = lambda: lost[0]  # type: ignore[attr-defined]
        message = SimpleNamespace(partition=0)
        pipeline.monitors.monitors = {"m": pipeline.monitors.stage.new_slot("m", None)}
        pipeline.monitors.unsaved_monitors, pipeline.monitors.unsaved_offsets = {"m": message}, {0: message}
        pipeline.monitors.offsets = {0: 11}
        pipeline.checkpointer.checkpointed_at = 0.0  # long due
        _probe_answers(pipeline, [{}])
        await pipeline.checkpointer.checkpoint()  # before the revocation reaches the pipeline
        assert events == []
        assert pipeline.metrics.checkpoints.labels("skipped_member_lost")._value.get() == 1
        await pipeline.on_revoked()
        assert events == []
        assert pipeline.metrics.handovers.labels("skipped_member_lost")._value.get() == 1
        assert not pipeline.monitors.monitors and not pipeline.monitors.unsaved_monitors and not pipeline.monitors.unsaved_offsets

    asyncio.run(test())


def test_a_checkpoint_that_finds_the_worker_dropped_midway_writes_nothing_more_and_stays_unsaved() -> None:
    async def test() -> None:
        pipeline, events = _pipeline()
        lost = iter([False, True])
        pipeline.app.consumer.membership_lost = lambda: next(lost)  # type: ignore[attr-defined]
        first, second = SimpleNamespace(partition=0), SimpleNamespace(partition=0)
        await pipeline.checkpointer.write([("a", first, b"{}"), ("b", second, b"{}")], {0: (first, b"{}")}, 0.0)
        assert events == [("send", "monitor-state", ["a"])]  # b, and the offsets that cover it, never written
        assert set(pipeline.monitors.unsaved_monitors) == {"a", "b"} and set(pipeline.monitors.unsaved_offsets) == {0}

    asyncio.run(test())


def test_a_failed_batch_ends_the_worker_and_nothing_is_saved_after_it() -> None:
    async def test() -> None:
        pipeline, events = _pipeline()
        fatal = _fatal_calls(pipeline)
        pipeline.checkpointer.checkpointed_at = 0.0  # long due
        pipeline.monitors.unsaved_offsets = {0: SimpleNamespace(partition=0)}
        pipeline.monitors.offsets = {0: 5}

        async def half_applied(messages: list[Any]) -> None:
            raise KeyError("a bug")

        pipeline.monitors.apply = half_applied  # type: ignore[method-assign]
        with pytest.raises(KeyError):
            await pipeline.handle_monitor([])
        assert [status for _, status in fatal] == [70] and "monitor batch failed" in fatal[0][0]
        await pipeline.checkpointer.checkpoint()
        await pipeline.checkpointer.hand_over()
        assert events == []
        assert pipeline.metrics.handovers.labels("incomplete")._value.get() == 1

    asyncio.run(test())


def test_no_checkpoint_starts_while_the_broker_cannot_be_asked_or_lost_what_this_worker_wrote() -> None:
    """A checkpoint started during a broker outage is held by the producer and delivered when
    the broker is back: into a restarted memory-only broker, where the next worker would
    recover it. It waits until the changelog probe answers and finds nothing lost."""

    async def test() -> None:
        pipeline, events = _pipeline()
        topic = pipeline.settings.topic("monitor-input")
        pipeline.app.consumer.assignment = lambda: {TP(topic, 0)}
        pipeline.monitors.unsaved_offsets = {0: SimpleNamespace(partition=0)}
        pipeline.monitors.offsets = {0: 5}
        _probe_answers(pipeline, [None, {TP("changelog", 0): "ends at offset 0"}, {}])
        for _ in range(2):  # unreachable, then lost data: nothing written, nothing forgotten
            pipeline.checkpointer.checkpointed_at = 0.0  # long due
            await pipeline.checkpointer.if_due()
            assert events == [] and pipeline.checkpointer.task is None and pipeline.monitors.unsaved_offsets
        await pipeline.checkpointer.if_due()  # the broker answers, whole
        await pipeline.checkpointer.written()
        assert events == [("wait", "monitor-state", []), ("send", "monitor-offsets", ["0"]), ("wait", "monitor-offsets", ["0"])]
        counted = {outcome: pipeline.metrics.checkpoints.labels(outcome)._value.get()
                   for outcome in ("skipped_unreachable", "skipped_changelog_lost", "started")}
        assert counted == {"skipped_unreachable": 1, "skipped_changelog_lost": 1, "started": 1}

    asyncio.run(test())


def test_a_due_checkpoint_with_nothing_changed_asks_the_broker_nothing() -> None:
    """The timer calls for a checkpoint every second: an idle worker must not probe the
    changelogs (a metadata and an end-offsets request) each time, or count a checkpoint."""

    async def test() -> None:
        pipeline, events = _pipeline()
        probes = _probe_answers(pipeline, [{}])
        pipeline.checkpointer.checkpointed_at = 0.0  # long due
        await pipeline.checkpointer.if_due()
        assert probes == [] and events == [] and pipeline.checkpointer.task is None
        assert pipeline.checkpointer.checkpointed_at > 0.0  # the next one is a second away again
        assert pipeline.metrics.checkpoints.labels("started")._value.get() == 0

    asyncio.run(test())


def test_a_batch_from_a_log_that_went_back_ends_the_worker_before_anything_is_applied() -> None:
    async def test() -> None:
        pipeline, events = _pipeline()
        fatal = _fatal_calls(pipeline)
        topic = pipeline.settings.topic("predictions")
        pipeline.app.consumer.went_back = {TP(topic, 1): (191, 0)}  # type: ignore[attr-defined]
        pipeline.app.consumer.assignment = lambda: {TP(topic, 0), TP(topic, 1)}
        applied: list[Any] = []

        async def join_partition(*args: Any) -> None:
            applied.append(args)

        pipeline.joins.join_partition = join_partition  # type: ignore[method-assign]
        other = SimpleNamespace(tp=TP(topic, 0), topic=topic, partition=0, offset=5, value=b"[]", timestamp=1.0)
        await pipeline.joins.handle([other])  # another partition's log: applied as usual
        assert fatal == [] and len(applied) == 1
        gone = SimpleNamespace(tp=TP(topic, 1), topic=topic, partition=1, offset=0, value=b"[]", timestamp=2.0)
        await pipeline.joins.handle([other, gone])
        assert [status for _, status in fatal] == [75] and "served offset 0 after offset 191" in fatal[0][0]
        assert len(applied) == 1 and events == []

    asyncio.run(test())


def test_a_log_served_again_below_what_it_delivered_but_still_reaching_past_it_is_a_re_read() -> None:
    """A rebalance's seek back to the committed offsets that the consumer did not count (seen
    when a second worker joined): the log still reaches past the offset delivered, so its
    records are applied (and the ones applied before skipped), and the worker goes on."""
    async def test() -> None:
        pipeline, _ = _pipeline()
        fatal = _fatal_calls(pipeline)
        topic = pipeline.settings.topic("predictions")
        went_back = {TP(topic, 1): (191, 150)}
        pipeline.app.consumer.went_back = went_back  # type: ignore[attr-defined]
        pipeline.integrity.highwater = lambda tp: 400  # type: ignore[method-assign]
        applied: list[Any] = []

        async def join_partition(*args: Any) -> None:
            applied.append(args)

        pipeline.joins.join_partition = join_partition  # type: ignore[method-assign]
        again = SimpleNamespace(tp=TP(topic, 1), topic=topic, partition=1, offset=150, value=b"[]", timestamp=2.0)
        await pipeline.joins.handle([again])
        assert fatal == [] and len(applied) == 1 and went_back == {}

    asyncio.run(test())


def test_a_log_served_again_on_a_partition_no_longer_assigned_here_stops_nothing() -> None:
    """A worker rejoining after a pause past the session timeout (or one whose partition moved
    in that rebalance) re-read a record, and its batch came once the partition was gone: its
    end is unknown here, and the new owner checks the log; stopping here (status 75) stopped
    both workers of a group."""
    async def test() -> None:
        pipeline, _ = _pipeline()
        fatal = _fatal_calls(pipeline)
        topic = pipeline.settings.topic("predictions")
        went_back = {TP(topic, 1): (68, 67)}
        pipeline.app.consumer.went_back = went_back  # type: ignore[attr-defined]
        pipeline.app.consumer.assignment = lambda: {TP(topic, 0)}  # partition 1 was revoked
        pipeline.integrity.highwater = lambda tp: None  # type: ignore[method-assign]
        applied: list[Any] = []

        async def join_partition(*args: Any) -> None:
            applied.append(args)

        pipeline.joins.join_partition = join_partition  # type: ignore[method-assign]
        again = SimpleNamespace(tp=TP(topic, 1), topic=topic, partition=1, offset=67, value=b"[]", timestamp=2.0)
        await pipeline.joins.handle([again])
        assert fatal == [] and went_back == {}

    asyncio.run(test())


def test_after_the_broker_was_unreachable_a_batch_applies_only_once_it_came_back_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    """A restarted memory-only broker comes back empty, and its new logs can grow past the
    read positions before the next fetch: nothing in the offsets shows it. So once the
    broker could not be reached, a batch waits for the changelog probe: whole, it applies;
    gone twice in a row, the worker stops before applying it."""
    monkeypatch.setattr(integrity_module, "VERIFY_RETRY_S", 0.0)

    async def test(answers: list[dict[TP, str] | None]) -> tuple[list[tuple[str, int]], int]:
        pipeline, _ = _pipeline()
        fatal = _fatal_calls(pipeline)
        pipeline.integrity.settings = pipeline.settings.replace(broker="kafka://127.0.0.1:1")  # nothing listens
        await pipeline.integrity.check_broker()
        assert pipeline.integrity.broker_reachable is False
        _probe_answers(pipeline, answers)
        applied: list[Any] = []

        async def join_partition(*args: Any) -> None:
            applied.append(args)

        pipeline.joins.join_partition = join_partition  # type: ignore[method-assign]
        topic = pipeline.settings.topic("predictions")
        record = SimpleNamespace(tp=TP(topic, 0), topic=topic, partition=0, offset=5, value=b"[]", timestamp=1.0)
        await pipeline.joins.handle([record])
        return fatal, len(applied)

    gone = {TP("changelog", 0): "state changelog changelog[0] ends at offset 0"}
    fatal, applied = asyncio.run(test([None, gone, {}]))  # unreachable, a hiccup, whole
    assert fatal == [] and applied == 1
    fatal, applied = asyncio.run(test([None, gone, gone]))
    assert [status for _, status in fatal] == [75] and applied == 0


def test_the_broker_check_keeps_the_event_loop_running_while_it_waits(monkeypatch: pytest.MonkeyPatch) -> None:
    """``check_broker`` runs on the event loop (a timer and ``/ready`` call it): a broker that
    accepts answers True; one that never answers answers False after the timeout, and the
    loop's other tasks run meanwhile."""
    monkeypatch.setattr(integrity_module, "CONNECT_TIMEOUT_S", 0.3)

    async def test() -> tuple[bool | None, bool | None, bool, int]:
        pipeline, _ = _pipeline()
        server = await asyncio.start_server(lambda reader, writer: writer.close(), "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        integrity = pipeline.integrity
        integrity.settings = pipeline.settings.replace(broker=f"kafka://127.0.0.1:{port}")
        async with server:
            await integrity.check_broker()
        reachable = integrity.broker_reachable

        async def never(*args: Any, **kwargs: Any) -> Any:
            await asyncio.Event().wait()

        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        task = asyncio.create_task(ticker())
        monkeypatch.setattr(asyncio, "open_connection", never)
        await integrity.check_broker()
        task.cancel()
        return reachable, integrity.broker_reachable, integrity.unverified, ticks

    reachable, silent, unverified, ticks = asyncio.run(test())
    assert reachable is True
    assert silent is False and unverified is True
    assert ticks >= 5  # 0.3 s of waiting, ticks every 0.01 s: the loop was not blocked


def test_ready_asks_the_broker_itself_before_the_first_timer_check() -> None:
    async def test() -> tuple[bool | None, dict[str, Any]]:
        pipeline, _ = _pipeline()  # its broker, 127.0.0.1:1, refuses connections
        pipeline.app.consumer = SimpleNamespace(assignment=set)  # not started: nothing assigned
        before = pipeline.integrity.broker_reachable
        return before, await pipeline.readiness()

    before, state = asyncio.run(test())
    assert before is None
    assert state["broker_reachable"] is False and state["ready"] is False
