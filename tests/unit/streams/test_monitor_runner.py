"""The monitor agent's runner without a broker: its collaborators are small fakes, the
records plain objects with a record's fields."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

from prometheus_client import CollectorRegistry

from schemas import codec
from streams.offline.pipeline import OfflinePipeline
from streams.offline.simulate import Simulation, SimulationConfig
from streams.ops.metrics import create
from streams.pipeline.event_time import progress_payload
from streams.pipeline.stages import MonitorStage
from streams.runtime.monitor_runner import MonitorRunner
from streams.settings import Settings

V1 = SimulationConfig(events=14_000, seed=5, model_version="v1", feature_drift_at=None, concept_drift_at=6_000)
KEY = f"{V1.model_id}@v1"
LAST_V1 = V1.start + (V1.events - 1) / V1.event_rate
SWITCH = LAST_V1 + 30.0  # v2's first prediction: a while after v1's last one


class _Publisher:
    def __init__(self) -> None:
        self.alerts: list[dict[str, Any]] = []

    async def send(self, outputs: Any, since: float | None = None) -> list[Any]:
        self.alerts += [codec.loads(value) for _, value in outputs.encoded().get("alerts", ())]
        return []

    async def dead_letter(self, record: dict[str, Any]) -> Any:
        raise AssertionError(f"nothing here is dead-lettered: {record}")


class _Exporter:
    def export(self, monitor: Any, result: Any) -> None:
        pass

    def event_time_lag(self, model_id: str, lag: float) -> None:
        pass


class _Integrity:
    def log_went_back(self, messages: list[Any]) -> bool:
        return False

    async def verified(self) -> bool:
        return True


class _GapGuard:
    async def screen(self, partition: int, offsets: dict[str, int], group: list[Any], key: Any) -> list[Any]:
        return group


@contextlib.contextmanager
def _guard(stage: str) -> Iterator[None]:
    yield


def _runner(stage: MonitorStage, saved: dict[str, bytes]) -> tuple[MonitorRunner, _Publisher]:
    publisher = _Publisher()
    runner = MonitorRunner(
        None, Settings.from_env({}).replace(partitions=1), create(CollectorRegistry(), process_collectors=False), stage,
        table=SimpleNamespace(data=saved), offsets_table=SimpleNamespace(data={}), publisher=publisher,  # type: ignore[arg-type]
        exporter=_Exporter(), integrity=_Integrity(), gap_guard=_GapGuard(), guard=_guard,  # type: ignore[arg-type]
        on_progress=lambda: None, committed_offset=lambda tp: None,
    )
    return runner, publisher


def _record(offset: int, key: str, payload: Any) -> SimpleNamespace:
    """A monitor-input record of ``payload`` (a dict, or a typed record as the agents send it)."""
    value = payload.to_json() if hasattr(payload, "to_json") else payload
    return SimpleNamespace(topic="monitor-input", partition=0, offset=offset, key=key.encode(),
                           value=codec.dumps(value), timestamp=None)


def test_a_version_retired_once_the_frontier_passes_its_switch_resolves_its_alerts_with_nothing_left_to_drain() -> None:
    # v1 applied all its events with alerts open; the switch comes while the frontier sits
    # between v1's last event and v2's first (a server that waited for its monitoring to catch
    # up), and the frontier passes it with no v1 event left to release
    pipe = OfflinePipeline(window_s=3600)
    pipe.feed_events(Simulation(V1).in_event_time_order())
    pipe.finish()
    slot = pipe.monitors[KEY]
    open_alerts = {a["alert_id"] for a in pipe.result.alerts} - {a["alert_id"] for a in pipe.result.alerts if a["status"] == "resolved"}
    assert open_alerts and slot.monitor.retired is None
    runner, publisher = _runner(pipe.monitor_stage, {KEY: MonitorStage.dump(slot)})
    served = {"action": "served", "event_id": "u-served", "model_id": V1.model_id, "model_version": "v1",
              "new_version": "v2", "timestamp": SWITCH, "reason": "served by test"}
    key, control = MonitorStage.control_for(served)  # type: ignore[misc]

    asyncio.run(runner.apply([_record(0, "progress", progress_payload(0, 1, LAST_V1 + 1.0, False)), _record(1, key, control)]))
    assert runner.monitors[KEY].retiring and publisher.alerts == []
    runner.unsaved_monitors.clear()  # a checkpoint saved the retiring slot
    asyncio.run(runner.apply([_record(2, "progress", progress_payload(0, 1, SWITCH + 1.0, False))]))

    assert runner.monitors[KEY].monitor.retired == {"at": SWITCH, "reason": control.reason}
    resolved = {a["alert_id"] for a in publisher.alerts if a["status"] == "resolved" and "version retired: v2" in a["message"]}
    assert resolved == open_alerts
    assert KEY in runner.unsaved_monitors  # the next checkpoint saves the retirement


def test_what_an_idle_partitions_wait_frees_is_due_when_the_wait_is_over() -> None:
    """An idle join partition vouches for what the others had reached idle_after_s ago: the
    release task wakes then, not at a timer's next tick, and again after any batch (what is
    due may have changed)."""
    runner, _ = _runner(OfflinePipeline(window_s=3600).monitor_stage, {})
    idle_after = runner.settings.idle_after_s

    async def test() -> None:
        now = time.monotonic()
        frontier = runner.frontier(0)
        frontier.update(progress_payload(0, 2, 50.0, False), now)
        frontier.update(progress_payload(1, 2, None, True), now)  # join partition 1 has nothing to read
        runner.waiting[0].add(KEY)  # a model holds events above the frontier
        runner._messages[0] = _record(0, KEY, progress_payload(0, 2, 50.0, False))
        assert runner.next_release(now) == now + idle_after
        await runner.wait_for_release(longest_s=5.0)
        waited = time.monotonic() - now
        assert idle_after <= waited < idle_after + 0.5
        assert frontier.value(time.monotonic()) == 50.0 and runner.next_release(time.monotonic()) is None
        waiting = asyncio.ensure_future(runner.wait_for_release(longest_s=5.0))
        await asyncio.sleep(0.05)
        assert not waiting.done()  # nothing due: it would wait its longest
        await runner.apply([_record(1, "progress", progress_payload(0, 2, 60.0, False))])
        await asyncio.wait_for(waiting, timeout=1.0)

    asyncio.run(test())
