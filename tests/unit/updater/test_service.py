"""The updater service without a broker: its progress metric, and its two loops stopping
together (the Kafka clients are stand-ins with the few methods the service calls)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, NamedTuple

from prometheus_client import CollectorRegistry

from schemas import codec
from streams.offline.simulate import Simulation, SimulationConfig
from streams.ops.metrics import create
from streams.settings import Settings
from streams.updater.routing import Router
from streams.updater.decisions import UpdaterConfig
from streams.updater.service import UpdaterService

SIM = SimulationConfig(events=600, seed=3, concept_drift_at=None, feature_drift_at=None)


class TP(NamedTuple):
    topic: str
    partition: int


class Message(NamedTuple):
    offset: int
    headers: list[tuple[str, bytes]]
    value: bytes


class Consumer:
    def __init__(self, batches: list[dict[TP, list[Message]]]) -> None:
        self.batches = batches
        self.committed: dict[TP, int] = {}

    async def getmany(self, timeout_ms: int) -> dict[TP, list[Message]]:
        return self.batches.pop(0) if self.batches else {}

    def assignment(self) -> set[TP]:
        return {TP("updater-input", 0)}

    async def commit(self, offsets: dict[TP, int]) -> None:
        self.committed.update(offsets)


class Producer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes]] = []

    async def send(self, topic: str, value: bytes, **_: Any) -> None:
        self.sent.append((topic, value))

    async def flush(self) -> None:
        pass


async def test_the_updater_counts_the_events_it_applied_by_role(tmp_path: Path) -> None:
    registry = CollectorRegistry()
    service = UpdaterService(Settings(model_store_dir=str(tmp_path)), UpdaterConfig(warmup_events=100),
                             create(registry, process_collectors=False))
    preds, labels = Simulation(SIM).generate()
    routed = Router(partitions=1, max_bytes=50_000_000).route(
        [("predictions", 0, 0, codec.dumps(preds)), ("ground-truth", 0, 0, codec.dumps(labels))])
    tp = TP("updater-input", 0)
    consumer = Consumer([{tp: [Message(i, r.headers(), r.value) for i, r in enumerate(routed)]}])
    await service._decide(consumer, Producer())
    assert service.owners[0].updater.models[SIM.model_id].champion is not None  # it learned from them
    count = lambda role: registry.get_sample_value("driftstream_updater_events_total", {"role": role})  # noqa: E731
    assert (count("predictions"), count("ground-truth")) == (len(preds), len(labels))
    await service._decide(consumer, Producer())  # nothing new: nothing counted twice
    assert (count("predictions"), count("ground-truth")) == (len(preds), len(labels))


async def test_a_failing_loop_stops_its_sibling_after_the_siblings_current_batch() -> None:
    stop, halted, in_batch = asyncio.Event(), asyncio.Event(), asyncio.Event()
    steps: list[str] = []

    async def route(consumer: Any, producer: Any) -> None:
        await in_batch.wait()  # fails while its sibling is halfway through a batch
        raise ConnectionError("broker gone")

    async def decide(consumer: Any, producer: Any) -> None:
        steps.append("decide")
        in_batch.set()
        await halted.wait()  # the failure is known before this batch ends
        steps.append("decided")  # a batch is applied and published whole

    outcomes = await asyncio.wait_for(asyncio.gather(UpdaterService._loop(stop, halted, route, None, None),
                                                     UpdaterService._loop(stop, halted, decide, None, None),
                                                     return_exceptions=True), 5)
    assert isinstance(outcomes[0], ConnectionError) and outcomes[1] is None
    assert steps == ["decide", "decided"] and not stop.is_set()
