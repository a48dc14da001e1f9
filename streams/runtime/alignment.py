"""Watermark alignment: the join reads ahead of the slowest join partition no further than
the monitors can hold.

A model's events wait in its :class:`~streams.pipeline.event_time.ReorderBuffer` until every join
partition has passed them (the frontier). A partition far ahead of the others (one the
broker serves first, a worker that caught up sooner) fills those buffers with events
that cannot apply yet. So once the events held on a worker reach ``max_held``, the join
partitions assigned to it whose watermark lies above the slowest partition's are paused
(their fetches stop, Faust's ``pause_partitions``), and all are resumed once the held
events fall to half of it. The slowest partition is never paused, so the frontier always
moves on. That is Flink's watermark alignment, triggered by memory rather than by a fixed
drift of event time; it changes when events are read, never what they give. A pause lasts
2 s at most (then the partition fetches for 1 s): each worker judges the others' progress
from the records it has read of it, which lag, and no view may keep a partition waiting.

The bound is soft: what was fetched before a pause (the consumer's buffer, bounded in
bytes by ``input_buffer_bytes``) still arrives. Events the monitors hold are reported as
``driftstream_monitor_held_events``, paused partitions as
``driftstream_join_paused_partitions``.

>>> align = Alignment(max_held=100)
>>> progress = {0: (50.0, False), 1: (20.0, False), 2: (None, True)}
>>> align.paused(held=99, own={0: (60.0, False)}, seen=progress, sources=3)
set()
>>> align.paused(held=100, own={0: (60.0, False)}, seen=progress, sources=3)   # 0 is ahead of 1
{0}
>>> align.paused(held=60, own={0: (60.0, False)}, seen=progress, sources=3)    # not down to 50 yet
{0}
>>> align.paused(held=50, own={0: (60.0, False)}, seen=progress, sources=3)
set()
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

__all__ = ["Alignment", "merge_progress"]

#: a join partition's progress: (watermark, ``None`` before any; idle)
Progress = tuple["float | None", bool]


class Alignment:
    """Which of a worker's join partitions to pause (see the module docstring)."""

    def __init__(self, max_held: int, *, max_pause_s: float = 2.0, rest_s: float = 1.0) -> None:
        if max_held < 1:
            raise ValueError(f"max_held must be >= 1, got {max_held}")
        self.max_held = max_held
        self.max_pause_s = max_pause_s
        self.rest_s = rest_s
        #: aligning: the held events reached ``max_held`` and have not fallen to half of it
        self.engaged = False
        #: partition -> since when it is paused
        self._since: dict[int, float] = {}
        #: partition -> until when it may not be paused again
        self._resting: dict[int, float] = {}

    def paused(
        self, held: int, own: Mapping[int, Progress], seen: Mapping[int, Progress], sources: int, now: float = 0.0,
    ) -> set[int]:
        """The partitions of ``own`` (this worker's join partitions, with the progress they
        last reported) to pause, given the events ``held`` by this worker's monitors and the
        progress ``seen`` of every join partition (``sources`` of them) on monitor-input.

        A partition stays paused ``max_pause_s`` at most, then fetches for ``rest_s`` before
        it may be paused again: the views of the other partitions' progress lag behind
        them, and however they lag, no partition waits for ever (nor does a worker whose
        partitions all wait on another's)."""
        if held >= self.max_held:
            self.engaged = True
        elif held <= self.max_held // 2:
            self.engaged = False
        want: set[int] = set()
        if self.engaged:
            slowest = _slowest({**seen, **own}, sources)
            want = {partition for partition, (watermark, idle) in own.items()
                    if not idle and watermark is not None and watermark > slowest}
        for partition in list(self._since):
            if partition not in want:
                del self._since[partition]
            elif now - self._since[partition] >= self.max_pause_s:
                del self._since[partition]
                self._resting[partition] = now + self.rest_s
        self._resting = {p: until for p, until in self._resting.items() if until > now}
        want -= self._resting.keys()
        for partition in want:
            self._since.setdefault(partition, now)
        return want


def _slowest(progress: Mapping[int, Progress], sources: int) -> float:
    """The smallest watermark of the join partitions that are not idle; ``-inf`` while any
    has not reported (nothing is known of it), ``+inf`` when all are idle."""
    if len(progress) < sources:
        return -math.inf
    marks = [-math.inf if watermark is None else watermark for watermark, idle in progress.values() if not idle]
    return min(marks, default=math.inf)


def merge_progress(views: Iterable[Mapping[int, tuple[float, bool]]]) -> dict[int, Progress]:
    """One view of the join partitions' progress from several (each monitor-input
    partition's :class:`~streams.pipeline.event_time.Frontier` reads them at its own pace): the
    latest, i.e. the largest watermark, of each."""
    merged: dict[int, Progress] = {}
    for view in views:
        for source, (watermark, idle) in view.items():
            mark = None if not math.isfinite(watermark) else watermark
            old = merged.get(source)
            if old is None or (mark is not None and (old[0] is None or mark > old[0])) or (mark == old[0] and idle):
                merged[source] = (mark, idle)
    return merged
