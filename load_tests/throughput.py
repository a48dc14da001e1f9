"""Pipeline throughput per worker process, against raw aiokafka and a no-op Faust agent.

Predictions carry 10 numeric and 2 categorical features; 90 % of them get a label that
arrives shuffled within a delay; drift is injected. Everything goes through the full
default pipeline (join, every default detector, alerts) in one worker process.

Two runs, each into fresh topics that are filled *before* the worker starts, so the
group join is not timed: the rate is measured from the first event (prediction or label)
the join decoded to the moment the monitors had applied every prediction and every joined
pair (the worker's ``driftstream_events_consumed_total`` counters, polled). Timed from the
first *prediction*, a run whose worker happened to read labels first left them out of the
time, which is how the kcat figure swung between 0.4 and 0.76 of the no-op agent's.

- **SDK**: published with :class:`~streams.sdk.client.DriftstreamClient` (column batches of up to 500 events).
  Baseline: a raw ``AIOKafkaConsumer`` (no group) reading the same predictions topic,
  once decoding nothing and once JSON-decoding every record (orjson).
- **foreign**: one event per record from kcat, keyed by ``prediction_id`` (100,000
  predictions and their labels: about 190,000 records). Each round produces fresh topics
  and runs every contender on them: the worker; a Faust app whose one agent does
  ``async for _ in stream: pass`` over the predictions topic (``load_tests.noop_faust``, a
  subprocess; its rate comes from its own timestamps); and the peers doing the same job
  on both topics (:mod:`load_tests.peers`): a plain aiokafka loop with its state in
  memory, a Quix Streams app with the join in its state store, and the same Quix app
  doing nothing. Medians of the rounds, ratios of the medians.

Targets (issue #27): SDK >= 100,000 predictions/s per worker process and >= 70 % of the
stages alone measured in the same run, the stages alone >= 200,000; the publisher >= 200,000;
foreign >= 2x the no-op Faust agent, >= 2x the Quix Streams app and >= 30 % of the plain
aiokafka loop. SDK / raw aiokafka is reported without a target (#27 retired its 30 %: the
least work any pipeline does reaches about 20-24 % of it).

Two in-process figures on the same SDK records, with no Kafka, put the SDK rate in context:
the pipeline's stages alone (:func:`stages_rate`: what this code could do with the broker
and Faust for free), and the least work any pipeline on this stack does
(:func:`minimum_rate`: orjson decoding, a dict join, river's DDM and ADWIN per pair). The
second, as a share of raw aiokafka, is an upper bound of ``SDK / raw aiokafka``.

The cost of breadth: the same SDK records also go through an **everything on** monitoring
config (:data:`EVERYTHING_ON`: every classification metric, two detectors per feature,
every data-quality check, latency SLOs, series detectors on metrics), in the pipeline and
in the stages alone; its rate is reported beside the default's with their ratio.

Each pipeline run is repeated ``--runs`` times (3; smoke 1), each into fresh topics with a
fresh worker, and the median run is reported with all of them: one run's rate moved by up
to 20 % from run to run here. The baselines read the last run's topics.

    python -m load_tests.throughput [--smoke] [--json PATH] [--sdk-events N] [--foreign-events N] [--runs N]
                                    [--only-foreign]
"""

from __future__ import annotations

import asyncio
import gc
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from aiokafka import AIOKafkaConsumer, TopicPartition
from river.drift import ADWIN
from river.drift.binary import DDM

from schemas import codec
from schemas.columns import is_column_batch
from streams.offline.pipeline import OfflinePipeline
from streams.offline.simulate import SimulationConfig
from streams.ops.progress import Progress
from streams.pipeline.monitor_config import MonitorConfig
from streams.pipeline.stages import InputRecord
from streams.runtime.end_offsets import end_offsets
from streams.runtime.gc_tuning import tune_gc
from streams.sdk.client import DriftstreamClient, SyncDriftstreamClient, encode_batches
from streams.settings import Settings

from .common import (
    Harness,
    Item,
    LoadTestError,
    await_result,
    consumed,
    count_roles,
    create_topics,
    decoded,
    finish,
    follow,
    namespaced,
    note,
    parser,
    pipeline_rate,
    print_table,
    publish,
    workload,
)
from .kcat import produce_foreign
from .peers import aiokafka_loop_rate, quix_rate

SDK_TARGET_PER_S = 100_000.0
#: The worker around the stages (consuming, producing, checkpoints) costs at most 30 % of
#: their rate, and the stages alone have room for the SDK target (issue #27).
SDK_VS_STAGES_TARGET = 0.70
STAGES_TARGET_PER_S = 200_000.0
#: The SDK publisher never limits a test or a model server (issue #27).
PUBLISH_TARGET_PER_S = 200_000.0
#: How :func:`load_tests.common.publish` publishes: events per ``publish_in_order`` chunk,
#: and the SDK's events per record.
PUBLISH_CHUNK = 5000
SDK_BATCH_SIZE = 500
#: The foreign path against its peers (issue #27): a no-op Faust agent, a Quix Streams app
#: doing the job, a plain aiokafka loop doing it in memory.
FOREIGN_VS_NOOP_TARGET = 2.0
FOREIGN_VS_QUIX_TARGET = 2.0
FOREIGN_VS_AIOKAFKA_LOOP_TARGET = 0.30
#: Every metric, detector and check that fits the simulated churn model (a binary
#: classifier with a confidence score and latency_ms), for the cost row.
EVERYTHING_ON: dict[str, Any] = {"defaults": {
    "data_drift": {
        "numeric": [{"type": "psi", "bins": 10, "window": 1000, "step": 250, "psi_above": 0.1},
                    {"type": "ks", "window": 1000, "step": 250, "p_value_below": 0.001}],
        "categorical": [{"type": "psi_categorical", "window": 1000, "step": 250, "psi_above": 0.1},
                        {"type": "chi2", "window": 1000, "step": 250, "p_value_below": 0.001}],
    },
    "performance": {"metrics": ["accuracy", "precision", "recall", "f1", "roc_auc", "log_loss", "brier"]},
    "data_quality": {"checks": ["missing_rate", "out_of_range", "unseen_category", "type_change"]},
    "latency": {"percentiles": ["p50", "p95", "p99"], "slo_ms": {"p99": 100.0}},
    "metric_series": {"detectors": {"accuracy": {"type": "three_sigma"}, "f1": {"type": "three_sigma"},
                                    "latency_p99": {"type": "three_sigma"}}},
}}


def everything_on_file(directory: Path) -> Path:
    """:data:`EVERYTHING_ON` as a YAML file a worker reads (its ``config_path``)."""
    import yaml

    path = directory / "everything-on.yaml"
    path.write_text(yaml.safe_dump(EVERYTHING_ON))
    return path


def drifting_config(events: int, seed: int, model_id: str = "throughput-model") -> SimulationConfig:
    return SimulationConfig(
        events=events, seed=seed, model_id=model_id,
        feature_drift_at=int(events * 0.4), concept_drift_at=int(events * 0.6),
        label_fraction=0.9, label_delay_s=(1.0, 20.0), event_rate=200.0,
    )


def run_pipeline(h: Harness, settings: Settings, sent: dict[str, int], what: str) -> dict[str, Any]:
    """Start a worker on pre-filled topics and time it from first decoded to last applied."""
    total = sent["predictions"] + sent["ground-truth"]
    worker = h.worker(settings)
    started = time.monotonic()
    # followed from the process start: a small backlog can be gone before /ready answers
    trace = follow(
        worker,
        {"join": lambda: decoded(worker, settings),
         "monitored": lambda: consumed(worker, settings, "monitor-input")},
        lambda v: v["monitored"] >= total,
        deadline_s=600, what=what, progress_key="monitored", total=total, poll_s=0.25,
    )
    rate = pipeline_rate(trace, "join", sent["predictions"])
    first = trace.first_moving("join")
    ready_s = first[0] - started if first else float("nan")
    dead = worker.metric("driftstream_dead_letters_total")
    alerts = worker.metric("driftstream_alerts_total", status="firing")
    worker.stop()
    return {**rate, "start_to_first_processed_s": round(ready_s, 2), "predictions": sent["predictions"], "labels": sent["ground-truth"],
            "dead_letters": int(dead), "alerts_fired": int(alerts)}


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    await consumer.topics()  # fetches the metadata
    return [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]


async def _raw_consume(settings: Settings, topic: str, decode: bool) -> dict[str, Any]:
    consumer = AIOKafkaConsumer(**settings.kafka_client_kwargs(), group_id=None, enable_auto_commit=False,
                                fetch_max_bytes=52_428_800, max_partition_fetch_bytes=8_388_608)
    await consumer.start()
    try:
        partitions = await _partitions(consumer, topic)
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await end_offsets(consumer, partitions, settings.kafka_client_kwargs())
        total_records = sum(ends.values())
        records = events = 0
        t0 = t1 = time.perf_counter()
        while records < total_records:
            batches = await consumer.getmany(timeout_ms=1000, max_records=100_000)
            t1 = time.perf_counter()
            for messages in batches.values():
                for message in messages:
                    records += 1
                    if decode:
                        value = codec.loads(message.value)
                        if is_column_batch(value):
                            events += len(value["columns"]["prediction_id"])
                        else:
                            events += len(value) if isinstance(value, list) else 1
        return {"records": records, "events": events, "elapsed_s": t1 - t0}
    finally:
        await consumer.stop()


def raw_aiokafka_rate(settings: Settings, topic: str, predictions: int, decode: bool) -> dict[str, Any]:
    """Predictions/s of a bare consumer loop (no group) over ``topic``, timed from the first
    ``getmany`` call to the last record. Without decoding, the topic's prediction count is
    known from the publisher."""
    got = asyncio.run(_raw_consume(settings, topic, decode))
    elapsed = max(got["elapsed_s"], 1e-9)
    if decode and got["events"] != predictions:
        raise LoadTestError(f"raw consumer decoded {got['events']} predictions of {topic}, expected {predictions}")
    return {"records": got["records"], "elapsed_s": round(elapsed, 3), "predictions_per_s": round(predictions / elapsed, 1)}


def noop_faust_rate(h: Harness, settings: Settings, topic: str, records: int, predictions: int) -> dict[str, Any]:
    """Predictions/s of ``load_tests.noop_faust`` over ``topic`` (first to last record)."""
    out = Path(tempfile.mkdtemp(prefix="noop-faust-")) / "result.json"
    log = open(out.with_name("noop.log"), "wb")  # noqa: SIM115 - closed below
    h.callback(log.close)
    process = h.popen([sys.executable, "-m", "load_tests.noop_faust", "--broker", settings.broker,
                       "--topic", topic, "--expect", str(records), "--out", str(out)],
                      stdout=log, stderr=log, stdin=None)
    got = await_result(process, out, out.with_name("noop.log"), "the no-op Faust agent", 300)
    shutil.rmtree(out.parent, ignore_errors=True)
    elapsed = max(got["last_s"] - got["first_s"], 1e-9)
    return {"records": got["records"], "elapsed_s": round(elapsed, 3),
            "predictions_per_s": round(predictions * (got["records"] - 1) / records / elapsed, 1)}


def sdk_chunks(settings: Settings, items: Sequence[Item], chunk: int = PUBLISH_CHUNK) -> list[list[InputRecord]]:
    """The records the SDK publishes for ``items``: each chunk of ``chunk`` events (one
    ``publish_in_order`` call) as its predictions, then its labels, 500 events per record
    and partition, numbered per topic partition as the broker would."""
    offsets: Counter[tuple[str, int]] = Counter()
    chunks: list[list[InputRecord]] = []
    for start in range(0, len(items), chunk):
        records: list[InputRecord] = []
        for role in ("predictions", "ground-truth"):
            events = [event for r, event in items[start : start + chunk] if r == role]
            for partition, raw in encode_batches(events, settings.partitions, SDK_BATCH_SIZE, settings.max_message_bytes):
                records.append(InputRecord(role, role, partition, offsets[role, partition], raw))
                offsets[role, partition] += 1
        chunks.append(records)
    return chunks


def _rate(predictions: int, elapsed: float) -> dict[str, Any]:
    return {"elapsed_s": round(elapsed, 3), "predictions_per_s": round(predictions / elapsed, 1),
            "us_per_prediction": round(elapsed / predictions * 1e6, 2)}


def stages_rate(settings: Settings, chunks: Sequence[Sequence[InputRecord]], expected: int,
                monitor_config: MonitorConfig | None = None) -> dict[str, Any]:
    """Predictions/s of the pipeline's stages alone, in this process, with no Kafka: the SDK
    records (:func:`sdk_chunks`) fed to :class:`~streams.offline.pipeline.OfflinePipeline` one chunk
    at a time. Decoding, validation, the join, every default detector and the alert policy,
    as the worker runs them; not the ``monitor-input`` hop, Faust or the broker. So it is
    the most one worker process could do on this machine with this code: the worker's rate
    is a share of it. ``expected``: the predictions in ``chunks``. Also its CPU time per
    prediction (``time.process_time``), which a busy shared machine disturbs less.
    ``monitor_config``: the default's when ``None``."""
    pipeline = OfflinePipeline(monitor_config, window_s=settings.join_window_s, partitions=settings.partitions,
                               max_message_bytes=settings.max_message_bytes, keep_samples=False)
    thresholds = gc.get_threshold()
    tune_gc(settings.gc_threshold)  # as the worker tunes it
    try:
        with Progress("records through the stages", total=sum(len(records) for records in chunks)) as bar:
            started, cpu = time.perf_counter(), time.process_time()
            for records in chunks:
                pipeline.feed_records(records)
                bar.update(len(records))
            pipeline.finish()
            elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    finally:
        gc.set_threshold(*thresholds)
    if pipeline.result.events != expected:
        raise LoadTestError(f"the stages applied {pipeline.result.events} predictions, expected {expected}")
    return {**_rate(expected, elapsed), "cpu_us_per_prediction": round(cpu / expected * 1e6, 2)}


def _column(columns: dict[str, Any], name: str, n: int) -> list[Any]:
    """A column of a column batch as a list (the SDK sends a value shared by all as one)."""
    values = columns.get(name)
    return values if type(values) is list else [values] * n


def minimum_rate(chunks: Sequence[Sequence[InputRecord]], expected: int) -> dict[str, Any]:
    """Predictions/s of the least work any pipeline built on this stack does per event, in
    this process, with no Kafka, on the same SDK records: decode each record with orjson
    (the fixed codec), put each numeric feature column in a numpy array and count each
    categorical one, join labels to predictions with one dict, and feed each joined pair's
    error to river's DDM and ADWIN (the fixed detectors). No validation, no windows, no
    other detector, no alerts, no state, no output. A pipeline that consumes from Kafka
    cannot be faster than this, so ``minimum / raw aiokafka`` bounds ``SDK / raw aiokafka``
    from above."""
    ddm, adwin = DDM(), ADWIN()
    pending: dict[Any, Any] = {}
    categories: dict[str, Counter[Any]] = {}
    predictions = pairs = 0
    started = time.perf_counter()
    for records in chunks:
        for record in records:
            columns = codec.loads(record.value)["columns"]
            ids = columns["prediction_id"]
            n = len(ids)
            if record.role == "predictions":
                predictions += n
                for name in columns["features"]:
                    values = _column(columns["features"], name, n)
                    if type(values[0]) is str:
                        categories.setdefault(name, Counter()).update(values)
                    else:
                        np.asarray(values, dtype=np.float64)
                pending.update(zip(ids, _column(columns, "prediction", n)))
                continue
            for pid, label in zip(ids, _column(columns, "label", n)):
                prediction = pending.pop(pid, None)
                if prediction is not None:
                    pairs += 1
                    error = prediction != label
                    ddm.update(error)
                    adwin.update(error)
    elapsed = time.perf_counter() - started
    if predictions != expected or not pairs:
        raise LoadTestError(f"the minimum loop read {predictions} predictions (expected {expected}) and joined {pairs}")
    return {**_rate(predictions, elapsed), "pairs": pairs}


def _median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the median rate (the lower middle one of an even count), with every
    run's rate.

    >>> _median_run([{"predictions_per_s": r} for r in (3.0, 1.0, 2.0)])
    {'predictions_per_s': 2.0, 'runs_predictions_per_s': [3.0, 1.0, 2.0]}
    """
    ranked = sorted(runs, key=lambda run: run["predictions_per_s"])
    return {**ranked[(len(ranked) - 1) // 2], "runs_predictions_per_s": [run["predictions_per_s"] for run in runs]}


def runs_note(run: dict[str, Any] | None) -> str:
    """``median of a, b, c`` for a run picked by :func:`_median_run` from several, else ``""``.

    >>> runs_note({"runs_predictions_per_s": [41000.0, 39500.5, 44000.0]})
    'median of 41,000, 39,500, 44,000'
    """
    rates = (run or {}).get("runs_predictions_per_s", [])
    return f"median of {', '.join(f'{r:,.0f}' for r in rates)}" if len(rates) > 1 else ""


def publisher_rates(settings: Settings, items: Sequence[Item], single: int) -> dict[str, Any]:
    """What a publisher pays: the async client's rate over lists of ``PUBLISH_CHUNK`` events
    (validated, batched, acked), and the sync client's cost per ``publish_prediction`` call
    for ``single`` events (validated and queued; the flush that waits for their acks is timed
    apart). CPU time beside wall time: the broker shares the machine."""
    preds = [event for role, event in items if role == "predictions"]

    async def bulk() -> tuple[float, float]:
        async with DriftstreamClient(settings) as client:
            wall, cpu = time.perf_counter(), time.process_time()
            for start in range(0, len(preds), PUBLISH_CHUNK):
                await client.publish("predictions", preds[start : start + PUBLISH_CHUNK])
            return time.perf_counter() - wall, time.process_time() - cpu

    wall_s, cpu_s = asyncio.run(bulk())
    with SyncDriftstreamClient(settings) as client:
        started, cpu_started = time.perf_counter(), time.process_time()
        for event in preds[:single]:
            client.publish_prediction(event)
        calls_s, calls_cpu_s = time.perf_counter() - started, time.process_time() - cpu_started
        client.flush()
        flushed_s = time.perf_counter() - started
    return {
        "async_predictions_per_s": round(len(preds) / wall_s, 1), "async_cpu_predictions_per_s": round(len(preds) / cpu_s, 1),
        "sync_calls": min(single, len(preds)), "sync_us_per_call": round(calls_s / min(single, len(preds)) * 1e6, 2),
        # the process's CPU (the calls and the thread sending them) per call: the wall time
        # above is the machine's load as much as the client's cost
        "sync_cpu_us_per_call": round(calls_cpu_s / min(single, len(preds)) * 1e6, 2),
        "sync_predictions_per_s_with_flush": round(min(single, len(preds)) / flushed_s, 1),
    }


def foreign_rates(h: Harness, broker: Any, n_foreign: int, seed: int, partitions: int,
                  runs: int) -> tuple[dict[str, Any], dict[str, Any], list[tuple[Any, ...]]]:
    """The foreign path against its peers: ``runs`` rounds, each producing ``n_foreign``
    predictions and their labels with kcat (one event per record) into fresh topics and
    running every contender on them, one after the other. Returns the summary's figures
    (medians of the rounds, every round's rate beside them), the targets and the table's
    rows; the ratios are of the medians."""
    items = workload(drifting_config(n_foreign, seed))
    counts = count_roles(items)
    rounds: dict[str, list[dict[str, Any]]] = {name: [] for name in ("pipeline", "noop", "raw", "loop", "quix", "quix_noop")}
    for run in range(1, runs + 1):
        foreign = namespaced(broker, partitions=partitions)
        create_topics(foreign)
        note(f"kcat producing {len(items):,} events, one per record (round {run} of {runs})")
        for role in ("predictions", "ground-truth"):
            produce_foreign(broker.bootstrap_servers, foreign.topic(role), [e for r, e in items if r == role])
        predictions, labels = foreign.topic("predictions"), foreign.topic("ground-truth")
        rounds["pipeline"].append(run_pipeline(h, foreign, counts, f"foreign events through the pipeline (round {run} of {runs})"))
        note("no-op Faust agent over the foreign predictions topic")
        rounds["noop"].append(noop_faust_rate(h, foreign, predictions, counts["predictions"], counts["predictions"]))
        rounds["raw"].append(raw_aiokafka_rate(foreign, predictions, counts["predictions"], decode=True))
        note("the peers on both topics: a plain aiokafka loop, a Quix Streams app, a no-op Quix Streams app")
        rounds["loop"].append(aiokafka_loop_rate(foreign, predictions, labels, counts))
        rounds["quix"].append(quix_rate(h, foreign, predictions, labels, counts))
        rounds["quix_noop"].append(quix_rate(h, foreign, predictions, labels, counts, noop=True))
    median = {name: _median_run(rs) for name, rs in rounds.items()}
    rate = {name: run["predictions_per_s"] for name, run in median.items()}
    vs_noop = rate["pipeline"] / rate["noop"]
    vs_quix = rate["pipeline"] / rate["quix"]
    vs_loop = rate["pipeline"] / rate["loop"]
    figures = {
        "foreign_predictions_per_s": rate["pipeline"],
        "foreign_run": {**median["pipeline"], "records": counts["predictions"] + counts["ground-truth"]},
        "faust_noop_per_s": rate["noop"],
        "raw_aiokafka_foreign_json_per_s": rate["raw"],
        "foreign_peers": {
            "job": "join by prediction_id, then per model river ADWIN and DDM on the error and a windowed PSI of the score "
                   "(10 bins, window 1000, step 250)",
            "aiokafka_loop_per_s": rate["loop"], "quix_per_s": rate["quix"], "quix_noop_per_s": rate["quix_noop"],
            "rounds_per_s": {name: [r["predictions_per_s"] for r in rs] for name, rs in rounds.items()},
        },
        "foreign_vs_faust_noop": round(vs_noop, 4),
        "foreign_vs_quix": round(vs_quix, 4),
        "foreign_vs_aiokafka_loop": round(vs_loop, 4),
    }
    targets = {
        "foreign_vs_faust_noop": {"target": f">= {FOREIGN_VS_NOOP_TARGET:.2f}", "actual": round(vs_noop, 4), "met": vs_noop >= FOREIGN_VS_NOOP_TARGET},
        "foreign_vs_quix": {"target": f">= {FOREIGN_VS_QUIX_TARGET:.2f}", "actual": round(vs_quix, 4), "met": vs_quix >= FOREIGN_VS_QUIX_TARGET},
        "foreign_vs_aiokafka_loop": {"target": f">= {FOREIGN_VS_AIOKAFKA_LOOP_TARGET:.2f}", "actual": round(vs_loop, 4),
                                     "met": vs_loop >= FOREIGN_VS_AIOKAFKA_LOOP_TARGET},
    }
    rows = [
        ("foreign (kcat, 1 event/record), full pipeline", rate["pipeline"], runs_note(median["pipeline"])),
        ("  no-op Faust agent (predictions topic)", rate["noop"], f"pipeline = {vs_noop:.2f}x"),
        ("  Quix Streams app, same job, join in its state store", rate["quix"], f"pipeline = {vs_quix:.2f}x"),
        ("  no-op Quix Streams app (both topics)", rate["quix_noop"], ""),
        ("  plain aiokafka loop, same job, state in memory", rate["loop"], f"pipeline = {vs_loop:.1%}"),
        ("  raw aiokafka, orjson-decoding (predictions topic)", rate["raw"], ""),
    ]
    return figures, targets, rows


async def _record_count(settings: Settings, topic: str) -> int:
    consumer = AIOKafkaConsumer(**settings.kafka_client_kwargs(), group_id=None)
    await consumer.start()
    try:
        partitions = await _partitions(consumer, topic)
        return sum((await end_offsets(consumer, partitions, settings.kafka_client_kwargs())).values())
    finally:
        await consumer.stop()


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    p = parser(__doc__)
    p.add_argument("--sdk-events", type=int, help="predictions published with the SDK (default 500,000; smoke 20,000)")
    p.add_argument("--foreign-events", type=int, help="predictions published by kcat (default 100,000; smoke 3,000)")
    p.add_argument("--only-foreign", action="store_true", help="only the foreign path and its peers (for iterating on it)")
    p.add_argument("--partitions", type=int, default=4)
    p.add_argument("--runs", type=int, help="pipeline runs of each kind, the median reported (default 3; smoke 1)")
    args = p.parse_args(argv)
    n_sdk = args.sdk_events or (20_000 if args.smoke else 500_000)
    n_foreign = args.foreign_events or (3_000 if args.smoke else 100_000)
    runs = args.runs or (1 if args.smoke else 3)

    if args.only_foreign:
        with Harness() as h:
            foreign, targets, rows = foreign_rates(h, h.broker(), n_foreign, args.seed + 1, args.partitions, runs)
        print_table("Throughput, foreign path (one worker process, predictions/s)", rows, ("run", "predictions/s", "ratio"))
        print_table("Targets", [(k, t["target"], t["actual"], t["met"]) for k, t in targets.items()], ("figure", "target", "actual", "met"))
        return finish({"script": "throughput", "smoke": args.smoke, "only_foreign": True, "partitions": args.partitions,
                       "runs": runs, **foreign, "targets": targets, "targets_met": all(t["met"] for t in targets.values())}, args.json)

    with Harness() as h:
        broker = h.broker()
        # -- SDK: many events per record ------------------------------------------------
        note(f"generating {n_sdk:,} predictions and their labels")
        items = workload(drifting_config(n_sdk, args.seed))
        sdk_runs = []
        for run in range(1, runs + 1):
            sdk = namespaced(broker, partitions=args.partitions)
            create_topics(sdk)
            sent = publish(sdk, items, chunk=PUBLISH_CHUNK, what=f"SDK events published (run {run} of {runs})")
            sdk_runs.append(run_pipeline(h, sdk, sent, f"SDK events through the pipeline (run {run} of {runs})"))
        sdk_run = _median_run(sdk_runs)
        config_dir = Path(tempfile.mkdtemp(prefix="driftstream-everything-on-"))
        try:
            everything = str(everything_on_file(config_dir))
            all_runs = []
            for run in range(1, runs + 1):
                full = namespaced(broker, partitions=args.partitions, config_path=everything)
                create_topics(full)
                sent = publish(full, items, chunk=PUBLISH_CHUNK, what=f"SDK events published (everything on, run {run} of {runs})")
                all_runs.append(run_pipeline(h, full, sent, f"SDK events, everything on (run {run} of {runs})"))
        finally:
            shutil.rmtree(config_dir, ignore_errors=True)
        all_run = _median_run(all_runs)
        note("the same records through the stages in this process, no Kafka (default, then everything on)")
        chunks = sdk_chunks(sdk, items)
        stages = stages_rate(sdk, chunks, sent["predictions"])
        stages_all = stages_rate(sdk, chunks, sent["predictions"], MonitorConfig.from_mapping(EVERYTHING_ON))
        note("the same records through the least work any pipeline does, in this process")
        minimum = minimum_rate(chunks, sent["predictions"])
        del chunks
        sdk_records = asyncio.run(_record_count(sdk, sdk.topic("predictions")))
        note("raw aiokafka over the SDK predictions topic")
        raw = raw_aiokafka_rate(sdk, sdk.topic("predictions"), sent["predictions"], decode=False)
        raw_json = raw_aiokafka_rate(sdk, sdk.topic("predictions"), sent["predictions"], decode=True)
        note("no-op Faust agent over the SDK predictions topic")
        noop_sdk = noop_faust_rate(h, sdk, sdk.topic("predictions"), sdk_records, sent["predictions"])
        note("the publisher alone: the async client over lists, the sync client one event per call")
        pub = namespaced(broker, partitions=args.partitions)
        create_topics(pub)
        publisher = publisher_rates(pub, items, 2_000 if args.smoke else 50_000)
        del items

        foreign, foreign_targets, foreign_rows = foreign_rates(h, broker, n_foreign, args.seed + 1, args.partitions, runs)

    sdk_rate = sdk_run["predictions_per_s"]
    sdk_vs_raw = sdk_rate / raw["predictions_per_s"]
    sdk_vs_stages = sdk_rate / stages["predictions_per_s"]
    all_vs_default = all_run["predictions_per_s"] / sdk_rate
    stages_all_vs_default = stages_all["predictions_per_s"] / stages["predictions_per_s"]
    minimum_vs_raw = minimum["predictions_per_s"] / raw["predictions_per_s"]
    targets = {
        "sdk_predictions_per_s": {"target": f">= {SDK_TARGET_PER_S:,.0f}", "actual": sdk_rate, "met": sdk_rate >= SDK_TARGET_PER_S},
        "sdk_publish_per_s": {"target": f">= {PUBLISH_TARGET_PER_S:,.0f}", "actual": publisher["async_predictions_per_s"],
                              "met": publisher["async_predictions_per_s"] >= PUBLISH_TARGET_PER_S},
        "sdk_vs_stages_in_process": {"target": f">= {SDK_VS_STAGES_TARGET:.2f}", "actual": round(sdk_vs_stages, 4),
                                     "met": sdk_vs_stages >= SDK_VS_STAGES_TARGET},
        "stages_in_process_per_s": {"target": f">= {STAGES_TARGET_PER_S:,.0f}", "actual": stages["predictions_per_s"],
                                    "met": stages["predictions_per_s"] >= STAGES_TARGET_PER_S},
        **foreign_targets,
    }
    summary = {
        "script": "throughput", "smoke": args.smoke, "partitions": args.partitions, "worker_processes": 1, "runs": runs,
        "sdk_predictions_per_s": sdk_rate,
        "raw_aiokafka_per_s": raw["predictions_per_s"],
        "raw_aiokafka_json_per_s": raw_json["predictions_per_s"],
        "faust_noop_sdk_topic_per_s": noop_sdk["predictions_per_s"],
        "stages_in_process_per_s": stages["predictions_per_s"],
        "stages_us_per_prediction": stages["us_per_prediction"],
        "sdk_vs_stages_in_process": round(sdk_vs_stages, 4),
        "stages_cpu_us_per_prediction": stages["cpu_us_per_prediction"],
        "everything_on_predictions_per_s": all_run["predictions_per_s"],
        "everything_on_vs_default": round(all_vs_default, 4),
        "everything_on_run": all_run,
        "everything_on_stages_per_s": stages_all["predictions_per_s"],
        "everything_on_stages_cpu_us_per_prediction": stages_all["cpu_us_per_prediction"],
        "everything_on_stages_vs_default": round(stages_all_vs_default, 4),
        "everything_on_config": EVERYTHING_ON,
        "minimum_in_process_per_s": minimum["predictions_per_s"],
        "minimum_us_per_prediction": minimum["us_per_prediction"],
        "minimum_vs_raw_aiokafka": round(minimum_vs_raw, 4),
        "minimum_work": "orjson decoding, numeric feature columns as numpy arrays, categorical ones counted, "
                        "a dict join, river DDM and ADWIN on each pair's error; in process, no Kafka",
        "sdk_vs_raw_aiokafka": round(sdk_vs_raw, 4),
        "raw_aiokafka_decoding": "raw_aiokafka_per_s decodes nothing; raw_aiokafka_json_per_s orjson-decodes every record",
        "sdk_run": {**sdk_run, "records": sdk_records, "predictions_per_record": round(sent["predictions"] / max(sdk_records, 1), 1)},
        **foreign,
        "sdk_publish_per_s": publisher["async_predictions_per_s"],
        "publisher": publisher,
        "targets": targets,
        "targets_met": all(t["met"] for t in targets.values()),
    }
    print_table("Throughput (one worker process, predictions/s)", [
        ("SDK (column batches, 500 events), full pipeline", sdk_rate, runs_note(sdk_run)),
        ("  raw aiokafka, no decoding", raw["predictions_per_s"], f"pipeline = {sdk_vs_raw:.1%}"),
        ("  raw aiokafka, orjson-decoding", raw_json["predictions_per_s"], ""),
        ("  no-op Faust agent", noop_sdk["predictions_per_s"], ""),
        ("  the stages alone, in process, no Kafka", stages["predictions_per_s"], f"pipeline = {sdk_vs_stages:.1%}"),
        ("SDK, everything on, full pipeline", all_run["predictions_per_s"], f"= {all_vs_default:.1%} of default"),
        ("  the stages alone, everything on", stages_all["predictions_per_s"], f"= {stages_all_vs_default:.1%} of default"),
        ("  the least any pipeline does, in process", minimum["predictions_per_s"], f"= {minimum_vs_raw:.1%} of raw"),
        *foreign_rows,
        ("publisher: async client, lists of 5,000", publisher["async_predictions_per_s"],
         f"CPU-bound rate {publisher['async_cpu_predictions_per_s']:,.0f}"),
        ("publisher: sync client, one event per call, with the flush", publisher["sync_predictions_per_s_with_flush"],
         f"{publisher['sync_us_per_call']:.1f} us per call, {publisher['sync_cpu_us_per_call']:.1f} us of CPU"),
    ], ("run", "predictions/s", "ratio"))
    print_table("Targets", [(k, t["target"], t["actual"], t["met"]) for k, t in targets.items()], ("figure", "target", "actual", "met"))
    return finish(summary, args.json)


if __name__ == "__main__":
    main()
