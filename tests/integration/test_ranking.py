"""A ranking model on the real embedded broker: its metrics exported, its alerts the offline run's."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from streams.offline.pipeline import OfflinePipeline
from streams.pipeline.monitor_config import MonitorConfig
from streams.runtime.topics import ensure_topics
from streams.runtime.worker_process import WorkerProcess
from streams.settings import Settings

from ..unit.streams.test_ranking import _events, _queries
from .support import final_alerts, monitored, publish_events, read_topic, wait_for

pytestmark = pytest.mark.integration

CONFIG = '[defaults.performance]\nmetrics = ["map@10", "ndcg@5"]\n'


def test_a_degraded_ranker_alerts_live_as_offline_and_its_metrics_are_exported(settings: Settings, tmp_path: Path) -> None:
    config = tmp_path / "monitoring.toml"
    config.write_text(CONFIG)
    settings = settings.replace(config_path=str(config))
    asyncio.run(ensure_topics(settings))
    items = _events(_queries())
    with WorkerProcess(settings) as worker:
        worker.wait_ready(90)
        sent = publish_events(settings, items, chunk=1_000)
        wait_for(lambda: monitored(worker, settings) >= sent["predictions"] + sent["ground-truth"], 120,
                 "the monitors to apply every query and its label")
        samples = worker.scrape()
    exported = {(name, dict(labels)["detector"]): value for (name, labels), value in samples.items()
                if name in ("driftstream_detector_statistic", "driftstream_detector_threshold")
                and dict(labels).get("model_id") == "recs"}
    for metric in ("map@10", "ndcg@5"):
        # the last window is the degraded ranker's: well below the threshold from the baseline
        statistic = exported[("driftstream_detector_statistic", metric)]
        assert 0 <= statistic < exported[("driftstream_detector_threshold", metric)] - 0.2, exported

    reference = OfflinePipeline(MonitorConfig.load(config), window_s=settings.join_window_s)
    reference.feed_events(items)
    expected = final_alerts(reference.finish().alerts)
    live = final_alerts([v for _, v in read_topic(settings, settings.topic("alerts"))])
    assert any(a["kind"] == "performance" for a in expected.values())
    assert {k: (a["status"], a["kind"], a["severity"]) for k, a in live.items()} == {
        k: (a["status"], a["kind"], a["severity"]) for k, a in expected.items()}
