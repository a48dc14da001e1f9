"""How far each join partition has read its two input topics, for the event-time clock.

The join reads ``predictions`` and ``ground-truth`` at their own paces, so neither topic's
largest event time alone says how far the partition got. Per join partition and topic:

- a topic with records on the broker not applied yet is **behind**: it vouches only for
  the event times it applied;
- a topic with nothing unread is **caught up**, and vouches for what its partner had
  reached ``idle_after_s`` ago as well: a producer writes both topics, and what it wrote
  to one that long ago it has written to the other by now. A caught-up topic holds back
  no longer than that; only a topic with no lag can stop holding the partition back
  (the lag check of Kafka Streams' task idling, Flink's idle sources), and the wait adds
  latency, never changes a result while data is still there to read;
- both caught up and quiet for ``idle_after_s``: the partition is **idle**.

From that, :meth:`InputProgress.labels_through` bounds how far the join's window may close
(:meth:`streams.pipeline.join.JoinState.apply`), and :meth:`InputProgress.report` gives the progress
record the partition sends to the monitors (:mod:`streams.pipeline.event_time`).

>>> ends = {("p", 0): 10, ("l", 0): 4}
>>> progress = InputProgress("p", "l", lambda t, p: ends[(t, p)], idle_after_s=1.0)
>>> progress.report(0, {"p": 9, "l": 1}, {"p": 50.0, "l": 40.0}, now=0.0)   # labels unread
(40.0, False)
>>> progress.report(0, {"p": 9, "l": 3}, {"p": 60.0, "l": 40.0}, now=0.9)   # caught up, just now
(40.0, False)
>>> progress.report(0, {"p": 9, "l": 3}, {"p": 60.0, "l": 40.0}, now=1.2)   # as far as the predictions 1 s ago
(50.0, False)
>>> progress.report(0, {"p": 9, "l": 3}, {"p": 60.0, "l": 40.0}, now=2.0)   # both quiet since
(None, True)
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Mapping

__all__ = ["InputProgress"]

#: ``(topic, partition)`` -> the end offset of the log as last fetched; ``None``: unknown
Highwater = Callable[[str, int], "int | None"]

INF = math.inf


class InputProgress:
    """Lag and idleness of the join's input partitions (see the module docstring)."""

    def __init__(self, predictions: str, labels: str, highwater: Highwater, *, idle_after_s: float) -> None:
        self.predictions = predictions
        self.labels = labels
        self.highwater = highwater
        self.idle_after_s = idle_after_s
        #: partition -> (when, each topic's largest event time then), oldest first
        self._history: dict[int, deque[tuple[float, dict[str, float]]]] = {}
        #: partition -> when it was first asked about with no state loaded
        self._first_seen: dict[int, float] = {}

    def reset(self) -> None:
        """A rebalance: what this worker reads has changed."""
        self._history.clear()
        self._first_seen.clear()

    def observe(self, partition: int, watermarks: Mapping[str, float], now: float) -> None:
        """Record each topic's largest event time applied in ``partition`` (after a batch)."""
        history = self._history.setdefault(partition, deque())
        if history and history[-1][1] == watermarks:
            return
        history.append((now, dict(watermarks)))
        # keep the newest entry at least idle_after_s old, and what came after it
        while len(history) > 1 and history[1][0] <= now - self.idle_after_s:
            history.popleft()

    def _unread(self, topic: str, partition: int, applied: int | None) -> bool:
        """Whether the broker holds records of ``topic[partition]`` past offset ``applied``
        (``None``: none applied); an end not known yet (no fetch of it) counts as unread."""
        end = self.highwater(topic, partition)
        return end is None or end > (-1 if applied is None else applied) + 1

    def _vouched(self, partition: int, topic: str, applied: Mapping[str, int | None], now: float) -> float:
        """The event time below which ``topic`` of ``partition`` will bring nothing more."""
        history = self._history.get(partition)
        own = history[-1][1][topic] if history else -INF
        if self._unread(topic, partition, applied.get(topic)):
            return own
        partner = self.labels if topic == self.predictions else self.predictions
        then = -INF
        for when, marks in history or ():
            if when > now - self.idle_after_s:
                break
            then = marks[partner]
        return max(own, then)

    def labels_through(self, partition: int, applied: Mapping[str, int | None], now: float) -> float:
        """How far the labels of ``partition`` vouch for, beyond the labels applied
        (``-inf`` while any are unread)."""
        if self._unread(self.labels, partition, applied.get(self.labels)):
            return -INF
        return self._vouched(partition, self.labels, applied, now)

    def report(
        self, partition: int, applied: Mapping[str, int | None], watermarks: Mapping[str, float] | None, now: float,
    ) -> tuple[float | None, bool] | None:
        """``(watermark, idle)`` of join partition ``partition``: ``applied`` is the last
        offset applied per topic, ``watermarks`` each topic's largest event time (``None``:
        its state is not loaded here yet). ``None`` when it cannot tell (no state, and
        records unread: its next batch will)."""
        unread = [self._unread(topic, partition, applied.get(topic)) for topic in (self.predictions, self.labels)]
        if watermarks is None:
            quiet = now - self._first_seen.setdefault(partition, now) >= self.idle_after_s
            return (None, True) if not any(unread) and quiet else None
        self.observe(partition, watermarks, now)
        history = self._history[partition]
        if not any(unread) and history[-1][0] <= now - self.idle_after_s:
            return None, True
        watermark = min(self._vouched(partition, topic, applied, now) for topic in (self.predictions, self.labels))
        return (watermark if math.isfinite(watermark) else None), False
