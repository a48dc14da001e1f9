"""Standing adversarial tests (issue #28): no record can stall, poison or exhaust the worker.

Each test feeds the hostile input through the same stage code the worker runs, and checks
both that the hostile part is dead-lettered with its reason and that the rest goes on.
"""

from __future__ import annotations

from schemas import codec
from streams.clock import CLOCK_SKEW
from streams.monitor_config import MonitorConfig
from streams.offline import OfflinePipeline
from streams.stages import InputRecord, JoinStage, PartitionJoin

WINDOW_S = 100.0
#: the records' Kafka timestamps, in ms: what the clock-skew check goes by
RECORD_MS = 1_700_000_000_000
NOW = RECORD_MS / 1000
YEAR_9999 = 253_402_214_400.0


def _stage(skew_s: float = 60.0) -> JoinStage:
    return JoinStage(window_s=WINDOW_S, max_message_bytes=1_000_000, monitor_config=MonitorConfig.from_mapping({}),
                     clock=lambda: 0.0, max_clock_skew_s=skew_s, wall_clock=lambda: NOW)


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


def test_a_record_without_a_timestamp_is_checked_against_the_wall_clock() -> None:
    stage, part = _stage(skew_s=60.0), PartitionJoin.fresh(0, WINDOW_S)
    result = stage.process(part, [_predictions(0, [NOW, NOW + 3600], record_ms=None)])
    assert result.dead_letters == {CLOCK_SKEW: 1}


def test_the_offline_pipeline_dead_letters_the_same_skewed_events_as_the_worker() -> None:
    records = [_predictions(0, [NOW - 5, YEAR_9999, NOW]), _predictions(1, [NOW + 7200], start=3)]
    stage, part = _stage(skew_s=3600.0), PartitionJoin.fresh(0, WINDOW_S)
    live = [value for r in records for _, value in stage.process(part, [r]).outputs.messages.get("dead-letter", [])]
    offline = OfflinePipeline(window_s=WINDOW_S, max_clock_skew_s=3600.0)
    offline.feed_records(records)
    assert [d["dead_letter_id"] for d in offline.result.dead_letters] == [d["dead_letter_id"] for d in live]
    assert [d["reason"] for d in live] == [CLOCK_SKEW, CLOCK_SKEW]
