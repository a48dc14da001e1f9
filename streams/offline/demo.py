"""``driftstream demo``: the whole loop in one command, on an embedded broker.

Starts the embedded broker and a real worker process (with the updater), serves a simulated
model's predictions through the serving hook (:mod:`streams.offline.demo_loop`), with a feature
drift and a concept drift injected at known points, prints alerts and model updates as they
arrive, and ends with a summary that sets the event position of each alert against the
injected drift points, then checks each step of the model-update loop: drift, alert, update
requested, challenger, promoted, served, predictions tagged with the new version, accuracy
recovered, alert resolved. A missing step fails the demo. Leaves no process behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from typing import Any

from streams.offline.demo_loop import LoopStep, ServedTraffic, check_loop
from streams.offline.simulate import Simulation, SimulationConfig
from streams.ops.broker import EmbeddedBroker
from streams.ops.progress import Progress
from streams.runtime.topics import ensure_topics
from streams.runtime.worker_process import WorkerProcess, total
from streams.sdk.client import DriftstreamClient, subscribe
from streams.sdk.serving import ModelFollower
from streams.settings import SecretStr, Settings
from streams.updater.model_store import ModelStore

CHUNK = 1000

#: Predictions the demo's server may be ahead of the worker (its monitor and its updater,
#: whichever is behind): the demo compresses hours into seconds, and a server far ahead of
#: the worker would never see the update it caused.
LEAD = 2_000

Chunk = list[tuple[str, dict[str, Any]]]


async def publish_simulation(
    settings: Settings, config: SimulationConfig, rate: float, progress: Progress | None = None,
    events: Callable[[int, int], Chunk] | None = None, before_chunk: Callable[[int], Awaitable[None]] | None = None,
) -> dict[str, int]:
    """Publish the simulation in event-time order at about ``rate`` predictions per second.
    ``events(start, count)`` makes each chunk (the simulation's own events by default);
    ``before_chunk(predictions sent)`` may hold the next chunk back."""
    sim = Simulation(config)
    make = events or sim.in_event_time_order
    sent = {"predictions": 0, "ground-truth": 0}
    started = time.monotonic()
    async with DriftstreamClient(settings) as client:
        for start in range(0, config.events, CHUNK):
            if before_chunk is not None:
                await before_chunk(sent["predictions"])
            merged = make(start, min(CHUNK, config.events - start))
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
        from streams.updater.decisions import summary_lines

        lines.append("")
        lines.append("  model updates (drift -> alert -> update request -> challenger -> decision):")
        lines.extend(f"    {line}" for line in summary_lines(updates))
    lines.append("=" * 78)
    return "\n".join(lines)


def settings_key() -> SecretStr:
    """A fresh model-store HMAC key for this demo's store (it lives as long as the demo)."""
    return SecretStr(secrets.token_hex(32))


def describe_loop(steps: list[LoopStep], config: SimulationConfig) -> str:
    """The loop check, one line per step (``config``: the demo's stream, for the hint)."""
    lines = ["", "  the model-update loop, checked:"]
    lines += [f"    [{'ok' if st.ok else 'MISSING'}] {st.name:<20} {st.detail}" for st in steps]
    missing = [st.name for st in steps if not st.ok]
    lines.append("  the loop closed: every step happened" if not missing else
                 f"  THE LOOP DID NOT CLOSE: missing {', '.join(missing)}")
    if missing and "served" in missing and config.concept_drift_at is not None:
        # the updater learns from labelled post-drift events, then tests the challenger on as many
        lines.append(f"  (the stream had {config.events - config.concept_drift_at:,} predictions after its concept drift: "
                     "the update may need more; run with more --events)")
    return "\n".join(lines)


def run_demo(config: SimulationConfig, rate: float, partitions: int = 4) -> int:
    """Run the demo end to end; returns the process exit code (1 if the loop did not close)."""
    print("starting the embedded broker (memory-only) ...", flush=True)
    # the model store lives as long as the memory-only broker whose events it answers
    with EmbeddedBroker() as broker, tempfile.TemporaryDirectory(prefix="driftstream-models-") as store:
        settings = Settings.from_env().for_embedded_broker(broker.url).replace(
            partitions=partitions, run_updater=True, model_store_dir=store,
            # the worker's updater and the demo's server load each other's artifacts: signed
            model_store_key=settings_key(),
        )
        asyncio.run(ensure_topics(settings))
        print(f"broker at {broker.bootstrap_servers}; training the first model ...", flush=True)
        traffic = ServedTraffic.first_model(ModelStore.from_settings(settings), config)
        print(f"model {config.model_id} {traffic.served.version} trained on a drift-free history and stored in "
              f"{settings.model_store_dir} (removed at the end); starting a worker ...", flush=True)
        with WorkerProcess(settings) as worker:
            took = worker.wait_ready(deadline_s=90)
            print(f"worker ready in {took:.1f} s (metrics at {worker.base_url}/metrics)", flush=True)
            alerts, updates = asyncio.run(_publish_and_watch(settings, config, rate, worker, traffic))
            counts = {
                "predictions processed": worker.metric("driftstream_events_consumed_total", topic=settings.topic("predictions")),
                "labels processed": worker.metric("driftstream_events_consumed_total", topic=settings.topic("ground-truth")),
                "joined (matched)": worker.metric("driftstream_join_outcomes_total", outcome="matched"),
                "dead-lettered": worker.metric("driftstream_dead_letters_total"),
                "drift events": worker.metric("driftstream_drift_events_total"),
                "alert publications": worker.metric("driftstream_alerts_total"),
            }
        steps = check_loop(config.model_id, "v1", traffic, alerts, updates)
        print(summarize(alerts, config, counts, updates) + describe_loop(steps, config), flush=True)
    print("worker and broker stopped, model store removed.", flush=True)
    return 0 if all(st.ok for st in steps) else 1


async def _wait(condition: Callable[[], bool], deadline_s: float) -> bool:
    deadline = time.monotonic() + deadline_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.5)  # polling a subscription or the worker's metrics with a deadline
    return True


async def _publish_and_watch(
    settings: Settings, config: SimulationConfig, rate: float, worker: WorkerProcess, traffic: ServedTraffic
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    alerts: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []
    prefix = "\r\x1b[K" if sys.stderr.isatty() else ""
    loop = asyncio.get_running_loop()
    topic = settings.topic("predictions")

    async def consumed() -> float:  # a blocking HTTP scrape: off the event loop
        return await loop.run_in_executor(None, lambda: worker.metric("driftstream_events_consumed_total", topic=topic))

    async def taken_in() -> float:
        """Predictions both the monitor and the updater took in: the updater reads them one
        hop later (through updater-input), and decides only from what it has read."""
        samples = await loop.run_in_executor(None, worker.scrape)  # one scrape for both
        return min(total(samples, "driftstream_events_consumed_total", topic=topic),
                   total(samples, "driftstream_updater_events_total", role="predictions"))

    async def watch() -> None:
        async for alert in subscribe(settings, settings.topic("alerts"), from_beginning=True, idle_timeout_s=0.5):
            alerts.append(alert)
            print(prefix + describe_alert(alert, config), flush=True)

    async def watch_updates() -> None:
        async for update in subscribe(settings, settings.topic("model-updates"), from_beginning=True, idle_timeout_s=0.5):
            updates.append(update)
            print(prefix + f"[model-update] {update['model_id']}: {update['action'].replace('_', ' ')} "
                  f"{update.get('new_version') or ''}", flush=True)

    async def keep_pace(sent: int) -> None:
        deadline = time.monotonic() + 60
        while sent - await taken_in() > LEAD and time.monotonic() < deadline:
            await asyncio.sleep(0.05)  # waiting on the worker's progress, with a deadline

    stop_following = asyncio.Event()
    follower = ModelFollower(settings, traffic.served)
    tasks = [asyncio.create_task(watch()), asyncio.create_task(watch_updates())]
    following = asyncio.create_task(follower.run(stop_following))
    await _wait(lambda: follower.ready.is_set() or following.done(), 30)
    if following.done():
        following.result()  # raises what stopped it
    with Progress("predictions", total=config.events) as bar:
        sent = await publish_simulation(
            settings, config, rate, bar, events=lambda start, count: traffic.serve(config, start, count), before_chunk=keep_pace,
        )
    print(f"published {sent['predictions']} predictions and {sent['ground-truth']} labels; waiting for the worker ...", flush=True)
    async def catch_up() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            lag = await loop.run_in_executor(None, lambda: worker.metric("driftstream_consumer_lag_records"))
            if await consumed() >= sent["predictions"] and lag == 0:
                return
            await asyncio.sleep(0.5)  # polling the worker's metrics with a deadline

    await catch_up()

    # the updater decides once it has seen enough post-drift events; a switch then retires
    # the old version's monitor, whose alerts resolve as its stream ends
    def decided() -> bool:
        requested = sum(1 for u in updates if u["action"] == "update_requested")
        return sum(1 for u in updates if u["action"] in ("promoted", "rejected")) >= requested

    def settled() -> bool:
        if not decided():
            return False
        promoted = {u["new_version"] for u in updates if u["action"] == "promoted"}
        served = {u["new_version"] for u in updates if u["action"] == "served"}
        old = {}
        for alert in alerts:
            if alert["model_id"] == config.model_id and alert.get("model_version") == "v1":
                old[alert["alert_id"]] = alert["status"]
        return promoted <= served and all(status == "resolved" for status in old.values())

    await _wait(settled, 60)
    stop_following.set()
    await following
    await asyncio.sleep(1.0)  # let the subscribers drain their topics
    for task in tasks:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    return alerts, updates
