"""The pipeline end to end on the real embedded broker, with a real worker process."""

from __future__ import annotations

import asyncio
import pickle
import threading
from collections import Counter

import pytest

from schemas import codec
from streams.exceptions import DriftstreamError
from streams.offline.simulate import Simulation, SimulationConfig
from streams.runtime.topics import ensure_topics
from streams.runtime.worker_process import WorkerProcess
from streams.settings import Settings

from .support import (
    final_alerts,
    model_counts,
    monitored,
    produce_raw,
    publish_events,
    read_topic,
    wait_for,
)

pytestmark = pytest.mark.integration


def _consumed(worker: WorkerProcess, settings: Settings, role: str) -> float:
    return worker.metric("driftstream_events_consumed_total", topic=settings.topic(role))


def test_drifts_raise_alerts_bad_input_is_dead_lettered_and_metrics_show_it(settings: Settings) -> None:
    asyncio.run(ensure_topics(settings))
    config = SimulationConfig(events=16_000, seed=11, feature_drift_at=5_000, concept_drift_at=9_000)
    items = Simulation(config).in_event_time_order()
    with WorkerProcess(settings) as worker:
        worker.wait_ready(90)
        half = len(items) // 2
        sent = publish_events(settings, items[:half])
        good_json = codec.dumps({"prediction_id": "ok-1", "model_id": "side", "timestamp": 1.0, "prediction": 1})
        bad = [
            (b"a", b"{not json"),
            (b"b", codec.dumps({"prediction_id": "b", "model_id": "m", "timestamp": 1.0, "prediction": {"a": 1}})),
            (b"c", b'{"prediction_id": "c", "model_id": "m", "timestamp": 1, "prediction": 1, "score": NaN}'),
            (b"d", b'{"prediction_id": "d", "model_id": "m", "timestamp": 1, "prediction": 1, "x": "' + b"y" * 1_100_000 + b'"}'),
            (b"e", pickle.dumps({"prediction_id": "e"})),
            (b"ok-1", good_json),
        ]
        produce_raw(settings, settings.topic("predictions"), bad)
        second = publish_events(settings, items[half:])
        n_preds = sent["predictions"] + second["predictions"] + 1
        n_labels = sent["ground-truth"] + second["ground-truth"]
        wait_for(lambda: monitored(worker, settings) >= n_preds + n_labels, 120, "the monitors to apply everything")

        reasons = {
            labels["reason"]: v
            for (name, labels_t), v in worker.scrape().items()
            if name == "driftstream_dead_letters_total"
            for labels in [dict(labels_t)]
        }
        # bad JSON, a NaN literal and a pickle are not JSON; an object is not a prediction value
        # (an array is: a ranking's item ids)
        assert reasons == {"malformed_json": 3.0, "wrong_type": 1.0, "oversized": 1.0}, reasons
        alerts_counter = sum(worker.metric("driftstream_alerts_total", model_id=config.model_id, status=status)
                             for status in ("firing", "escalated"))
        firing_counter = worker.metric("driftstream_alerts_total", model_id=config.model_id, status="firing")
        latency_count = worker.metric("driftstream_processing_latency_seconds_count")
        latency_sum = worker.metric("driftstream_processing_latency_seconds_sum")
        event_time_lag = worker.metric("driftstream_event_time_lag_seconds", model_id=config.model_id)
        log = worker.log_path.read_text()
        samples = worker.scrape()
        psi = {dict(ls)["feature"]: v for (n, ls), v in samples.items()
               if n == "driftstream_detector_statistic" and dict(ls)["detector"] == "psi"}
        threshold = {dict(ls)["feature"]: v for (n, ls), v in samples.items()
                     if n == "driftstream_detector_threshold" and dict(ls)["detector"] == "psi"}
        latency = {dict(ls)["detector"]: v for (n, ls), v in samples.items()
                   if n == "driftstream_detector_statistic" and dict(ls)["detector"].startswith("latency_p")}

    dead = [v for _, v in read_topic(settings, settings.topic("dead-letter"))]
    assert len(dead) == 5
    assert {d["origin"]["topic"] for d in dead} == {settings.topic("predictions")}
    assert all(d["message"] and d["raw_b64"] is not None for d in dead)
    assert Counter(d["reason"] for d in dead) == Counter(reasons)

    # the drift statistic crossed its threshold on the drifted feature, and alerts were counted
    assert psi["sessions_7d"] > threshold["sessions_7d"]
    assert psi["age"] < threshold["age"]
    # the simulation's latency_ms is gamma(2, 4): p50 6.7, p95 19.0, p99 26.6 ms
    assert set(latency) == {"latency_p50", "latency_p95", "latency_p99"}, latency
    assert 5 < latency["latency_p50"] < 9 and 15 < latency["latency_p95"] < 23 and 21 < latency["latency_p99"] < 33, latency
    assert alerts_counter >= 2
    # processing latency is seconds of processing, not the age of the simulation's 2023 events
    assert latency_count == firing_counter and 0 < latency_sum / latency_count < 30
    assert event_time_lag > 365 * 86_400
    assert log.count("alert fired: ") >= firing_counter and f"on model {config.model_id}" in log

    alerts = final_alerts([v for _, v in read_topic(settings, settings.topic("alerts"))])
    # the concept drift may share an incident with the feature drift (within the group
    # window of its first detection); the incident's kind is then its most severe member's
    member_kinds = {m["kind"] for a in alerts.values() for m in a["members"]}
    assert "data_drift" in member_kinds
    assert {"concept_drift", "performance"} & member_kinds, member_kinds
    members = {m["feature"] for a in alerts.values() for m in a["members"] if m["kind"] == "data_drift"}
    assert members == {"sessions_7d"}, members  # no other feature alerted


def test_long_stationary_stream_raises_no_alert(settings: Settings) -> None:
    asyncio.run(ensure_topics(settings))
    config = SimulationConfig(events=50_000, seed=5, feature_drift_at=None, concept_drift_at=None)
    with WorkerProcess(settings) as worker:
        worker.wait_ready(90)
        sent = publish_events(settings, Simulation(config).in_event_time_order(), chunk=5000)
        wait_for(lambda: monitored(worker, settings) >= sent["predictions"] + sent["ground-truth"],
                 180, "the monitors to apply 50,000 predictions and their labels")
        assert worker.metric("driftstream_alerts_total") == 0
    assert read_topic(settings, settings.topic("alerts")) == []


def _pred(pid: str, ts: float) -> dict:
    return {"prediction_id": pid, "model_id": "join-model", "timestamp": ts, "prediction": 1, "features": {"x": 1.0}}


def _label(pid: str, ts: float) -> dict:
    return {"prediction_id": pid, "label": 1, "timestamp": ts}


def test_join_handles_every_order_duplicates_late_and_missing_labels(settings: Settings) -> None:
    # one partition: event time (the watermark that closes the window) is per partition
    settings = settings.replace(join_window_s=100.0, partitions=1)
    asyncio.run(ensure_topics(settings))
    with WorkerProcess(settings) as worker:
        worker.wait_ready(90)
        publish_events(settings, [("ground-truth", _label("before", 10.0))])  # label first
        publish_events(settings, [("predictions", _pred("before", 5.0)), ("predictions", _pred("after", 6.0)),
                                  ("predictions", _pred("dup", 7.0)), ("predictions", _pred("missing", 8.0)),
                                  ("predictions", _pred("late", 9.0))])
        publish_events(settings, [("ground-truth", _label("after", 12.0)), ("ground-truth", _label("dup", 13.0)),
                                  ("ground-truth", _label("dup", 13.0)), ("predictions", _pred("dup", 7.0)),
                                  ("ground-truth", _label("ghost", 14.0))])
        # event time moves on past the window: 'missing' and 'late' expire, 'ghost' goes unmatched
        publish_events(settings, [("predictions", _pred("tick", 150.0)), ("ground-truth", _label("tick", 151.0))])
        publish_events(settings, [("ground-truth", _label("late", 160.0)), ("predictions", _pred("tock", 170.0))])

        def outcomes() -> dict[str, float]:
            return {dict(ls)["outcome"]: v for (n, ls), v in worker.scrape().items()
                    if n == "driftstream_join_outcomes_total"}

        wait_for(lambda: outcomes().get("late", 0) >= 1 and outcomes().get("unmatched", 0) >= 1, 60,
                 "late and unmatched labels to be counted")
        got = outcomes()
    assert got["matched"] == 4  # before, after, dup, tick
    assert got["duplicate"] == 2  # the second 'dup' label and the second 'dup' prediction
    assert got["expired"] == 2  # missing, late
    assert got["late"] == 1 and got["unmatched"] == 1  # late, ghost
    records = {v["prediction_id"]: v for _, v in read_topic(settings, settings.topic("join-outcomes"))}
    assert records["late"]["outcome"] == "late" and records["ghost"]["outcome"] == "unmatched"
    assert "join window" in records["ghost"]["detail"]


@pytest.mark.parametrize("store", ["memory://", "rocksdb://"])
def test_sigkilled_worker_resumes_from_its_tables_without_loss_or_second_alert(settings: Settings, store: str, tmp_path) -> None:
    if store.startswith("rocksdb"):
        pytest.importorskip("rocksdict", reason="the rocksdb extra is not installed")
    settings = settings.replace(partitions=1, store=store, data_dir=str(tmp_path / "data"), log_level="INFO")
    asyncio.run(ensure_topics(settings))
    config = SimulationConfig(events=30_000, seed=21, feature_drift_at=8_000, concept_drift_at=16_000)
    items = Simulation(config).in_event_time_order()
    head = len(items) * 2 // 5
    sent = publish_events(settings, items[:head], chunk=500)
    halfway = threading.Event()
    rest: dict[str, int] = {}

    def publish_rest() -> None:  # events keep arriving while the worker dies
        middle = head + (len(items) - head) // 2
        rest.update(publish_events(settings, items[head:middle], chunk=500))
        halfway.set()
        for role, n in publish_events(settings, items[middle:], chunk=500).items():
            rest[role] += n

    publisher = threading.Thread(target=publish_rest)
    with WorkerProcess(settings) as first:
        first.wait_ready(90)
        wait_for(lambda: _consumed(first, settings, "predictions") >= 5_000, 120, "the first worker to get going")
        # a checkpoint of the model landed: the second worker resumes from it, not from nothing
        wait_for(lambda: model_counts(settings, config.model_id) is not None, 60, "a checkpoint of the model")
        publisher.start()
        assert halfway.wait(60)
        skipped = {outcome: first.metric("driftstream_checkpoints_total", outcome=outcome)
                   for outcome in ("skipped_unreachable", "skipped_changelog_lost")}
        first.kill()
    assert skipped == {"skipped_unreachable": 0, "skipped_changelog_lost": 0}, skipped  # the broker never left
    publisher.join(120)
    assert not publisher.is_alive(), "the publisher did not finish within 120 s"
    sent = {role: sent[role] + rest[role] for role in sent}
    at_kill = model_counts(settings, config.model_id)
    assert at_kill is not None and at_kill[0] < sent["predictions"]  # killed mid-stream
    with WorkerProcess(settings) as second:
        second.wait_ready(90)
        # the second worker applies what the first had not, and nothing twice
        expected_counts = (sent["predictions"], sent["ground-truth"])
        seen: list[tuple[int, int] | None] = [at_kill]

        def caught_up() -> bool:
            seen.append(model_counts(settings, config.model_id))
            return seen[-1] == expected_counts

        try:
            second.wait_until(caught_up, 180, f"the restarted worker to catch up from {at_kill} to {expected_counts}")
        except DriftstreamError as exc:
            raise AssertionError(f"last (predictions, pairs) seen: {seen[-1]}; {exc}\n"
                                 f"second worker's log:\n{second.log_tail(30_000)}\n"
                                 f"first worker's log:\n{first.log_tail(10_000)}") from None
        gaps = second.metric("driftstream_offset_gaps_total")
    assert gaps == 0

    # every prediction and label applied exactly once: the model's state counts them all
    assert model_counts(settings, config.model_id) == (sent["predictions"], sent["ground-truth"])

    # the same alerts as an uninterrupted run over the same events, same ids, none extra
    from streams.offline.pipeline import OfflinePipeline

    reference = OfflinePipeline(window_s=settings.join_window_s)
    reference.feed_events(items)
    reference.finish()
    live = final_alerts([v for _, v in read_topic(settings, settings.topic("alerts"))])
    expected = final_alerts(reference.result.alerts)
    assert set(live) == set(expected)
    assert {k: (a["status"], a["kind"]) for k, a in live.items()} == {k: (a["status"], a["kind"]) for k, a in expected.items()}
