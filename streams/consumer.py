"""Faust's Kafka consumer, with a delivery loop that costs less per record.

Faust's consumer hands each fetched record to the conductor through
``Service.wait_first(callback(message), suspend_flow.wait())``: four tasks and an
``asyncio.wait`` per record, so that a delivery blocked on a full stream buffer can be
abandoned when a rebalance suspends the flow. Measured with one event per record (kcat),
that was about a tenth of the worker's time. :class:`Consumer` calls the callback directly
when it cannot block: the flow is not suspended and every channel of the record's partition
is a micro-batch buffer (:class:`~streams.batching.BatchQueue`, the pipeline's input
topics) with room (so the conductor puts the record without waiting). Otherwise (table
changelogs during a recovery, Faust's own streams, a full buffer) it takes Faust's path,
unchanged. Everything else (gap tracking, commit cadence, read offsets)
is Faust's loop as it is.

:func:`install` makes an app's consumer one of these; call it before the app starts.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, cast

import faust
from faust.transport.consumer import CONSUMER_FETCHING
from faust.transport.drivers import aiokafka as aiokafka_driver
from faust.types import TP
from mode import Service, ServiceT

from .batching import BatchQueue

__all__ = ["Consumer", "Transport", "install"]


class Consumer(aiokafka_driver.Consumer):
    """Faust's aiokafka consumer; see the module docstring for the one difference."""

    def _delivers_without_waiting(self, tp: TP) -> bool:
        """True when the conductor would put a record of ``tp`` into every subscribed
        channel's micro-batch buffer at once (no channel, no answer: the careful path)."""
        channels = self.app.topics._tp_index.get(tp)  # the conductor's own routing index
        return bool(channels) and all(
            type(channel.queue) is BatchQueue and not channel.queue.full() for channel in channels
        )

    async def _drain_messages(self, fetcher: ServiceT) -> None:  # pragma: no cover (Faust's loop)
        callback = self.callback
        getmany = self.getmany
        consumer_should_stop = cast(Service, self)._stopped.is_set
        fetcher_should_stop = cast(Service, fetcher)._stopped.is_set
        get_read_offset = self._read_offset.__getitem__
        set_read_offset = self._read_offset.__setitem__
        set_flag = self.diag.set_flag
        unset_flag = self.diag.unset_flag
        commit_every = self._commit_every
        acks_enabled_for = self.app.topics.acks_enabled_for
        flow_suspended = self.suspend_flow.is_set
        direct = self._delivers_without_waiting
        yield_every = 100
        num_since_yield = 0
        sleep = asyncio.sleep
        try:
            while not (consumer_should_stop() or fetcher_should_stop()):
                set_flag(CONSUMER_FETCHING)
                ait = cast(AsyncIterator[tuple[TP, Any]], getmany(timeout=1.0))
                await self.sleep(0)
                if not self.should_stop:
                    async for tp, message in ait:
                        num_since_yield += 1
                        if num_since_yield > yield_every:
                            await sleep(0)
                            num_since_yield = 0
                        offset = message.offset
                        r_offset = get_read_offset(tp)
                        if r_offset is None or offset >= r_offset:
                            gap = offset - (r_offset or 0)
                            if gap > 1 and r_offset and acks_enabled_for(message.topic):
                                await self._add_gap(tp, r_offset + 1, offset)
                            if commit_every is not None and self._n_acked >= commit_every:
                                self._n_acked = 0
                                await self.commit()
                            if not flow_suspended() and direct(tp):
                                await callback(message)
                            else:
                                await self.wait_first(callback(message), self.suspend_flow.wait())
                            set_read_offset(tp, offset)
                    unset_flag(CONSUMER_FETCHING)
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                self.log.info("Broker stopped consumer, shutting down...")
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                self.log.info("Consumer shutting down for user cancel.")
                return
            raise
        except Exception:
            self.log.exception("Drain messages raised")
            raise
        finally:
            unset_flag(CONSUMER_FETCHING)


class Transport(aiokafka_driver.Transport):
    """Faust's aiokafka transport, creating :class:`Consumer`."""

    Consumer = Consumer


def install(app: faust.App) -> None:
    """Give ``app`` the transport whose consumer is :class:`Consumer` (before it starts)."""
    if app._consumer is not None:  # Faust builds it lazily, on first use
        raise RuntimeError("install the transport before the app's consumer is created")
    app.transport = Transport(app.conf.broker_consumer, app)
