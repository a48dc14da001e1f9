"""Event time is the only clock: the live worker, ``replay`` and the offline pipeline give the
same drift events and alerts (same ids, positions and statistics) for 1, 4 and 12
partitions, whether the events were there before the worker started, arrive live, or
arrive while a second worker joins or a worker is SIGKILLed and restarted, and whether
or not the join paused partitions that ran ahead (watermark alignment).

Several models share the topics, their event times days apart; labels come after their
predictions by random delays (so in another order than their predictions). The three
partition counts run side by side, each against its own topics and workers: most of a
scenario is waiting (for a worker to start, for a dead member's session to expire)."""

from __future__ import annotations

import contextlib
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import orjson
import pytest

from streams.offline import backtest

from streams.offline import replay
from streams.offline.pipeline import OfflinePipeline
from streams.offline.simulate import Simulation, SimulationConfig
from streams.pipeline.monitor_config import MonitorConfig
from streams.runtime.topics import ensure_topics
from streams.runtime.worker_process import WorkerProcess
from streams.settings import Settings

from .support import publish_events, read_topic, wait_for

pytestmark = pytest.mark.integration

DAY = 86_400.0
#: The phases, in the order they run; each brings two models of its own.
PHASES = ("backlog", "live", "rebalance", "sigkill")
EVENTS = 3_000  # predictions per model


def _phase_items(phase: int) -> list[tuple[str, dict[str, Any]]]:
    """Two models whose event times lie 3 days apart, days after the previous phase's,
    merged in event-time order (each topic's log in event-time order, as producers write)."""
    items = []
    for k in range(2):
        n = 2 * phase + k
        config = SimulationConfig(
            events=EVENTS, seed=100 + n, model_id=f"model-{n}", id_prefix=f"m{n}-", event_rate=20.0,
            start=1_700_000_000.0 + (8 * phase + 3 * k) * DAY, feature_drift_at=1_000, concept_drift_at=1_800,
            label_delay_s=(1.0, 120.0),
        )
        items += Simulation(config).in_event_time_order()
    items.sort(key=lambda item: item[1]["timestamp"])
    return items


def _by_id(values: list[dict[str, Any]], what: str) -> dict[str, dict[str, Any]]:
    """``event_id`` -> the value; a repeat (at-least-once) must be the same value."""
    out: dict[str, dict[str, Any]] = {}
    for value in values:
        previous = out.setdefault(value["event_id"], value)
        assert previous == value, f"{what} {value['event_id']} published twice, differently:\n{previous}\n{value}"
    return out


def _differences(name: str, got: dict[str, dict[str, Any]], expected: dict[str, dict[str, Any]]) -> list[str]:
    out = [f"{name}: missing {expected[k]}" for k in sorted(set(expected) - set(got))][:5]
    out += [f"{name}: unexpected {got[k]}" for k in sorted(set(got) - set(expected))][:5]
    out += [f"{name}: {got[k]} != {expected[k]}" for k in sorted(set(got) & set(expected)) if got[k] != expected[k]][:5]
    return out


def _joined(worker: WorkerProcess) -> bool:
    """Whether ``worker`` took its share in the group: ready, or (with one partition and
    nothing left for it) done with its recovery."""
    try:
        status, body = worker.get("/ready")
    except OSError:
        return False
    state = orjson.loads(body)
    return status == 200 or bool(state.get("recovery_finished") and state.get("broker_reachable"))


def _publish_steadily(settings: Settings, items: list[tuple[str, dict[str, Any]]], per_s: float,
                      at_fraction: float = 1.0, reached: threading.Event | None = None) -> None:
    """Publish ``items`` in event-time order at about ``per_s`` events a second; set
    ``reached`` once ``at_fraction`` of them are out."""
    chunk = max(1, int(per_s / 5))
    started = time.monotonic()
    for lo in range(0, len(items), chunk):
        publish_events(settings, items[lo:lo + chunk], chunk=chunk)
        if reached is not None and lo + chunk >= at_fraction * len(items):
            reached.set()
        ahead = (lo + chunk) / per_s - (time.monotonic() - started)
        if ahead > 0:
            time.sleep(ahead)
    if reached is not None:
        reached.set()


def _scenario(settings: Settings) -> list[str]:
    """Run the four phases against ``settings``' topics; the differences found."""
    import asyncio

    asyncio.run(ensure_topics(settings))
    phases = [_phase_items(i) for i in range(len(PHASES))]
    everything = [item for items in phases for item in items]
    offline = OfflinePipeline(window_s=settings.join_window_s)
    offline.feed_events(everything)
    expected = offline.finish()
    want_drifts = _by_id(expected.drift_events, "offline drift event")
    want_alerts = _by_id(expected.alerts, "offline alert")
    firing = {a["model_id"] for a in want_alerts.values() if a["status"] == "firing"}
    assert len(firing) == 2 * len(PHASES), f"the offline run raised alerts for {sorted(firing)} only"

    def live() -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
        return (_by_id([v for _, v in read_topic(settings, settings.topic("drift-events"))], "live drift event"),
                _by_id([v for _, v in read_topic(settings, settings.topic("alerts"))], "live alert"))

    def everything_published() -> bool:
        drifts, alerts = live()
        return set(drifts) >= set(want_drifts) and set(alerts) >= set(want_alerts)

    # (a) a backlog: every event of the phase is on the topics before the worker starts
    publish_events(settings, phases[0])
    first = WorkerProcess(settings).start()
    second = restarted = None
    try:
        first.wait_ready(120)
        # (b) live, at a steady rate
        _publish_steadily(settings, phases[1], per_s=3_000)
        # (c) a second worker joins mid-phase: the group rebalances
        halfway = threading.Event()
        publisher = threading.Thread(target=_publish_steadily, args=(settings, phases[2], 1_500, 0.3, halfway))
        publisher.start()
        assert halfway.wait(120)
        second = WorkerProcess(settings).start()
        second.wait_until(lambda: _joined(second), 120, "the second worker to join the group")
        publisher.join(180)
        # (d) a worker is SIGKILLed mid-phase and restarted
        halfway = threading.Event()
        publisher = threading.Thread(target=_publish_steadily, args=(settings, phases[3], 1_500, 0.4, halfway))
        publisher.start()
        assert halfway.wait(120)
        pauses = first.metric("driftstream_alignment_pauses_total")
        late = first.metric("driftstream_late_events_total")
        first.kill()
        restarted = WorkerProcess(settings).start()
        restarted.wait_until(lambda: _joined(restarted), 120, "the restarted worker to join the group")
        publisher.join(180)
        with contextlib.suppress(AssertionError):  # what is missing is reported below
            wait_for(everything_published, 180, f"every drift event and alert of the offline run on {settings.topic_prefix}*")
        late += sum(w.metric("driftstream_late_events_total") for w in (second, restarted))
    finally:
        logs = "".join(w.log_tail(4_000) for w in (first, second, restarted) if w is not None)
        for worker in (first, second, restarted):
            if worker is not None:
                worker.stop()
    drifts, alerts = live()
    found = _differences("live drift events", drifts, want_drifts) + _differences("live alerts", alerts, want_alerts)
    events = replay.read_events(settings, replay.ReplayWindow(None, None, None, None))
    replayed = backtest.evaluate(events, [("replay", None, MonitorConfig())], window_s=settings.join_window_s).runs[0].result
    found += _differences("replayed drift events", _by_id(replayed.drift_events, "replayed drift event"), want_drifts)
    found += _differences("replayed alerts", _by_id(replayed.alerts, "replayed alert"), want_alerts)
    if late:
        found.append(f"{late} events reached a monitor late")
    if settings.partitions > 1 and not pauses:
        found.append(f"the join never paused a partition ahead of the others (max_held_events={settings.max_held_events})")
    lost = [v for _, v in read_topic(settings, settings.topic("join-outcomes")) if v["outcome"] in ("late", "unmatched")]
    if lost or expected.counts["join:late"] or expected.counts["join:unmatched"]:
        found.append(f"labels lost by the join: {len(lost)} live ({lost[:3]}), offline {dict(expected.counts)}")
    return [f"[{settings.partitions} partitions] {line}" for line in found] + ([logs] if found else [])


def test_live_replay_and_offline_agree_for_every_partition_count_and_timing(settings: Settings) -> None:
    # three scenarios share two cores (with other tests beside them): the publisher's steps
    # between partitions and topics can take longer than the default idle wait, which would
    # make events late (counted, and failed on here); the wait is a deployment's bound on
    # its producers' skew. 1 s was passed (945 late events) in a suite run beside a load test
    # and another engineer's tests, at a load of about 5 on the two cores
    # a small bound on the events the monitors hold: the backlog makes the join pause the
    # partitions ahead of the slowest (streams.runtime.alignment), which must change no result
    scenarios = [settings.replace(topic_prefix=f"{settings.topic_prefix}p{n}.", app_id=f"{settings.app_id}-p{n}",
                                  partitions=n, idle_after_s=2.0, max_held_events=500, input_buffer_bytes=65_536)
                 for n in (1, 4, 12)]
    with ThreadPoolExecutor(len(scenarios)) as pool:
        found = [line for lines in pool.map(_scenario, scenarios) for line in lines]
    assert not found, "\n".join(found)
