"""The two pipeline stages as plain functions over records: what the agents, ``replay`` and
``backtest`` share, so live, replayed and offline runs give the same outputs.

**Join stage** (input partitioned by ``prediction_id``): decode and validate records
(bad ones become dead letters), join predictions with labels, and hand each model's share
of the batch to the monitor stage as one column batch (keyed by model, so every event of a
model meets the same detectors). Its state per partition is a :class:`~streams.pipeline.join.JoinState`
plus the last offset applied per input topic, so a replayed record is never applied twice.

**Monitor stage** (input partitioned by model): run each model's
:class:`~streams.pipeline.monitor.ModelMonitor`; skip a column batch it already applied (each
carries its join partition and sequence number).

The join persists as a transactional outbox: a batch's state and outputs are written to
the table together, and the outputs published once that write is acked; on recovery the
last outbox is published again (same ids, so consumers see at most a repeat, never a
loss). It must: a replay may cut the batches differently, and the monitors dedupe on a
batch's sequence number. A join batch is committed by one record (see
:meth:`JoinStage.persist`), so a crash between its table writes never leaves state its
recorded offsets do not cover.

The monitors' outputs depend only on each model's input log, so they need no outbox: the
monitor agent publishes them at once and checkpoints the models' states now and then; a
replay from the checkpoint publishes the same outputs again.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import orjson

from schemas import codec
from schemas.columns import Role, concat_columns, event_columns, rows, take
from schemas.ids import stable_id
from schemas.parsing import RecordError, dead_letter_record, decode_record_columns

from streams.pipeline.clock import SkewCheck, reference_time
from streams.pipeline.event_time import ReorderBuffer
from streams.pipeline.identity import IdentityScreen, refused_label_error
from streams.pipeline.join import JoinBatch, JoinState
from streams.pipeline.monitor import ModelMonitor, MonitorResult, model_key
from streams.pipeline.monitor_config import MonitorConfig
from streams.pipeline.monitor_input import Control, JoinedBatch, MonitorInput
from streams.pipeline.segments import segment_column


@dataclass(slots=True)
class InputRecord:
    """One Kafka record of an input topic (not frozen: one is built per record, and a
    frozen dataclass costs several times as much to build)."""

    role: str  # "predictions" | "ground-truth"
    topic: str
    partition: int
    offset: int
    value: bytes
    #: the record's Kafka timestamp (ms); ``None`` where there is none (offline runs)
    timestamp: int | None = None


@dataclass
class Outputs:
    """Messages to publish, by topic role: ``(key, value)`` pairs.

    Each value is encoded once (:meth:`encoded`): the same bytes go into the outbox that is
    persisted with the state and onto the output topic.
    """

    messages: dict[str, list[tuple[str | None, dict[str, Any]]]] = field(default_factory=dict)
    _encoded: dict[str, list[tuple[str | None, bytes]]] | None = field(default=None, repr=False, compare=False)

    def add(self, role: str, key: str | None, value: dict[str, Any]) -> None:
        self.messages.setdefault(role, []).append((key, value))
        self._encoded = None

    def encoded(self) -> dict[str, list[tuple[str | None, bytes]]]:
        """The messages with their values as JSON bytes."""
        if self._encoded is None:
            self._encoded = {role: [(k, codec.dumps(v)) for k, v in items] for role, items in self.messages.items()}
        return self._encoded

    def to_json(self) -> dict[str, Any]:
        """For embedding in a JSON document (the outbox): the encoded values as fragments.

        >>> codec.loads(codec.dumps(Outputs({"alerts": [("a", {"x": 1})]}).to_json()))
        {'alerts': [['a', {'x': 1}]]}
        """
        return {role: [[k, orjson.Fragment(v)] for k, v in items] for role, items in self.encoded().items()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Outputs:
        return cls({role: [(k, v) for k, v in items] for role, items in data.items()})


class Gap(NamedTuple):
    """Offsets ``first`` to ``last`` of ``topic`` that a batch skipped over (none applied)."""

    topic: str
    first: int
    last: int


class Position(NamedTuple):
    """One offset of one topic."""

    topic: str
    offset: int


@dataclass
class JoinResult:
    """What one batch of one join partition produced."""

    outputs: Outputs
    batch: JoinBatch | None
    events: Counter[str] = field(default_factory=Counter)
    dead_letters: Counter[str] = field(default_factory=Counter)
    skipped_records: int = 0
    gaps: list[Gap] = field(default_factory=list)
    #: ``(topic, offset)`` of a record at the last applied offset of its topic that is not
    #: the record applied there (another timestamp): its log was replaced (see
    #: :meth:`JoinStage.process`); nothing of the batch may be saved or published
    replaced: Position | None = None


class PartitionJoin:
    """The join state of one input partition and the offsets it reflects.

    ``redo``: table writes a recovery must make before the next batch (tombstones a crash
    kept from landing; see :meth:`load`)."""

    def __init__(
        self, partition: int, state: JoinState, offsets: dict[str, int], outbox: dict[str, Any] | None,
        redo: list[tuple[str, bytes | None]] | None = None, stamps: dict[str, int] | None = None,
    ) -> None:
        self.partition = partition
        self.state = state
        self.offsets = offsets
        self.outbox = outbox
        self.redo = redo or []
        #: per input topic, the timestamp of the record at ``offsets`` (when it had one)
        self.stamps = stamps or {}

    @classmethod
    def fresh(cls, partition: int, window_s: float) -> PartitionJoin:
        return cls(partition, JoinState(window_s), {}, None)

    @classmethod
    def load(cls, partition: int, window_s: float, items: Iterable[tuple[str, bytes]]) -> PartitionJoin:
        """Rebuild from table items (``delta_key``-named deltas and the meta record).

        The meta record commits a batch (see :meth:`JoinStage.persist`), so the state is the
        one of the last committed batch, whatever else of a batch landed before a crash:
        deltas newer than the meta were never committed, and the deltas the committed batch
        retired may still be there. Both are left out, and ``redo`` deletes them: a
        leftover delta would otherwise come back in a later recovery."""
        deltas: dict[int, dict[str, Any]] = {}
        meta: dict[str, Any] | None = None
        for key, raw in items:
            if key == meta_key(partition):
                meta = codec.loads(raw)
            else:
                delta = codec.loads(raw)
                deltas[int(delta["seq"])] = delta
        committed = int(meta["seq"]) if meta is not None else 0
        leftover = {int(seq) for seq in (meta or {}).get("dead", ())} | {seq for seq in deltas if seq > committed}
        redo: list[tuple[str, bytes | None]] = [(delta_key(partition, seq), None) for seq in sorted(leftover)]
        state = JoinState.from_deltas(window_s, (d for seq, d in deltas.items() if seq not in leftover))
        if meta is None:  # nothing committed yet
            return cls(partition, state, {}, None, redo)
        state.seq = committed
        state.watermark = max(state.watermark, float(meta["wm"]))
        if meta.get("lwm") is not None:  # absent from metas written before it existed
            state.label_watermark = max(state.label_watermark, float(meta["lwm"]))
        return cls(partition, state, dict(meta["offsets"]), meta.get("outbox"), redo, dict(meta.get("stamps") or {}))


def byte_groups(records: Sequence[InputRecord], max_bytes: int) -> list[list[InputRecord]]:
    """Consecutive groups of records of at most ``max_bytes`` (a bigger record stands alone),
    so one group's state delta, outbox and column batches stay well under a Kafka
    message's size limit.

    >>> [len(g) for g in byte_groups([InputRecord("predictions", "t", 0, i, b"x" * 40) for i in range(5)], 100)]
    [2, 2, 1]
    """
    groups: list[list[InputRecord]] = []
    size = max_bytes
    for record in records:
        if size + len(record.value) > max_bytes:
            groups.append([])
            size = 0
        groups[-1].append(record)
        size += len(record.value)
    return groups


def meta_key(partition: int) -> str:
    return f"{partition}:meta"


def delta_key(partition: int, seq: int) -> str:
    return f"{partition}:{seq:012d}"


def owns_join_key(partition: int, key: str) -> bool:
    return key.startswith(f"{partition}:")


def _is_every_row(index: Sequence[int], n: int) -> bool:
    """Whether ``index`` (distinct row numbers) is every row of ``n``, in order."""
    return len(index) == n and (n < 2 or bool((np.diff(np.asarray(index)) > 0).all()))


def _by_model(index: Sequence[int], models: Sequence[str], versions: Sequence[str | None]) -> dict[tuple[str, str | None], list[int]]:
    """``index`` split by (model, version), each part in order."""
    if not index:
        return {}
    if len(set(models)) == 1 and len(set(versions)) == 1:
        return {(models[0], versions[0]): list(index)}
    groups: dict[tuple[str, str | None], list[int]] = {}
    for i in index:
        groups.setdefault((models[i], versions[i]), []).append(i)
    return groups


#: Monitor-input payload columns, by the normalised (or pair) column each one is.
_PREDICTION_PAYLOAD = {"pid": "prediction_id", "ts": "timestamp", "prediction": "prediction", "score": "score",
                       "latency_ms": "latency_ms", "features": "features"}
#: A pair's ``ts`` is when its error became known, the later of its two event times (as a
#: Kafka Streams join stamps its output): its place in the model's canonical order.
_PAIR_PAYLOAD = {"pid": "prediction_id", "ts": "known_at", "pred_ts": "timestamp", "prediction": "prediction",
                 "label": "label", "score": "score", "label_ts": "label_timestamp"}


def _payloads(
    columns: Mapping[str, Any], groups: Mapping[tuple[str, str | None], Sequence[int]], fields: Mapping[str, str]
) -> dict[tuple[str, str | None], dict[str, Any]]:
    """Each group's rows of ``columns`` as a monitor-input payload of the columns ``fields``
    names: the columns as they are when one group is every row; else each column gathered
    once for all groups (in C) and cut into the groups' runs, so a batch of many models
    costs a pass per column, not one per model and column.

    >>> cols = {"prediction_id": ["a", "b", "c"], "timestamp": [1.0, 2.0, 3.0], "features": {"x": [7, 8, 9]}}
    >>> _payloads(cols, {("m", None): [0, 2], ("n", None): [1]}, {"pid": "prediction_id", "features": "features"})
    {('m', None): {'pid': ['a', 'c'], 'features': {'x': [7, 9]}}, ('n', None): {'pid': ['b'], 'features': {'x': [8]}}}
    """
    if not groups:
        return {}
    if len(groups) == 1:
        [(key, index)] = groups.items()
        if _is_every_row(index, len(columns["prediction_id"])):
            return {key: {name: columns[source] for name, source in fields.items()}}
    order = np.concatenate([np.asarray(index, dtype=np.intp) for index in groups.values()])
    ends = np.cumsum([len(index) for index in groups.values()]).tolist()
    runs = list(zip([0, *ends[:-1]], ends))

    def cut(values: Sequence[Any]) -> list[list[Any]]:
        gathered = take(values, order)
        return [gathered[start:end] for start, end in runs]

    cut_columns = {
        name: {f: cut(values) for f, values in columns[source].items()} if source == "features" else cut(columns[source])
        for name, source in fields.items()
    }
    return {
        key: {name: {f: parts[i] for f, parts in cut.items()} if isinstance(cut, dict) else cut[i] for name, cut in cut_columns.items()}
        for i, key in enumerate(groups)
    }


class _HalfColumns:
    """One role's events of a micro-batch, end to end, as normalised columns: column batches
    as decoded, runs of events validated one by one turned into columns."""

    def __init__(self, role: Role) -> None:
        self.role = role
        self.parts: list[dict[str, Any]] = []
        self.events: list[dict[str, Any]] = []

    def add_columns(self, columns: dict[str, Any]) -> None:
        self._flush()
        self.parts.append(columns)

    def add_events(self, events: Iterable[dict[str, Any]]) -> None:
        self.events.extend(events)

    def _flush(self) -> None:
        if self.events:
            self.parts.append(event_columns(self.events, self.role))
            self.events = []

    def columns(self) -> dict[str, Any]:
        self._flush()
        return concat_columns(self.parts)


class JoinStage:
    """Decode, dead-letter, join; one call per partition per micro-batch."""

    def __init__(
        self,
        *,
        window_s: float,
        max_message_bytes: int,
        monitor_config: MonitorConfig,
        clock: Callable[[], float] = time.time,
        max_clock_skew_s: float = 3600.0,
        wall_clock: Callable[[], float] = time.time,
        label_topic: str = "ground-truth",
    ) -> None:
        self.window_s = window_s
        #: the ground-truth topic's name, the origin of a waiting label refused (streams.pipeline.identity)
        self.label_topic = label_topic
        #: events too far ahead of their record's timestamp are dead-lettered (streams.pipeline.clock);
        #: ``wall_clock`` is the reference only for records without a timestamp
        self.skew = SkewCheck(max_clock_skew_s)
        self.wall_clock = wall_clock
        self.max_message_bytes = max_message_bytes
        self.monitor_config = monitor_config
        self.clock = clock
        strict = monitor_config.defaults["strict_models"]
        self.known_models = set(monitor_config.models) if strict else None
        # whether any model is segmented: if none is (the default), the join carries no
        # segment column at all
        self.segmenting = monitor_config.defaults["segment_by"] is not None or any(
            values["segment_by"] is not None for values in monitor_config.models.values())
        self._pair_payload = {**_PAIR_PAYLOAD, "segment": "segment"} if self.segmenting else _PAIR_PAYLOAD

    def _segment_by(self, model_id: str) -> str | None:
        return self.monitor_config.for_model(model_id).values["segment_by"]  # type: ignore[no-any-return]

    def process(self, part: PartitionJoin, records: Sequence[InputRecord], *, labels_through: float = float("inf")) -> JoinResult:
        """Join one partition's micro-batch; ``labels_through``: how far its label topic
        vouches for beyond the labels applied (:meth:`JoinState.apply`)."""
        outputs = Outputs()
        result = JoinResult(outputs, None)
        halves = {"predictions": _HalfColumns("predictions"), "ground-truth": _HalfColumns("ground-truth")}
        decoded: list[tuple[InputRecord, dict[str, Any] | None, list[tuple[int | None, dict[str, Any]]], list[RecordError]]] = []
        now = self.clock()
        for record in records:
            last = part.offsets.get(record.role)
            if last is not None and record.offset <= last:
                stamp = part.stamps.get(record.role)
                if record.offset == last and None not in (stamp, record.timestamp) and record.timestamp != stamp:
                    # not the record applied at this offset: another log (a restarted
                    # memory-only broker, a topic recreated), whose records this state
                    # would skip as replays, then join onto what it holds of the old one
                    result.replaced = Position(record.topic, record.offset)
                    return result
                result.skipped_records += 1
                continue
            if last is not None and record.offset > last + 1:
                result.gaps.append(Gap(record.topic, last + 1, record.offset - 1))
            part.offsets[record.role] = record.offset
            if record.timestamp is not None:
                part.stamps[record.role] = record.timestamp
            else:
                part.stamps.pop(record.role, None)
            columns, oks, errors = decode_record_columns(
                record.value, record.role, self.max_message_bytes,  # type: ignore[arg-type]
                known_models=self.known_models if record.role == "predictions" else None,
            )
            reference = reference_time(record.timestamp, self.wall_clock)
            if columns is not None:
                n = len(columns["prediction_id"])
                columns, skewed = self.skew.screen_columns(columns, reference, record.role)
                if skewed and columns is not None:  # as events, so later checks keep their positions
                    gone = {error.index for error in skewed}
                    oks = list(zip((i for i in range(n) if i not in gone), rows(columns, record.role)))  # type: ignore[arg-type]
                    columns = None
            else:
                oks, skewed = self.skew.screen_events(oks, reference, record.role)
            decoded.append((record, columns, oks, [*errors, *skewed]))
        # identity next: every prediction of the batch (in log order) before any label, so a
        # label is checked against its prediction whichever topic was read first
        # (a run of records of events, not columns, is screened at once: one-event records)
        screen = IdentityScreen(part.state)
        for role in ("predictions", "ground-truth"):
            run: list[int] = []
            for k, (record, columns, oks, errors) in enumerate(decoded):
                if record.role != role:
                    continue
                if columns is None:
                    run.append(k)
                    continue
                self._screen_run(screen, decoded, run, role)
                columns, clashes = screen.screen_columns(columns, role)
                decoded[k] = (record, columns, oks, [*errors, *clashes])
            self._screen_run(screen, decoded, run, role)
        for record, columns, oks, errors in decoded:
            half = halves[record.role]
            if columns is not None:
                half.add_columns(columns)
                result.events[record.role] += len(columns["prediction_id"])
            else:
                half.add_events(event for _, event in oks)
                result.events[record.role] += len(oks)
            for error in errors:
                self._dead_letter(record, error, now, result)
        if not result.events.total() and not result.dead_letters:
            return result
        # a micro-batch applies in event-time order (predictions first on ties), so what
        # the join and the detectors see does not depend on which topic the consumer
        # happened to read first; offline and replayed runs merge by event time too
        predictions = halves["predictions"].columns()
        labels = halves["ground-truth"].columns()
        if self.segmenting and predictions.get("prediction_id"):  # pairs carry it to their segment's monitor
            predictions = {**predictions, "segment": segment_column(
                predictions["model_id"], predictions.get("features") or {}, self._segment_by)}
        for pid, entry in screen.refused_labels.items():  # waiting labels its prediction refuses
            error = refused_label_error(pid, entry, screen.claims[pid])
            value = dead_letter_record(self.label_topic, part.partition, None, error, now)
            value["dead_letter_id"] = stable_id("dead-letter", self.label_topic, part.partition, pid, error.reason)
            result.dead_letters[error.reason] += 1
            outputs.add("dead-letter", value["dead_letter_id"], value)
        batch = part.state.apply(predictions, labels, labels_through=labels_through, drop_labels=screen.refused_labels)
        result.batch = batch
        by_model: dict[str, dict[str, Any]] = {}  # model key -> the fields of its JoinedBatch

        def payload(model_id: str, version: str | None) -> dict[str, Any]:
            key = model_key(model_id, version)
            if key not in by_model:
                by_model[key] = {"model_id": model_id, "model_version": version, "source": part.partition,
                                 "seq": part.state.seq, "pred": None, "pairs": None, "matched": 0, "expired": 0}
            return by_model[key]

        if batch.predictions:
            new = _by_model(batch.predictions, predictions["model_id"], predictions["model_version"])
            for (model_id, version), columns in _payloads(predictions, new, _PREDICTION_PAYLOAD).items():
                payload(model_id, version)["pred"] = columns
        pairs = batch.pairs
        if pairs["prediction_id"]:
            known_at = np.maximum(np.asarray(pairs["timestamp"], dtype=float), np.asarray(pairs["label_timestamp"], dtype=float))
            pairs = {**pairs, "known_at": known_at.tolist()}
        paired = _by_model(range(len(pairs["prediction_id"])), pairs["model_id"], pairs["model_version"])
        for (model_id, version), columns in _payloads(pairs, paired, self._pair_payload).items():
            p = payload(model_id, version)
            p["pairs"] = columns
            p["matched"] = len(paired[model_id, version])
        for model_id, count in batch.expired_by_model.items():
            payload(model_id, None)["expired"] += count
        for key, fields in by_model.items():
            outputs.add("monitor-input", key, JoinedBatch(**fields).to_json())
        for record in batch.records:
            outputs.add("join-outcomes", record.prediction_id, record.to_dict())
        return result

    @staticmethod
    def _screen_run(screen: IdentityScreen, decoded: list[Any], run: list[int], role: str) -> None:
        """Screen the records of events at ``run`` (positions in ``decoded``, in log order)
        at once, and empty ``run``."""
        if not run:
            return
        for position, (oks, clashes) in screen.screen_records([decoded[k][2] for k in run], role).items():
            k = run[position]
            record, columns, _, errors = decoded[k]
            decoded[k] = (record, columns, oks, [*errors, *clashes])
        run.clear()

    def _dead_letter(self, record: InputRecord, error: RecordError, now: float, result: JoinResult) -> None:
        result.dead_letters[error.reason] += 1
        value = dead_letter_record(record.topic, record.partition, record.offset, error, now)
        result.outputs.add("dead-letter", value["dead_letter_id"], value)

    def persist(self, part: PartitionJoin, result: JoinResult) -> list[tuple[str, bytes | None]]:
        """Table writes of this batch, in changelog order: its delta, then the meta record
        that commits the batch (offsets covered, outbox, retired deltas), then the
        tombstones of the retired deltas.

        A changelog partition keeps the order of one producer's writes, so a crash
        part-way leaves a prefix: the delta alone is ignored by :meth:`PartitionJoin.load`,
        and missing tombstones are redone from the meta's list. Never state that reflects
        records its offsets do not cover: those records would be skipped as replays and
        their outputs lost. (Tombstones go last: the state of the previous commit may
        still need the deltas they delete.)"""
        writes: list[tuple[str, bytes | None]] = []
        batch = result.batch
        dead = batch.dead_deltas if batch is not None else []
        if batch is not None and batch.delta:
            writes.append((delta_key(part.partition, int(batch.delta["seq"])), codec.dumps(batch.delta)))
        part.outbox = result.outputs.to_json()
        writes.append(self._meta(part, dead))
        writes.extend((delta_key(part.partition, seq), None) for seq in dead)
        return writes

    def settle(self, part: PartitionJoin) -> list[tuple[str, bytes | None]]:
        """Table writes that mark the last batch's outputs delivered: its meta record again,
        without the outbox (its tombstones are written by then), so the next owner of the
        partition does not publish them again. For a hand-over, once the outputs are acked;
        nothing when there is no outbox."""
        if not part.outbox:
            return []
        part.outbox = None
        return [self._meta(part, [])]

    @staticmethod
    def _meta(part: PartitionJoin, dead: list[int]) -> tuple[str, bytes]:
        meta = {
            "seq": part.state.seq, "wm": part.state.watermark if part.state.watermark > float("-inf") else 0.0,
            "lwm": part.state.label_watermark if part.state.label_watermark > float("-inf") else None,
            "offsets": part.offsets, "stamps": part.stamps, "outbox": part.outbox, "dead": dead,
        }
        return meta_key(part.partition), codec.dumps(meta)


@dataclass
class MonitorRun:
    """What :class:`MonitorStage` did to one model: the merged result, the events it
    applied (predictions plus joined pairs; the predictions alone), the payloads it skipped
    as already applied, the events that came below the frontier (late), those a retired
    version got after its switch (not monitored), and whether the monitor ended here."""

    result: MonitorResult
    events: int = 0
    predictions: int = 0
    skipped: int = 0
    late: int = 0
    retired: int = 0
    ended: bool = False

    @property
    def changed(self) -> bool:
        """The slot's saved state moved: an event applied or dropped, or the monitor ended
        (a retirement may apply nothing, yet resolve alerts that must go out)."""
        return bool(self.events or self.retired or self.ended)


@dataclass
class ModelSlot:
    """A model's monitor, the join batches it took ((join partition, seq) high-water marks,
    and the last controls) and the events it holds until the frontier passes them (saved:
    the monitor, the batches taken and the last event released; the events held are read
    again from the log after a recovery)."""

    monitor: ModelMonitor
    applied: dict[str, Any] = field(default_factory=dict)
    buffer: ReorderBuffer = field(default_factory=ReorderBuffer)

    @property
    def retiring(self) -> bool:
        """A newer version serves instead, and this one still drains its events below the
        switch: the frontier must come back to it even with nothing held."""
        return "retire" in self.applied and self.monitor.retired is None


class MonitorStage:
    """Run the model monitors over column batches, in each model's canonical event-time
    order (:mod:`streams.pipeline.event_time`); dedupe on (join partition, seq)."""

    def __init__(self, monitor_config: MonitorConfig) -> None:
        self.monitor_config = monitor_config

    def new_monitor(self, model_id: str, model_version: str | None) -> ModelMonitor:
        return ModelMonitor(model_id, model_version, self.monitor_config.for_model(model_id))

    def new_slot(self, model_id: str, model_version: str | None) -> ModelSlot:
        return ModelSlot(self.new_monitor(model_id, model_version))

    def load(self, raw: bytes) -> ModelSlot:
        stored = codec.loads(raw)
        return ModelSlot(ModelMonitor.from_state(stored["monitor"], self.monitor_config), stored["applied"],
                         ReorderBuffer.from_state(stored.get("buffer")))

    def process_many(self, slot: ModelSlot, payloads: Sequence[tuple[int, MonitorInput]], frontier: float) -> MonitorRun:
        """Take one model's ``(offset, payload)`` in order and apply what lies below
        ``frontier``. A payload taken before (``seq`` at or below the join partition's
        last) is taken again only for its events past the last released (a recovery
        reads from the oldest payload a model still held). A control applies where it
        comes, after what the frontier released before it."""
        run = MonitorRun(MonitorResult())
        applied = slot.applied
        for offset, payload in payloads:
            if isinstance(payload, Control):
                self._release(slot, frontier, run)
                result = self._control(slot, payload)
                if result is None:
                    run.skipped += 1
                else:
                    run.result.extend(result)
                continue
            source, seq = str(payload.source), payload.seq
            again = applied.get(source, 0) >= seq
            if not again:
                applied[source] = seq
                slot.monitor.matched += payload.matched
                slot.monitor.expired += payload.expired
            held, late = slot.buffer.add((payload.source, seq), offset, {"pred": payload.pred, "pairs": payload.pairs},
                                         again=again)
            run.late += late
            if again and not held:
                run.skipped += 1
        self._release(slot, frontier, run)
        return run

    def release(self, slot: ModelSlot, frontier: float) -> MonitorRun:
        """Apply what ``slot`` holds below ``frontier`` (it moved, with no new payload)."""
        run = MonitorRun(MonitorResult())
        self._release(slot, frontier, run)
        return run

    @staticmethod
    def _release(slot: ModelSlot, frontier: float, run: MonitorRun) -> None:
        retire = slot.applied.get("retire")
        if retire is not None:  # a superseded version: its events up to the switch, then it ends
            MonitorStage._retire(slot, retire, frontier, run)
            return
        batch = slot.buffer.release(frontier)
        if batch is None:
            return
        MonitorStage._apply(slot, batch, run)

    @staticmethod
    def _apply(slot: ModelSlot, batch: dict[str, Any], run: MonitorRun) -> None:
        predictions = len(batch["pred"]["ts"]) if batch.get("pred") else 0
        run.predictions += predictions
        run.events += predictions + (len(batch["pairs"]["ts"]) if batch.get("pairs") else 0)
        run.result.extend(slot.monitor.process(batch))

    @staticmethod
    def _retire(slot: ModelSlot, retire: dict[str, Any], frontier: float, run: MonitorRun) -> None:
        """Drain a superseded version: apply its events below the switch's event time; once
        the frontier passes it, end the monitor (alerts resolved, detectors dropped). Its
        events at or after the switch are not monitored (counted as ``retired``)."""
        at = float(retire["timestamp"])
        if slot.monitor.retired is None:
            batch = slot.buffer.release(min(frontier, at))
            if batch is not None:
                MonitorStage._apply(slot, batch, run)
            if frontier <= at:
                return
            run.result.extend(MonitorResult(alerts=slot.monitor.retire(at, retire["reason"])))
            run.ended = True
        rest = slot.buffer.release(float("inf"))
        if rest is not None:
            run.retired += sum(len(rest[kind]["ts"]) for kind in ("pred", "pairs") if rest.get(kind))

    @staticmethod
    def _control(slot: ModelSlot, payload: Control) -> MonitorResult | None:
        """Apply a control once (its ``model-updates`` event id): ``rebaseline`` now, or
        ``retire`` once the frontier passes the switch (:meth:`_retire`)."""
        applied = slot.applied
        done = applied.setdefault("controls", [])
        if payload.event_id in done or slot.monitor.retired is not None:
            return None
        applied["controls"] = (done + [payload.event_id])[-50:]
        if payload.control == "retire":
            if "retire" not in applied:  # the first switch away from this version counts
                applied["retire"] = {"timestamp": payload.timestamp, "reason": payload.reason}
            return MonitorResult()
        return MonitorResult(alerts=slot.monitor.rebaseline(payload.timestamp, payload.reason))

    @staticmethod
    def control_for(update: dict[str, Any]) -> tuple[str, Control] | None:
        """The monitor-input control a ``model-updates`` event asks for, keyed by the monitor
        it goes to: ``rebaseline_requested`` re-baselines ``model_id@model_version``;
        ``served`` (a server switched from ``model_version`` to ``new_version``) retires the
        old version's monitor. A promotion alone changes nothing: the served version's own
        predictions get their own monitor."""
        action, old, new = update.get("action"), update.get("model_version"), update.get("new_version")
        if action == "rebaseline_requested":
            control, reason = "rebaseline", f"re-baselined on request: {update['reason']}"
        elif action == "served" and new and new != old:
            control, reason = "retire", f"version retired: {new} serves {update['model_id']} from event time {update['timestamp']}"
        else:
            return None
        return model_key(update["model_id"], old), Control(control, update["event_id"], update["model_id"], old,
                                                           float(update["timestamp"]), reason)

    @staticmethod
    def outputs(monitor: ModelMonitor, result: MonitorResult) -> Outputs:
        outputs = Outputs()
        for event in result.drift_events:
            outputs.add("drift-events", monitor.key, event)
        for alert in result.alerts:
            outputs.add("alerts", alert["alert_id"], alert)
        for request in result.update_requests:
            outputs.add("model-updates", monitor.model_id, request)
        return outputs

    @staticmethod
    def dump(slot: ModelSlot) -> bytes:
        return codec.dumps({"monitor": slot.monitor.to_state(), "applied": slot.applied, "buffer": slot.buffer.to_state()})
