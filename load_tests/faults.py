"""Fault tests; each is one row: events in, accounted for, lost, duplicated outputs, recovery.

- ``kill``: SIGKILL the worker at random points (10 times; smoke 1) while it drains a
  pre-published drifting stream (200,000 predictions; smoke 10,000) on one partition, a
  supervisor restarting it each time. Accounted = predictions + pairs counted in the
  model's final monitor state (changelog); alerts must equal those of an uninterrupted
  run (:class:`~streams.offline.pipeline.OfflinePipeline`, same ids); duplicated outputs = alert
  records published more than once (a recovered outbox is republished, same ids);
  recovery = restart to the first event applied.
- ``broker``: the embedded broker (memory-only) is stopped and started again on the same
  port mid-run: as soon as the first half is published, while the worker is still applying
  it (the events it had applied by then are in the row's JSON; batches, table writes and
  checkpoints are in flight). Measured: does the worker reconnect by itself, exit, or hang; after the
  topics are recreated and the second half is published, is it processed (by the same
  worker, or by a restarted one), and what of it was lost. The worker notices that the
  broker lost what it had written (its state changelogs) and exits with status 75; a
  supervisor restarts it. What the old broker held is gone with it (memory-only) and is
  not counted as lost.
- ``poison``: 1 % malformed records (bad JSON, wrong types, NaN, oversized, pickle)
  produced raw with aiokafka, one per record, among SDK-published good events: no
  crash, dead letters (metric and topic) = injected, no good event lost, throughput cost
  against a clean run of the same good events.
- ``duplicates``: every event sent twice, each copy later than its original by a random
  delay within the join window: alerts and detector state must equal the clean
  (offline) run's.
- ``sigstop``: two workers share 2, then 4, partitions; one is SIGSTOPped mid-stream until
  the other has taken all its partitions over (at least twice the session timeout: the
  embedded broker's settings use a 6 s session timeout to keep runs short), the rest of the
  stream is published meanwhile, then it gets SIGCONT and rejoins. Pass: neither worker
  exits (no broker-lost-data stop, status 75, nor any other), both stop cleanly on
  SIGTERM, every event is counted in the models' final states and the alerts equal the
  offline run's. ``--runs N`` times per partition count (default 10; smoke 1).

    python -m load_tests.faults [--smoke] [--json PATH] [--runs N] [--fault kill|broker|poison|duplicates|sigstop ...]
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pickle
import shutil
import random
import signal
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from aiokafka import AIOKafkaProducer

from schemas import codec
from streams.exceptions import DriftstreamError
from streams.offline.pipeline import OfflinePipeline
from streams.offline.simulate import Simulation, SimulationConfig
from streams.pipeline.monitor import model_key
from streams.ops.processes import signal_group
from streams.runtime.worker_process import WorkerProcess
from streams.sdk.client import DriftstreamClient
from streams.settings import Settings

from .common import (
    Harness,
    Item,
    LoadTestError,
    agent_crash,
    check_worker,
    consumed,
    count_roles,
    create_topics,
    decoded,
    finish,
    follow,
    multi_model_workload,
    namespaced,
    note,
    parser,
    pipeline_rate,
    print_table,
    publish,
    publish_async,
)
from .readback import assigned_partitions, final_alerts, read_table, read_topic

FAULTS = ("kill", "broker", "poison", "duplicates", "sigstop")


def drifting(events: int, seed: int) -> SimulationConfig:
    return SimulationConfig(events=events, seed=seed, model_id="fault-model",
                            feature_drift_at=int(events * 0.3), concept_drift_at=int(events * 0.6))


def model_counts(settings: Settings, model_id: str) -> tuple[int, int]:
    raw = read_table(settings, "monitor-state").get(model_key(model_id, None))
    if raw is None:
        return 0, 0
    monitor = codec.loads(raw)["monitor"]
    return int(monitor["n_predictions"]), int(monitor["n_pairs"])


def model_state(settings: Settings, model_id: str) -> dict[str, Any] | None:
    raw = read_table(settings, "monitor-state").get(model_key(model_id, None))
    return None if raw is None else codec.loads(raw)["monitor"]


def first_publications(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What a subscriber keeps that deduplicates on ``event_id``, as the README asks: a
    repeated publication (at-least-once delivery republishes an incident's earlier state
    change after a rebalance) is dropped, so it cannot pose as the incident's latest state."""
    seen: set[str] = set()
    kept = []
    for record in records:
        if record["event_id"] not in seen:
            seen.add(record["event_id"])
            kept.append(record)
    return kept


def compare_alerts(live_records: list[dict[str, Any]], expected_records: list[dict[str, Any]]) -> dict[str, Any]:
    live, expected = final_alerts(first_publications(live_records)), final_alerts(expected_records)
    ids = Counter(a["event_id"] for a in live_records)
    return {
        "alerts_expected": len(expected), "alerts_live": len(live),
        "alerts_missing": sorted(set(expected) - set(live)), "alerts_extra": sorted(set(live) - set(expected)),
        "alerts_differing": sorted(k for k in set(live) & set(expected)
                                   if (live[k]["status"], live[k]["kind"]) != (expected[k]["status"], expected[k]["kind"])),
        "duplicated_outputs": sum(n - 1 for n in ids.values() if n > 1),
    }


def wait_state(worker: WorkerProcess, settings: Settings, model_id: str, want: tuple[int, int], deadline_s: float) -> None:
    start = time.monotonic()
    while model_counts(settings, model_id) != want:
        check_worker(worker, "waiting for the model state to count every event")
        if time.monotonic() - start > deadline_s:
            raise LoadTestError(f"model state {model_counts(settings, model_id)} != {want} after {deadline_s:.0f} s")
        time.sleep(1.0)


# -- kill --------------------------------------------------------------------------------
def fault_kill(h: Harness, broker: Any, smoke: bool, seed: int) -> dict[str, Any]:
    events, kills = (10_000, 1) if smoke else (200_000, 10)
    settings = namespaced(broker, partitions=1)
    create_topics(settings)
    config = drifting(events, seed)
    items = Simulation(config).in_event_time_order()
    sent = publish(settings, items, chunk=500)
    total = sent["predictions"] + sent["ground-truth"]
    pick = random.Random(seed)
    recoveries: list[float] = []
    during = 0
    gaps = rewinds = 0.0  # summed over the workers (scraped just before each kill)
    for k in range(kills + 1):
        worker = h.worker(settings)
        started = time.monotonic()
        # recovered: the restarted worker applies an event, or is ready with nothing left
        trace = follow(worker, {"monitored": lambda: consumed(worker, settings, "monitor-input"),
                                "ready": lambda: float(worker.get("/ready")[0] == 200)},
                       lambda v: v["monitored"] > 0 or (v["ready"] > 0 and k > 0 and time.monotonic() - started > 15),
                       deadline_s=120, what=f"restart {k} to apply its first event", poll_s=0.05)
        recoveries.append(trace.samples[-1][0] - started)
        if k == kills:
            break
        time.sleep(pick.uniform(0.0, 0.3 if smoke else 1.0))
        moving = worker.metric("driftstream_events_consumed_total", topic=settings.topic("monitor-input"))
        gaps += worker.metric("driftstream_offset_gaps_total")
        rewinds += worker.metric("driftstream_offset_rewinds_total")
        worker.kill()
        during += bool(moving)
        note(f"SIGKILL {k + 1}/{kills}")
    wait_state(worker, settings, config.model_id, (sent["predictions"], sent["ground-truth"]), 300)
    gaps += worker.metric("driftstream_offset_gaps_total")
    rewinds += worker.metric("driftstream_offset_rewinds_total")
    worker.stop()
    n_pred, n_pairs = model_counts(settings, config.model_id)
    reference = OfflinePipeline(window_s=settings.join_window_s)
    reference.feed_events(items)
    reference.finish()
    cmp = compare_alerts([v for _, v in read_topic(settings, settings.topic("alerts"))], reference.result.alerts)
    return {
        "events_in": total, "accounted": n_pred + n_pairs, "lost": total - n_pred - n_pairs, **cmp,
        "kills": kills, "kills_while_processing": during, "offset_gaps": int(gaps), "offset_rewinds": int(rewinds),
        "recovery_s": round(max(recoveries), 2) if recoveries else None,
        "recovery_mean_s": round(sum(recoveries) / len(recoveries), 2) if recoveries else None,
        "ok": total == n_pred + n_pairs and not cmp["alerts_missing"] and not cmp["alerts_extra"] and not cmp["alerts_differing"],
    }


# -- broker restart -------------------------------------------------------------------
def fault_broker(h: Harness, smoke: bool, seed: int) -> dict[str, Any]:
    events = 10_000 if smoke else 100_000
    broker = h.broker()
    settings = namespaced(broker, partitions=2)
    create_topics(settings)
    config = drifting(2 * events, seed)
    sim = Simulation(config)
    first = [(r, e) for r, e in sim.in_event_time_order() if int(e["prediction_id"][1:]) < events]
    second = [(r, e) for r, e in sim.in_event_time_order() if int(e["prediction_id"][1:]) >= events]
    worker = h.worker(settings)
    worker.wait_ready(120)
    sent1 = publish(settings, first, what="first-half events published")
    applied_at_stop = consumed(worker, settings, "monitor-input")
    stopped_at = f"stopped at {applied_at_stop:,.0f} of {sum(sent1.values()):,} first-half events applied; "
    note(f"broker {stopped_at}starting an empty one on the same port")
    down = time.monotonic()
    broker.stop()
    time.sleep(3.0)
    broker.start()
    create_topics(settings)  # memory-only: the topics vanished; an operator recreates them
    sent2 = publish(settings, second, what="second-half events published")
    total2 = sum(sent2.values())
    outcome = "reconnected without a restart"
    recovery = None
    error = ""
    deadline = time.monotonic() + (30 if smoke else 120)
    seen = 0.0
    while time.monotonic() < deadline:
        if not worker.alive():
            outcome = f"exited (code {worker.process.returncode if worker.process else '?'})"
            break
        try:
            seen = consumed(worker, settings, "monitor-input") - sum(sent1.values())
        except (OSError, DriftstreamError):
            pass
        if seen > 0 and recovery is None:
            recovery = time.monotonic() - down
        if seen >= total2:
            break
        time.sleep(0.5)
    else:
        outcome = "stayed up but stopped processing" if seen <= 0 else "stayed up, processed part of the second half"
    error = agent_crash(worker) or ""
    same_worker_applied = max(seen, 0.0)
    if seen < total2:
        note(f"worker {outcome}; restarting it as a supervisor would")
        worker.stop()
        worker = h.worker(settings)
        try:
            follow(worker, {"m": lambda: consumed(worker, settings, "monitor-input")}, lambda v: v["m"] > 0,
                   deadline_s=30 if smoke else 120, what="the restarted worker to apply an event", poll_s=0.1)
            recovery = time.monotonic() - down
            outcome += "; a restarted worker resumed"
        except LoadTestError as exc:
            outcome += f"; a restarted worker did not resume ({str(exc).splitlines()[0]})"
    deadline = time.monotonic() + (30 if smoke else 120)
    state = (0, 0)
    restarts = 0
    while time.monotonic() < deadline:
        if not worker.alive():
            # a supervisor restarts a worker that exited on a failed batch, and it resumes
            # from its saved state; each such exit is reported
            restarts += 1
            outcome += f"; exited again (code {worker.process.returncode if worker.process else '?'}), restarted"
            worker.stop()
            worker = h.worker(settings)
        state = model_counts(settings, config.model_id)
        if sum(state) and recovery is None:
            recovery = time.monotonic() - down
        if sum(state) >= total2:
            break
        time.sleep(1.0)
    worker.stop()
    return {
        # what the restarted broker was given; what the old one held vanished with it
        "events_in": total2, "accounted": sum(state), "lost": total2 - sum(state), "duplicated_outputs": None,
        "events_before_restart": sum(sent1.values()), "applied_when_stopped": int(applied_at_stop),
        "recovery_s": round(recovery, 2) if recovery is not None else None, "outcome": stopped_at + outcome,
        "second_half_applied_by_same_worker": int(same_worker_applied), "second_half_events": total2,
        "agent_crash": error, "worker_log_tail": worker.log_tail(1500), "restarts_after_the_first": restarts,
        "lost_note": "memory-only broker: the events before the restart, with topics, changelogs (model state) "
                     "and offsets, vanish with it; events_in counts what the restarted broker received",
        "ok": sum(state) >= total2,
    }


# -- poison -------------------------------------------------------------------------------
def poison_records(n: int, seed: int) -> list[tuple[bytes, bytes, str]]:
    """``n`` malformed records ``(key, value, expected reason)``, the five kinds in turn."""
    out = []
    for i in range(n):
        kind = i % 5
        key = f"poison-{seed}-{i}".encode()
        if kind == 0:
            out.append((key, b'{"prediction_id": "x", not json', "malformed_json"))
        elif kind == 1:
            out.append((key, codec.dumps({"prediction_id": key.decode(), "model_id": "fault-model", "timestamp": 1.0, "prediction": {"x": 1}}), "wrong_type"))  # an object: no prediction type
        elif kind == 2:
            out.append((key, b'{"prediction_id": "n", "model_id": "fault-model", "timestamp": 1, "prediction": 1, "score": NaN}', "malformed_json"))
        elif kind == 3:
            out.append((key, b'{"prediction_id": "o", "x": "' + b"y" * 300_000 + b'"}', "oversized"))
        else:
            out.append((key, pickle.dumps({"prediction_id": key.decode()}), "malformed_json"))
    return out


async def _publish_with_poison(settings: Settings, items: list[Item], poison: list[tuple[bytes, bytes, str]]) -> dict[str, int]:
    producer = AIOKafkaProducer(**settings.kafka_client_kwargs(), max_request_size=8_388_608)
    await producer.start()
    try:
        async with DriftstreamClient(settings, validate=False) as client:
            sent = {"predictions": 0, "ground-truth": 0}
            step = max(1, len(items) // max(len(poison), 1))
            bad = iter(poison)
            for start in range(0, len(items), step):
                got = await publish_async(client, items[start : start + step], chunk=step)
                for role in sent:
                    sent[role] += got[role]
                record = next(bad, None)
                if record is not None:
                    await producer.send_and_wait(settings.topic("predictions"), record[1], key=record[0])
            for record in bad:
                await producer.send_and_wait(settings.topic("predictions"), record[1], key=record[0])
            return sent
    finally:
        await producer.stop()


def _drain(h: Harness, settings: Settings, sent: dict[str, int], what: str) -> tuple[WorkerProcess, dict[str, float]]:
    total = sum(sent.values())
    worker = h.worker(settings)
    trace = follow(worker, {"join": lambda: decoded(worker, settings),
                            "monitored": lambda: consumed(worker, settings, "monitor-input")},
                   lambda v: v["monitored"] >= total, deadline_s=600, what=what, progress_key="monitored", total=total, poll_s=0.05)
    return worker, pipeline_rate(trace, "join", sent["predictions"])


def fault_poison(h: Harness, broker: Any, smoke: bool, seed: int) -> dict[str, Any]:
    events = 10_000 if smoke else 100_000
    config = drifting(events, seed)
    items = Simulation(config).in_event_time_order()
    clean = namespaced(broker, partitions=2, max_message_bytes=262_144)
    create_topics(clean)
    sent = publish(clean, items, what="clean events published")
    worker, clean_rate = _drain(h, clean, sent, "the clean run")
    worker.stop()

    poisoned = namespaced(broker, partitions=2, max_message_bytes=262_144)
    create_topics(poisoned)
    poison = poison_records(max(1, events // 100), seed)
    sent_p = asyncio.run(_publish_with_poison(poisoned, items, poison))
    worker, poison_rate = _drain(h, poisoned, sent_p, "the poisoned run")
    check_worker(worker, "after the poisoned run")
    # the monitors checkpoint their state every DRIFTSTREAM_MONITOR_CHECKPOINT_S: it counts
    # every event a moment after the metric does (and never does if events were lost)
    with contextlib.suppress(LoadTestError):
        wait_state(worker, poisoned, config.model_id, (sent_p["predictions"], sent_p["ground-truth"]), 30)
    reasons = {dict(ls)["reason"]: v for (n, ls), v in worker.scrape().items() if n == "driftstream_dead_letters_total"}
    worker.stop()
    dead_topic = [v for _, v in read_topic(poisoned, poisoned.topic("dead-letter"))]
    expected = Counter(reason for _, _, reason in poison)
    n_pred, n_pairs = model_counts(poisoned, config.model_id)
    good = sent_p["predictions"] + sent_p["ground-truth"]
    cost = 1.0 - poison_rate["predictions_per_s"] / clean_rate["predictions_per_s"]
    return {
        "events_in": good + len(poison), "accounted": n_pred + n_pairs + int(sum(reasons.values())),
        "lost": good - n_pred - n_pairs, "duplicated_outputs": max(0, len(dead_topic) - len(poison)), "recovery_s": 0.0,
        "injected": len(poison), "dead_letters_metric": int(sum(reasons.values())), "dead_letters_topic": len(dead_topic),
        "dead_letter_reasons": reasons, "expected_reasons": dict(expected), "crashes": 0,
        "clean_predictions_per_s": clean_rate["predictions_per_s"], "poisoned_predictions_per_s": poison_rate["predictions_per_s"],
        "throughput_cost": round(cost, 4),
        "ok": int(sum(reasons.values())) == len(poison) == len(dead_topic) and good == n_pred + n_pairs,
    }


# -- duplicates -------------------------------------------------------------------------
def doubled(items: list[Item], window_s: float, seed: int) -> list[Item]:
    """Every event twice; each copy after its original by up to a tenth of the window
    (never beyond it); originals keep their order."""
    pick = random.Random(seed)
    keyed = [(e["timestamp"], 0, i, r, e) for i, (r, e) in enumerate(items)]
    shift = min(window_s / 10, 30.0)
    keyed += [(e["timestamp"] + pick.uniform(0.0, shift), 1, i, r, dict(e)) for i, (r, e) in enumerate(items)]
    keyed.sort(key=lambda k: (k[0], k[1], k[2]))
    return [(r, e) for *_, r, e in keyed]


def _detectors(state: dict[str, Any]) -> dict[str, Any]:
    return {w["key"]: w["detector"] for w in state["watched"]}


def _feature_detectors(state: dict[str, Any]) -> dict[str, Any]:
    return {w["key"]: w["detector"] for w in state["watched"] if w["kind"] != "concept_drift"}


def fault_duplicates(h: Harness, broker: Any, smoke: bool, seed: int) -> dict[str, Any]:
    events = 10_000 if smoke else 100_000
    settings = namespaced(broker, partitions=1, join_window_s=600.0)
    create_topics(settings)
    config = drifting(events, seed)
    items = Simulation(config).in_event_time_order()
    twice = doubled(items, settings.join_window_s, seed)
    clean_ref = OfflinePipeline(window_s=settings.join_window_s)
    clean_ref.feed_events(items)
    clean_ref.finish()
    twice_ref = OfflinePipeline(window_s=settings.join_window_s)
    twice_ref.feed_events(twice)
    twice_ref.finish()
    sent = publish(settings, twice, chunk=500, what="doubled events published")
    counts = count_roles(items)
    worker = h.worker(settings)
    wait_state(worker, settings, config.model_id, (counts["predictions"], counts["ground-truth"]), 300)
    duplicates = worker.metric("driftstream_join_outcomes_total", outcome="duplicate")
    worker.stop()
    live_state = model_state(settings, config.model_id) or {}
    clean_monitor = clean_ref.monitors[model_key(config.model_id, None)].monitor.to_state()
    twice_monitor = twice_ref.monitors[model_key(config.model_id, None)].monitor.to_state()
    live_cmp = compare_alerts([v for _, v in read_topic(settings, settings.topic("alerts"))], clean_ref.result.alerts)
    offline_cmp = compare_alerts(twice_ref.result.alerts, clean_ref.result.alerts)
    total = sum(sent.values())
    applied = live_state.get("n_predictions", 0) + live_state.get("n_pairs", 0)
    # every detector, the concept ones included: the monitors apply the pairs in event-time
    # order, whichever input topic the worker happened to read first
    detectors_equal = bool(live_state) and _detectors(live_state) == _detectors(clean_monitor)
    features_equal = bool(live_state) and _feature_detectors(live_state) == _feature_detectors(clean_monitor)
    return {
        "events_in": total, "accounted": applied + int(duplicates), "lost": sum(counts.values()) - applied,
        "duplicated_outputs": live_cmp["duplicated_outputs"], "recovery_s": None,
        "duplicates_counted": int(duplicates), **{f"live_{k}": v for k, v in live_cmp.items()},
        "live_detector_state_equal": detectors_equal,
        "live_feature_detector_state_equal": features_equal,
        "offline_alerts_equal": not (offline_cmp["alerts_missing"] or offline_cmp["alerts_extra"] or offline_cmp["alerts_differing"]),
        "offline_detector_state_equal": _detectors(twice_monitor) == _detectors(clean_monitor),
        "ok": detectors_equal and not (live_cmp["alerts_missing"] or live_cmp["alerts_extra"] or live_cmp["alerts_differing"]),
    }


# -- sigstop ------------------------------------------------------------------------------
def _predictions_held(worker: WorkerProcess, settings: Settings) -> set[str]:
    """The predictions partitions ``worker`` reports as its own on ``/ready``."""
    prefix = settings.topic("predictions") + "["
    return {p for p in assigned_partitions(worker) if p.startswith(prefix)}


def _wait(condition: Callable[[], bool], workers: Sequence[WorkerProcess], deadline_s: float, what: str) -> float:
    """Poll ``condition`` until it holds, raising if a worker exits or crashes meanwhile or
    after ``deadline_s``; the seconds it took."""
    start = time.monotonic()
    while not condition():
        for worker in workers:
            check_worker(worker, what)
        if time.monotonic() - start > deadline_s:
            raise LoadTestError(f"timed out after {deadline_s:.0f} s waiting for {what}")
        time.sleep(0.25)
    return time.monotonic() - start


def _keep_logs(settings: Settings, workers: dict[str, WorkerProcess]) -> None:
    """Copy the workers' logs where DRIFTSTREAM_FAULT_LOGS points (the harness deletes them)."""
    folder = os.environ.get("DRIFTSTREAM_FAULT_LOGS")
    if folder:
        os.makedirs(folder, exist_ok=True)
        for role, worker in workers.items():
            shutil.copy(worker.log_path, os.path.join(folder, f"{settings.app_id}-{role}.log"))


def sigstop_run(
    start_worker: Callable[[Settings], WorkerProcess], settings: Settings, *, models: int, events_per_model: int, seed: int,
) -> dict[str, Any]:
    """One SIGSTOP run (see the module docstring) on ``settings``' partitions; raises
    :class:`LoadTestError` if a worker exits, crashes or stalls."""
    create_topics(settings)
    configs = [SimulationConfig(events=events_per_model, seed=seed + i, model_id=f"sigstop-{i}", id_prefix=f"m{i}-",
                                feature_drift_at=events_per_model // 3, concept_drift_at=2 * events_per_model // 3)
               for i in range(models)]
    items = multi_model_workload(configs)
    workers = [start_worker(settings) for _ in range(2)]
    everything = {f"{settings.topic('predictions')}[{p}]" for p in range(settings.partitions)}

    def shared() -> bool:
        """Each worker holds some of the partitions, and no other's: a resumed worker's
        ``/ready`` names its old partitions until it has rejoined, while the other holds all."""
        held = [_predictions_held(w, settings) for w in workers]
        return all(held) and not held[0] & held[1] and held[0] | held[1] == everything

    _wait(shared, workers, 120, "both workers to share the partitions")
    half = len(items) // 2
    sent = publish(settings, items[:half], what="first-half events published")
    # mid-stream: a tenth of the first half applied, the rest of it in flight
    _wait(lambda: sum(consumed(w, settings, "monitor-input") for w in workers) >= sum(sent.values()) / 10,
          workers, 120, "the workers to apply events")
    victim, survivor = random.Random(seed).sample(workers, 2)
    assert victim.process is not None
    signal_group(victim.process, signal.SIGSTOP)
    stopped = time.monotonic()
    try:
        more = publish(settings, items[half:], what="second-half events published (one worker stopped)")
        # stopped until the survivor took everything over: the group gave the victim up
        takeover = _wait(lambda: _predictions_held(survivor, settings) == everything, [survivor], 120,
                         "the running worker to take every partition over")
        while time.monotonic() - stopped < 2 * settings.session_timeout_s:
            check_worker(survivor, "the victim is stopped")
            time.sleep(0.25)
    finally:
        signal_group(victim.process, signal.SIGCONT)
    paused_s = time.monotonic() - stopped
    total = {role: sent[role] + more[role] for role in sent}
    rejoined = _wait(shared, workers, 120, "the resumed worker to rejoin and take partitions again")
    want = {c.model_id: Counter(role for role, event in items if event["model_id"] == c.model_id) for c in configs}

    def all_counted() -> bool:
        return all(model_counts(settings, m) == (n["predictions"], n["ground-truth"]) for m, n in want.items())

    try:
        # a state saved over with an older one never counts everything: measured, not raised
        counted_in = _wait(all_counted, workers, 120, "every event to be counted in the models' states")
    except LoadTestError as exc:
        if not all(w.alive() for w in workers) or agent_crash(victim) or agent_crash(survivor):
            raise
        counted_in = None
        note(f"sigstop: {exc}; counting what the states hold")
    finally:
        _keep_logs(settings, {"victim": victim, "survivor": survivor})
    # events a monitor got below its event-time frontier (applied at once, out of order):
    # the only way the alerts may differ from the offline run's
    late = sum(w.metric("driftstream_late_events_total") for w in workers)
    statuses = [w.stop() for w in workers]
    counted = {m: model_counts(settings, m) for m in want}
    reference = OfflinePipeline(window_s=settings.join_window_s)
    reference.feed_events(items)
    reference.finish()
    cmp = compare_alerts([v for _, v in read_topic(settings, settings.topic("alerts"))], reference.result.alerts)
    events = sum(total.values())
    accounted = sum(sum(c) for c in counted.values())
    row: dict[str, Any] = {
        "partitions": settings.partitions, "events_in": events, "accounted": accounted, "lost": events - accounted,
        "paused_s": round(paused_s, 1), "takeover_s": round(takeover, 1), "rejoin_s": round(rejoined, 1),
        "all_counted_s": None if counted_in is None else round(counted_in, 1),
        "exit_statuses": statuses, "late_events": int(late), **cmp,
        "no_false_stop": statuses == [0, 0], "no_loss": accounted == events,
        "alerts_equal": not (cmp["alerts_missing"] or cmp["alerts_extra"] or cmp["alerts_differing"]),
    }
    row["ok"] = row["no_false_stop"] and row["no_loss"] and row["alerts_equal"]
    return row


def fault_sigstop(h: Harness, broker: Any, smoke: bool, seed: int, runs: int | None) -> dict[str, Any]:
    runs = runs or (1 if smoke else 10)
    events = 2_000 if smoke else 5_000
    outcomes: list[dict[str, Any]] = []
    for partitions in (2, 4):
        for run in range(runs):
            note(f"sigstop: {partitions} partitions, run {run + 1}/{runs}")
            settings = namespaced(broker, partitions=partitions)
            try:
                row = sigstop_run(h.worker, settings, models=4, events_per_model=events, seed=seed + run)
            except LoadTestError as exc:
                row = {"partitions": partitions, "ok": False, "error": str(exc)[:4000]}
            failed = row.get("error") or {k: row[k] for k in ("exit_statuses", "lost", "late_events", "alerts_equal")}
            note(f"sigstop: {partitions} partitions, run {run + 1}: {'ok' if row['ok'] else f'FAILED {failed}'[:300]}")
            outcomes.append({"run": run + 1, **row})
    done = [r for r in outcomes if "events_in" in r]
    return {
        "events_in": sum(r["events_in"] for r in done), "accounted": sum(r["accounted"] for r in done),
        "lost": sum(r["lost"] for r in done), "duplicated_outputs": sum(r["duplicated_outputs"] for r in done),
        "recovery_s": max((r["rejoin_s"] for r in done), default=None),
        "runs": outcomes, "runs_ok": sum(r["ok"] for r in outcomes), "runs_total": len(outcomes),
        "runs_without_false_stop": sum(bool(r.get("no_false_stop")) for r in outcomes),
        "runs_without_loss": sum(bool(r.get("no_loss")) for r in outcomes),
        "runs_with_late_events": sum(bool(r.get("late_events")) for r in done),
        "outcome": (f"{sum(r['ok'] for r in outcomes)}/{len(outcomes)} runs ok (2 and 4 partitions); "
                    f"no false stop in {sum(bool(r.get('no_false_stop')) for r in outcomes)}, no loss in "
                    f"{sum(bool(r.get('no_loss')) for r in outcomes)}, late events in "
                    f"{sum(bool(r.get('late_events')) for r in done)}"),
        "ok": all(r["ok"] for r in outcomes),
    }


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    p = parser(__doc__)
    p.add_argument("--fault", action="append", choices=FAULTS, help="run only these (repeatable; default all)")
    p.add_argument("--runs", type=int, help="sigstop runs per partition count (default 10; smoke 1)")
    args = p.parse_args(argv)
    chosen = args.fault or list(FAULTS)
    rows: dict[str, dict[str, Any]] = {}
    with Harness() as h:
        broker = h.broker()
        for name in chosen:
            note(f"fault: {name}")
            try:
                if name == "kill":
                    rows[name] = fault_kill(h, broker, args.smoke, args.seed)
                elif name == "broker":
                    with Harness() as inner:  # its own broker, restarted
                        rows[name] = fault_broker(inner, args.smoke, args.seed)
                elif name == "sigstop":
                    rows[name] = fault_sigstop(h, broker, args.smoke, args.seed, args.runs)
                elif name == "poison":
                    rows[name] = fault_poison(h, broker, args.smoke, args.seed)
                else:
                    rows[name] = fault_duplicates(h, broker, args.smoke, args.seed)
            except LoadTestError as exc:
                rows[name] = {"error": str(exc)[:4000], "ok": False}
    summary = {"script": "faults", "smoke": args.smoke, "faults": rows, "all_ok": all(r.get("ok") for r in rows.values())}
    print_table("Faults", [
        (n, r.get("events_in"), r.get("accounted"), r.get("lost"), r.get("duplicated_outputs"), r.get("recovery_s"), r.get("ok"),
         r.get("outcome") or (r.get("error", "").splitlines() or [""])[0][:80])
        for n, r in rows.items()
    ], ("fault", "events in", "accounted", "lost", "dup. outputs", "recovery s", "ok", "note"))
    return finish(summary, args.json)


if __name__ == "__main__":
    main()
