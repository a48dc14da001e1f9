"""The updater's inputs routed by model onto ``updater-input`` partitions, and each
partition's updater applying them once, checkpointed and resumed (issue #25, items 4 and 5)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from schemas import codec
from schemas.ids import stable_id
from streams.offline.simulate import Simulation, SimulationConfig, event_time_of
from schemas.partitioning import partition_for
from streams.updater.model_store import ModelStore
from streams.updater.ownership import PartitionUpdater
from streams.updater.routing import CHUNK_EVENTS, Routed, Router
from streams.updater.decisions import Updater, UpdaterConfig

SIM = SimulationConfig(events=3_000, seed=7, concept_drift_at=1_500, feature_drift_at=None)
OTHER = SimulationConfig(events=200, seed=8, concept_drift_at=None, feature_drift_at=None, model_id="fraud-model", id_prefix="f")
CONFIG = UpdaterConfig(warmup_events=300, training_events=300, evaluation_events=300)


def _request(at: int) -> dict[str, Any]:
    ts = event_time_of(SIM, at)
    return {"event_id": stable_id("alert-1", "update_requested"), "model_id": SIM.model_id, "model_version": None,
            "action": "update_requested", "reason": "concept drift", "alert_ids": ["alert-1"], "from_timestamp": ts,
            "to_timestamp": ts, "metrics": {}, "new_version": None, "artifact_path": None, "artifact_sha256": None, "timestamp": ts}


def _records(sim: SimulationConfig, *, name_models: bool = True) -> list[tuple[str, int, int, bytes | None]]:
    """The simulation as source records: one batch record per topic, the labels naming
    their model or not."""
    preds, labels = Simulation(sim).generate()
    if not name_models:
        labels = [{k: v for k, v in label.items() if k != "model_id"} for label in labels]
    return [("predictions", 0, 0, codec.dumps(preds)), ("ground-truth", 0, 0, codec.dumps(labels))]


def test_each_model_goes_to_its_own_partition_with_its_labels_and_requests_after_its_data() -> None:
    router = Router(partitions=4, max_bytes=50_000_000)
    preds, labels = Simulation(SIM).generate()
    routed = router.route([("model-updates", 0, 3, codec.dumps(_request(10))), ("model-updates", 0, 4, b"{not json"),
                           *_records(SIM), *_records(OTHER), ("predictions", 1, 9, None)])
    assert router.rejected_records == 1
    mine, other = partition_for(SIM.model_id, 4), partition_for(OTHER.model_id, 4)
    assert mine != other  # else the test shows nothing
    assert {r.partition for r in routed} == {mine, other}
    assert [r.origin[0] for r in routed if r.partition == mine][-1] == "model-updates"  # data first
    events = [e for r in routed if r.partition == mine and r.origin[0] != "model-updates" for e in orjson.loads(r.value)]
    assert {e["model_id"] for e in events} == {SIM.model_id} and len(events) == len(preds) + len(labels)
    assert all(r.key == SIM.model_id.encode() for r in routed if r.partition == mine)
    assert all(Routed.origin_of(r.headers()) == r.origin for r in routed)


def test_a_record_of_several_models_is_split_by_partition_in_bounded_parts() -> None:
    preds = Simulation(SIM).generate()[0][:1_200] + Simulation(OTHER).generate()[0]
    routed = Router(partitions=4, max_bytes=50_000_000).route([("predictions", 2, 40, codec.dumps(preds))])
    mine = [r for r in routed if r.partition == partition_for(SIM.model_id, 4)]
    assert [r.origin for r in mine] == [("predictions", 2, 40, part) for part in range(3)]
    assert [len(orjson.loads(r.value)) for r in mine] == [CHUNK_EVENTS, CHUNK_EVENTS, 200]


def test_a_label_without_its_model_follows_its_prediction_or_goes_everywhere() -> None:
    router = Router(partitions=3, max_bytes=50_000_000)
    [preds, labels] = _records(SIM, name_models=False)
    assert {r.partition for r in router.route([preds, labels])} == {partition_for(SIM.model_id, 3)}
    fresh = Router(partitions=3, max_bytes=50_000_000)  # a router restarted after the predictions went
    to = fresh.route([labels])
    assert {r.partition for r in to} == {0, 1, 2} and {r.key for r in to} == {None}


def _owner(store: ModelStore) -> PartitionUpdater:
    return PartitionUpdater.resume(0, Updater(store, CONFIG), store, max_bytes=50_000_000)


def _stream() -> list[tuple[int, tuple[str, int, int, int], bytes]]:
    """``updater-input`` records of one partition: the simulation in small source records
    (its events in event-time order), the request after 1,700 of them."""
    items = Simulation(SIM).in_event_time_order()
    router = Router(partitions=1, max_bytes=50_000_000)
    sources = [(role, 0, i, codec.dumps(event)) for i, (role, event) in enumerate(items)]
    sources.insert(1_700, ("model-updates", 0, 0, codec.dumps(_request(1_600))))
    routed = [r for source in sources for r in router.route([source])]
    return [(offset, r.origin, r.value) for offset, r in enumerate(routed)]


def test_a_partition_resumed_from_its_checkpoint_decides_as_one_that_never_stopped(tmp_path: Path) -> None:
    stream = _stream()
    straight = ModelStore(tmp_path / "straight")
    owner = _owner(straight)
    expected = [d for record in stream for d in owner.apply(*record)]
    assert [d["action"] for d in expected] == ["challenger_started", "promoted"]

    store = ModelStore(tmp_path / "crashed")
    decisions: list[dict[str, Any]] = []
    owner = _owner(store)
    for i, record in enumerate(stream):
        decisions += owner.apply(*record)
        if i in (900, 2_500):  # the champion warmed up; the challenger half trained
            owner.save(store)
        if i in (1_100, 2_900):  # a SIGKILL: what was applied after the checkpoint is lost
            owner = _owner(store)
            assert owner.offset in (900, 2_500)
            for again in stream[owner.offset + 1:i + 1]:
                decisions += owner.apply(*again)
    unique = list({d["event_id"]: d for d in decisions}.values())
    assert [(d["action"], d["event_id"], d["new_version"]) for d in unique] == \
        [(d["action"], d["event_id"], d["new_version"]) for d in expected]
    assert [d["metrics"] for d in unique] == [d["metrics"] for d in expected]
    assert store.artifact(SIM.model_id, "v2").metadata["parent_version"] == "v1"


def test_a_record_the_router_sent_again_is_applied_once(tmp_path: Path) -> None:
    stream = _stream()[:400]
    owner = _owner(ModelStore(tmp_path))
    for record in stream:
        owner.apply(*record)
    learned = owner.updater.models[SIM.model_id].learned
    # a restarted router sends the last 100 source records again, at new updater-input offsets
    for offset, (_, origin, value) in enumerate(stream[-100:], start=len(stream)):
        assert owner.apply(offset, origin, value) == []
    assert owner.updater.models[SIM.model_id].learned == learned and owner.offset == len(stream) + 99


def test_requests_promotions_and_rollbacks_reach_the_owner_and_other_updates_do_not(tmp_path: Path) -> None:
    """A rollback or promotion decided elsewhere (the CLI) goes to the model's owner, which
    follows it; the updater's other actions (and ``served``) concern the servers and the monitors."""
    rolled = {**_request(10), "event_id": "cli-1", "action": "rolled_back", "new_version": "v1"}
    promoted = {**_request(10), "event_id": "cli-2", "action": "promoted", "new_version": "v1"}
    others = [{**_request(10), "event_id": f"e-{action}", "action": action}
              for action in ("challenger_started", "rejected", "served", "rebaseline_requested", "comparison")]
    router = Router(partitions=4, max_bytes=50_000_000)
    routed = router.route([("model-updates", 0, i, codec.dumps(e)) for i, e in enumerate([_request(10), rolled, promoted, *others])])
    assert [orjson.loads(r.value)["action"] for r in routed] == ["update_requested", "rolled_back", "promoted"]
    assert {r.partition for r in routed} == {partition_for(SIM.model_id, 4)} and router.rejected_records == 0
    owner = _owner(ModelStore(tmp_path))
    owner.apply(0, routed[1].origin, routed[1].value)
    assert owner.updater.models[SIM.model_id].seen[-1] == "cli-1"  # handed to the updater (nothing to roll back to here)
    assert owner.take_applied() == {"model-updates": 1} and owner.take_applied() == {}
