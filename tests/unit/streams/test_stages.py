"""The join stage's persisted state across a crash part-way through a batch's table writes."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from schemas import codec
from streams.monitor_config import MonitorConfig
from streams.simulate import Simulation, SimulationConfig
from streams.stages import InputRecord, JoinStage, Outputs, PartitionJoin

WINDOW_S = 3600.0


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


def _apply(table: dict[str, bytes], writes: Sequence[tuple[str, bytes | None]]) -> None:
    for key, value in writes:
        if value is None:
            table.pop(key, None)
        else:
            table[key] = value


def _monitor_inputs(stage: JoinStage, part: PartitionJoin, batch: list[InputRecord]) -> tuple[list[dict], list[tuple[str, bytes | None]]]:
    result = stage.process(part, batch)
    writes = stage.persist(part, result)
    return [value for _, value in result.outputs.messages.get("monitor-input", [])], writes


def _events(payloads: list[dict]) -> tuple[int, int]:
    return (sum(len(p["pred"]["ts"]) for p in payloads if p["pred"]),
            sum(len(p["pairs"]["ts"]) for p in payloads if p["pairs"]))


@pytest.mark.parametrize("landed", [0, 1, 2, "all but the meta"])
def test_a_crash_between_a_batchs_table_writes_loses_nothing(landed: int | str) -> None:
    """Whatever prefix of a batch's writes reached the changelog, the recovered partition
    produces every prediction and pair exactly once (the batch is redone or was committed)."""
    stage = _stage()
    batches = _batches(3000, 250)
    reference = PartitionJoin.fresh(0, WINDOW_S)
    expected = _events([p for b in batches for p in _monitor_inputs(stage, reference, b)[0]])

    table: dict[str, bytes] = {}
    part = PartitionJoin.fresh(0, WINDOW_S)
    published: list[dict] = []
    crash_at = 5
    for i, batch in enumerate(batches):
        payloads, writes = _monitor_inputs(stage, part, batch)
        if i == crash_at:
            # the meta record is the first write; a reordered log could hold the rest alone
            subset = writes[1:] if landed == "all but the meta" else writes[: int(landed)]
            _apply(table, subset)
            part = PartitionJoin.load(0, WINDOW_S, table.items())
            if part.outbox:  # the recovered worker publishes the last committed outbox again
                published.extend(v for _, v in Outputs.from_json(part.outbox).messages.get("monitor-input", []))
            # the consumer rewinds to before the crashed batch; the join skips what it covers
            redo, writes = _monitor_inputs(stage, part, batch)
            published.extend(redo)
        else:
            published.extend(payloads)
        _apply(table, writes)
    assert len(writes) >= 2
    # a monitor applies each (source, seq) once
    unique = {(p["source"], p["seq"]): p for p in published}
    assert _events(list(unique.values())) == expected
    assert expected[0] > 1000 and expected[1] > 500


def test_deltas_beyond_the_committed_meta_are_ignored() -> None:
    stage = _stage()
    batches = _batches(1500, 200)
    table: dict[str, bytes] = {}
    part = PartitionJoin.fresh(0, WINDOW_S)
    for batch in batches[:3]:
        _apply(table, stage.persist(part, stage.process(part, batch)))
    committed = PartitionJoin.load(0, WINDOW_S, table.items())
    extra = stage.persist(part, stage.process(part, batches[3]))
    _apply(table, extra[1:])  # everything of the fourth batch but its commit
    recovered = PartitionJoin.load(0, WINDOW_S, table.items())
    assert recovered.offsets == committed.offsets
    assert recovered.state.seq == committed.state.seq == 3
    assert recovered.state.entries == committed.state.entries
