"""A worker stopped with SIGTERM, or one that loses partitions in a rebalance, hands them
over: their next owner repeats nothing.

Without a hand-over the next owner resumes from the last monitor checkpoint and the last
join outbox, applies again what came after them, and publishes the same drift events and
alerts a second time (same ids: a repeat, not a loss). Here no periodic checkpoint falls
within the tests (``monitor_checkpoint_s`` is ten minutes), so whatever a worker saved, it
saved while handing over.
"""

from __future__ import annotations

import asyncio

import pytest

from streams.offline.simulate import Simulation, SimulationConfig
from streams.runtime.topics import ensure_topics
from streams.runtime.worker_process import WorkerProcess
from streams.settings import Settings

from .support import (
    assigned_partitions,
    model_counts,
    monitored,
    publish_events,
    read_topic,
    repeated_event_ids,
    wait_for,
)

pytestmark = pytest.mark.integration


def test_a_stopped_worker_hands_over_and_its_successor_repeats_no_output(settings: Settings) -> None:
    settings = settings.replace(monitor_checkpoint_s=600.0)
    asyncio.run(ensure_topics(settings))
    config = SimulationConfig(events=12_000, seed=3, feature_drift_at=3_000, concept_drift_at=5_000)
    items = Simulation(config).in_event_time_order()
    half = len(items) // 2
    with WorkerProcess(settings) as first:
        first.wait_ready(90)
        sent = publish_events(settings, items[:half])
        total = sent["predictions"] + sent["ground-truth"]
        wait_for(lambda: monitored(first, settings) >= total, 120, "the first worker to apply the first half")
        status = first.stop()
        log = first.log_tail(20_000)
    assert status == 0, log
    assert "hand-over incomplete" not in log, log
    # the monitor state was saved on the way out, covering everything it applied
    assert model_counts(settings, config.model_id) == (sent["predictions"], sent["ground-truth"])

    with WorkerProcess(settings) as second:
        second.wait_ready(90)
        more = publish_events(settings, items[half:])
        expected = (sent["predictions"] + more["predictions"], sent["ground-truth"] + more["ground-truth"])
        wait_for(lambda: monitored(second, settings) >= sum(more.values()), 120, "the second worker to apply the second half")
        applied = monitored(second, settings)
        # nothing applied twice, and no join outbox published again (the monitors would skip it)
        skipped = second.metric("driftstream_duplicates_skipped_total")
        status = second.stop()
        log = second.log_tail(20_000)
    assert status == 0, log
    assert applied == sum(more.values())
    assert skipped == 0
    assert model_counts(settings, config.model_id) == expected
    drift_events = read_topic(settings, settings.topic("drift-events"))
    assert any(value["drift"] for _, value in drift_events)  # the drifts were detected ...
    assert read_topic(settings, settings.topic("alerts"))
    assert repeated_event_ids(settings, "drift-events") == {}  # ... and published once
    assert repeated_event_ids(settings, "alerts") == {}


def _assigned_inputs(worker: WorkerProcess, settings: Settings) -> set[str]:
    return {tp for tp in assigned_partitions(worker) if tp.startswith(settings.topic("predictions"))}


def test_a_worker_that_loses_partitions_in_a_rebalance_hands_them_over(settings: Settings) -> None:
    """A second worker joins: the first hands over what it had applied since its last
    checkpoint (there is none in this test but the hand-over's), and the two go on with
    every event applied and every output published once."""
    settings = settings.replace(monitor_checkpoint_s=600.0, partitions=4)
    asyncio.run(ensure_topics(settings))
    configs = [SimulationConfig(events=6_000, seed=10 + i, model_id=f"model-{i}", id_prefix=f"m{i}-",
                                feature_drift_at=1_500, concept_drift_at=2_500) for i in range(4)]
    items = [(role, event) for cfg in configs for role, event in Simulation(cfg).in_event_time_order()]
    items.sort(key=lambda item: item[1]["timestamp"])
    half = len(items) // 2
    with WorkerProcess(settings) as first:
        first.wait_ready(90)
        sent = publish_events(settings, items[:half])
        wait_for(lambda: monitored(first, settings) >= sum(sent.values()), 120, "the first worker to apply the first half")
        before = monitored(first, settings)
        with WorkerProcess(settings) as second:
            second.wait_ready(90)
            wait_for(lambda: bool(_assigned_inputs(first, settings)) and bool(_assigned_inputs(second, settings))
                     and not _assigned_inputs(first, settings) & _assigned_inputs(second, settings),
                     60, "the two workers to share the partitions")
            more = publish_events(settings, items[half:])
            total = sum(more.values())
            wait_for(lambda: monitored(first, settings) - before + monitored(second, settings) >= total, 120,
                     "the two workers to apply the second half")
            applied = monitored(first, settings) - before + monitored(second, settings)
            log = first.log_tail(20_000)
            handed_over = first.metric("driftstream_handovers_total", outcome="complete")
            second.stop()
        first.stop()
    assert applied == total, log  # nothing applied again
    for cfg in configs:
        predictions = sum(1 for role, e in items if role == "predictions" and e["model_id"] == cfg.model_id)
        labels = sum(1 for role, e in items if role == "ground-truth" and e["prediction_id"].startswith(cfg.id_prefix))
        assert model_counts(settings, cfg.model_id) == (predictions, labels)
    assert any(value["drift"] for _, value in read_topic(settings, settings.topic("drift-events")))
    assert repeated_event_ids(settings, "drift-events") == {}
    assert repeated_event_ids(settings, "alerts") == {}
    assert handed_over >= 1 and "hand-over incomplete" not in log, log
