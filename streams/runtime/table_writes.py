"""Table writes behind Faust's back: set a key in a table and send its changelog record
straight to the producer, then wait for the broker to have it.

Faust's changelog buffer forwards one record per loop turn, through its topic's send; the
pipeline's batches need their state on the broker before their outputs go out (see
:mod:`streams.runtime.app`), so they write and wait here instead. The offsets written are kept:
:class:`streams.runtime.integrity.BrokerIntegrity` checks that the changelogs still reach them.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import Iterable, Iterator
from typing import Any

import faust
from faust.streams import _current_event  # Faust's RocksDB store picks its database from it
from faust.types import TP, Message

__all__ = ["TableWriter", "Writes"]

#: ``(key, value)`` table writes; ``None`` deletes the key
Writes = Iterable[tuple[str, "bytes | None"]]


class TableWriter:
    """Writes to the app's tables, and the first offset written to each changelog partition."""

    def __init__(self, app: faust.App) -> None:
        self.app = app
        #: changelog partition -> the first offset this worker wrote there
        self.written: dict[TP, int] = {}

    @contextlib.contextmanager
    def _in_partition_of(self, message: Message) -> Iterator[None]:
        """Make an event of ``message`` the current event: Faust's RocksDB store picks the
        partition's database from it (the memory store ignores it)."""
        event = self.app.create_event(message.key, message.value, message.headers, message)
        token = _current_event.set(weakref.ref(event))
        try:
            yield
        finally:
            _current_event.reset(token)

    async def _write(self, table: faust.Table, partition: int, key: str, value: bytes | None) -> Any:
        """Set or delete ``key`` in ``table`` and hand the changelog record, serialized as
        the table's own ``send_changelog`` does, to the producer; returns its delivery future."""
        if value is None:
            table.data.pop(key, None)
        else:
            table.data[key] = value
        topic = table.changelog_topic
        key_bytes, _ = topic.prepare_key(key, table.key_serializer)
        value_bytes, _ = topic.prepare_value(value, table.value_serializer if value is not None else "raw")
        return await self.app.producer.send(
            topic.get_topic_name(), key_bytes, value_bytes, partition=partition, timestamp=None, headers=None,
        )

    async def send(self, table: faust.Table, message: Message, writes: Writes) -> list[Any]:
        """Hand table writes (to ``message``'s partition) to the producer; returns their
        delivery futures."""
        partition = message.partition
        with self._in_partition_of(message):
            return [await self._write(table, partition, key, value) for key, value in writes]

    async def wait(self, table: faust.Table, futures: list[Any]) -> None:
        """Wait until the broker has the table writes; record their offsets in the table's
        store, as Faust's changelog callback does (a RocksDB store starts its recovery after them)."""
        for sent in await asyncio.gather(*futures):
            self.written.setdefault(sent.topic_partition, sent.offset)
            table.data.set_persisted_offset(sent.topic_partition, sent.offset)

    async def write(self, table: faust.Table, message: Message, writes: Writes) -> None:
        """:meth:`send`, then :meth:`wait`."""
        await self.wait(table, await self.send(table, message, writes))
