"""Join predictions with their labels by ``prediction_id``, in event time, per partition.

Pure logic, no Kafka: the live agent, ``replay`` and the offline ``backtest`` all run this.

Both halves may arrive in either order, twice, or never. A half waits in the pending
state until its partner arrives or the join window (event time) closes over it:

- prediction, then label (or label, then prediction): ``matched``, one joined pair;
- a second copy of either half: ``duplicate``, ignored;
- a prediction whose window closed without a label: ``expired`` (counts against coverage);
- a label whose prediction already expired: ``late``;
- a label whose prediction never came within the window: ``unmatched``.

State is bounded by the window: every entry leaves once the watermark (the largest
*prediction* event time seen in the partition) passes it by ``window_s`` (expired-prediction
markers, kept to tell ``late`` from ``unmatched`` and to recognise a copy of an expired
prediction, by ``2 * window_s``), rounded up to 1/64 of the window. The window closes as
soon as a prediction moves the watermark, before it applies, so how a stream is cut into
micro-batches never changes the outcome. Labels do not move the watermark: the two input
topics are consumed at their own paces, and a label topic read ahead of its predictions
(a backlog of small label records) must not expire the predictions still to come. Event
time is per partition: a partition that receives no predictions keeps its pending halves
until it does.

Persistence is a log of deltas, one per micro-batch, so a batch of 500 events costs one
changelog record rather than 500 table writes: ``JoinState.apply`` returns a
:class:`JoinBatch` whose ``delta`` adds and removes entries; deltas whose entries are all
gone can be deleted (their ``dead_deltas``), so the log stays bounded too.

>>> state = JoinState(window_s=60.0)
>>> batch = state.apply([
...     ("predictions", {"prediction_id": "a", "model_id": "m", "model_version": None,
...                      "timestamp": 10.0, "prediction": 1, "score": 0.9}, (0, None)),
...     ("ground-truth", {"prediction_id": "a", "label": 1, "timestamp": 15.0}, (0, None)),
... ])
>>> [p.prediction_id for p in batch.pairs], batch.outcomes["matched"]
(['a'], 1)
>>> rebuilt = JoinState.from_deltas(60.0, [batch.delta])
>>> rebuilt.apply([("ground-truth", {"prediction_id": "a", "label": 1,
...                                  "timestamp": 16.0}, (1, None))]).outcomes["duplicate"]
1
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

#: Sections of the pending state: predictions, labels, done (matched ids), expired markers.
SECTIONS = ("p", "l", "d", "x")

#: Where an event came from inside its topic partition: (offset, index in a batch record).
Position = tuple[int, "int | None"]


class JoinedPair(NamedTuple):
    """A prediction with its label; ``timestamp`` is the prediction's event time. (A named
    tuple: one is built per joined pair, and ``zip(*pairs)`` gives the columns.)"""

    prediction_id: str
    model_id: str
    model_version: str | None
    timestamp: float
    prediction: Any
    score: float | None
    label: Any
    label_timestamp: float


@dataclass(frozen=True, slots=True)
class JoinRecord:
    """A label that found no prediction (``late`` or ``unmatched``), or an expired prediction."""

    outcome: str
    prediction_id: str
    model_id: str | None
    timestamp: float
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome,
            "prediction_id": self.prediction_id,
            "model_id": self.model_id,
            "timestamp": self.timestamp,
            "detail": self.detail,
        }


@dataclass
class JoinBatch:
    """What one micro-batch did to the join."""

    predictions: list[dict[str, Any]] = field(default_factory=list)
    pairs: list[JoinedPair] = field(default_factory=list)
    records: list[JoinRecord] = field(default_factory=list)
    outcomes: Counter[str] = field(default_factory=Counter)
    label_lags: list[float] = field(default_factory=list)
    expired_by_model: Counter[str] = field(default_factory=Counter)
    delta: dict[str, Any] = field(default_factory=dict)
    dead_deltas: list[int] = field(default_factory=list)


class JoinState:
    """Pending halves of the join for one partition, with a delta log for persistence."""

    def __init__(self, window_s: float) -> None:
        if not window_s > 0:
            raise ValueError(f"window_s must be > 0, got {window_s}")
        self.window_s = float(window_s)
        # section -> prediction_id -> entry; entry[-2] is the event time, entry[-1] the delta seq.
        self.entries: dict[str, dict[str, list[Any]]] = {s: {} for s in SECTIONS}
        # Deltas still needed for recovery: their live entry counts, and the older deltas
        # whose entries they removed (a removal must outlive the entry's own delta).
        self.alive: set[int] = set()
        self.live: Counter[int] = Counter()
        self.pins: dict[int, set[int]] = {}
        self.pinned_by: dict[int, set[int]] = {}
        # Expiry in event-time buckets of window/64: an entry leaves once the watermark has
        # passed the end of its deadline's bucket (exact, whatever the batch cuts).
        self.granularity = self.window_s / 64
        self._spans = {s: self._span(s) for s in SECTIONS}
        self.buckets: dict[int, list[tuple[str, str]]] = {}
        self.bucket_heap: list[int] = []
        self.watermark = float("-inf")
        self.seq = 0
        self._adds: dict[str, dict[str, list[Any]]] = {s: {} for s in SECTIONS}
        self._rms: dict[str, list[str]] = {s: [] for s in SECTIONS}
        self._emptied: set[int] = set()
        # owners (delta seqs) of the entries removed by the batch being applied, counted
        # once at its end (:meth:`_settle`) rather than one by one
        self._released: list[int] = []

    # -- persistence ---------------------------------------------------------------------
    @classmethod
    def from_deltas(cls, window_s: float, deltas: Iterable[dict[str, Any]]) -> JoinState:
        """Rebuild the state by applying persisted deltas in ``seq`` order."""
        state = cls(window_s)
        for delta in sorted(deltas, key=lambda d: int(d["seq"])):
            state._apply_delta(delta)
        state._rebuild_expiry()
        return state

    def _apply_delta(self, delta: dict[str, Any]) -> None:
        self.seq = max(self.seq, int(delta["seq"]))
        if delta["wm"] is not None:  # None: no prediction seen yet
            self.watermark = max(self.watermark, float(delta["wm"]))
        self.alive.add(self.seq)
        for section in SECTIONS:
            table = self.entries[section]
            for pid in delta["rm"].get(section, ()):
                self._drop(section, pid)
            for pid, entry in delta["add"].get(section, {}).items():
                self._drop(section, pid)
                table[pid] = entry
                self.live[int(entry[-1])] += 1

    def _rebuild_expiry(self) -> None:
        self.buckets = {}
        self.bucket_heap = []
        for section, table in self.entries.items():
            for pid, entry in table.items():
                self._schedule(section, pid, entry)

    def _bucket(self, section: str, entry: list[Any]) -> int:
        return int((entry[-2] + self._spans[section]) // self.granularity)

    def _schedule(self, section: str, pid: str, entry: list[Any]) -> None:
        bucket = int((entry[-2] + self._spans[section]) // self.granularity)
        items = self.buckets.get(bucket)
        if items is None:
            items = self.buckets[bucket] = []
            heapq.heappush(self.bucket_heap, bucket)
        items.append((section, pid))

    def _span(self, section: str) -> float:
        return 2 * self.window_s if section == "x" else self.window_s

    def size(self) -> int:
        return sum(len(t) for t in self.entries.values())

    # -- mutation helpers ----------------------------------------------------------------
    def _add(self, section: str, pid: str, entry: list[Any]) -> None:
        table = self.entries[section]
        if pid in table:  # an expired marker can be replaced by a newer one
            self._remove(section, pid)
        entry.append(self.seq)
        table[pid] = entry
        self._adds[section][pid] = entry
        self._schedule(section, pid, entry)

    def _remove(self, section: str, pid: str) -> list[Any] | None:
        entry = self.entries[section].pop(pid, None)
        if entry is None:
            return None
        if entry[-1] == self.seq:
            del self._adds[section][pid]  # added and removed within this batch: no trace
        else:
            self._rms[section].append(pid)
            self._released.append(entry[-1])
        return entry

    def _drop(self, section: str, pid: str) -> None:
        """Remove while replaying a delta (recovery)."""
        entry = self.entries[section].pop(pid, None)
        if entry is not None:
            self._release(int(entry[-1]))

    def _settle(self) -> None:
        """Count the entries the batch removed against the deltas that added them."""
        if self._released:
            for owner, count in Counter(self._released).items():
                self._release(int(owner), count)
            self._released = []

    def _release(self, owner: int, count: int = 1) -> None:
        """``count`` entries of delta ``owner`` are gone: count them, and pin ``owner`` to
        this delta."""
        self.live[owner] -= count
        if self.live[owner] <= 0:
            del self.live[owner]
            self._emptied.add(owner)
        if owner != self.seq:
            pins = self.pins.get(self.seq)
            if pins is None:
                pins = self.pins[self.seq] = set()
            pins.add(owner)
            pinned_by = self.pinned_by.get(owner)
            if pinned_by is None:
                pinned_by = self.pinned_by[owner] = set()
            pinned_by.add(self.seq)

    def _collect(self, seq: int, dead: list[int]) -> None:
        """Forget delta ``seq`` if nothing it added is live and nothing it removed still is."""
        if seq not in self.alive or self.live.get(seq, 0) > 0 or self.pins.get(seq):
            return
        self.alive.discard(seq)
        self.pins.pop(seq, None)
        dead.append(seq)
        for dependent in self.pinned_by.pop(seq, set()):
            pins = self.pins.get(dependent)
            if pins is not None:
                pins.discard(seq)
            self._collect(dependent, dead)

    # -- the join ------------------------------------------------------------------------
    def apply(
        self, events: Sequence[tuple[str, dict[str, Any], Position]]
    ) -> JoinBatch:
        """Apply validated events ``(topic role, event, position)`` in order; one delta.

        The hot loop of the worker: the common cases (a new half waits, its partner
        matches it, a copy is a duplicate) are written out here with the tables in local
        names; a removal (:meth:`_remove`), expiry and a late label call helpers."""
        self.seq += 1
        seq = self.seq
        batch = JoinBatch()
        heap = self.bucket_heap
        buckets = self.buckets
        granularity = self.granularity
        pending_p, pending_l, done, expired = (self.entries[s] for s in SECTIONS)
        adds_p, adds_l, adds_d = self._adds["p"], self._adds["l"], self._adds["d"]
        span_p, span_l, span_d = self._spans["p"], self._spans["l"], self._spans["d"]
        predictions, pairs, lags = batch.predictions, batch.pairs, batch.label_lags
        new_pair = tuple.__new__
        duplicates = matched = 0
        for role, event, _position in events:
            ts = event["timestamp"]
            pid = event["prediction_id"]
            if role == "predictions":
                if ts > self.watermark:
                    self.watermark = ts
                    # close the window before this event applies: batching never changes the join
                    if heap and (heap[0] + 1) * granularity <= ts:
                        self._expire(batch)
                if pid in pending_p or pid in done or pid in expired:
                    duplicates += 1
                    continue
                predictions.append(event)
                label = self._remove("l", pid) if pid in pending_l else None
                if label is None:
                    entry = [event["model_id"], event["model_version"], event["prediction"], event["score"], ts, seq]
                    pending_p[pid] = adds_p[pid] = entry
                    bucket, section = int((ts + span_p) // granularity), "p"
                else:
                    label_ts = label[-2]
                    pairs.append(new_pair(JoinedPair, (
                        pid, event["model_id"], event["model_version"], ts, event["prediction"], event["score"], label[0], label_ts,
                    )))
                    lags.append(label_ts - ts)
                    matched += 1
                    done[pid] = adds_d[pid] = [ts, seq]
                    bucket, section = int((ts + span_d) // granularity), "d"
            else:
                if pid in pending_l or pid in done:
                    duplicates += 1
                    continue
                pred = self._remove("p", pid) if pid in pending_p else None
                if pred is not None:
                    pred_ts = pred[4]
                    pairs.append(new_pair(JoinedPair, (pid, pred[0], pred[1], pred_ts, pred[2], pred[3], event["label"], ts)))
                    lags.append(ts - pred_ts)
                    matched += 1
                    done[pid] = adds_d[pid] = [pred_ts, seq]
                    bucket, section = int((pred_ts + span_d) // granularity), "d"
                elif pid in expired:
                    self._late(pid, expired[pid], ts, batch)
                    continue
                else:
                    pending_l[pid] = adds_l[pid] = [event["label"], event.get("model_id"), ts, seq]
                    bucket, section = int((ts + span_l) // granularity), "l"
            items = buckets.get(bucket)  # schedule the new entry's expiry
            if items is None:
                items = buckets[bucket] = []
                heapq.heappush(heap, bucket)
            items.append((section, pid))
        if matched:
            batch.outcomes["matched"] += matched
        if duplicates:
            batch.outcomes["duplicate"] += duplicates
        self._settle()
        batch.delta = self._delta()
        self.alive.add(self.seq)
        dead: list[int] = []
        candidates, self._emptied = self._emptied | {self.seq}, set()
        for seq in sorted(candidates):
            self._collect(seq, dead)
        batch.dead_deltas = sorted(s for s in dead if s != self.seq)
        if self.seq in dead:
            batch.delta = {}
        return batch

    def _late(self, pid: str, expired: list[Any], ts: float, batch: JoinBatch) -> None:
        batch.outcomes["late"] += 1
        batch.records.append(
            JoinRecord(
                "late", pid, expired[0], ts,
                f"label arrived after the {self.window_s:g}s join window of its prediction closed",
            )
        )

    def _expire(self, batch: JoinBatch) -> None:
        heap = self.bucket_heap
        while heap and (heap[0] + 1) * self.granularity <= self.watermark:
            bucket = heapq.heappop(heap)
            for section, pid in self.buckets.pop(bucket):
                entry = self.entries[section].get(pid)
                if entry is None or self._bucket(section, entry) != bucket:
                    continue  # already matched or replaced: a stale item
                self._remove(section, pid)
                if section == "p":
                    batch.outcomes["expired"] += 1
                    batch.expired_by_model[entry[0]] += 1
                    self._add("x", pid, [entry[0], entry[-2]])
                elif section == "l":
                    batch.outcomes["unmatched"] += 1
                    batch.records.append(
                        JoinRecord(
                            "unmatched", pid, entry[1], entry[-2],
                            f"no prediction with this id arrived within the {self.window_s:g}s join window",
                        )
                    )

    def _delta(self) -> dict[str, Any]:
        add = {section: adds for section, adds in self._adds.items() if adds}
        rm = {section: rms for section, rms in self._rms.items() if rms}
        added = sum(len(a) for a in add.values())
        if added:
            self.live[self.seq] += added
        self._adds = {s: {} for s in SECTIONS}
        self._rms = {s: [] for s in SECTIONS}
        watermark = self.watermark if self.watermark > float("-inf") else None  # JSON has no -inf
        return {"seq": self.seq, "wm": watermark, "add": add, "rm": rm}
