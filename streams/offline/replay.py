"""Replay: the pipeline over a range of what is in Kafka, beside the live worker.

``driftstream replay`` reads ``predictions`` and ``ground-truth`` with a consumer that has
**no group id** (it never joins or commits for the live consumer group), from every
partition, between offsets (``--from-offset``/``--to-offset``, per partition) and/or event
times (``--since``/``--until``: ``offsets_for_times`` seeks close to ``since``, assuming an
event is never produced before it happened; events are then filtered on their own event
time). It stops at the end offsets captured when it started, merges both topics by event
time and hands them to :func:`streams.offline.backtest.evaluate`, so the report is a backtest's.
With ``--publish-prefix`` it also publishes its alerts, drift events, model updates and
dead letters to ``<prefix>alerts`` etc.; the live prefix is refused.

>>> window = ReplayWindow(since=10.0, until=20.0)
>>> window.admits(10.0), window.admits(20.0)
(True, False)
"""

from __future__ import annotations

import argparse
import asyncio
import math
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from schemas import codec, topics
from schemas.columns import ColumnsError, is_column_batch, to_rows
from schemas.parsing import parse_timestamp

from streams.exceptions import ConfigError, DriftstreamError
from streams.offline.backtest import ROLES, Evaluation, SourceEvent, event_from_object, merge
from streams.offline.backtest_cli import add_evaluation_options, evaluate_and_report, load_configs
from streams.offline.pipeline import OfflineResult
from streams.pipeline.monitor import model_key
from streams.runtime.end_offsets import end_offsets, fetch_until
from streams.runtime.gc_tuning import tune_gc
from streams.runtime.kafka_connect import start_client
from streams.runtime.topics import ensure_topics
from streams.settings import Settings

#: Output roles a replay publishes (:func:`_messages` keys each as the live worker does).
PUBLISHED = topics.OUTPUTS

#: A replay that receives nothing for this long before reaching its end offsets fails.
STALL_S = 30.0


@dataclass(frozen=True)
class ReplayWindow:
    """What to replay: offsets ``[from_offset, to_offset]`` of every partition (inclusive),
    and event times ``[since, until)``; ``None`` leaves a side open."""

    since: float | None = None
    until: float | None = None
    from_offset: int | None = None
    to_offset: int | None = None

    def __post_init__(self) -> None:
        for name in ("from_offset", "to_offset"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"{name} must be >= 0, got {value}")
        if self.from_offset is not None and self.to_offset is not None and self.to_offset < self.from_offset:
            raise ValueError(f"to_offset ({self.to_offset}) must be >= from_offset ({self.from_offset})")
        if self.since is not None and self.until is not None and not self.until > self.since:
            raise ValueError(f"until ({self.until}) must be after since ({self.since})")

    def admits(self, ts: float) -> bool:
        return (self.since is None or ts >= self.since) and (self.until is None or ts < self.until)


def _events_of(role: str, topic: str, msg: Any, previous_ts: float) -> list[SourceEvent]:
    where = f"{topic}[{msg.partition}]@{msg.offset}"
    raw = msg.value if msg.value is not None else b""
    try:
        value = codec.loads(raw)
    except ValueError:
        return [SourceEvent(previous_ts, role, raw, where, None, None, False)]
    if is_column_batch(value):  # the SDK's records: one event per position, as objects
        try:
            value = to_rows(value["columns"], role)  # type: ignore[arg-type]
        except ColumnsError:  # the pipeline dead-letters it whole (malformed_batch)
            return [SourceEvent(previous_ts, role, raw, where, None, None, False)]
    if type(value) is not list or not value:
        return [event_from_object(value, raw, role, where, previous_ts)]
    out = []
    for i, element in enumerate(value):
        event = event_from_object(element, codec.dumps(element), role, f"{where}[{i}]", previous_ts)
        previous_ts = event.timestamp
        out.append(event)
    return out


async def _bounds(
    consumer: AIOKafkaConsumer, tps: list[TopicPartition], window: ReplayWindow, connection: dict[str, Any]
) -> dict[TopicPartition, tuple[int, int]]:
    """``[start, stop)`` offsets per partition; ``stop`` is never past the end seen now
    (checked against a fetch: :mod:`streams.runtime.end_offsets`)."""
    begin = await consumer.beginning_offsets(tps)
    end = await end_offsets(consumer, tps, connection)
    by_time: dict[TopicPartition, Any] = {}
    if window.since is not None:
        by_time = await consumer.offsets_for_times({tp: int(window.since * 1000) for tp in tps})
    bounds = {}
    for tp in tps:
        start = max(begin[tp], window.from_offset or 0)
        if window.since is not None:
            found = by_time.get(tp)
            start = max(start, found.offset if found is not None else end[tp])
        stop = end[tp] if window.to_offset is None else min(end[tp], window.to_offset + 1)
        bounds[tp] = (start, stop)
    return bounds


async def read_window(settings: Settings, role: str, window: ReplayWindow) -> list[SourceEvent]:
    """The events of one input topic in ``window``, partition by partition, in offset order."""
    topic = settings.topic(role)
    consumer = AIOKafkaConsumer(
        **settings.kafka_client_kwargs(), group_id=None, enable_auto_commit=False,
        auto_offset_reset="earliest", max_partition_fetch_bytes=max(8 * settings.max_message_bytes, 8_388_608),
    )
    await start_client(consumer, settings)
    try:
        partitions = sorted(consumer.partitions_for_topic(topic) or await _fetch_partitions(consumer, topic))
        tps = [TopicPartition(topic, p) for p in partitions]
        bounds = await _bounds(consumer, tps, window, settings.kafka_client_kwargs())
        todo = sorted((tp for tp, (start, stop) in bounds.items() if start < stop), key=lambda tp: tp.partition)
        consumer.assign(todo)
        for tp in todo:
            consumer.seek(tp, bounds[tp][0])
        per_partition: dict[int, list[SourceEvent]] = {tp.partition: [] for tp in todo}
        previous = dict.fromkeys(per_partition, -math.inf)
        async for tp, messages in fetch_until(consumer, {tp: bounds[tp][1] for tp in todo}, STALL_S, "replay"):
            for msg in messages:
                for event in _events_of(role, topic, msg, previous[tp.partition]):
                    event = event._replace(record_ts=msg.timestamp)  # the clock-skew check's reference
                    previous[tp.partition] = event.timestamp
                    if not event.is_object or window.admits(event.timestamp):
                        per_partition[tp.partition].append(event)
        return [event for p in sorted(per_partition) for event in per_partition[p]]
    finally:
        await consumer.stop()


async def _fetch_partitions(consumer: AIOKafkaConsumer, topic: str) -> set[int]:
    if topic not in await consumer.topics():
        raise DriftstreamError(f"replay: topic {topic!r} does not exist (check DRIFTSTREAM_TOPIC_PREFIX and --broker)")
    return consumer.partitions_for_topic(topic) or set()


def _messages(result: OfflineResult) -> dict[str, list[tuple[str, dict[str, Any]]]]:
    """The outputs of a run keyed as the live worker keys them."""
    return {
        "alerts": [(a["alert_id"], a) for a in result.alerts],
        "drift-events": [(model_key(e["model_id"], e["model_version"]), e) for e in result.drift_events],
        "model-updates": [(u["model_id"], u) for u in result.update_requests],
        "dead-letter": [(d["dead_letter_id"], d) for d in result.dead_letters],
    }


def check_publish_prefix(settings: Settings, prefix: str) -> None:
    """Refuse to publish where the live worker publishes."""
    if prefix == settings.topic_prefix:
        raise ConfigError(
            f"--publish-prefix {prefix!r} is the live topic prefix (DRIFTSTREAM_TOPIC_PREFIX): a replay "
            "never writes to the live output topics; choose another prefix, e.g. 'replay.'"
        )


async def publish(settings: Settings, prefix: str, result: OfflineResult) -> dict[str, int]:
    """Publish a run's outputs to ``<prefix><role>`` topics (created if missing)."""
    check_publish_prefix(settings, prefix)
    target = settings.replace(topic_prefix=prefix)
    await ensure_topics(target, PUBLISHED)
    producer = AIOKafkaProducer(**settings.kafka_client_kwargs(), max_request_size=max(4 * settings.max_message_bytes, 4_194_304))
    await start_client(producer, settings)
    sent = {}
    try:
        for role, items in _messages(result).items():
            futures = [await producer.send(target.topic(role), codec.dumps(v), key=k.encode()) for k, v in items]
            await asyncio.gather(*futures)
            sent[role] = len(items)
    finally:
        await producer.stop()
    return sent


def read_events(settings: Settings, window: ReplayWindow) -> list[SourceEvent]:
    """Both input topics in ``window``, merged by event time."""

    async def run() -> dict[str, list[SourceEvent]]:
        return {role: await read_window(settings, role, window) for role in ROLES}

    read = asyncio.run(run())
    return merge(read["predictions"], read["ground-truth"])


def _time_arg(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        pass
    try:
        return parse_timestamp(text, "--since/--until")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected epoch seconds or RFC 3339, got {text!r} ({exc})") from None


def _cmd_replay(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    tune_gc(settings.gc_threshold)
    if args.broker:
        settings = settings.replace(broker=args.broker)
    if args.publish_prefix is not None:
        check_publish_prefix(settings, args.publish_prefix)
        if args.config and len(args.config) > 1:
            raise ConfigError("--publish-prefix publishes one run: give at most one --config")
    try:
        window = ReplayWindow(args.since, args.until, args.from_offset, args.to_offset)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    load_configs(args.config, settings)  # a bad config is refused before Kafka is read
    events = read_events(settings, window)
    if not events:
        raise DriftstreamError(f"replay: no events in the window on {settings.topic('predictions')} / {settings.topic('ground-truth')}")
    inputs = {"broker": settings.bootstrap_servers, **{role: settings.topic(role) for role in ROLES},
              "window": {"since": args.since, "until": args.until, "from_offset": args.from_offset, "to_offset": args.to_offset}}
    evaluation: Evaluation = evaluate_and_report(events, args, settings, "replay", inputs)
    if args.publish_prefix is not None:
        sent = asyncio.run(publish(settings, args.publish_prefix, evaluation.runs[0].result))
        print("published " + ", ".join(f"{n} to {args.publish_prefix}{role}" for role, n in sent.items()))
    return 0


def add_cli(subparsers: Any) -> None:
    """Add ``driftstream replay``."""
    p = subparsers.add_parser(
        "replay", help="run the pipeline over a range of the input topics, beside the live worker",
        description="Read predictions and ground-truth from Kafka (no consumer group: the live worker is "
                    "untouched) in an offset and/or event-time range, up to the end offsets at start; run "
                    "the pipeline as a backtest does and write DIR/report.json and DIR/report.html.",
    )
    p.add_argument("--since", type=_time_arg, metavar="T", help="first event time (epoch seconds or RFC 3339)")
    p.add_argument("--until", type=_time_arg, metavar="T", help="end of event time, exclusive")
    p.add_argument("--from-offset", type=int, metavar="N", help="first offset of every partition")
    p.add_argument("--to-offset", type=int, metavar="N", help="last offset of every partition, inclusive")
    p.add_argument("--broker", metavar="URL", help="read another cluster: kafka://host:port (default DRIFTSTREAM_BROKER)")
    p.add_argument("--out", default="replay-report", metavar="DIR", help="where the report goes (default %(default)s)")
    p.add_argument("--publish-prefix", metavar="PREFIX",
                   help="also publish alerts, drift events, model updates and dead letters to PREFIXalerts "
                        "etc. (never the live prefix)")
    add_evaluation_options(p)
    p.set_defaults(func=_cmd_replay)

