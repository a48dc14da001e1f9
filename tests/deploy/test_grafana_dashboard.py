"""The Grafana dashboard and provisioning: every metric a panel plots is really exported."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

GRAFANA = Path(__file__).resolve().parents[2] / "deploy" / "grafana"
DASHBOARD = json.loads((GRAFANA / "dashboards" / "driftstream.json").read_text())


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every panel, rows' nested panels included."""
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))


def _expressions() -> list[tuple[str, str]]:
    """(where, PromQL) for every panel target and templating query."""
    found = [
        (panel["title"], target["expr"])
        for panel in _panels(DASHBOARD["panels"])
        for target in panel.get("targets", [])
    ]
    found += [
        (f"${var['name']}", var["query"]["query"])
        for var in DASHBOARD["templating"]["list"]
        if var["type"] == "query"
    ]
    return found


@pytest.mark.parametrize(("where", "expr"), _expressions(), ids=lambda v: str(v)[:60])
def test_panel_queries_use_only_exported_metrics(
    where: str, expr: str, exported: set[str], names_in: Callable[[str], set[str]]
) -> None:
    used = names_in(expr)
    assert used or expr.startswith("up{"), f"{where}: no metric found in {expr!r}"
    assert used <= exported, f"{where}: not exported: {sorted(used - exported)}"


def test_dashboard_covers_the_required_views(names_in: Callable[[str], set[str]]) -> None:
    used = set().union(*(names_in(expr) for _, expr in _expressions()))
    assert {
        "driftstream_events_consumed_total",
        "driftstream_consumer_lag_records",
        "driftstream_label_coverage_ratio",
        "driftstream_join_outcomes_total",
        "driftstream_detector_statistic",
        "driftstream_detector_threshold",
        "driftstream_alerts_firing",
        "driftstream_alerts_total",
        "driftstream_dead_letters_total",
        "driftstream_processing_latency_seconds_bucket",
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "driftstream_gpu_utilization_ratio",
        "driftstream_gpu_memory_used_bytes",
    } <= used
    latency = [e for _, e in _expressions() if "processing_latency_seconds_bucket" in e]
    assert any("histogram_quantile(0.5," in e for e in latency)
    assert any("histogram_quantile(0.99," in e for e in latency)


def test_model_id_variable_drives_the_drift_panels() -> None:
    [variable] = [v for v in DASHBOARD["templating"]["list"] if v["name"] == "model_id"]
    assert variable["multi"] and variable["includeAll"]
    drift = [e for _, e in _expressions() if "driftstream_detector_statistic{" in e]
    assert drift and all('model_id=~"$model_id"' in e for e in drift)
    assert any(p.get("repeat") == "model_id" for p in _panels(DASHBOARD["panels"]))


def test_panels_use_the_provisioned_datasource() -> None:
    provisioned = yaml.safe_load(
        (GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text()
    )
    [datasource] = provisioned["datasources"]
    assert datasource["url"] == "http://prometheus:9090"
    for panel in _panels(DASHBOARD["panels"]):
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == datasource["uid"], panel["title"]


def test_panel_ids_are_unique() -> None:
    ids = [panel["id"] for panel in _panels(DASHBOARD["panels"])]
    assert len(ids) == len(set(ids))


def test_dashboard_provider_reads_the_mounted_folder(root: Path) -> None:
    provider = yaml.safe_load(
        (GRAFANA / "provisioning" / "dashboards" / "dashboards.yml").read_text()
    )["providers"][0]
    compose = yaml.safe_load((root / "docker-compose.yml").read_text())
    mounts = compose["services"]["grafana"]["volumes"]
    assert f"./deploy/grafana/dashboards:{provider['options']['path']}:ro" in mounts


def test_model_quality_panels_plot_performance_latency_series_and_quality() -> None:
    """The per-model series the monitors sample (streams/pipeline/monitor.py) have panels, by the
    detector names they are exported under."""
    from streams.pipeline.performance import ALL_METRICS
    from streams.pipeline.quality import CHECKS

    titles = {panel["title"]: [t["expr"] for t in panel.get("targets", [])] for panel in _panels(DASHBOARD["panels"])}
    latency = titles["Prediction latency p50 / p95 / p99 (ms) vs SLO"]
    assert any('detector=~"latency_p(50|95|99)"' in e and "driftstream_detector_statistic{" in e for e in latency)
    performance = " ".join(titles["Performance metrics vs threshold"])
    assert all(name in performance for name in ALL_METRICS)
    # ranking metrics are exported under their configured names (map@K, ndcg@K): PromQL
    # regexes are anchored, so each panel's must match such a name whole
    for expr in [*titles["Performance metrics vs threshold"], *titles["Metric series anomalies (statistic vs threshold)"]]:
        pattern = re.search(r'(?:detector|feature)=~"([^"]*(?:map|ndcg)[^"]*)"', expr)
        assert pattern and all(re.fullmatch(pattern[1], name) for name in ("map@10", "ndcg@5", "accuracy")), expr
    quality = " ".join(titles["Data quality: share of values flagged vs max"])
    assert all(check in quality for check in CHECKS)
    assert any("three_sigma" in e for e in titles["Metric series anomalies (statistic vs threshold)"])


def test_segment_panels_split_by_segment_and_whole_model_panels_exclude_segments() -> None:
    """Segmented models export their segments' detectors with a ``segment`` label beside the
    whole model's (``segment=""``): a whole-model panel that took the max over both would
    show a segment's value as the model's."""
    from streams.ops.metrics import DETECTOR_LABELS

    assert "segment" in DETECTOR_LABELS
    titles = {panel["title"]: [t["expr"] for t in panel.get("targets", [])] for panel in _panels(DASHBOARD["panels"])}
    segments = [e for title, exprs in titles.items() if title.startswith("Segments:") for e in exprs]
    assert segments and all('segment!=""' in e and "by (model_id, segment" in e for e in segments)
    for title in ("Performance metrics vs threshold", "Data quality: share of values flagged vs max"):
        assert all('segment=""' in e for e in titles[title]), title
    assert all('segment=""' in e for e in titles["Detector statistic vs threshold: $model_id"])
