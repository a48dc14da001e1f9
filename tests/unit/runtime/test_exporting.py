"""The worker's count of model-updates events (streams.runtime.exporting.Exporter.model_update):
the series the Grafana "Model updates / h" panel reads."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from streams.ops.metrics import create
from streams.pipeline.cardinality import SeriesCap
from streams.runtime.exporting import Exporter


def _counts(registry: CollectorRegistry) -> dict[tuple[str, str], float]:
    return {(s.labels["model_id"], s.labels["action"]): s.value for f in registry.collect()
            if f.name == "driftstream_model_updates" for s in f.samples if s.name.endswith("_total")}


def test_model_updates_are_counted_by_model_and_action_and_foreign_events_are_not() -> None:
    registry = CollectorRegistry()
    exporter = Exporter(None, create(registry), SeriesCap(2), lambda tp: None)  # type: ignore[arg-type]
    for update in ({"model_id": "churn", "action": "update_requested"}, {"model_id": "churn", "action": "promoted"},
                   {"model_id": "churn", "action": "promoted"}, {"model_id": "fraud", "action": "rolled_back"},
                   {"model_id": "churn", "action": "deployed-by-another-team"}, {"action": "promoted"}, [1, 2], "x",
                   {"model_id": "third", "action": "promoted"}):  # past the series cap of 2 models
        exporter.model_update(update)
    assert _counts(registry) == {("churn", "update_requested"): 1.0, ("churn", "promoted"): 2.0,
                                 ("fraud", "rolled_back"): 1.0}
