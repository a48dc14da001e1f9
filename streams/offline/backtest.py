"""Backtesting: the pipeline over recorded events, offline, for one or several configs.

``driftstream backtest PREDICTIONS.jsonl [GROUND_TRUTH.jsonl]`` reads events in the topic
contracts (JSON lines; Parquet when pyarrow is installed), merges both files by event time
(predictions before labels on ties, file order otherwise), and runs
:class:`~streams.offline.pipeline.OfflinePipeline`, the stage code of the live worker, once per
monitoring config, and scores it beside river's ADWIN and DDM run alone on the same error
streams (:mod:`streams.offline.river_baseline`). Lines are fed as raw records, so a bad line becomes a dead letter as it
would live, and is reported with its line number. ``replay`` reads the same kind of
events from Kafka and shares everything after reading (:func:`evaluate`).

>>> import io, tempfile
>>> from pathlib import Path
>>> from streams.offline.simulate import Simulation, SimulationConfig
>>> preds, labels = Simulation(SimulationConfig(events=2000, seed=1)).generate()
>>> folder = Path(tempfile.mkdtemp())
>>> _ = (folder / "p.jsonl").write_bytes(b"".join(codec.dumps(p) + b"\\n" for p in preds) + b"{oops\\n")
>>> events = merge(read_events(folder / "p.jsonl", "predictions"), [])
>>> evaluation = evaluate(events, [("default", None, MonitorConfig())], progress=io.StringIO())
>>> evaluation.runs[0].result.counts["events:predictions"], evaluation.invalid[0]["where"]
(2000, 'p.jsonl:2001')
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, TextIO

from schemas import codec, topics
from schemas.parsing import parse_timestamp

from streams.exceptions import ConfigError
from streams.offline.pipeline import OfflinePipeline, OfflineResult
from streams.offline.river_baseline import river_detections
from streams.offline.scoring import Drift, config_summary, detections_from, rank, score
from streams.ops.progress import Progress
from streams.pipeline.monitor_config import MonitorConfig
from streams.pipeline.stages import InputRecord

#: The topics a backtest reads, as files.
ROLES = topics.INPUTS

#: Events per record when lines are packed (the SDK's default batch size).
RECORD_EVENTS = 500
#: Events per pipeline micro-batch.
FEED_EVENTS = 5000


class SourceEvent(NamedTuple):
    """One input event as read: raw JSON bytes plus what merging and scoring need."""

    timestamp: float  # event time; an unreadable one inherits its predecessor's
    role: str
    raw: bytes
    where: str  # file:line, or topic[partition]@offset
    model_id: str | None
    prediction_id: str | None
    is_object: bool  # a JSON object: may be packed with others into one array record
    #: the Kafka timestamp (ms) of the record it came in (a replay), the reference of the
    #: clock-skew check (:mod:`streams.pipeline.clock`); ``None`` from a file (the wall clock is)
    record_ts: int | None = None


def source_event(value: bytes, role: str, where: str, previous_ts: float) -> SourceEvent:
    """Parse just enough of one event to place it in event time (validation is the pipeline's)."""
    try:
        obj = codec.loads(value)
    except ValueError:
        return SourceEvent(previous_ts, role, value, where, None, None, False)
    return event_from_object(obj, value, role, where, previous_ts)


def event_from_object(obj: Any, raw: bytes, role: str, where: str, previous_ts: float) -> SourceEvent:
    """:func:`source_event` for an already decoded ``obj`` whose JSON is ``raw``."""
    if type(obj) is not dict:
        return SourceEvent(previous_ts, role, raw, where, None, None, False)
    ts = obj.get("timestamp")
    if type(ts) is str:
        try:
            ts = parse_timestamp(ts, role)
        except ValueError:
            ts = None
    if type(ts) is not float and type(ts) is not int:
        ts = previous_ts
    model_id = obj.get("model_id")
    pid = obj.get("prediction_id")
    return SourceEvent(float(ts), role, raw, where, model_id if type(model_id) is str else None,
                       pid if type(pid) is str else None, True)


def _read_jsonl(path: Path, role: str) -> Iterator[SourceEvent]:
    previous = float("-inf")
    name = path.name
    with path.open("rb") as lines:
        for number, line in enumerate(lines, start=1):
            line = line.strip()
            if line:
                event = source_event(line, role, f"{name}:{number}", previous)
                previous = event.timestamp
                yield event


def _read_parquet(path: Path, role: str) -> Iterator[SourceEvent]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise ConfigError(f"{path}: reading Parquet needs pyarrow (pip install 'driftstream[parquet]')") from None
    previous = float("-inf")
    number = 0
    for batch in pq.ParquetFile(path).iter_batches():
        for row in batch.to_pylist():
            number += 1
            present = {k: v for k, v in row.items() if v is not None}
            event = source_event(codec.dumps(present), role, f"{path.name}:row {number}", previous)
            previous = event.timestamp
            yield event


def read_events(path: str | Path, role: str) -> list[SourceEvent]:
    """All events of one ``.jsonl`` (or ``.json``/``.ndjson``) or ``.parquet`` file."""
    path = Path(path)
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}, got {role!r}")
    if not path.is_file():
        raise ConfigError(f"{path}: no such file")
    reader = _read_parquet if path.suffix == ".parquet" else _read_jsonl
    return list(reader(path, role))


def merge(predictions: Iterable[SourceEvent], labels: Iterable[SourceEvent]) -> list[SourceEvent]:
    """Both streams in event time; predictions before labels on ties, input order otherwise."""
    events = [*predictions, *labels]
    events.sort(key=lambda e: (e.timestamp, e.role != "predictions"))
    return events


def timelines(events: Iterable[SourceEvent]) -> dict[tuple[str, str], list[float]]:
    """Sorted event times per ``(model_id, stream)``: its predictions, and its labelled ones."""
    predictions: dict[str, list[tuple[str | None, float]]] = {}
    labelled: set[str] = set()
    for event in events:
        if event.role == "predictions":
            if event.model_id is not None:
                predictions.setdefault(event.model_id, []).append((event.prediction_id, event.timestamp))
        elif event.prediction_id is not None:
            labelled.add(event.prediction_id)
    out: dict[tuple[str, str], list[float]] = {}
    for model, items in predictions.items():
        out[(model, "predictions")] = sorted(ts for _, ts in items)
        out[(model, "pairs")] = sorted(ts for pid, ts in items if pid in labelled)
    return out


@dataclass(frozen=True)
class Packed:
    """The events as input records, and where each record's elements came from."""

    records: list[InputRecord]
    sizes: list[int]  # events per record
    origins: dict[tuple[str, int], list[str]]  # (role, offset) -> where, by batch index


def pack(events: Sequence[SourceEvent], max_message_bytes: int) -> Packed:
    """Pack runs of same-role events into JSON-array records, in order, as the SDK would.

    An event that is not a JSON object travels alone, so its error stays its own; a record
    never exceeds ``max_message_bytes`` unless one event alone does (then it is dead-lettered
    as ``oversized``, as it would be live).
    """
    records: list[InputRecord] = []
    sizes: list[int] = []
    origins: dict[tuple[str, int], list[str]] = {}
    offsets = dict.fromkeys(ROLES, 0)
    run: list[SourceEvent] = []
    run_bytes = 0

    def flush() -> None:
        nonlocal run, run_bytes
        if not run:
            return
        role = run[0].role
        value = run[0].raw if not run[0].is_object else b"[" + b",".join(e.raw for e in run) + b"]"
        records.append(InputRecord(role, role, 0, offsets[role], value, run[0].record_ts))
        sizes.append(len(run))
        origins[(role, offsets[role])] = [e.where for e in run]
        offsets[role] += 1
        run, run_bytes = [], 0

    for event in events:
        size = len(event.raw) + 1
        if run and (
            event.role != run[0].role or not event.is_object or not run[0].is_object
            or event.record_ts != run[0].record_ts
            or len(run) >= RECORD_EVENTS or run_bytes + size + 1 > max_message_bytes
        ):
            flush()
        run.append(event)
        run_bytes += size
    flush()
    return Packed(records, sizes, origins)


@dataclass
class Run:
    """One config's pass over the events, with its scores."""

    name: str
    config_path: str | None
    result: OfflineResult
    elapsed_s: float
    scores: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    rank: int = 0


@dataclass
class Evaluation:
    """Everything a backtest or replay found: runs (best first), inputs, invalid inputs."""

    runs: list[Run]
    events: dict[str, int]
    invalid: list[dict[str, Any]]  # where, reason, message: one per dead letter
    drifts: list[Drift]
    tolerance_s: float
    timelines: dict[tuple[str, str], list[float]]
    elapsed_s: float

    @property
    def invalid_count(self) -> int:
        return len(self.invalid)

    @property
    def events_per_s(self) -> float:
        total = sum(self.events.values()) * len(self.runs)
        return total / self.elapsed_s if self.elapsed_s > 0 else 0.0


def run_pipeline(
    packed: Packed, config: MonitorConfig, *, window_s: float, max_message_bytes: int, bar: Progress | None = None,
    max_clock_skew_s: float = 3_600.0, max_models: int = 1_000,
) -> tuple[OfflineResult, float]:
    """Feed the packed records to a fresh pipeline; its result and the seconds it took."""
    pipeline = OfflinePipeline(config, window_s=window_s, partitions=1, max_message_bytes=max_message_bytes,
                               max_clock_skew_s=max_clock_skew_s, max_models=max_models)
    started = time.perf_counter()
    lo = 0
    while lo < len(packed.records):
        hi, n = lo, 0
        while hi < len(packed.records) and n < FEED_EVENTS:
            n += packed.sizes[hi]
            hi += 1
        pipeline.feed_records(packed.records[lo:hi])
        if bar is not None:
            bar.update(n)
        lo = hi
    return pipeline.finish(), time.perf_counter() - started


def _decoded(events: Sequence[SourceEvent]) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(role, event)`` of each event that is a JSON object."""
    for event in events:
        if event.is_object:
            yield event.role, codec.loads(event.raw)


def _watched(result: OfflineResult) -> list[tuple[str, str, str, str | None]]:
    """``(model_id, detector, kind, feature)`` of every detector that reported a sample."""
    out = []
    for key, samples in result.samples.items():
        if samples:
            first = samples[0]
            out.append((key.split("|", 1)[0].split("@", 1)[0], first["detector"], first["kind"], first["feature"]))
    return out


def _invalid(result: OfflineResult, packed: Packed) -> list[dict[str, Any]]:
    out = []
    for letter in result.dead_letters:
        origin = letter["origin"]
        wheres = packed.origins.get((origin["topic"], origin["offset"]), ["?"])
        where = wheres[origin["index"] or 0] if (origin["index"] or 0) < len(wheres) else wheres[0]
        out.append({"where": where, "reason": letter["reason"], "message": letter["message"]})
    return out


def evaluate(
    events: Sequence[SourceEvent],
    configs: Sequence[tuple[str, str | None, MonitorConfig]],
    *,
    drifts: Sequence[Drift] = (),
    tolerance_s: float = 900.0,
    window_s: float = 86_400.0,
    max_message_bytes: int = 1_048_576,
    progress: TextIO | None = None,
    max_clock_skew_s: float = 3_600.0,
    max_models: int = 1_000,
) -> Evaluation:
    """Run every ``(name, path, config)`` over the merged ``events`` and score each run."""
    started = time.perf_counter()
    packed = pack(events, max_message_bytes)
    lines = timelines(events)
    # river's detectors alone on the same error streams, scored beside every config's rows
    baseline, ran = river_detections(_decoded(events))
    runs = []
    with Progress("events", total=len(events) * len(configs), stream=progress) as bar:
        for name, path, config in configs:
            result, elapsed = run_pipeline(packed, config, window_s=window_s, max_message_bytes=max_message_bytes, bar=bar,
                                           max_clock_skew_s=max_clock_skew_s, max_models=max_models)
            scores = score([*detections_from(result.drift_events, result.alerts), *baseline], drifts, lines,
                           tolerance_s, watched=[*_watched(result), *ran])
            summary = config_summary(scores)
            if not drifts:
                scores, summary = unscored(scores), unscored([summary])[0]
            runs.append(Run(name, path, result, elapsed, scores, summary))
    order = rank({r.name: r.summary for r in runs})
    runs.sort(key=lambda r: order.index(r.name))
    for i, run in enumerate(runs, start=1):
        run.rank = i
    invalid = _invalid(runs[0].result, packed) if runs else []
    counts = {role: sum(1 for e in events if e.role == role) for role in ROLES}
    return Evaluation(runs, counts, invalid, list(drifts), tolerance_s, lines,
                      time.perf_counter() - started)


def unscored(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Score rows with the false alarms unknown: with no drifts annotated, every detection
    would count as one. They stay as ``detections``."""
    return [{**row, "detections": row["false_alarms"], "false_alarms": None, "false_alarms_per_10k": None}
            for row in rows]
