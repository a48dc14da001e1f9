"""How far each join partition has read its two input topics, for the event-time clock.

A topic partition is **idle** once the broker has held nothing this worker has not applied
for ``idle_after_s`` (the lag check of Kafka Streams' task idling: only a partition with
no lag may stop holding the others back; the wait adds latency, never changes a result
while data is still there to read). From that, per join partition:

- :meth:`InputProgress.labels_behind`: the join's window closes no further than the labels
  applied (:meth:`streams.join.JoinState.clock`);
- :meth:`InputProgress.report`: the progress record it sends to the monitors
  (:mod:`streams.event_time`): the smaller of its topics' largest event times, leaving
  out an idle topic; idle when both are.

>>> ends = {("p", 0): 10, ("l", 0): 4}
>>> progress = InputProgress("p", "l", lambda t, p: ends[(t, p)], idle_after_s=1.0)
>>> applied = {"p": 9, "l": 3}     # the last offsets applied
>>> progress.idle("l", 0, applied["l"], now=0.0), progress.idle("l", 0, applied["l"], now=1.5)
(False, True)
>>> progress.idle("p", 0, 5, now=1.5)   # offsets 6..9 unread
False
"""

from __future__ import annotations

import math
from collections.abc import Callable

__all__ = ["InputProgress"]

#: ``(topic, partition)`` -> the end offset of the log as last fetched; ``None``: unknown
Highwater = Callable[[str, int], "int | None"]


class InputProgress:
    """Lag and idleness of the join's input partitions (see the module docstring)."""

    def __init__(self, predictions: str, labels: str, highwater: Highwater, *, idle_after_s: float) -> None:
        self.predictions = predictions
        self.labels = labels
        self.highwater = highwater
        self.idle_after_s = idle_after_s
        #: (topic, partition) -> since when nothing has been unread
        self._caught_up_since: dict[tuple[str, int], float] = {}

    def reset(self) -> None:
        """A rebalance: what this worker reads has changed."""
        self._caught_up_since.clear()

    def idle(self, topic: str, partition: int, applied: int | None, now: float) -> bool:
        """Whether ``topic[partition]`` has had nothing unread past offset ``applied`` (the
        last one applied; ``None``: none) for ``idle_after_s``. An end not known yet (no
        fetch of it) counts as records unread."""
        end = self.highwater(topic, partition)
        key = (topic, partition)
        if end is None or end > (-1 if applied is None else applied) + 1:
            self._caught_up_since.pop(key, None)
            return False
        since = self._caught_up_since.setdefault(key, now)
        return now - since >= self.idle_after_s

    def labels_behind(self, partition: int, applied: int | None, now: float) -> bool:
        return not self.idle(self.labels, partition, applied, now)

    def report(
        self, partition: int, applied: dict[str, int | None], watermarks: dict[str, float] | None, now: float,
    ) -> tuple[float | None, bool] | None:
        """``(watermark, idle)`` for join partition ``partition``: ``applied`` is the last
        offset applied per topic, ``watermarks`` each topic's largest event time (``None``:
        its state is not loaded). ``None`` when it cannot tell yet (state not loaded and
        records unread: its next batch will)."""
        busy = [topic for topic in (self.predictions, self.labels) if not self.idle(topic, partition, applied.get(topic), now)]
        if not busy:
            return None, True
        if watermarks is None:
            return None
        watermark = min(watermarks[topic] for topic in busy)
        return (watermark if math.isfinite(watermark) else None), False
