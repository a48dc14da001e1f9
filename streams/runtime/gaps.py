"""Heal offset gaps in what the consumer delivers: re-read records that exist but were skipped.

A join partition's state records the last offset it applied per input topic. When the next
record delivered for a topic is further on than the one after it, either the log really has
no records there (transaction markers take offsets; compaction removes records), or the
consumer skipped records that exist. The second happened here: after a SIGKILL and a
restart, Faust delivered ``ground-truth`` offsets 29 and then 31, and offset 30 was never
applied, so its labels were lost. :class:`GapGuard` asks the broker which of the two it is
(``first_offset``: the first offset it holds at or after the missing one); if records
exist, it rewinds the consumer to them (``seek``) and holds back the topic's later records
until the missing one arrives, so nothing is applied out of order. A real gap is let
through, and the join counts it. A broker that cannot say (an error, or no answer in time)
is never taken for a real gap: the records wait, and the broker is asked again.

>>> import asyncio
>>> log = {"t": [0, 1, 2, 3, 4]}                     # the broker holds offsets 0..4
>>> sought = []
>>> async def first_offset(topic, partition, offset):
...     return next((o for o in log[topic] if o >= offset), None)
>>> async def seek(topic, partition, offset):
...     sought.append(offset)
>>> guard = GapGuard(first_offset, seek)
>>> asyncio.run(guard.screen(0, {"t": 0}, [("t", 1), ("t", 3), ("t", 4)], key=lambda r: r))
[('t', 1)]
>>> sought
[2]
>>> asyncio.run(guard.screen(0, {"t": 1}, [("t", 4), ("t", 2), ("t", 3), ("t", 4)], key=lambda r: r))
[('t', 2), ('t', 3), ('t', 4)]
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TypeVar

log = logging.getLogger(__name__)

R = TypeVar("R")
#: ``(topic, partition, offset)`` -> the first offset the broker holds at or after ``offset``
#: (``None``: no answer in time; the guard only asks about offsets before one it was given,
#: so the broker holds at least that one).
FirstOffset = Callable[[str, int, int], Awaitable[int | None]]
#: ``(topic, partition, offset)``: make the consumer deliver from ``offset`` again.
Seek = Callable[[str, int, int], Awaitable[None]]

#: Seconds to wait for a rewound topic to deliver the missing record before asking again.
REWIND_PATIENCE_S = 10.0


class GapGuard:
    """Screen each batch of one partition's records (see the module docstring)."""

    def __init__(self, first_offset: FirstOffset, seek: Seek, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.first_offset = first_offset
        self.seek = seek
        self.clock = clock
        #: (topic, partition) -> (the offset awaited: rewound to, or asked about; since when)
        self.rewinding: dict[tuple[str, int], tuple[int, float]] = {}
        #: (topic, partition) -> (first, end): offsets first..end-1 hold no records, and
        #: end.. were skipped by the consumer (rewound to end)
        self.real_gaps: dict[tuple[str, int], tuple[int, int]] = {}
        self.rewinds = 0

    async def retry_overdue(self) -> int:
        """Seek again every rewind that has waited :data:`REWIND_PATIENCE_S` for its
        record; returns how many. Faust's consumer loop dropped re-read records below a
        read offset that records fetched before the seek had moved past the rewind
        (:mod:`streams.runtime.consumer` no longer does); on a topic with no new records nothing
        else would ask again, so a timer asks. Call it from a timer."""
        now = self.clock()
        overdue = [(where, offset) for where, (offset, since) in self.rewinding.items() if now - since >= REWIND_PATIENCE_S]
        retried = 0
        for (topic, partition), offset in overdue:
            if self.rewinding.get((topic, partition), (None, 0.0))[0] != offset:
                continue  # its record arrived while an earlier seek was awaited
            log.warning("%s[%d]: offset %d has not arrived %g s after the rewind; re-reading from %d again",
                        topic, partition, offset, REWIND_PATIENCE_S, offset)
            await self._start_rewind(topic, partition, offset)
            retried += 1
        return retried

    async def _start_rewind(self, topic: str, partition: int, offset: int) -> None:
        """Await ``offset`` from now on, and make the consumer deliver from it again."""
        self.rewinding[(topic, partition)] = (offset, self.clock())
        await self.seek(topic, partition, offset)
        self.rewinds += 1

    async def rewind(self, topic: str, partition: int, offset: int) -> None:
        """Make the consumer deliver ``topic[partition]`` from ``offset`` again, holding the
        records further on it delivers meanwhile (e.g. to apply again what came after a
        checkpoint)."""
        await self._start_rewind(topic, partition, offset)

    def reset(self) -> None:
        """Forget rewinds in progress (partitions were reassigned: they start afresh)."""
        self.rewinding.clear()
        self.real_gaps.clear()

    async def screen(
        self, partition: int, applied: Mapping[str, int], records: Sequence[R], key: Callable[[R], tuple[str, int]],
    ) -> list[R]:
        """The records to apply, in order: each topic's records up to a gap of records
        that exist (a rewind is started for them), and everything a real gap or no gap
        precedes. ``applied``: topic -> the last offset applied; ``key``: a record's
        ``(topic, offset)``."""
        expected = {topic: self._next(topic, partition, offset + 1) for topic, offset in applied.items()}
        for topic, want in expected.items():  # a rewind whose records were applied meanwhile is over
            awaited = self.rewinding.get((topic, partition))
            if awaited is not None and awaited[0] < want:
                del self.rewinding[(topic, partition)]
        under_way = {where: awaited for where, awaited in self.rewinding.items() if where[1] == partition}
        held: set[str] = set()
        kept: list[R] = []
        for record in records:
            topic, offset = key(record)
            want = expected.get(topic)
            if want is None or offset <= want:  # first sight, a replay (the join skips it), or the next one
                if offset == want:
                    self.rewinding.pop((topic, partition), None)
                    self.real_gaps.pop((topic, partition), None)
                    held.discard(topic)
                expected[topic] = offset + 1 if want is None else max(offset + 1, want)
                kept.append(record)
            elif topic in held or await self._records_missing(topic, partition, want, offset):
                held.add(topic)  # until the missing record arrives (a rewind delivers it again)
            else:
                expected[topic] = offset + 1
                kept.append(record)
        for topic in held:
            where = (topic, partition)
            awaited = self.rewinding.get(where)
            if awaited is not None and under_way.get(where) == awaited:
                # records fetched before an earlier seek: with Faust's own loop, delivering
                # them moved its read offset past the rewind, and it dropped the re-read ones
                log.debug("%s[%d]: records from before the rewind; seeking to %d again", topic, partition, awaited[0])
                await self.seek(topic, partition, awaited[0])
        return kept

    def _next(self, topic: str, partition: int, want: int) -> int:
        """The offset to apply next after ``want - 1``: past a real gap found there."""
        gap = self.real_gaps.get((topic, partition))
        return gap[1] if gap is not None and gap[0] == want else want

    async def _records_missing(self, topic: str, partition: int, want: int, offset: int) -> bool:
        """True when offsets ``want..offset-1`` may hold records the consumer must re-read
        (it has been rewound to them, or the broker could not say)."""
        where = (topic, partition)
        awaited = self.rewinding.get(where)
        if awaited is not None and awaited[0] == want and self.clock() - awaited[1] < REWIND_PATIENCE_S:
            return True  # records fetched before the rewind: the missing ones come after them
        try:
            first = await self.first_offset(topic, partition, want)
            problem = "no answer in time"
        except (OSError, RuntimeError) as exc:  # KafkaError is a RuntimeError
            first, problem = None, repr(exc)
        if first is None:  # never a real gap: the broker holds offset ``offset`` at least
            log.warning("%s[%d]: offsets %d..%d were not delivered and the broker could not say whether it "
                        "holds them (%s); holding later records", topic, partition, want, offset - 1, problem)
            self.rewinding[where] = (want, self.clock())
            return True
        if first >= offset:
            self.rewinding.pop(where, None)
            return False  # the log has nothing there: a real gap
        if first > want:
            self.real_gaps[where] = (want, first)
            log.warning("%s[%d]: offsets %d..%d hold no records, and %d..%d were skipped by the consumer; "
                        "re-reading from %d", topic, partition, want, first - 1, first, offset - 1, first)
        else:
            log.warning("%s[%d]: offsets %d..%d were skipped by the consumer but are in the log; re-reading from %d",
                        topic, partition, want, offset - 1, want)
        await self._start_rewind(topic, partition, first)
        return True
