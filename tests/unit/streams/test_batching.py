"""streams.batching.take_events on a Faust agent (Faust's own test context, no broker): a
batch waits ``within`` from its first event, a full one goes at once, and events that arrive
while a batch is processed are handed over as soon as the agent is done, not ``within`` later."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import faust
import pytest

from streams.batching import take_events


def _app() -> faust.App:
    # test_context never connects: the broker URL is never dialled
    return faust.App("test-batching", broker="kafka://127.0.0.1:1", store="memory://", web_enabled=False)


async def _until(condition: Callable[[], bool], deadline_s: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline_s
    while not condition():
        if loop.time() > end:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


def _agent(app: faust.App, max_: int, within_s: float, gate: asyncio.Event | None = None):
    batches: list[tuple[list[bytes], float]] = []

    @app.agent(app.topic("in", value_serializer="raw"))
    async def agent(stream: faust.StreamT) -> None:
        async for events in take_events(stream, max_, within_s):
            batches.append(([e.value for e in events], asyncio.get_running_loop().time()))
            if gate is not None and len(batches) == 1:
                await gate.wait()  # the first batch takes until the test releases it

    return agent, batches


def test_a_batch_waits_within_from_its_first_event() -> None:
    async def run() -> None:
        agent, batches = _agent(_app(), max_=100, within_s=0.5)
        async with agent.test_context() as ctx:
            started = asyncio.get_running_loop().time()
            await ctx.put(b"a", wait=False)
            await ctx.put(b"b", wait=False)
            await _until(lambda: bool(batches))
            assert batches[0][0] == [b"a", b"b"]
            assert batches[0][1] - started >= 0.45

    asyncio.run(run())


def test_a_full_batch_goes_at_once() -> None:
    async def run() -> None:
        agent, batches = _agent(_app(), max_=3, within_s=30.0)
        async with agent.test_context() as ctx:
            for value in (b"a", b"b", b"c", b"d"):
                await ctx.put(value, wait=False)
            await _until(lambda: bool(batches))  # long before 30 s
            assert batches[0][0] == [b"a", b"b", b"c"]

    asyncio.run(run())


def test_events_that_arrived_during_a_batch_go_as_soon_as_it_is_done() -> None:
    async def run() -> None:
        gate = asyncio.Event()
        within = 1.0
        agent, batches = _agent(_app(), max_=100, within_s=within, gate=gate)
        async with agent.test_context() as ctx:
            await ctx.put(b"a", wait=False)
            await _until(lambda: bool(batches))
            await ctx.put(b"b", wait=False)  # while batch 1 is processed
            await ctx.put(b"c", wait=False)
            await asyncio.sleep(within)  # the wait under test: batch 2's first event is now `within` old
            released = asyncio.get_running_loop().time()
            gate.set()
            await _until(lambda: len(batches) == 2)
            assert batches[1][0] == [b"b", b"c"]
            # Faust's take_events would wait `within` again here
            assert batches[1][1] - released < within / 2

    asyncio.run(run())


def test_bad_arguments_are_refused() -> None:
    async def run() -> None:
        with pytest.raises(ValueError, match="max_ must be >= 1"):
            await take_events(None, 0, 1.0).__anext__()  # type: ignore[arg-type]

    asyncio.run(run())
