"""``driftstream demo``: the whole loop in one command, on an embedded broker.

Starts the embedded broker and a real worker process, publishes a simulated model with a
feature drift and a concept drift injected at known points, prints alerts as they
arrive, and ends with a summary that sets the event position of each alert against the
injected drift points. Leaves no process behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import tempfile
import time
from typing import Any

from .broker import EmbeddedBroker
from .progress import Progress
from .sdk import DriftstreamClient, subscribe
from .settings import Settings
from .simulate import Simulation, SimulationConfig
from .topics import ensure_topics
from .worker_process import WorkerProcess

CHUNK = 1000


async def publish_simulation(
    settings: Settings, config: SimulationConfig, rate: float, progress: Progress | None = None
) -> dict[str, int]:
    """Publish the simulation in event-time order at about ``rate`` predictions per second."""
    sim = Simulation(config)
    sent = {"predictions": 0, "ground-truth": 0}
    started = time.monotonic()
    async with DriftstreamClient(settings) as client:
        for start in range(0, config.events, CHUNK):
            merged = sim.in_event_time_order(start, min(CHUNK, config.events - start))
            for role, n in (await client.publish_in_order(merged, chunk=len(merged))).items():  # type: ignore[arg-type]
                sent[role] += n
            if progress is not None:
                progress.update(min(CHUNK, config.events - start))
            ahead = sent["predictions"] / rate - (time.monotonic() - started)
            if ahead > 0:
                await asyncio.sleep(ahead)  # pacing the producer, not waiting on a result
    return sent


def _prediction_index(alert: dict[str, Any], config: SimulationConfig) -> int | None:
    pid = str(alert.get("prediction_id", ""))
    return int(pid[len(config.id_prefix):]) if pid.startswith(config.id_prefix) and pid[len(config.id_prefix):].isdigit() else None


def describe_alert(alert: dict[str, Any], config: SimulationConfig) -> str:
    index = _prediction_index(alert, config)
    where = f"at prediction #{index}" if index is not None else ""
    return f"[{alert['severity']} {alert['status']:>8}] {alert['kind']:<16} {where:<22} {alert['message']}"


def summarize(alerts: list[dict[str, Any]], config: SimulationConfig, counts: dict[str, float],
              updates: list[dict[str, Any]] | None = None) -> str:
    lines = ["", "=" * 78, "driftstream demo summary", "=" * 78]
    for name, value in counts.items():
        lines.append(f"  {name:<34} {value:>12,.0f}")
    lines.append("")
    lines.append("  injected drift points:")
    lines.append(f"    feature drift (sessions_7d)    at prediction #{config.feature_drift_at}")
    lines.append(f"    concept drift (labels flip)    at prediction #{config.concept_drift_at}")
    lines.append("")
    final: dict[str, dict[str, Any]] = {}
    for alert in alerts:  # the last publication of an alert holds all of its detectors
        final[alert["alert_id"]] = alert
    if not final:
        lines.append("  no alerts fired")
    for alert in sorted(final.values(), key=lambda a: a["timestamp"] if a["status"] != "resolved" else a["members"][0]["fired_at"]):
        index = _prediction_index(alert, config)
        injected = config.concept_drift_at if alert["kind"] in ("concept_drift", "performance") else config.feature_drift_at
        delay = f"{index - injected:+d} events after injection" if index is not None and injected is not None else ""
        members = ", ".join(
            m["detector"] + (f"[{m['feature']}]" if m["feature"] else "") for m in alert.get("members", [])
        )
        lines.append(f"  {alert['severity']} {alert['kind']:<16} first fired at prediction #{index} ({delay}); now {alert['status']}")
        lines.append(f"      detectors: {members}")
    if updates:
        from .updater import summary_lines

        lines.append("")
        lines.append("  model updates (drift -> alert -> update request -> challenger -> decision):")
        lines.extend(f"    {line}" for line in summary_lines(updates))
    lines.append("=" * 78)
    return "\n".join(lines)


def run_demo(config: SimulationConfig, rate: float, partitions: int = 4) -> int:
    """Run the demo end to end; returns the process exit code."""
    print("starting the embedded broker (memory-only) ...", flush=True)
    with EmbeddedBroker() as broker:
        settings = Settings.from_env().for_embedded_broker(broker.url).replace(
            partitions=partitions, run_updater=True, model_store_dir=tempfile.mkdtemp(prefix="driftstream-models-"),
        )
        asyncio.run(ensure_topics(settings))
        print(f"broker at {broker.bootstrap_servers}; starting a worker ...", flush=True)
        with WorkerProcess(settings) as worker:
            took = worker.wait_ready(deadline_s=90)
            print(f"worker ready in {took:.1f} s (metrics at {worker.base_url}/metrics)", flush=True)
            alerts, updates = asyncio.run(_publish_and_watch(settings, config, rate, worker))
            counts = {
                "predictions processed": worker.metric("driftstream_events_consumed_total", topic=settings.topic("predictions")),
                "labels processed": worker.metric("driftstream_events_consumed_total", topic=settings.topic("ground-truth")),
                "joined (matched)": worker.metric("driftstream_join_outcomes_total", outcome="matched"),
                "dead-lettered": worker.metric("driftstream_dead_letters_total"),
                "drift events": worker.metric("driftstream_drift_events_total"),
                "alert publications": worker.metric("driftstream_alerts_total"),
            }
        print(summarize(alerts, config, counts, updates), flush=True)
    print("worker and broker stopped.", flush=True)
    return 0


async def _publish_and_watch(
    settings: Settings, config: SimulationConfig, rate: float, worker: WorkerProcess
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    alerts: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []
    prefix = "\r\x1b[K" if sys.stderr.isatty() else ""

    async def watch() -> None:
        async for alert in subscribe(settings, settings.topic("alerts"), from_beginning=True, idle_timeout_s=0.5):
            alerts.append(alert)
            print(prefix + describe_alert(alert, config), flush=True)

    async def watch_updates() -> None:
        async for update in subscribe(settings, settings.topic("model-updates"), from_beginning=True, idle_timeout_s=0.5):
            updates.append(update)
            print(prefix + f"[model-update] {update['model_id']}: {update['action'].replace('_', ' ')} "
                  f"{update.get('new_version') or ''}", flush=True)

    watchers = [asyncio.create_task(watch()), asyncio.create_task(watch_updates())]
    with Progress("predictions", total=config.events) as bar:
        sent = await publish_simulation(settings, config, rate, bar)
    print(f"published {sent['predictions']} predictions and {sent['ground-truth']} labels; waiting for the worker ...", flush=True)
    deadline = time.monotonic() + 120
    topic = settings.topic("predictions")
    while time.monotonic() < deadline:
        done = worker.metric("driftstream_events_consumed_total", topic=topic) >= sent["predictions"]
        lag = worker.metric("driftstream_consumer_lag_records")
        if done and lag == 0:
            break
        await asyncio.sleep(0.5)  # polling the worker's metrics with a deadline
    # an update request is followed by the updater's decision once it has seen enough
    # post-drift events; give it a bounded time to decide
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        requested = sum(1 for u in updates if u["action"] == "update_requested")
        decided = sum(1 for u in updates if u["action"] in ("promoted", "rejected"))
        if decided >= requested:
            break
        await asyncio.sleep(0.5)  # polling the model-updates subscription with a deadline
    await asyncio.sleep(1.0)  # let the subscribers drain their topics
    for watcher in watchers:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
    return alerts, updates
