"""``streams.runtime.gaps.GapGuard``: records the consumer skipped are re-read, real gaps pass."""

from __future__ import annotations

import asyncio

from streams.runtime.gaps import REWIND_PATIENCE_S, GapGuard


class Broker:
    """What the log holds per topic, and the guard's calls to it."""

    def __init__(self, **logs: list[int]) -> None:
        self.logs = logs
        self.asked: list[tuple[str, int]] = []
        self.sought: list[tuple[str, int]] = []
        self.now = 0.0

    async def first_offset(self, topic: str, partition: int, offset: int) -> int | None:
        self.asked.append((topic, offset))
        return next((o for o in self.logs[topic] if o >= offset), None)

    async def seek(self, topic: str, partition: int, offset: int) -> None:
        self.sought.append((topic, offset))

    def guard(self) -> GapGuard:
        return GapGuard(self.first_offset, self.seek, clock=lambda: self.now)


def screen(guard: GapGuard, applied: dict[str, int], records: list[tuple[str, int]]) -> list[tuple[str, int]]:
    return asyncio.run(guard.screen(0, applied, records, key=lambda r: r))


def test_skipped_records_are_re_read_in_order_and_the_other_topic_goes_on() -> None:
    broker = Broker(p=list(range(10)), g=list(range(10)))
    guard = broker.guard()
    # g[3] never came; p is whole
    got = screen(guard, {"p": 1, "g": 1}, [("p", 2), ("g", 2), ("g", 4), ("p", 3), ("g", 5), ("p", 4)])
    assert got == [("p", 2), ("g", 2), ("p", 3), ("p", 4)]
    assert broker.sought == [("g", 3)] and guard.rewinds == 1
    # records fetched before the rewind still arrive first: held without asking the broker again
    got = screen(guard, {"p": 4, "g": 2}, [("g", 6), ("p", 5), ("g", 3), ("g", 4), ("g", 5), ("g", 6)])
    assert got == [("p", 5), ("g", 3), ("g", 4), ("g", 5), ("g", 6)]
    assert broker.asked == [("g", 3)] and guard.rewinding == {}


def test_a_real_gap_is_applied_past_without_a_rewind() -> None:
    broker = Broker(t=[0, 1, 2, 4, 5, 7])  # 3 and 6: transaction markers, say
    guard = broker.guard()
    assert screen(guard, {"t": 2}, [("t", 4), ("t", 5), ("t", 7)]) == [("t", 4), ("t", 5), ("t", 7)]
    assert broker.sought == [] and broker.asked == [("t", 3), ("t", 6)]


def test_replays_and_first_sight_are_let_through() -> None:
    broker = Broker(t=list(range(20)))
    guard = broker.guard()
    assert screen(guard, {}, [("t", 7), ("t", 8)]) == [("t", 7), ("t", 8)]  # no state yet
    assert screen(guard, {"t": 8}, [("t", 5), ("t", 6), ("t", 9)]) == [("t", 5), ("t", 6), ("t", 9)]
    assert broker.asked == []


def test_a_rewind_that_does_not_deliver_is_asked_again_after_a_while() -> None:
    broker = Broker(t=list(range(10)))
    guard = broker.guard()
    assert screen(guard, {"t": 1}, [("t", 5)]) == []
    assert screen(guard, {"t": 1}, [("t", 6)]) == []  # fetched before the seek: sought again at once
    assert broker.sought == [("t", 2), ("t", 2)] and broker.asked == [("t", 2)]
    broker.now += REWIND_PATIENCE_S + 1
    assert screen(guard, {"t": 1}, [("t", 7)]) == []
    assert broker.sought == [("t", 2), ("t", 2), ("t", 2)] and broker.asked == [("t", 2), ("t", 2)]
    assert screen(guard, {"t": 1}, [("t", 2), ("t", 3)]) == [("t", 2), ("t", 3)]
    assert guard.rewinding == {}


def test_a_broker_that_cannot_be_asked_holds_the_records_until_it_can() -> None:
    broker = Broker(t=list(range(10)))
    answers = [OSError("unreachable")]

    async def first_offset(topic: str, partition: int, offset: int) -> int | None:
        if answers:
            raise answers.pop()
        return await broker.first_offset(topic, partition, offset)

    guard = GapGuard(first_offset, broker.seek, clock=lambda: broker.now)
    assert screen(guard, {"t": 1}, [("t", 4), ("t", 5)]) == []
    assert broker.sought == []
    broker.now += REWIND_PATIENCE_S + 1
    assert screen(guard, {"t": 1}, [("t", 6)]) == []
    assert broker.sought == [("t", 2)]


def test_no_answer_from_the_broker_is_not_taken_for_a_real_gap() -> None:
    broker = Broker(t=list(range(10)))
    answers: list[int | None] = [None]

    async def first_offset(topic: str, partition: int, offset: int) -> int | None:
        if answers:
            return answers.pop()  # the probe saw no record in time
        return await broker.first_offset(topic, partition, offset)

    guard = GapGuard(first_offset, broker.seek, clock=lambda: broker.now)
    assert screen(guard, {"t": 1}, [("t", 4), ("t", 5)]) == []  # held, not applied past offsets 2 and 3
    assert broker.sought == []
    broker.now += REWIND_PATIENCE_S + 1
    assert screen(guard, {"t": 1}, [("t", 6)]) == []
    assert broker.sought == [("t", 2)]
    assert screen(guard, {"t": 1}, [("t", 2), ("t", 3), ("t", 4)]) == [("t", 2), ("t", 3), ("t", 4)]


def test_a_real_gap_followed_by_skipped_records_rewinds_to_the_first_record_after_it() -> None:
    broker = Broker(t=[0, 1, 2, 5, 6, 7, 8])  # 3 and 4 hold nothing; the consumer skipped 5 and 6
    guard = broker.guard()
    assert screen(guard, {"t": 2}, [("t", 7), ("t", 8)]) == []
    assert broker.sought == [("t", 5)]
    # what was fetched before the rewind is held without asking again; then 5 comes
    assert screen(guard, {"t": 2}, [("t", 8), ("t", 5), ("t", 6), ("t", 7)]) == [("t", 5), ("t", 6), ("t", 7)]
    assert broker.asked == [("t", 3)] and guard.rewinding == {} and guard.real_gaps == {}


def test_a_rebalance_forgets_rewinds_in_progress() -> None:
    broker = Broker(t=list(range(10)))
    guard = broker.guard()
    assert screen(guard, {"t": 1}, [("t", 5)]) == []
    guard.reset()
    assert guard.rewinding == {} and guard.real_gaps == {}
    assert screen(guard, {"t": 1}, [("t", 5)]) == []  # asked again at once, not after the patience
    assert broker.sought == [("t", 2), ("t", 2)]


def test_a_rewind_whose_records_never_come_is_sought_again_without_new_records() -> None:
    broker = Broker(t=list(range(10)))
    guard = broker.guard()
    assert screen(guard, {"t": 1}, [("t", 5), ("t", 6)]) == []  # the last records of an idle topic
    assert asyncio.run(guard.retry_overdue()) == 0  # not yet
    broker.now += REWIND_PATIENCE_S
    assert asyncio.run(guard.retry_overdue()) == 1
    assert broker.sought == [("t", 2), ("t", 2)] and guard.rewinds == 2
    assert asyncio.run(guard.retry_overdue()) == 0  # the patience starts again
    assert screen(guard, {"t": 1}, [("t", 2), ("t", 3)]) == [("t", 2), ("t", 3)]
    assert guard.rewinding == {}


def test_a_rewind_applied_by_other_means_is_forgotten_not_retried() -> None:
    broker = Broker(t=list(range(10)))
    guard = broker.guard()
    assert screen(guard, {"t": 1}, [("t", 5)]) == []
    # the partition's state moved past the rewind (e.g. its records came in another batch)
    assert screen(guard, {"t": 5}, [("t", 6)]) == [("t", 6)]
    broker.now += REWIND_PATIENCE_S
    assert asyncio.run(guard.retry_overdue()) == 0 and guard.rewinding == {}
    assert broker.sought == [("t", 2)]
