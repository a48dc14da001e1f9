"""The canonical order: frontiers, reorder buffers, and offline runs that agree whatever the
partitions, batching and interleaving of the two input topics."""

from __future__ import annotations

import math
import random
from typing import Any

import orjson
import pytest

from streams.offline.pipeline import OfflinePipeline
from streams.offline.simulate import Simulation, SimulationConfig
from streams.pipeline.alerting import SEVERITIES
from streams.pipeline import event_time
from streams.pipeline.event_time import Frontier, ReorderBuffer, progress_payload


def test_the_frontier_waits_for_every_partition_and_leaves_idle_ones_out() -> None:
    frontier = Frontier()
    assert frontier.value() == -math.inf
    frontier.update(progress_payload(0, 3, 5.0, False))
    frontier.update(progress_payload(1, 3, 9.0, False))
    assert frontier.value() == -math.inf  # partition 2 has not reported
    frontier.update(progress_payload(2, 3, None, True))
    assert frontier.value() == 5.0
    frontier.update(progress_payload(0, 3, 3.0, False))  # read again after a rewind: never back
    assert frontier.value() == 5.0
    frontier.update(progress_payload(0, 3, None, True))
    frontier.update(progress_payload(1, 3, None, True))
    assert frontier.value() == math.inf
    restored = Frontier.from_state(orjson.loads(orjson.dumps(frontier.to_state())))
    assert restored.progress == frontier.progress and restored.value() == math.inf


def test_a_reorder_buffer_releases_below_the_frontier_in_canonical_order() -> None:
    buffer = ReorderBuffer()
    buffer.add((0, 1), 10, {"pred": {"pid": ["c", "a"], "ts": [3.0, 1.0], "features": {"x": [3, 1]}},
                            "pairs": {"pid": ["z"], "ts": [2.0], "label": [1]}}, again=False)
    buffer.add((1, 1), 11, {"pred": {"pid": ["b"], "ts": [1.0], "features": {"y": ["u"]}}}, again=False)
    released = buffer.release(2.0)  # strictly below: an event at 2.0 may still come
    assert released == {"pred": {"pid": ["a", "b"], "ts": [1.0, 1.0], "features": {"x": [1, None], "y": [None, "u"]}}}
    assert buffer.oldest_offset() == 10  # c and z of (0, 1) are still held
    assert buffer.add((0, 2), 12, {"pred": {"pid": ["d"], "ts": [0.5], "features": {}}}, again=False) == (1, 1)  # late
    released = buffer.release(math.inf)
    assert released is not None and released["pred"]["pid"] == ["d", "c"] and released["pairs"]["pid"] == ["z"]
    assert len(buffer) == 0 and buffer.release(math.inf) is None and buffer.oldest_offset() is None


@pytest.mark.parametrize("seed", range(6))
def test_whatever_the_chunks_and_frontiers_the_releases_are_the_events_in_canonical_order(seed: int) -> None:
    """Chunks in any order, with equal times, cut by many frontiers (a reordered chunk is
    cut often enough to be compacted): the releases, end to end, are every event once,
    sorted by ``(ts, pid)``, with each event's columns still its own."""
    rng = random.Random(seed)
    buffer, events, frontier, released = ReorderBuffer(), [], 0.0, []
    for payload in range(40):
        n = rng.randint(1, 60)
        times = [float(rng.randint(0, 300)) for _ in range(n)]
        if rng.random() < 0.4:
            times.sort()
        times = [max(t, frontier) for t in times]  # none late: late events apply ahead of their turn
        pids = [f"p{payload}-{i}" for i in range(n)]
        events += [(t, pid) for t, pid in zip(times, pids)]
        buffer.add((payload % 4, payload), payload, {"pred": {"pid": pids, "ts": times, "features": {"x": list(pids)}}},
                   again=False)
        frontier = min(300.0, frontier + rng.choice([0.0, 1.0, 3.0, 8.0]))
        batch = buffer.release(frontier)
        if batch:
            assert batch["pred"]["features"]["x"] == batch["pred"]["pid"]
            released += list(zip(batch["pred"]["ts"], batch["pred"]["pid"]))
    released += list(zip(*(lambda b: (b["ts"], b["pid"]))(buffer.release(math.inf)["pred"])))  # type: ignore[index]
    assert released == sorted(events) and len(buffer) == 0


@pytest.mark.parametrize("seed", range(3))
def test_a_small_release_merged_in_python_equals_the_numpy_merge(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """A release of a few events is ordered in Python (:data:`event_time.SMALL`): chunks that
    overlap in time, equal times decided by the ids, reordered chunks cut in two and features
    missing from some chunks give the very columns (and key order) the numpy path gives."""
    rng = random.Random(seed)
    fast = 0
    for _ in range(400):
        chunks = []
        for source in range(rng.randint(1, 5)):
            n = rng.randint(1, 10)
            columns = {"pid": [f"p{rng.randint(0, 40)}" for _ in range(n)],
                       "ts": [rng.choice([rng.random() * 10, float(rng.randint(0, 12))]) for _ in range(n)],
                       "features": {"x": list(range(n))} if rng.random() < 0.7 else {"y": ["u"] * n}}
            chunk = event_time._Chunk.of(columns, (source, 0), 0)
            if n > 1 and rng.random() < 0.5:
                chunk = chunk.cut(rng.randint(1, n - 1))[rng.randint(0, 1)]
            chunks.append(chunk)
        fast += event_time._small_order(sorted(chunks, key=lambda c: float(c.ts[0]))) is not None
        small = event_time._merge(list(chunks))
        with monkeypatch.context() as patch:
            patch.setattr(event_time, "SMALL", -1)
            assert small == event_time._merge(list(chunks))
        assert list(small["features"]) == list(event_time._merge(list(chunks))["features"])
    assert fast > 100  # the Python path was taken, not only its fallback at equal times


def test_a_payload_read_again_after_a_recovery_is_taken_only_past_the_last_event_released() -> None:
    """The held events are not saved: a recovery reads their payloads again from the log,
    and the restored buffer takes what the saved state had not released, once."""
    buffer = ReorderBuffer()
    payload = {"pred": {"pid": ["a", "b", "c"], "ts": [1.0, 2.0, 3.0], "features": {}}}
    buffer.add((0, 7), 40, payload, again=False)
    assert buffer.release(2.5)["pred"]["pid"] == ["a", "b"]  # type: ignore[index]
    assert buffer.add((0, 7), 40, payload, again=True) == (0, 0)  # held already: sent again by the join
    restored = ReorderBuffer.from_state(orjson.loads(orjson.dumps(buffer.to_state())))
    assert len(restored) == 0 and restored.add((0, 7), 40, payload, again=True) == (1, 0)
    assert restored.release(math.inf)["pred"]["pid"] == ["c"]  # type: ignore[index]
    assert restored.add((0, 7), 40, payload, again=True) == (0, 0)  # every event released: nothing


def _models() -> list[tuple[str, dict[str, Any]]]:
    items = []
    for k in range(3):  # event times two days apart
        config = SimulationConfig(events=4_000, seed=40 + k, model_id=f"m{k}", id_prefix=f"m{k}-",
                                  start=1_700_000_000.0 + 2 * 86_400.0 * k, event_rate=20.0,
                                  feature_drift_at=1_500, concept_drift_at=2_500, label_delay_s=(1.0, 200.0))
        items += Simulation(config).in_event_time_order()
    items.sort(key=lambda item: item[1]["timestamp"])
    return items


def _interleaved(items: list[tuple[str, dict[str, Any]]], rng: random.Random) -> list[tuple[str, dict[str, Any]]]:
    """Each topic keeps its own order, but one runs up to a few thousand events ahead of the
    other, as two topics read at their own paces (a backlog, a slow fetch)."""
    topics = {role: [e for r, e in items if r == role] for role in ("predictions", "ground-truth")}
    out: list[tuple[str, dict[str, Any]]] = []
    while any(topics.values()):
        role = rng.choice([r for r, events in topics.items() if events])
        take = rng.choice([1, 50, 700, 3_000])
        out += [(role, e) for e in topics[role][:take]]
        topics[role] = topics[role][take:]
    return out


@pytest.mark.parametrize("partitions", [4, 12])
def test_partitions_batching_and_read_paces_change_no_drift_event_or_alert(partitions: int) -> None:
    items = _models()
    reference = OfflinePipeline(window_s=86_400.0)
    reference.feed_events(items)
    expected = reference.finish()
    assert len(expected.alerts) >= 6 and expected.counts["join:late"] == expected.counts["join:unmatched"] == 0
    rng = random.Random(partitions)
    pipe = OfflinePipeline(window_s=86_400.0, partitions=partitions)
    shuffled = _interleaved(items, rng)
    at = 0
    while at < len(shuffled):
        size = rng.choice([7, 333, 2_000])
        pipe.feed_events(shuffled[at:at + size], batch_size=size)
        at += size
    got = pipe.finish()
    assert got.counts["join:late"] == got.counts["join:unmatched"] == got.counts["late"] == 0
    assert got.alerts == expected.alerts
    assert sorted(got.drift_events, key=lambda e: e["event_id"]) == sorted(expected.drift_events, key=lambda e: e["event_id"])


def test_an_idle_partition_vouches_only_for_what_the_others_had_reached_a_while_ago() -> None:
    """A producer writes every partition: what it wrote to one idle_after_s ago, it has
    written to the others by now. An idle partition holds the frontier no further back than
    that, and not at all once every partition is idle."""
    frontier = Frontier(idle_after_s=0.25)
    frontier.update(progress_payload(0, 2, 50.0, False), now=0.0)
    frontier.update(progress_payload(1, 2, 40.0, True), now=0.0)
    frontier.update(progress_payload(0, 2, 100.0, False), now=1.0)  # events of the moment on 0
    assert frontier.value(now=1.1) == 50.0  # 1 may still bring what 0 brought at 1.0
    assert frontier.value(now=1.3) == 100.0
    frontier.update(progress_payload(0, 2, 100.0, True), now=1.4)
    assert frontier.value(now=1.4) == math.inf  # each waited with nothing unread before it said so


def test_a_frontier_says_when_time_alone_moves_it() -> None:
    """The monitors release what an idle partition's wait frees at that moment, not at the
    next tick of a timer."""
    frontier = Frontier(idle_after_s=0.25)
    frontier.update(progress_payload(0, 2, 50.0, False), now=0.0)
    frontier.update(progress_payload(1, 2, 40.0, False), now=0.0)
    assert frontier.due(now=0.1) is None  # none idle: only progress moves it
    frontier.update(progress_payload(1, 2, 40.0, True), now=0.0)
    frontier.update(progress_payload(0, 2, 100.0, False), now=1.0)
    frontier.update(progress_payload(0, 2, 120.0, False), now=1.1)
    assert frontier.due(now=1.2) == 1.25
    assert frontier.value(now=1.2499) == 50.0 and frontier.value(now=1.25) == 100.0
    assert frontier.due(now=1.25) == pytest.approx(1.35)
    assert frontier.value(now=1.35) == 120.0
    assert frontier.due(now=1.35) is None  # all it has seen counts already


def test_an_incidents_later_publications_never_move_its_start_back_and_only_escalate() -> None:
    pipe = OfflinePipeline(window_s=86_400.0, partitions=4)
    pipe.feed_events(_interleaved(_models(), random.Random(3)), batch_size=500)
    open_: dict[str, list[dict[str, Any]]] = {}
    for alert in pipe.finish().alerts:
        if alert["status"] != "resolved":
            open_.setdefault(alert["alert_id"], []).append(alert)
    assert any(len(published) > 1 for published in open_.values())  # incidents that escalated
    for published in open_.values():
        assert [a["status"] for a in published] == ["firing"] + ["escalated"] * (len(published) - 1)
        assert {(a["timestamp"], a["position"]) for a in published} == {(published[0]["timestamp"], published[0]["position"])}
        ranks = [SEVERITIES.index(a["severity"]) for a in published]
        assert ranks == sorted(ranks, reverse=True) and len(set(ranks)) == len(ranks)  # each one a rise
