"""Merge the join's two input topics by record timestamp, waiting for a topic that lags.

The join reads ``predictions`` and ``ground-truth`` partition by partition, and the consumer
reads the two topics at their own paces: with a backlog (a restarted worker, a replay), one
topic's records can arrive far ahead of the other's. Predictions read ahead of their labels
close the join window over labels still in the log, and those labels then count as late
(measured here: 2,405 of 90,169 labels in a fault run). :class:`InputAligner` does what a
Kafka Streams task does with its partitions ("task idling"): it holds the records it is given
and hands them on, per join partition, in record-timestamp order across the topics; a record
goes only when every other topic of its partition has a record buffered at or after it, or
has nothing unread on the broker (or has been waited for ``max_idle_s``, so a topic the
consumer cannot fetch never stops the other). A worker that is caught up holds nothing: what
the broker has, it has fetched.

The record timestamps are the producers' (``CreateTime``): the SDK and a model server publish
a prediction before its label, so this order is the order in which things happened.

>>> from types import SimpleNamespace as R
>>> caught_up = {"ground-truth": False}
>>> aligner = InputAligner(["predictions", "ground-truth"], lambda topic, partition: caught_up[topic], max_idle_s=5.0)
>>> aligner.add([R(topic="predictions", partition=0, offset=o, timestamp=t) for o, t in [(0, 1.0), (1, 3.0)]], now=0.0)
>>> [(r.topic, r.offset) for r in aligner.take(now=0.1)]   # labels unread: wait for them
[]
>>> aligner.add([R(topic="ground-truth", partition=0, offset=0, timestamp=2.0)], now=0.2)
>>> [(r.topic, r.offset) for r in aligner.take(now=0.2)]   # the label at 2.0 lets 1.0 through, then itself
[('predictions', 0), ('ground-truth', 0)]
>>> caught_up["ground-truth"] = True                        # nothing more on the broker
>>> [(r.topic, r.offset) for r in aligner.take(now=0.3)]
[('predictions', 1)]
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Sequence
from typing import Generic, Protocol, TypeVar

__all__ = ["InputAligner", "Record"]


class Record(Protocol):
    """What the aligner reads of a record (a Faust :class:`~faust.types.Message`)."""

    topic: str
    partition: int
    offset: int
    timestamp: float


R = TypeVar("R", bound=Record)

#: ``(topic, partition)`` -> whether the broker holds no record of it that was not handed over
CaughtUp = Callable[[str, int], bool]


class InputAligner(Generic[R]):
    """Hold records of co-partitioned topics; hand them on in timestamp order (see the
    module docstring). ``topics`` in tie order: at equal timestamps the first goes first."""

    def __init__(self, topics: Sequence[str], caught_up: CaughtUp, *, max_idle_s: float) -> None:
        if len(set(topics)) < 2 or not max_idle_s > 0:
            raise ValueError(f"need two topics or more and max_idle_s > 0, got {list(topics)} and {max_idle_s}")
        self.topics = list(topics)
        self.caught_up = caught_up
        self.max_idle_s = max_idle_s
        self._rank = {topic: i for i, topic in enumerate(self.topics)}
        #: partition -> topic -> the records held, in offset order
        self._held: dict[int, dict[str, deque[R]]] = {}
        #: partition -> since when it has waited for a topic with nothing buffered
        self._waiting_since: dict[int, float] = {}
        #: (topic, partition) -> the last offset added
        self._last: dict[tuple[str, int], int] = {}

    def add(self, records: Iterable[R], now: float) -> None:
        """Hold ``records`` (each topic-partition's in offset order, as the consumer reads)."""
        for record in records:
            topic = record.topic
            if topic not in self._rank:
                raise ValueError(f"record of topic {topic!r}, not one of {self.topics}")
            by_topic = self._held.get(record.partition)
            if by_topic is None:
                by_topic = self._held[record.partition] = {t: deque() for t in self.topics}
            by_topic[topic].append(record)
            self._last[(topic, record.partition)] = record.offset

    def last_offset(self, topic: str, partition: int) -> int | None:
        """The last offset of ``topic``'s ``partition`` added since the last :meth:`clear`."""
        return self._last.get((topic, partition))

    def holding(self) -> int:
        """How many records are held."""
        return sum(len(q) for by_topic in self._held.values() for q in by_topic.values())

    def clear(self) -> None:
        """Forget everything held (a rebalance: the consumer reads it again)."""
        self._held.clear()
        self._waiting_since.clear()
        self._last.clear()

    def take(self, now: float) -> list[R]:
        """The records that may go now, each partition's in timestamp order."""
        out: list[R] = []
        for partition, by_topic in self._held.items():
            out += self._take_partition(partition, by_topic, now)
        return out

    def _take_partition(self, partition: int, by_topic: dict[str, deque[R]], now: float) -> list[R]:
        out: list[R] = []
        rank = self._rank
        caught_up: dict[str, bool] = {}  # asked once per topic: nothing this loop does changes it

        def lagging(topic: str) -> bool:
            if topic not in caught_up:
                caught_up[topic] = self.caught_up(topic, partition)
            return not caught_up[topic]

        while True:
            heads = [q for q in by_topic.values() if q]
            if not heads:
                self._waiting_since.pop(partition, None)
                return out
            first = min(heads, key=lambda q: (_timestamp(q[0]), rank[q[0].topic]))
            topic = first[0].topic
            waiting = [t for t, q in by_topic.items() if t != topic and not q and lagging(t)]
            if waiting:
                since = self._waiting_since.setdefault(partition, now)
                if now - since < self.max_idle_s:
                    return out
            else:
                self._waiting_since.pop(partition, None)
            out.append(first.popleft())


def _timestamp(record: Record) -> float:
    """A record's timestamp; none (a producer that set none) sorts first."""
    ts = record.timestamp
    return float(ts) if ts is not None and ts >= 0 else float("-inf")
