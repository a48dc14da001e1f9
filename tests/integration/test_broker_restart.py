"""A broker that loses its data under a running worker (the memory-only embedded broker
restarted): the worker exits with a clear error and status 75 instead of skipping new
records as replays or hanging in recovery; restarted, it processes what the broker holds."""

from __future__ import annotations

import asyncio

import pytest

from streams.offline.simulate import Simulation, SimulationConfig
from streams.ops.broker import EmbeddedBroker
from streams.runtime.app import EXIT_BROKER_LOST_DATA
from streams.runtime.topics import ensure_topics
from streams.runtime.worker_process import WorkerProcess
from streams.settings import Settings

from .support import monitored, publish_events, wait_for

pytestmark = pytest.mark.integration


def test_worker_exits_when_the_broker_lost_its_data_and_a_restarted_one_resumes() -> None:
    items = Simulation(SimulationConfig(events=3_000, seed=5, label_fraction=0.0)).in_event_time_order()
    first, second = items[:1_500], items[1_500:]
    with EmbeddedBroker() as broker:
        settings = Settings.from_env({}).for_embedded_broker(broker.url).replace(
            topic_prefix="restart.", app_id="ds-restart", partitions=2, batch_within_s=0.02,
        )
        asyncio.run(ensure_topics(settings))
        with WorkerProcess(settings) as worker:
            worker.wait_ready(90)
            publish_events(settings, first)
            wait_for(lambda: monitored(worker, settings) >= len(first), 60, "the first half to be applied")

            broker.stop()
            broker.start()  # same port, nothing in it
            asyncio.run(ensure_topics(settings))
            wait_for(lambda: not worker.alive(), 60, "the worker to notice the broker lost its data and exit")
            assert worker.process is not None and worker.process.returncode == EXIT_BROKER_LOST_DATA
            assert "the broker lost its data" in worker.log_tail(20_000)

        publish_events(settings, second)
        with WorkerProcess(settings) as restarted:  # what a supervisor does
            restarted.wait_ready(90)
            wait_for(lambda: monitored(restarted, settings) >= len(second), 90, "the restarted worker to apply the second half")
            assert restarted.alive()
