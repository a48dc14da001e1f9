"""The metric contract of ``streams.ops.metrics``: names, types, labels, isolation, rendering."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.parser import text_string_to_metric_families

from streams.ops.metrics import (
    DETECTOR_LABELS,
    DIRECTED_LABELS,
    Metrics,
    create,
    exported_names,
    observe_many,
    render,
)

#: field -> (exported family name, type, label names): the contract dashboards rely on.
EXPECTED: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "events_consumed": ("driftstream_events_consumed", "counter", ("topic",)),
    "records_consumed": ("driftstream_records_consumed", "counter", ("topic",)),
    "dead_letters": ("driftstream_dead_letters", "counter", ("reason",)),
    "join_outcomes": ("driftstream_join_outcomes", "counter", ("outcome",)),
    "label_lag_seconds": ("driftstream_label_lag_seconds", "histogram", ()),
    "label_coverage": ("driftstream_label_coverage_ratio", "gauge", ("model_id",)),
    "detector_statistic": ("driftstream_detector_statistic", "gauge", DIRECTED_LABELS),
    "detector_threshold": ("driftstream_detector_threshold", "gauge", DIRECTED_LABELS),
    "detector_window_size": ("driftstream_detector_window_size", "gauge", DETECTOR_LABELS),
    "detector_p_value": ("driftstream_detector_p_value", "gauge", DETECTOR_LABELS),
    "detector_drift": ("driftstream_detector_drift", "gauge", DETECTOR_LABELS),
    "estimated_performance": ("driftstream_estimated_performance", "gauge",
                              ("model_id", "model_version", "metric", "source", "segment")),
    "drift_events": ("driftstream_drift_events", "counter", ("model_id", "kind", "segment")),
    "alerts": ("driftstream_alerts", "counter", ("model_id", "severity", "status")),
    "alerts_firing": ("driftstream_alerts_firing", "gauge", ("model_id", "severity")),
    "processing_latency_seconds": ("driftstream_processing_latency_seconds", "histogram", ()),
    "event_time_lag": ("driftstream_event_time_lag_seconds", "gauge", ("model_id",)),
    "batch_size": ("driftstream_batch_size_events", "histogram", ("stage",)),
    "batch_duration_seconds": ("driftstream_batch_duration_seconds", "histogram", ("stage",)),
    "consumer_lag": ("driftstream_consumer_lag_records", "gauge", ("topic", "partition")),
    "monitor_held_events": ("driftstream_monitor_held_events", "gauge", ()),
    "join_paused_partitions": ("driftstream_join_paused_partitions", "gauge", ()),
    "alignment_pauses": ("driftstream_alignment_pauses", "counter", ()),
    "late_events": ("driftstream_late_events", "counter", ()),
    "event_time_frontier": ("driftstream_event_time_frontier_seconds", "gauge", ("partition",)),
    "table_size": ("driftstream_table_entries", "gauge", ("table",)),
    "table_bytes": ("driftstream_table_bytes", "gauge", ("table",)),
    "offset_gaps": ("driftstream_offset_gaps", "counter", ("topic",)),
    "offset_rewinds": ("driftstream_offset_rewinds", "counter", ("topic",)),
    "broker_data_lost": ("driftstream_broker_data_lost", "counter", ()),
    "duplicates_skipped": ("driftstream_duplicates_skipped", "counter", ("stage",)),
    "handovers": ("driftstream_handovers", "counter", ("outcome",)),
    "checkpoints": ("driftstream_checkpoints", "counter", ("outcome",)),
    "webhook_deliveries": ("driftstream_webhook_deliveries", "counter", ("outcome",)),
    "alert_sink_alerts": ("driftstream_alert_sink_alerts", "counter", ("sink", "outcome")),
    "alert_sink_queue": ("driftstream_alert_sink_queue_alerts", "gauge", ("sink",)),
    "alert_sink_breaker_open": ("driftstream_alert_sink_breaker_open", "gauge", ("sink",)),
    "model_series_capped": ("driftstream_model_series_capped_models", "gauge", ()),
    "models_evicted": ("driftstream_models_evicted", "counter", ()),
    "model_updates": ("driftstream_model_updates", "counter", ("model_id", "action")),
    "updater_events": ("driftstream_updater_events", "counter", ("role",)),
    "build_info": ("driftstream_build", "info", ()),
    "last_event_timestamp": ("driftstream_last_event_timestamp_seconds", "gauge", ("topic",)),
}


def test_fields_are_exactly_the_contract() -> None:
    assert Metrics._fields == tuple(EXPECTED)


@pytest.mark.parametrize("field", list(EXPECTED))
def test_name_type_and_labels(field: str) -> None:
    name, kind, labels = EXPECTED[field]
    metric = getattr(create(process_collectors=False), field)
    [family] = metric.describe()
    assert (family.name, family.type) == (name, kind)
    assert tuple(metric._labelnames) == labels
    assert family.documentation


def test_default_registry_is_private_per_call() -> None:
    first, second = create(process_collectors=False), create(process_collectors=False)
    first.events_consumed.labels(topic="predictions").inc()
    assert second.events_consumed.labels(topic="predictions")._value.get() == 0


def test_registering_twice_on_one_registry_is_refused() -> None:
    registry = CollectorRegistry()
    create(registry)
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        create(registry)


def test_process_collectors_are_optional() -> None:
    with_process, without = CollectorRegistry(), CollectorRegistry()
    create(with_process)
    create(without, process_collectors=False)
    assert "process_resident_memory_bytes" in exported_names(with_process)
    assert "python_info" in exported_names(with_process)
    assert not any(n.startswith(("process_", "python_")) for n in exported_names(without))


def test_prefix_and_build_version() -> None:
    registry = CollectorRegistry()
    create(registry, prefix="staging", process_collectors=False, version="1.2.3")
    assert registry.get_sample_value("staging_build_info", {"version": "1.2.3"}) == 1.0
    assert all(name.startswith("staging_") for name in exported_names(registry))


def test_latency_buckets_span_a_millisecond_to_a_minute() -> None:
    registry = CollectorRegistry()
    metrics = create(registry, process_collectors=False)
    metrics.processing_latency_seconds.observe(0.0004)
    bounds = [
        float(s.labels["le"])
        for s in next(f for f in registry.collect() if f.name.endswith("latency_seconds")).samples
        if s.name.endswith("_bucket")
    ]
    assert bounds[0] == 0.001 and 60.0 in bounds and bounds[-1] == float("inf")


def test_render_prometheus_text_round_trips() -> None:
    registry = CollectorRegistry()
    metrics = create(registry)
    metrics.detector_statistic.labels("fraud", "3", "psi", "amount", "", "above").set(0.31)
    metrics.label_lag_seconds.observe(42.0)
    body, content_type = render(registry)
    assert content_type.startswith("text/plain; version=0.0.4")
    families = {f.name: f for f in text_string_to_metric_families(body.decode())}
    [sample] = families["driftstream_detector_statistic"].samples
    assert sample.value == 0.31 and sample.labels["feature"] == "amount" and sample.labels["direction"] == "above"
    assert "process_resident_memory_bytes" in families


def test_render_serves_openmetrics_when_asked() -> None:
    registry = CollectorRegistry()
    create(registry)
    body, content_type = render(registry, accept="application/openmetrics-text; version=1.0.0")
    assert content_type.startswith("application/openmetrics-text")
    assert body.rstrip().endswith(b"# EOF")


def test_exported_names_cover_unobserved_label_sets() -> None:
    registry = CollectorRegistry()
    create(registry, process_collectors=False)
    assert {
        "driftstream_events_consumed_total",
        "driftstream_batch_size_events_bucket",
        "driftstream_batch_size_events_sum",
        "driftstream_batch_size_events_count",
        "driftstream_consumer_lag_records",
        "driftstream_build_info",
    } <= exported_names(registry)


def test_observe_many_equals_one_observe_per_value():
    values = [-1.0, 0.0, 0.1, 0.25, 0.25000001, 3.0, 59.9, 60.0, 1e9, float("inf")]
    buckets = (0.1, 0.25, 1.0, 60.0)
    one_by_one = Histogram("a", "", registry=CollectorRegistry(), buckets=buckets)
    batched = Histogram("a", "", registry=CollectorRegistry(), buckets=buckets)
    for value in values:
        one_by_one.observe(value)
    observe_many(batched, values)
    observe_many(batched, [])

    def samples(h):
        return {(s.name, s.labels.get("le")): s.value for s in h.collect()[0].samples if not s.name.endswith("_created")}

    assert samples(batched) == samples(one_by_one)
    finite = [v for v in values if v != float("inf")]
    one, many = Histogram("b", "", registry=CollectorRegistry()), Histogram("b", "", registry=CollectorRegistry())
    for value in finite * 3:
        one.observe(value)
    observe_many(many, finite * 3)
    assert samples(many)[("b_sum", None)] == pytest.approx(samples(one)[("b_sum", None)])
    assert {k: v for k, v in samples(many).items() if k[0] != "b_sum"} == {k: v for k, v in samples(one).items() if k[0] != "b_sum"}
