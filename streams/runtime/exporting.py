"""Per-model Prometheus series from the monitors' results, and the consumer's lag.

Series per model are capped (:class:`~streams.pipeline.cardinality.SeriesCap`): past the cap a
model is monitored as usual, only not exported.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import faust
from faust.types import TP

from schemas.records import ACTIONS

from streams.ops.metrics import Metrics
from streams.pipeline.cardinality import SeriesCap
from streams.pipeline.monitor import ModelMonitor
from streams.runtime.faust_private import read_offsets

__all__ = ["Exporter"]


class Exporter:
    """Sets the detector, drift-event and label-coverage series of each model's results."""

    def __init__(self, app: faust.App, metrics: Metrics, series: SeriesCap, highwater: Callable[[TP], "int | None"]) -> None:
        self.app = app
        self.metrics = metrics
        self.series = series
        self.highwater = highwater

    def clear(self) -> None:
        """A rebalance: models that moved to another worker must not keep their last values
        here; the ones that stay are exported again with their next batch."""
        m = self.metrics
        for gauge in (m.detector_statistic, m.detector_threshold, m.detector_window_size,
                      m.detector_p_value, m.detector_drift, m.estimated_performance, m.label_coverage,
                      m.event_time_lag):
            gauge.clear()
        self.series.reset()

    def export(self, monitor: ModelMonitor, result: Any) -> None:
        m = self.metrics
        if not self.series.exports(monitor.model_id):  # past DRIFTSTREAM_MAX_MODEL_SERIES
            m.model_series_capped.set(self.series.capped)
            return
        version = monitor.model_version or ""
        latest: dict[tuple[str, str], dict[str, Any]] = {}
        for sample in result.samples:  # a segment's detectors have the model's keys: told apart by segment
            latest[sample.get("segment", ""), sample["key"]] = sample
        for (segment, _), sample in latest.items():
            labels = (monitor.model_id, version, sample["detector"], sample["feature"] or "", segment)
            m.detector_statistic.labels(*labels, sample["direction"]).set(sample["statistic"])
            m.detector_threshold.labels(*labels, sample["direction"]).set(sample["threshold"])
            m.detector_drift.labels(*labels).set(1.0 if sample["drift"] else 0.0)
            if sample["window_size"] is not None:
                m.detector_window_size.labels(*labels).set(sample["window_size"])
            if sample["p_value"] is not None:
                m.detector_p_value.labels(*labels).set(sample["p_value"])
        for event in result.drift_events:
            if event["drift"]:
                m.drift_events.labels(monitor.model_id, event["kind"], event.get("segment", "")).inc()
            if "realized" in event:  # an estimate met its labels (streams/pipeline/estimation.py): 5 metrics, 2 sources
                for source in ("estimated", "realized"):
                    m.estimated_performance.labels(monitor.model_id, version, event["metric"], source,
                                                   event.get("segment", "")).set(event[source])
        coverage = monitor.label_coverage()
        if coverage is not None:
            m.label_coverage.labels(monitor.model_id).set(coverage)

    def model_update(self, update: Any) -> None:
        """Count a ``model-updates`` event this worker's partitions carry, by model and action
        (whoever decided it: the updater, the CLI, a serving hook); other teams' events on the
        topic, with an action of their own, are not counted."""
        if not isinstance(update, dict):
            return
        model_id, action = update.get("model_id"), update.get("action")
        if action in ACTIONS and isinstance(model_id, str) and self.series.exports(model_id):
            self.metrics.model_updates.labels(model_id, action).inc()

    def event_time_lag(self, model_id: str, lag_s: float) -> None:
        if self.series.exports(model_id):
            self.metrics.event_time_lag.labels(model_id).set(lag_s)

    def update_lag(self) -> None:
        """Each assigned partition's records not read yet, as of the last fetch."""
        consumer = self.app.consumer
        for tp in consumer.assignment():
            highwater = self.highwater(tp)  # the assignment can change under it (the consumer's thread)
            read = read_offsets(consumer).get(tp)
            if highwater is not None and read is not None:
                self.metrics.consumer_lag.labels(tp.topic, str(tp.partition)).set(max(0, highwater - read - 1))
