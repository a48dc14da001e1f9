"""Micro-batches of a Faust stream whose wait starts with their first event, not after the
previous batch.

Faust's ``Stream.take_events(max_, within)`` waits ``within`` seconds after each batch it
hands over, and while that batch is being processed it lets no new event into the next one.
Under load, an event that arrives while a batch is being processed therefore waits for the
rest of that batch, then ``within`` more: each stage's cycle is its processing time plus
``within``. :func:`take_events` keeps buffering while a batch is processed (up to ``max_``
events) and hands the next batch over as soon as ``within`` has passed since *its* first
event arrived, or at once if it is full. An idle stream still batches events for up to
``within``; a busy one no longer waits on top of its work.

A batch's events are acked, in order, once the agent has finished with it (the generator
is resumed); never before, so an event is never committed before it is processed.

    async for events in take_events(stream, 2000, within_s=0.15):
        await handle(events)
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from faust.types import EventT, StreamT
from mode.utils.aiter import aiter

__all__ = ["take_events"]


async def take_events(stream: StreamT, max_: int, within_s: float) -> AsyncIterator[list[EventT]]:
    """Yield lists of at most ``max_`` events, each once it is full or ``within_s`` after its
    first event arrived (see the module docstring). Faust internals used: a stream processor
    fills the buffer while the stream is consumed passively, as in ``Stream.take_events``."""
    if max_ < 1 or not within_s > 0:
        raise ValueError(f"max_ must be >= 1 and within_s > 0, got {max_} and {within_s}")
    loop = asyncio.get_running_loop()
    buffer: list[EventT] = []
    first_at = 0.0  # loop time the first event of ``buffer`` arrived
    arrived = asyncio.Event()  # ``buffer`` is not empty
    full = asyncio.Event()  # ``buffer`` holds ``max_`` events
    room = asyncio.Event()  # a full ``buffer`` was handed over
    room.set()

    async def add_to_buffer(value: Any) -> Any:
        nonlocal first_at
        try:
            while len(buffer) >= max_:  # strict: a batch never holds more than max_
                room.clear()
                await stream.wait(room)  # type: ignore[attr-defined]
            event = stream.current_event
            if event is None:
                raise RuntimeError("take_events found no current event")
            if not buffer:
                first_at = loop.time()
                arrived.set()
            buffer.append(event)
            if len(buffer) >= max_:
                full.set()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # as Faust's take: crash the stream, never lose the event silently
            stream.log.exception("Error adding to take buffer")  # type: ignore[attr-defined]
            await stream.crash(exc)  # type: ignore[attr-defined]
        return value

    enable_acks = stream.enable_acks
    stream.enable_acks = False  # acked below, once the agent is done with the batch
    stream.add_processor(add_to_buffer)
    stream._enable_passive(aiter(stream.channel))  # type: ignore[attr-defined]
    try:
        while not stream.should_stop:  # type: ignore[attr-defined]
            if not buffer:
                await stream.wait_for_stopped(arrived, timeout=within_s)  # type: ignore[attr-defined]
                continue
            remaining = first_at + within_s - loop.time()
            if remaining > 0 and not full.is_set():
                await stream.wait_for_stopped(full, timeout=remaining)  # type: ignore[attr-defined]
            batch = buffer.copy()  # at most max_: add_to_buffer waits for room
            buffer.clear()
            arrived.clear()
            full.clear()
            room.set()
            yield batch
            # acked only once the agent is done with the batch: not when the generator is
            # closed part-way (an agent that crashed), unlike Faust's take
            for event in batch:
                await stream.ack(event)
    finally:
        stream.enable_acks = enable_acks
        stream._processors.remove(add_to_buffer)  # type: ignore[attr-defined]
