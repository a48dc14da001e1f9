"""A worker applies events seconds after its launch, and a SIGKILLed worker restarted with the
same DRIFTSTREAM_INSTANCE_ID does too, without waiting out its dead predecessor's session
(on the embedded broker: it removes that member before it joins). The deadline here is loose,
for a loaded 2-core machine; ``python -m load_tests.startup`` reports the real figures."""

from __future__ import annotations

import asyncio
import time

import pytest

from load_tests.startup import applied, pair
from streams.runtime.topics import ensure_topics
from streams.runtime.worker_process import WorkerProcess
from streams.settings import Settings

from .support import publish_events, wait_for

pytestmark = pytest.mark.integration

#: Seconds from launch to the first event applied, before the load scaling of wait_for (the
#: target, on a quiet machine, is 5 s: load_tests/startup.py)
DEADLINE_S = 15.0


def test_a_worker_applies_an_event_within_seconds_of_launch_and_of_a_sigkill_restart(settings: Settings) -> None:
    settings = settings.replace(instance_id="it-worker-1")
    asyncio.run(ensure_topics(settings))
    publish_events(settings, pair("launch-model", 1))
    first = WorkerProcess(settings).start()
    try:
        wait_for(lambda: _applied(first, "launch-model"), DEADLINE_S, "the launched worker to apply its first event")
    finally:
        first.kill()
    second = WorkerProcess(settings).start()
    launched = time.monotonic()
    try:
        publish_events(settings, pair("restart-model", 2))
        wait_for(lambda: _applied(second, "restart-model"), DEADLINE_S, "the restarted worker to apply an event")
        took = time.monotonic() - launched
        log = second.log_path.read_text()
        # the dead member is gone before the join, so the restart did not wait for its session
        assert "removed 1 earlier member(s) of instance it-worker-1" in log, log
        print(f"restart: first event applied {took:.1f} s after the launch")
    finally:
        second.stop()


def _applied(worker: WorkerProcess, model_id: str) -> bool:
    assert worker.alive(), worker.log_tail()
    try:
        return applied(worker, model_id)
    except OSError:  # its web server is not up yet
        return False
