"""The SDK against the real embedded broker, and against kcat, a client we did not write."""

from __future__ import annotations

import asyncio

import pytest

from schemas import codec
from schemas.partitioning import partition_for
from streams.offline.simulate import Simulation, SimulationConfig
from streams.runtime.topics import ensure_topics
from streams.sdk.client import DriftstreamClient, SyncDriftstreamClient, subscribe
from streams.settings import Settings

from .support import produce_raw

pytestmark = pytest.mark.integration

async def _read(settings: Settings, role: str, expected: int) -> list[dict]:
    got: list[dict] = []
    async for value in subscribe(settings, settings.topic(role), from_beginning=True, follow=False, idle_timeout_s=3.0):
        got.append(value)
        if len(got) >= expected:
            break
    return got


def test_sdk_publishes_and_reads_back(settings: Settings) -> None:
    asyncio.run(ensure_topics(settings))
    preds, labels = Simulation(SimulationConfig(events=1200, seed=1)).generate()

    async def run() -> tuple[list[dict], list[dict]]:
        async with DriftstreamClient(settings, batch_size=100) as client:
            assert await client.publish_predictions(preds) == 1200
            assert await client.publish_ground_truth(labels) == len(labels)
        return await _read(settings, "predictions", 1200), await _read(settings, "ground-truth", len(labels))

    got_preds, got_labels = asyncio.run(run())
    assert sorted(p["prediction_id"] for p in got_preds) == sorted(p["prediction_id"] for p in preds)
    assert sorted(g["prediction_id"] for g in got_labels) == sorted(g["prediction_id"] for g in labels)
    assert got_preds[0]["features"] == next(p for p in preds if p["prediction_id"] == got_preds[0]["prediction_id"])["features"]


def test_sync_client_publishes(settings: Settings) -> None:
    asyncio.run(ensure_topics(settings))
    preds, _ = Simulation(SimulationConfig(events=10, seed=2)).generate()
    with SyncDriftstreamClient(settings) as client:
        assert client.publish_prediction(preds[0]) == 1
        assert client.publish_predictions(preds[1:]) == 9
    assert len(asyncio.run(_read(settings, "predictions", 10))) == 10


def test_sync_single_events_are_queued_sent_in_batches_and_flushed(settings: Settings) -> None:
    """A model server's call queues the event (no broker round trip); flush waits for the
    acks, a bad event raises at its call, and a failed delivery at the next call or flush."""
    from streams.exceptions import PublishError

    asyncio.run(ensure_topics(settings))
    preds, labels = Simulation(SimulationConfig(events=1200, seed=3)).generate()
    with SyncDriftstreamClient(settings, linger_s=0.05) as client:
        for event in preds:
            assert client.publish_prediction(event) == 1
        with pytest.raises(PublishError, match="missing required field 'model_id'"):
            client.publish_prediction({"prediction_id": "x", "timestamp": 1, "prediction": 1})
        for event in labels[:10]:
            client.publish_label(event)
        client.flush()
        assert client._unacked == 0  # everything queued was acked
    got = asyncio.run(_read(settings, "predictions", len(preds)))
    assert sorted(p["prediction_id"] for p in got) == sorted(p["prediction_id"] for p in preds)
    assert len(asyncio.run(_read(settings, "ground-truth", 10))) == 10

    # valid, but larger than a record may be: found only when the batch is encoded, in the background
    small = settings.replace(max_message_bytes=4096)
    client = SyncDriftstreamClient(small, linger_s=0.01)
    try:
        client.publish_prediction({**preds[0], "features": {**preds[0]["features"], "note": "x" * 8000}})
        with pytest.raises(PublishError, match="record limit"):
            client.flush()
        client.publish_prediction(preds[1])  # the client goes on after a failure
        client.flush()
    finally:
        client.close()


def test_sdk_rejects_invalid_event_at_the_call_site(settings: Settings) -> None:
    from streams.exceptions import PublishError

    asyncio.run(ensure_topics(settings))

    async def run() -> None:
        async with DriftstreamClient(settings) as client:
            await client.publish_prediction({"prediction_id": "x", "timestamp": 1, "prediction": 1})

    with pytest.raises(PublishError, match="predictions event #0: predictions: missing required field 'model_id'"):
        asyncio.run(run())


def test_subscribe_hands_on_a_malformed_column_batch_instead_of_raising(settings: Settings) -> None:
    asyncio.run(ensure_topics(settings))
    malformed = {"columns": {"prediction_id": ["a", "b"], "timestamp": [1.0]}}
    produce_raw(settings, settings.topic("predictions"), [
        (b"k", codec.dumps(malformed)),
        (b"k", codec.dumps({"columns": {"prediction_id": ["c"], "model_id": "m"}})),
    ])
    assert asyncio.run(_read(settings, "predictions", 2)) == [malformed, {"prediction_id": "c", "model_id": "m"}]


def test_kcat_produces_and_the_sdk_consumes(settings: Settings, kcat) -> None:
    asyncio.run(ensure_topics(settings))
    preds, _ = Simulation(SimulationConfig(events=50, seed=3)).generate()
    lines = "".join(f"{p['prediction_id']}\t{codec.dumps(p).decode()}\n" for p in preds)
    kcat("-b", settings.bootstrap_servers, "-P", "-t", settings.topic("predictions"), "-K", "\t",
         "-X", "topic.partitioner=murmur2_random", input=lines.encode())
    got = asyncio.run(_read(settings, "predictions", 50))
    assert sorted(g["prediction_id"] for g in got) == sorted(p["prediction_id"] for p in preds)


def test_sdk_produces_and_kcat_consumes_in_the_right_partitions(settings: Settings, kcat) -> None:
    asyncio.run(ensure_topics(settings))
    preds, _ = Simulation(SimulationConfig(events=40, seed=4)).generate()

    async def publish() -> None:
        async with DriftstreamClient(settings, batch_size=7) as client:
            await client.publish_predictions(preds)

    asyncio.run(publish())
    out = kcat("-b", settings.bootstrap_servers, "-C", "-t", settings.topic("predictions"), "-e", "-q",
               "-f", "%p\t%s\n").stdout.decode()
    seen = []
    for line in out.splitlines():
        partition, value = line.split("\t", 1)
        for prediction_id in codec.loads(value)["columns"]["prediction_id"]:  # a column batch
            assert partition_for(prediction_id, settings.partitions) == int(partition)
            seen.append(prediction_id)
    assert sorted(seen) == sorted(p["prediction_id"] for p in preds)
