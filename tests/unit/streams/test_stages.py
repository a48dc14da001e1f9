"""The join stage's persisted state across a crash part-way through a batch's table writes."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from schemas import codec
from streams.offline.simulate import Simulation, SimulationConfig
from streams.pipeline.monitor_config import MonitorConfig
from streams.pipeline.stages import InputRecord, JoinStage, Outputs, PartitionJoin

WINDOW_S = 10.0
Writes = Sequence[tuple[str, bytes | None]]


def _stage() -> JoinStage:
    return JoinStage(window_s=WINDOW_S, max_message_bytes=1_000_000,
                     monitor_config=MonitorConfig.from_mapping({}), clock=lambda: 0.0)


def _batches(events: int, size: int) -> list[list[InputRecord]]:
    """One event per record, offsets per topic, cut into batches of ``size`` records."""
    offsets = {"predictions": -1, "ground-truth": -1}
    records = []
    for role, event in Simulation(SimulationConfig(events=events, seed=5)).in_event_time_order():
        offsets[role] += 1
        records.append(InputRecord(role, role, 0, offsets[role], codec.dumps(event)))
    return [records[i:i + size] for i in range(0, len(records), size)]


def _apply(table: dict[str, bytes], writes: Writes) -> None:
    for key, value in writes:
        if value is None:
            table.pop(key, None)
        else:
            table[key] = value


def _run_batch(stage: JoinStage, part: PartitionJoin, batch: list[InputRecord]) -> tuple[list[dict], Writes]:
    result = stage.process(part, batch)
    return [value for _, value in result.outputs.messages.get("monitor-input", [])], stage.persist(part, result)


def _events(payloads: list[dict]) -> tuple[int, int, int]:
    return (sum(len(p["pred"]["ts"]) for p in payloads if p["pred"]),
            sum(len(p["pairs"]["ts"]) for p in payloads if p["pairs"]),
            sum(p["join"]["expired"] for p in payloads))


def _run_with_crash(batches: list[list[InputRecord]], crash_at: int, landed: int) -> tuple[tuple[int, int, int], dict[str, bytes]]:
    """Run ``batches``; at ``crash_at`` only part of the batch's writes land, a new
    worker loads the table, makes its redo writes and reprocesses the batch. Returns what
    the monitors applied (each (source, seq) once) and the final table."""
    stage = _stage()
    table: dict[str, bytes] = {}
    part = PartitionJoin.fresh(0, WINDOW_S)
    published: list[dict] = []
    for i, batch in enumerate(batches):
        payloads, writes = _run_batch(stage, part, batch)
        if i == crash_at:
            _apply(table, writes[:landed])  # a changelog keeps one producer's write order: a prefix lands
            part = PartitionJoin.load(0, WINDOW_S, table.items())
            _apply(table, part.redo)
            if part.outbox:  # the new worker publishes the last committed outbox again
                published.extend(v for _, v in Outputs.from_json(part.outbox).messages.get("monitor-input", []))
            # the consumer resumes before the crashed batch; the join skips what it covers
            payloads, writes = _run_batch(stage, part, batch)
        published.extend(payloads)
        _apply(table, writes)
    unique = {(p["source"], p["seq"]): p for p in published}  # a monitor applies each once
    return _events(list(unique.values())), table


def _crash_batch(batches: list[list[InputRecord]]) -> int:
    """A batch that retires deltas (so its writes include tombstones)."""
    stage, part = _stage(), PartitionJoin.fresh(0, WINDOW_S)
    for i, batch in enumerate(batches):
        _, writes = _run_batch(stage, part, batch)
        if i > 2 and len(writes) >= 3 and writes[0][1] is not None:
            return i
    raise AssertionError("no batch retired a delta")


@pytest.mark.parametrize("landed", [0, 1, 2, 3])  # of delta, meta, tombstone
def test_a_crash_between_a_batchs_table_writes_loses_nothing(landed: int) -> None:
    """Whatever part of a batch's writes reached the changelog, the recovered partition
    produces every prediction, pair and expiry exactly once, and its table ends up as an
    uninterrupted run's."""
    batches = _batches(4000, 150)
    crash_at = _crash_batch(batches)
    expected, expected_table = _run_with_crash(batches, -1, 0)
    got, table = _run_with_crash(batches, crash_at, landed)
    assert got == expected
    assert expected[0] == 4000 and expected[1] > 1000 and expected[2] > 0
    assert set(table) == set(expected_table)  # nothing left over to come back later


def test_deltas_beyond_the_committed_meta_are_ignored_and_deleted() -> None:
    stage = _stage()
    batches = _batches(1500, 200)
    table: dict[str, bytes] = {}
    part = PartitionJoin.fresh(0, WINDOW_S)
    for batch in batches[:3]:
        _apply(table, stage.persist(part, stage.process(part, batch)))
    committed = PartitionJoin.load(0, WINDOW_S, table.items())
    assert committed.redo == []
    _apply(table, stage.persist(part, stage.process(part, batches[3]))[:1])  # its delta, not its commit
    recovered = PartitionJoin.load(0, WINDOW_S, table.items())
    assert recovered.offsets == committed.offsets
    assert recovered.state.seq == committed.state.seq == 3
    assert recovered.state.entries == committed.state.entries
    assert recovered.redo == [("0:000000000004", None)]


def test_a_settled_partition_loads_the_same_state_without_an_outbox_to_publish_again() -> None:
    """A hand-over marks the last batch's outputs delivered: the next owner loads the same
    state, offsets and watermark, and has nothing to publish again; settling twice writes
    nothing the second time."""
    stage = _stage()
    table: dict[str, bytes] = {}
    part = PartitionJoin.fresh(0, WINDOW_S)
    for batch in _batches(1500, 200)[:4]:
        _apply(table, stage.persist(part, stage.process(part, batch)))
    before = PartitionJoin.load(0, WINDOW_S, table.items())
    assert before.outbox and Outputs.from_json(before.outbox).messages["monitor-input"]
    settled = stage.settle(part)
    assert [key for key, _ in settled] == ["0:meta"]
    _apply(table, settled)
    after = PartitionJoin.load(0, WINDOW_S, table.items())
    assert after.outbox is None and after.redo == []
    assert (after.offsets, after.state.seq, after.state.watermark) == (before.offsets, before.state.seq, before.state.watermark)
    assert after.state.entries == before.state.entries
    assert stage.settle(part) == []


def test_each_models_payload_holds_its_new_predictions_and_pairs_row_for_row() -> None:
    # two models in one column batch, copies of predictions already seen, a label waiting:
    # the payload gathers rows, and each row's fields must stay those of its prediction
    def preds(ids: list[int]) -> bytes:
        return codec.dumps({"columns": {
            "prediction_id": [f"p{i}" for i in ids], "model_id": ["a" if i % 2 else "b" for i in ids],
            "timestamp": [float(i) for i in ids], "prediction": [i % 3 for i in ids],
            "score": [i / 100 for i in ids], "features": {"x": [i * 10.0 for i in ids], "c": [f"c{i}" for i in ids]},
        }})

    labels = codec.dumps({"columns": {"prediction_id": ["p4", "p7"], "label": [1, 0], "timestamp": [20.0, 21.0]}})
    stage, part = _stage(), PartitionJoin.fresh(0, 100.0)
    stage.process(part, [InputRecord("predictions", "predictions", 0, 0, preds([1, 2, 3]))])
    result = stage.process(part, [
        InputRecord("ground-truth", "ground-truth", 0, 0, codec.dumps({"columns": {"prediction_id": ["p6"], "label": [1], "timestamp": [5.5]}})),
        InputRecord("predictions", "predictions", 0, 1, preds([7, 2, 4, 3, 6, 5])),
        InputRecord("ground-truth", "ground-truth", 0, 1, labels),
    ])
    payloads = {key: value for key, value in result.outputs.messages["monitor-input"]}
    new = {"a": [5, 7], "b": [4, 6]}  # p2 and p3 are copies; event-time order
    for model, ids in new.items():
        pred = next(p for p in payloads.values() if p["model_id"] == model)["pred"]
        assert pred["pid"] == [f"p{i}" for i in ids]
        assert (pred["ts"], pred["prediction"], pred["score"]) == ([float(i) for i in ids], [i % 3 for i in ids], [i / 100 for i in ids])
        assert pred["features"] == {"x": [i * 10.0 for i in ids], "c": [f"c{i}" for i in ids]}
    pairs = {p["model_id"]: p["pairs"] for p in payloads.values() if p["pairs"]}
    assert {model: (p["pid"], p["label"], p["score"], p["label_ts"]) for model, p in pairs.items()} == {
        "a": (["p7"], [0], [0.07], [21.0]), "b": (["p6", "p4"], [1, 1], [0.06, 0.04], [5.5, 20.0]),
    }


def test_another_record_at_the_last_applied_offset_is_a_replaced_log_and_nothing_of_the_batch_applies() -> None:
    """A replay re-reads the record applied at the last offset, with its timestamp; another
    log (a restarted memory-only broker) has another record there, and its records after
    it would be joined onto this state. The check survives a reload from the table."""
    stage = _stage()
    part = PartitionJoin.fresh(0, WINDOW_S)
    [batch] = _batches(6, 100)
    stamped = [InputRecord(r.role, r.topic, r.partition, r.offset, r.value, 1_000 + i) for i, r in enumerate(batch)]
    table: dict[str, bytes] = {}
    _apply(table, stage.persist(part, stage.process(part, stamped)))
    part = PartitionJoin.load(0, WINDOW_S, table.items())
    last = max((r for r in stamped if r.role == "predictions"), key=lambda r: r.offset)
    replay = stage.process(part, [last])
    assert replay.replaced is None and replay.skipped_records == 1
    new_log = [InputRecord(last.role, last.topic, 0, last.offset, last.value, 9_999),
               InputRecord(last.role, last.topic, 0, last.offset + 1, last.value, 10_000)]
    result = stage.process(part, new_log)
    assert result.replaced == (last.topic, last.offset)
    assert not result.events and not result.outputs.messages and part.offsets[last.role] == last.offset
    unstamped = [InputRecord(last.role, last.topic, 0, last.offset, last.value)]  # offline runs: no check
    assert stage.process(part, unstamped).replaced is None
