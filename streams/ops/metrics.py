"""driftstream's Prometheus metrics: one named tuple, built against an injectable registry.

Faust-style (``faust/sensors/prometheus.py``): :func:`create` registers every metric on
the registry it is given, so each test builds its own and the worker passes the registry
it serves on ``/metrics``. Units are seconds and bytes; every name starts with the prefix.

>>> from prometheus_client import CollectorRegistry
>>> registry = CollectorRegistry()
>>> metrics = create(registry, process_collectors=False)
>>> metrics.events_consumed.labels(topic="predictions").inc(3)
>>> registry.get_sample_value("driftstream_events_consumed_total", {"topic": "predictions"})
3.0
>>> body, content_type = render(registry)
>>> b"driftstream_events_consumed_total" in body, content_type.startswith("text/plain")
(True, True)
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import metadata
from typing import NamedTuple

import numpy as np
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.exposition import choose_encoder

#: Labels of every per-detector gauge. ``segment`` is ``""`` for the whole model, else one of
#: its at most ``segments.max`` chosen segments or ``other`` (streams/pipeline/segments.py),
#: so a model has at most ``segments.max + 2`` values of it.
DETECTOR_LABELS = ("model_id", "model_version", "detector", "feature", "segment")
#: Labels of the statistic and its threshold: ``direction`` is ``above`` when drift means
#: statistic > threshold (PSI, ADWIN, MAE), ``below`` when it means statistic < threshold
#: (p-values of KS, chi2, KSWIN; accuracy), so one alerting rule can tell the two apart.
DIRECTED_LABELS = (*DETECTOR_LABELS, "direction")

#: Processing time, monitor-input record to alert publish: 1 ms .. 60 s.
LATENCY_BUCKETS = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0,
)
#: Label event time minus prediction event time: 1 s .. 1 day (the default join window).
LABEL_LAG_BUCKETS = (1.0, 10.0, 60.0, 300.0, 900.0, 3_600.0, 14_400.0, 43_200.0, 86_400.0)
#: Events per micro-batch, up to twice the default ``batch_max_records``.
BATCH_SIZE_BUCKETS = (1, 5, 10, 50, 100, 250, 500, 1_000, 2_000, 4_000)
#: Wall time to process one micro-batch: 0.5 ms .. 10 s.
BATCH_DURATION_BUCKETS = (0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)


class Metrics(NamedTuple):
    """Every metric a driftstream worker exports (see :func:`create` for names and labels)."""

    events_consumed: Counter
    records_consumed: Counter
    dead_letters: Counter
    join_outcomes: Counter
    label_lag_seconds: Histogram
    label_coverage: Gauge
    detector_statistic: Gauge
    detector_threshold: Gauge
    detector_window_size: Gauge
    detector_p_value: Gauge
    detector_drift: Gauge
    estimated_performance: Gauge
    drift_events: Counter
    alerts: Counter
    alerts_firing: Gauge
    processing_latency_seconds: Histogram
    event_time_lag: Gauge
    batch_size: Histogram
    batch_duration_seconds: Histogram
    consumer_lag: Gauge
    monitor_held_events: Gauge
    join_paused_partitions: Gauge
    alignment_pauses: Counter
    late_events: Counter
    event_time_frontier: Gauge
    table_size: Gauge
    table_bytes: Gauge
    offset_gaps: Counter
    offset_rewinds: Counter
    broker_data_lost: Counter
    duplicates_skipped: Counter
    handovers: Counter
    checkpoints: Counter
    webhook_deliveries: Counter
    alert_sink_alerts: Counter
    alert_sink_queue: Gauge
    alert_sink_breaker_open: Gauge
    model_series_capped: Gauge
    models_evicted: Counter
    model_updates: Counter
    updater_events: Counter
    build_info: Info
    last_event_timestamp: Gauge


def _version() -> str:
    try:
        return metadata.version("driftstream")
    except metadata.PackageNotFoundError:
        return "unknown"


def create(
    registry: CollectorRegistry | None = None,
    prefix: str = "driftstream",
    *,
    process_collectors: bool = True,
    version: str | None = None,
) -> Metrics:
    """Register driftstream's metrics on ``registry`` (a new, private one when ``None``).

    ``process_collectors`` also registers prometheus_client's standard process
    (``process_cpu_seconds_total``, ``process_resident_memory_bytes``, ...) and platform
    (``python_info``) collectors. ``version`` fills ``<prefix>_build_info`` (default: the
    installed package version). Registering twice on one registry raises ``ValueError``.
    """
    registry = CollectorRegistry() if registry is None else registry

    def counter(name: str, doc: str, *labels: str) -> Counter:
        return Counter(f"{prefix}_{name}", doc, labels, registry=registry)

    def gauge(name: str, doc: str, *labels: str) -> Gauge:
        return Gauge(f"{prefix}_{name}", doc, labels, registry=registry)

    def histogram(name: str, doc: str, buckets: tuple[float, ...], *labels: str) -> Histogram:
        return Histogram(f"{prefix}_{name}", doc, labels, registry=registry, buckets=buckets)

    build_info = Info(f"{prefix}_build", "driftstream build information.", registry=registry)
    build_info.info({"version": version or _version()})
    if process_collectors:
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)

    return Metrics(
        events_consumed=counter("events_consumed", "Events consumed.", "topic"),
        records_consumed=counter(
            "records_consumed", "Kafka records consumed (a batch record holds many events).",
            "topic",
        ),
        dead_letters=counter("dead_letters", "Events sent to the dead-letter topic.", "reason"),
        join_outcomes=counter(
            "join_outcomes",
            "Prediction/label joins by outcome (matched, late, unmatched, expired, duplicate).",
            "outcome",
        ),
        label_lag_seconds=histogram(
            "label_lag_seconds", "Label event time minus prediction event time.",
            LABEL_LAG_BUCKETS,
        ),
        label_coverage=gauge(
            "label_coverage_ratio", "Share of predictions that received a label.", "model_id"
        ),
        detector_statistic=gauge(
            "detector_statistic", "Current test statistic of a detector (drift: above the "
            "threshold where direction=\"above\", below it where direction=\"below\").",
            *DIRECTED_LABELS,
        ),
        detector_threshold=gauge(
            "detector_threshold", "Threshold the detector statistic is compared with, in the "
            "direction its label names.", *DIRECTED_LABELS,
        ),
        detector_window_size=gauge(
            "detector_window_size", "Observations in the detector's current window.",
            *DETECTOR_LABELS,
        ),
        detector_p_value=gauge(
            "detector_p_value", "p-value of the detector's last test.", *DETECTOR_LABELS
        ),
        detector_drift=gauge(
            "detector_drift", "1 while the detector reports drift, else 0.", *DETECTOR_LABELS
        ),
        estimated_performance=gauge(
            "estimated_performance", "A label-free estimate (CBPE) of a performance metric over the "
            "last window whose labels arrived (source=\"estimated\"), beside the value its labels "
            "gave (source=\"realized\").", "model_id", "model_version", "metric", "source", "segment",
        ),
        drift_events=counter(
            "drift_events", "Drift events published.", "model_id", "kind", "segment"
        ),
        alerts=counter(
            "alerts", "Alert state changes published.", "model_id", "severity", "status"
        ),
        alerts_firing=gauge(
            "alerts_firing", "Alerts currently firing.", "model_id", "severity"
        ),
        processing_latency_seconds=histogram(
            "processing_latency_seconds",
            "Processing time of a firing alert: from the Kafka timestamp of the newest "
            "monitor-input record that brought its model events (the join's output) to the "
            "alert's publication, so it includes the wait for the event-time frontier. A lower "
            "bound for the triggering event; not the event's age (see event_time_lag_seconds).",
            LATENCY_BUCKETS,
        ),
        event_time_lag=gauge(
            "event_time_lag_seconds", "Wall clock minus the event time of the newest event a "
            "model's monitor applied, at its last batch (replays and backfills read high).",
            "model_id",
        ),
        batch_size=histogram(
            "batch_size_events", "Events per micro-batch.", BATCH_SIZE_BUCKETS, "stage"
        ),
        batch_duration_seconds=histogram(
            "batch_duration_seconds", "Wall time to process one micro-batch.",
            BATCH_DURATION_BUCKETS, "stage",
        ),
        consumer_lag=gauge(
            "consumer_lag_records", "Records between the committed offset and the high water "
            "mark.", "topic", "partition",
        ),
        monitor_held_events=gauge(
            "monitor_held_events", "Events the monitors hold until every join partition has "
            "passed their event time (the canonical order's reorder buffers).",
        ),
        join_paused_partitions=gauge(
            "join_paused_partitions", "Join partitions whose fetches are paused because they are ahead "
            "of the slowest while the monitors hold DRIFTSTREAM_MAX_HELD_EVENTS events.",
        ),
        alignment_pauses=counter(
            "alignment_pauses", "Join partitions paused for being ahead of the slowest while the "
            "monitors held too many events (watermark alignment).",
        ),
        late_events=counter(
            "late_events", "Events that reached a monitor below its event-time frontier (published "
            "after events they precede, once their partition had gone idle): applied at once.",
        ),
        event_time_frontier=gauge(
            "event_time_frontier_seconds", "Event time below which every join partition has sent "
            "everything, per monitor-input partition (+Inf: all idle).", "partition",
        ),
        table_size=gauge("table_entries", "Entries in a state table.", "table"),
        table_bytes=gauge("table_bytes", "Serialised size of a state table.", "table"),
        offset_gaps=counter(
            "offset_gaps", "Offset ranges of an input partition that hold no records (applied "
            "past; e.g. transaction markers).", "topic"
        ),
        offset_rewinds=counter(
            "offset_rewinds", "Times the consumer skipped records that are in the log and was "
            "rewound to re-read them.", "topic"
        ),
        broker_data_lost=counter(
            "broker_data_lost", "Times the worker found the broker's logs behind what it had "
            "applied or written (it exits right after).",
        ),
        duplicates_skipped=counter(
            "duplicates_skipped", "Redelivered events skipped by idempotency checks.", "stage"
        ),
        handovers=counter(
            "handovers", "Partition hand-overs at a rebalance or shutdown (complete: the next "
            "owner repeats nothing; incomplete: it applies again what the last checkpoint missed; "
            "skipped_member_lost: the group had dropped this worker, its partitions had new owners).",
            "outcome",
        ),
        checkpoints=counter(
            "checkpoints", "Monitor checkpoints due, by outcome (started; skipped_unreachable: "
            "the changelog probe could not reach the broker; skipped_changelog_lost: the broker "
            "no longer holds what this worker wrote; skipped_member_lost: the group dropped this worker, "
            "and the rejoin drops what was unsaved). A skipped one is taken at the next turn.",
            "outcome",
        ),
        webhook_deliveries=counter(
            "webhook_deliveries", "Webhook delivery attempts (delivered, retried, failed).",
            "outcome",
        ),
        alert_sink_alerts=counter(
            "alert_sink_alerts", "Alerts an alert sink finished with, by outcome (delivered; "
            "dead_lettered: given up after the last try, the queue full or the circuit open).",
            "sink", "outcome",
        ),
        alert_sink_queue=gauge("alert_sink_queue_alerts", "Alerts waiting in an alert sink's queue.", "sink"),
        alert_sink_breaker_open=gauge(
            "alert_sink_breaker_open", "1 while an alert sink's circuit breaker is open (alerts are "
            "dead-lettered without a try).", "sink",
        ),
        model_series_capped=gauge(
            "model_series_capped_models", "Models whose per-model series are not exported: past "
            "DRIFTSTREAM_MAX_MODEL_SERIES models on this worker.",
        ),
        models_evicted=counter(
            "models_evicted", "Idle models dropped from memory (DRIFTSTREAM_MODEL_IDLE_EVICT_S); "
            "their state stays in the changelog and is loaded again at their next event.",
        ),
        model_updates=counter(
            "model_updates", "Reference model updates by action.", "model_id", "action"
        ),
        updater_events=counter(
            "updater_events", "Events the model updater running in this worker applied (its decide "
            "step, after routing), by role: predictions, ground-truth, model-updates.", "role",
        ),
        build_info=build_info,
        last_event_timestamp=gauge(
            "last_event_timestamp_seconds", "Wall clock (Unix seconds) of the last consumed "
            "event.", "topic",
        ),
    )


def observe_many(histogram: Histogram, values: Sequence[float]) -> None:
    """``histogram.observe(value)`` for each value, with one increment per bucket rather
    than one per value (the join observes a label lag per joined pair). prometheus_client
    has no batch call: this fills the same bucket list ``Histogram.observe`` does.

    >>> from prometheus_client import CollectorRegistry
    >>> h = Histogram("lag", "", registry=CollectorRegistry(), buckets=(1.0, 5.0))
    >>> observe_many(h, [0.5, 1.0, 3.0, 9.0])
    >>> [(s.labels["le"], s.value) for s in h.collect()[0].samples if s.name == "lag_bucket"]
    [('1.0', 2.0), ('5.0', 3.0), ('+Inf', 4.0)]
    """
    if not len(values):
        return
    histogram._raise_if_not_observable()
    amounts = np.asarray(values, dtype=np.float64)
    bounds = histogram._upper_bounds
    # Histogram.observe: the first bucket whose bound is >= the value (a NaN fits none)
    counts = np.bincount(np.searchsorted(bounds, amounts, side="left"), minlength=len(bounds) + 1)
    histogram._sum.inc(float(amounts.sum()))
    for i in np.flatnonzero(counts[: len(bounds)]):
        histogram._buckets[i].inc(int(counts[i]))


def render(registry: CollectorRegistry, accept: str | None = None) -> tuple[bytes, str]:
    """The ``/metrics`` response: ``(body, content_type)``.

    ``accept`` is the request's ``Accept`` header; OpenMetrics is served when it asks for
    it, the Prometheus text format otherwise.
    """
    encoder, content_type = choose_encoder(accept or "")
    return encoder(registry), content_type


def exported_names(registry: CollectorRegistry) -> set[str]:
    """Every sample name ``registry`` can export, whether or not a label set exists yet.

    Counters give ``_total``; histograms ``_bucket``, ``_sum`` and ``_count``; infos
    ``_info``; gauges their own name; samples already present (``_created`` ones included)
    count too. This is what a PromQL expression or a dashboard may refer to.

    >>> from prometheus_client import CollectorRegistry, Counter
    >>> registry = CollectorRegistry()
    >>> _ = Counter("jobs", "Jobs.", ["kind"], registry=registry)
    >>> sorted(exported_names(registry))
    ['jobs_total']
    """
    suffixes = {
        "counter": ("_total",),
        "histogram": ("_bucket", "_sum", "_count"),
        "gaugehistogram": ("_bucket", "_gsum", "_gcount"),
        "summary": ("", "_sum", "_count"),
        "info": ("_info",),
        "stateset": ("",),
    }
    names: set[str] = set()
    for family in registry.collect():
        names.update(family.name + suffix for suffix in suffixes.get(family.type, ("",)))
        names.update(sample.name for sample in family.samples)
    return names


__all__ = ["DETECTOR_LABELS", "DIRECTED_LABELS", "Metrics", "create", "exported_names", "render"]
