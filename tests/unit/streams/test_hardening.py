"""Standing adversarial tests (issue #28): no record, receiver or artifact can stall, poison
or exhaust the worker.

Each test feeds the hostile input through the same code the worker runs (the join stage,
the offline pipeline, the alert sink against a real local HTTP server, the updater and its
model store), and checks both that the hostile part is dead-lettered with its reason and
that the rest goes on. The worker-level ones are in tests/integration/test_alert_webhook.py
and tests/integration/test_sigstop.py (a worker SIGSTOPped past the session timeout).
"""

from __future__ import annotations

import asyncio
import hashlib
import pickle
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from schemas import codec
from schemas.records import DeadLetter
from streams.offline.pipeline import OfflinePipeline
from streams.ops.metrics import Metrics, create
from streams.pipeline.cardinality import ModelCap, SeriesCap
from streams.pipeline.clock import CLOCK_SKEW
from streams.pipeline.monitor_config import MonitorConfig
from streams.pipeline.stages import InputRecord, JoinResult, JoinStage, PartitionJoin
from streams.settings import Settings, SettingsError
from streams.sinks.queue import CircuitBreaker, QueuedSink, Undelivered
from streams.sinks.webhook import WebhookSink
from streams.updater.model_store import ModelStore, UntrustedArtifactError
from streams.updater.decisions import Updater, UpdaterConfig

WINDOW_S = 100.0
#: the records' Kafka timestamps, in ms: what the clock-skew check goes by
RECORD_MS = 1_700_000_000_000
NOW = RECORD_MS / 1000
#: the worker's wall clock: a day after the records were written (a record timestamp counts
#: only up to the wall clock)
WALL = NOW + 86_400
YEAR_9999 = 253_402_214_400.0


def _stage(skew_s: float = 60.0) -> JoinStage:
    return JoinStage(window_s=WINDOW_S, max_message_bytes=1_000_000, monitor_config=MonitorConfig.from_mapping({}),
                     clock=lambda: 0.0, max_clock_skew_s=skew_s, wall_clock=lambda: WALL)


def _predictions(offset: int, stamps: list[float], model: str = "m", start: int = 0, record_ms: int | None = RECORD_MS,
                 columns: bool = True) -> InputRecord:
    ids = [f"p{start + i}" for i in range(len(stamps))]
    if columns:
        value = codec.dumps({"columns": {"prediction_id": ids, "model_id": [model] * len(ids), "timestamp": stamps,
                                         "prediction": [1] * len(ids), "score": [0.5] * len(ids), "features": {"x": [1.0] * len(ids)}}})
    else:
        value = codec.dumps([{"prediction_id": pid, "model_id": model, "timestamp": ts, "prediction": 1, "score": 0.5,
                              "features": {"x": 1.0}} for pid, ts in zip(ids, stamps)])
    return InputRecord("predictions", "predictions", 0, offset, value, record_ms)


def test_a_far_future_prediction_is_dead_lettered_and_the_join_clock_does_not_move() -> None:
    stage, part = _stage(), PartitionJoin.fresh(0, WINDOW_S)
    stage.process(part, [_predictions(0, [NOW - 50, NOW - 40])])
    for columns in (True, False):  # a column batch and a JSON array of events
        result = stage.process(part, [_predictions(1 if columns else 2, [NOW - 30, YEAR_9999], start=10 if columns else 20,
                                                   columns=columns)])
        assert result.dead_letters == {CLOCK_SKEW: 1}
        [(_, letter)] = result.outputs.messages["dead-letter"]
        assert letter["reason"] == CLOCK_SKEW and letter["origin"]["index"] == 1
        assert "ahead of its record's time" in letter["message"]
        assert part.state.watermark == NOW - 30  # the far-future event never reached the join
        assert result.batch is not None and not result.batch.outcomes["expired"]
    # time goes on: the window still closes, and the state stays bounded
    later = stage.process(part, [_predictions(3, [NOW + 500], start=30, record_ms=RECORD_MS + 500_000)])
    assert later.batch is not None and later.batch.outcomes["expired"] == 4
    assert len(part.state.entries["p"]) == 1


def test_an_event_within_the_skew_is_joined_and_one_past_it_is_not() -> None:
    stage, part = _stage(skew_s=60.0), PartitionJoin.fresh(0, WINDOW_S)
    result = stage.process(part, [_predictions(0, [NOW + 59.0, NOW + 61.0])])
    assert result.events["predictions"] == 1 and result.dead_letters == {CLOCK_SKEW: 1}


def test_a_record_without_a_timestamp_or_stamped_ahead_is_checked_against_the_wall_clock() -> None:
    stage, part = _stage(skew_s=60.0), PartitionJoin.fresh(0, WINDOW_S)
    result = stage.process(part, [_predictions(0, [WALL, WALL + 3600], record_ms=None)])
    assert result.dead_letters == {CLOCK_SKEW: 1}
    # a producer that stamps its record 9999 too does not vouch for an event stamped 9999
    forged = stage.process(part, [_predictions(1, [WALL, YEAR_9999], start=2, record_ms=int(YEAR_9999 * 1000))])
    assert forged.dead_letters == {CLOCK_SKEW: 1}


def test_the_offline_pipeline_dead_letters_the_same_skewed_events_as_the_worker() -> None:
    records = [_predictions(0, [NOW - 5, YEAR_9999, NOW]), _predictions(1, [NOW + 7200], start=3)]
    stage, part = _stage(skew_s=3600.0), PartitionJoin.fresh(0, WINDOW_S)
    live = [value for r in records for _, value in stage.process(part, [r]).outputs.messages.get("dead-letter", [])]
    offline = OfflinePipeline(window_s=WINDOW_S, max_clock_skew_s=3600.0)
    offline.feed_records(records)
    assert [d["dead_letter_id"] for d in offline.result.dead_letters] == [d["dead_letter_id"] for d in live]
    assert [d["reason"] for d in live] == [CLOCK_SKEW, CLOCK_SKEW]


# -- alert delivery never blocks processing (item 2) ------------------------------------------

#: Every sink test finishes well inside this, or something hangs.
SINK_DEADLINE_S = 10.0


class Receiver:
    """A real webhook receiver on 127.0.0.1: answers ``statuses`` in turn (then 200), with a
    ``Location`` for a 3xx, or holds every request open while ``hold``."""

    def __init__(self) -> None:
        self.bodies: list[Any] = []
        self.statuses: list[int] = []
        self.location = ""
        self.hold = False
        self.release = asyncio.Event()
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.bodies.append(await request.json())
        if self.hold:
            await self.release.wait()
        status = self.statuses.pop(0) if self.statuses else 200
        return web.Response(status=status, headers={"Location": self.location} if 300 <= status < 400 else None)


async def _serve(rec: Receiver) -> web.AppRunner:
    app = web.Application()
    app.router.add_route("*", "/hooks/{token}", rec.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    rec.url = f"http://127.0.0.1:{runner.addresses[0][1]}/hooks/secret-token"
    return runner


@pytest.fixture
async def receivers() -> AsyncIterator[tuple[Receiver, Receiver]]:
    """The webhook's receiver, and another host a redirect points to."""
    first, other = Receiver(), Receiver()
    runners = [await _serve(first), await _serve(other)]
    first.location = other.url
    yield first, other
    first.release.set()
    for runner in runners:
        await runner.cleanup()


def _alert(i: int) -> dict[str, Any]:
    return {"alert_id": f"a-{i}", "event_id": f"e-{i}", "model_id": "m", "severity": "P2", "status": "firing", "message": "x"}


def _queued(url: str, metrics: Metrics, letters: list[Undelivered], *, timeout_s: float = 5.0, retries: int = 0,
            queue_size: int = 100, failures: int = 100) -> QueuedSink:
    async def dead_letter(undelivered: Undelivered) -> None:
        letters.append(undelivered)

    sink = WebhookSink(url, timeout_s=timeout_s, retries=retries, backoff_s=0.001, metrics=metrics)
    return QueuedSink(sink, dead_letter, topic="alerts", queue_size=queue_size,
                      breaker=CircuitBreaker(failures, 60.0), metrics=metrics, clock=lambda: 5.0)


def _outcomes(metrics: Metrics) -> dict[str, float]:
    return {o: metrics.alert_sink_alerts.labels("webhook", o)._value.get() for o in ("delivered", "dead_lettered")}


async def test_a_hanging_receiver_never_holds_up_the_caller_and_a_full_queue_dead_letters(
    receivers: tuple[Receiver, Receiver],
) -> None:
    receiver, _ = receivers
    receiver.hold = True
    metrics, letters = create(process_collectors=False), []
    queued = _queued(receiver.url, metrics, letters, timeout_s=30.0, queue_size=2)
    started = time.monotonic()
    for i in range(4):  # one in flight, two queued, one past the queue
        await asyncio.wait_for(queued.submit(_alert(i)), 1.0)
        await asyncio.sleep(0)  # let the delivery task take the first
    assert time.monotonic() - started < 1.0  # the caller (the monitors) went on at once
    assert [u.alert["alert_id"] for u in letters] == ["a-3"] and "queue full" in letters[0].error
    assert metrics.alert_sink_queue.labels("webhook")._value.get() == 2
    await asyncio.wait_for(queued.close(grace_s=0.2), SINK_DEADLINE_S)  # what is left is dead-lettered
    assert sorted(u.alert["alert_id"] for u in letters) == ["a-0", "a-1", "a-2", "a-3"]
    assert all(u.record["reason"] == "webhook_failed" for u in letters)
    assert _outcomes(metrics) == {"delivered": 0, "dead_lettered": 4}


@pytest.mark.parametrize("status", [302, 307])
async def test_a_redirect_is_a_failure_and_never_followed(receivers: tuple[Receiver, Receiver], status: int) -> None:
    receiver, other = receivers
    receiver.statuses = [status]
    metrics, letters = create(process_collectors=False), []
    queued = _queued(receiver.url, metrics, letters, retries=3)
    await queued.submit(_alert(1))
    await asyncio.wait_for(queued.idle(), SINK_DEADLINE_S)
    await queued.close()
    assert other.bodies == [] and len(receiver.bodies) == 1  # not re-posted, not retried
    [letter] = letters
    assert letter.error == f"HTTP {status} (redirects are not followed) after 1 attempt(s)"
    DeadLetter.from_dict(letter.record)
    assert _outcomes(metrics) == {"delivered": 0, "dead_lettered": 1}


async def test_a_failing_receiver_opens_the_breaker_and_a_success_closes_it(receivers: tuple[Receiver, Receiver]) -> None:
    receiver, _ = receivers
    receiver.statuses = [500] * 4  # two alerts, two attempts each
    metrics, letters = create(process_collectors=False), []
    now = [0.0]
    queued = _queued(receiver.url, metrics, letters, retries=1)
    queued.breaker = CircuitBreaker(2, 30.0, clock=lambda: now[0])
    for i in range(4):
        await queued.submit(_alert(i))
    await asyncio.wait_for(queued.idle(), SINK_DEADLINE_S)
    assert len(receiver.bodies) == 4  # the 3rd and 4th alerts were not tried: the circuit is open
    assert [u.error for u in letters] == ["HTTP 500 after 2 attempt(s)"] * 2 + ["circuit open after 2 undeliverable alerts in a row"] * 2
    assert metrics.alert_sink_breaker_open.labels("webhook")._value.get() == 1
    now[0] = 30.0  # half-open: one try, and it succeeds
    await queued.submit(_alert(5))
    await asyncio.wait_for(queued.idle(), SINK_DEADLINE_S)
    await queued.close()
    assert receiver.bodies[-1]["alert_id"] == "a-5" and not queued.breaker.is_open
    assert _outcomes(metrics) == {"delivered": 1, "dead_lettered": 4}


# -- bounded cardinality (item 3) --------------------------------------------------------------


def test_models_past_the_cap_are_dead_lettered_and_the_admitted_ones_go_on() -> None:
    offline = OfflinePipeline(window_s=WINDOW_S, max_models=3)
    offline.feed_records([_predictions(i, [NOW - 10, NOW - 9], model=f"model-{i}", start=10 * i) for i in range(50)])
    offline.feed_records([_predictions(50 + i, [NOW - 5], model=f"model-{i}", start=1000 + i) for i in range(50)])
    offline.finish()
    assert sorted(offline.monitors) == ["model-0", "model-1", "model-2"]  # the first three, in log order
    letters = offline.result.dead_letters
    assert len(letters) == 2 * 47 and {d["reason"] for d in letters} == {"too_many_models"}
    assert len({d["dead_letter_id"] for d in letters}) == len(letters)
    assert "DRIFTSTREAM_MAX_MODELS" in letters[0]["message"]
    DeadLetter.from_dict(letters[0])
    assert offline.result.events == 3 * 3  # the admitted models' predictions all applied


def test_a_model_with_saved_state_stays_admitted_after_a_restart() -> None:
    cap = ModelCap(2, partitions=1)
    assert [cap.admit(k, lambda p: ()) for k in ("a", "b", "c")] == [True, True, False]
    cap.reset()  # a rebalance: what has state is admitted first, whatever comes first now
    assert [cap.admit(k, lambda p: ["b", "a"]) for k in ("c", "a", "b")] == [False, True, True]
    series = SeriesCap(1)
    assert [series.exports(m) for m in ("x", "y", "x")] == [True, False, True] and series.capped == 1


def test_ten_thousand_models_in_one_record_keep_the_monitors_and_series_bounded() -> None:
    models = [f"tenant-{i}" for i in range(10_000)]
    value = codec.dumps({"columns": {
        "prediction_id": [f"p{i}" for i in range(len(models))], "model_id": models, "timestamp": [NOW - 10] * len(models),
        "prediction": [1] * len(models), "score": [0.5] * len(models), "features": {"x": [1.0] * len(models)}}})
    offline = OfflinePipeline(window_s=WINDOW_S, max_models=100)
    offline.feed_records([InputRecord("predictions", "predictions", 0, 0, value, RECORD_MS)])
    offline.finish()
    assert len(offline.monitors) == 100 and offline.result.events == 100
    letters = offline.result.dead_letters
    assert len(letters) == 9_900 and {d["reason"] for d in letters} == {"too_many_models"}
    series = SeriesCap(100)
    assert sum(series.exports(m) for m in models) == 100 and series.capped == 9_900


def test_an_idle_model_is_evicted_once_saved_and_its_next_event_loads_the_same_state() -> None:
    import faust
    from prometheus_client import CollectorRegistry

    from streams.runtime.app import Pipeline

    offline = OfflinePipeline(window_s=WINDOW_S)
    offline.feed_records([_predictions(0, [NOW - 10, NOW - 9], model="saved"), _predictions(1, [NOW - 8], model="busy", start=5)])
    offline.finish()
    app = faust.App("test-evict", broker="kafka://127.0.0.1:1", store="memory://", web_enabled=False)
    pipeline = Pipeline(app, Settings(model_idle_evict_s=10.0), MonitorConfig(), CollectorRegistry())
    stage = pipeline.monitors.stage
    saved = stage.dump(offline.monitors["saved"])
    pipeline.monitors.monitors = dict(offline.monitors)
    pipeline.monitors.table.data["saved"] = saved
    pipeline.monitors.table.data["busy"] = stage.dump(offline.monitors["busy"])
    pipeline.monitors.unsaved_monitors = {"busy": object()}  # type: ignore[dict-item]  # changed since: not saved yet
    long_ago = time.monotonic() - 11.0
    for key in ("saved", "busy"):
        pipeline.monitors.idle_models.touch(key, long_ago)
    asyncio.run(pipeline.evict_idle_models())
    assert sorted(pipeline.monitors.monitors) == ["busy"]
    assert pipeline.metrics.models_evicted._value.get() == 1
    reloaded = asyncio.run(pipeline.monitors.slot_for("saved", None))
    assert reloaded is not None and stage.dump(reloaded) == saved  # the state it left with
    # an idle time not yet passed evicts nothing
    pipeline.monitors.unsaved_monitors = {}
    pipeline.monitors.idle_models.touch("busy", time.monotonic())
    asyncio.run(pipeline.evict_idle_models())
    assert "busy" in pipeline.monitors.monitors


# -- identity (item 6) -------------------------------------------------------------------------


def _labels(offset: int, ids: list[str], models: list[str | None]) -> InputRecord:
    value = codec.dumps([{"prediction_id": pid, "label": 1, "timestamp": NOW - 1, **({"model_id": m} if m else {})}
                         for pid, m in zip(ids, models)])
    return InputRecord("ground-truth", "ground-truth", 0, offset, value, RECORD_MS)


def test_the_same_prediction_id_in_another_model_is_dead_lettered_not_dropped_as_a_duplicate() -> None:
    stage, part = _stage(), PartitionJoin.fresh(0, WINDOW_S)
    stage.process(part, [_predictions(0, [NOW - 9, NOW - 8], model="a")])
    result = stage.process(part, [_predictions(1, [NOW - 7, NOW - 6, NOW - 5], model="b")])  # p0, p1 clash; p2 is new
    assert result.dead_letters == {"prediction_id_conflict": 2}
    assert [d["origin"]["index"] for _, d in result.outputs.messages["dead-letter"]] == [0, 1]
    assert "already belongs to a prediction of model 'a'" in result.outputs.messages["dead-letter"][0][1]["message"]
    assert result.batch is not None and not result.batch.outcomes["duplicate"]
    # a copy of the first model's own prediction is still a plain duplicate
    again = stage.process(part, [_predictions(2, [NOW - 9], model="a")])
    assert not again.dead_letters and again.batch is not None and again.batch.outcomes["duplicate"] == 1


def test_a_label_naming_another_model_does_not_join() -> None:
    stage, part = _stage(), PartitionJoin.fresh(0, WINDOW_S)
    result = stage.process(part, [
        _labels(0, ["p0", "p1", "p2"], ["b", "a", None]),  # read before the predictions: checked after them
        _predictions(0, [NOW - 9, NOW - 8, NOW - 7], model="a"),
    ])
    assert result.dead_letters == {"model_mismatch": 1}
    [(_, letter)] = result.outputs.messages["dead-letter"]
    assert letter["origin"] == {"topic": "ground-truth", "partition": 0, "offset": 0, "index": 0}
    assert result.batch is not None and result.batch.outcomes["matched"] == 2  # p1 (names a), p2 (names none)
    # once joined, the id still belongs to model a
    later = stage.process(part, [_labels(1, ["p1"], ["b"])])
    assert later.dead_letters == {"model_mismatch": 1}


def test_a_skewed_event_and_an_identity_clash_in_one_column_batch_keep_their_positions() -> None:
    stage, part = _stage(), PartitionJoin.fresh(0, WINDOW_S)
    stage.process(part, [_predictions(0, [NOW - 9], model="a")])
    result = stage.process(part, [_predictions(1, [YEAR_9999, NOW - 5, NOW - 4], model="b")])  # p0 skewed; p1, p2 new
    result2 = stage.process(part, [_predictions(2, [YEAR_9999, NOW - 3], model="b", start=-1)])  # p-1 skewed, p0 clashes
    assert [(d["origin"]["index"], d["reason"]) for _, d in result.outputs.messages["dead-letter"]] == [(0, "clock_skew")]
    assert [(d["origin"]["index"], d["reason"]) for _, d in result2.outputs.messages["dead-letter"]] == [
        (0, "clock_skew"), (1, "prediction_id_conflict")]


def test_one_event_records_screened_at_once_end_as_screened_one_by_one() -> None:
    """A foreign producer's batch (one event per record) is screened in one pass
    (``IdentityScreen.screen_records``): the same events kept, the same errors at the same
    records, the same claims and refused labels as screening the records in order."""
    import random

    from streams.pipeline.identity import IdentityScreen

    rng = random.Random(7)
    stage, part = _stage(), PartitionJoin.fresh(0, WINDOW_S)
    stage.process(part, [_predictions(0, [NOW - 9, NOW - 8, NOW - 7], model="a")])  # p0..p2 held by a
    stage.process(part, [_labels(0, ["p7", "p8"], ["b", "a"])])  # labels waiting for p7, p8
    clashed = False
    for _ in range(20):
        preds = [[(None, {"prediction_id": f"p{rng.randrange(10)}", "model_id": rng.choice("ab")})]
                 for _ in range(rng.randrange(1, 12))]
        labels = [[(None, {"prediction_id": f"p{rng.randrange(10)}", "model_id": rng.choice(["a", "b", None])})]
                  for _ in range(rng.randrange(1, 12))]
        at_once, one_by_one = IdentityScreen(part.state), IdentityScreen(part.state)
        got = []
        for role, records in (("predictions", preds), ("ground-truth", labels)):
            changed = at_once.screen_records(records, role)  # only the records that lose events
            got.append([changed.get(k, (oks, [])) for k, oks in enumerate(records)])
        want = [[one_by_one.screen_events(oks, "predictions") for oks in preds],
                [one_by_one.screen_events(oks, "ground-truth") for oks in labels]]
        assert got == want
        assert (at_once.claims, at_once.refused_labels) == (one_by_one.claims, one_by_one.refused_labels)
        clashed = clashed or any(errors for role in got for _, errors in role)
    assert clashed  # the draws did clash


# -- isolation and safe defaults of the model store (items 4 and 7) ----------------------------


def _champion(store: ModelStore, model_id: str) -> Path:
    art = store.save(model_id, "v1", {"w": model_id}, {"created": 1.0, "metrics": {}, "parent_version": None})
    store.set_champion(model_id, art)
    return Path(art.path)


def test_a_tampered_artifact_quarantines_its_model_and_every_other_model_goes_on(tmp_path: Path) -> None:
    keyed = ModelStore(tmp_path, key=b"store-key")
    _champion(keyed, "good")
    _champion(keyed, "bad").with_suffix(".json").write_text("{}")  # the signature is gone
    updater = Updater(ModelStore(tmp_path, key=b"store-key"), UpdaterConfig(warmup_events=5))
    assert updater.observe("bad", None, {"x": 1.0}, 1, 10.0) == []  # used to raise: the worker crashed
    assert "not signed with the model store key" in updater.quarantined["bad"]
    updater.observe("good", None, {"x": 1.0}, 1, 10.0)
    assert updater.models["good"].champion == {"w": "good"}  # resumed
    request = {"event_id": "r1", "model_id": "bad", "model_version": None, "action": "update_requested",
               "alert_ids": ["a1"], "from_timestamp": 5.0, "timestamp": 6.0}
    assert updater.request_update(request) == []
    [letter] = updater.take_dead_letters()
    assert letter["reason"] == "model_quarantined" and "not signed" in letter["message"]
    DeadLetter.from_dict(letter)
    assert updater.take_dead_letters() == []


def test_without_a_key_the_store_never_unpickles_what_this_process_did_not_write(tmp_path: Path) -> None:
    planted = tmp_path / "m" / "v1.pkl"
    planted.parent.mkdir()
    planted.write_bytes(pickle.dumps({"w": "planted"}))
    digest = hashlib.sha256(planted.read_bytes()).hexdigest()
    with pytest.raises(UntrustedArtifactError, match="DRIFTSTREAM_MODEL_STORE_KEY is not set"):
        ModelStore(tmp_path).load(planted, digest)
    # an updater with no key starts such a model afresh rather than resuming the plant
    (tmp_path / "m" / "pointers.json").write_bytes(codec.dumps({"champion": {
        "path": str(planted), "sha256": digest, "version": "v1", "metadata": {}}}))
    updater = Updater(ModelStore(tmp_path), UpdaterConfig(warmup_events=5))
    updater.observe("m", None, {"x": 1.0}, 1, 10.0)
    assert updater.models["m"].champion is None and not updater.quarantined
    # what this process writes, it loads
    store = ModelStore(tmp_path)
    assert store.load(_champion(store, "n"), store.champion("n").sha256) == {"w": "n"}


def test_a_waiting_label_naming_another_model_is_refused_when_its_prediction_comes() -> None:
    stage, part = _stage(), PartitionJoin.fresh(0, WINDOW_S)
    table: dict[str, bytes] = {}

    def run(records: list[InputRecord]) -> JoinResult:
        result = stage.process(part, records)
        for key, value in stage.persist(part, result):
            if value is None:
                table.pop(key, None)
            else:
                table[key] = value
        return result

    run([_labels(0, ["p0", "p1"], ["b", "a"])])  # labels first, in their own batch
    assert "p0" in PartitionJoin.load(0, WINDOW_S, table.items()).state.entries["l"]
    result = run([_predictions(0, [NOW - 9, NOW - 8], model="a")])
    assert result.dead_letters == {"model_mismatch": 1}
    [(_, letter)] = result.outputs.messages["dead-letter"]
    assert letter["origin"] == {"topic": "ground-truth", "partition": 0, "offset": None, "index": None}
    assert "(which came after it) is model 'a'" in letter["message"]
    DeadLetter.from_dict(letter)
    assert result.batch is not None and result.batch.pairs["prediction_id"] == ["p1"]
    assert "p0" in part.state.entries["p"] and "p0" not in part.state.entries["l"]  # the prediction stands
    # the refusal is in the batch's delta: a recovered state holds no refused label either
    recovered = PartitionJoin.load(0, WINDOW_S, table.items()).state
    assert "p0" in recovered.entries["p"] and "p0" not in recovered.entries["l"]
    # the right label still joins it
    fixed = run([_labels(1, ["p0"], ["a"])])
    assert not fixed.dead_letters and fixed.batch is not None and fixed.batch.pairs["prediction_id"] == ["p0"]


# -- the bounds are settings, and a bad one is refused at start-up naming its key ---------------


@pytest.mark.parametrize("name", ["MAX_CLOCK_SKEW_S", "MAX_MODELS", "MAX_MODEL_SERIES", "MODEL_IDLE_EVICT_S", "WEBHOOK_QUEUE_SIZE",
                                  "WEBHOOK_BREAKER_FAILURES", "WEBHOOK_BREAKER_OPEN_S"])
def test_a_bound_set_to_zero_is_refused_naming_its_key(name: str) -> None:
    with pytest.raises(SettingsError, match=f"^DRIFTSTREAM_{name}=0(.0)?: expected"):
        Settings.from_env({f"DRIFTSTREAM_{name}": "0"})
