"""Alert delivery off the processing path: a bounded queue, a circuit breaker and a dead
letter per sink.

The monitors used to await the webhook inside their batch, under the monitor lock: a
receiver that hung for 30 s stalled all monitoring for about 27 s per alert, one that
answered 500 about 3.5 s per alert. Now the monitor path only puts an alert in the sink's
queue (:meth:`QueuedSink.submit`, which never waits on the receiver), and one task per sink
delivers them in order:

- the sink itself retries with backoff (:class:`streams.sinks.webhook.WebhookSink`);
- after ``breaker_failures`` alerts in a row it could not deliver, the circuit opens for
  ``breaker_open_s``: alerts meanwhile are dead-lettered without a try; then one alert is
  tried (half-open), and a success closes the circuit again;
- an alert given up on, or one that finds the queue full, is dead-lettered with its reason
  through ``dead_letter`` (the worker produces it to the ``dead-letter`` topic).

Delivered and dead-lettered alerts are counted in ``alert_sink_alerts{sink, outcome}``.
Every alert is on the ``alerts`` topic already; a sink is a notification, so a worker that
stops gives it ``grace_s`` to drain and dead-letters what is left (:meth:`QueuedSink.close`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from streams.ops.metrics import Metrics

log = logging.getLogger(__name__)


class AlertSink(Protocol):
    """Where alerts go besides the ``alerts`` topic (a webhook)."""

    #: a name safe to log and to use as a metric label
    name: str

    async def deliver(self, alert: dict[str, Any]) -> bool:
        """Deliver one alert, retries included; ``False`` once it gives up."""

    @property
    def last_error(self) -> str | None:
        """Why the last :meth:`deliver` gave up."""

    def failure_record(self, alert: dict[str, Any], error: str, *, topic: str, now: float) -> dict[str, Any]:
        """The ``dead-letter`` record of an alert it could not deliver."""

    async def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Undelivered:
    """An alert a sink gave up on, and its dead-letter record."""

    alert: dict[str, Any]
    error: str
    record: dict[str, Any]


class CircuitBreaker:
    """Opens after ``failures`` failures in a row, for ``open_s`` seconds of ``clock``; then
    lets one try through (half-open): a success closes it, a failure opens it again.

    >>> now = [0.0]
    >>> breaker = CircuitBreaker(2, 10.0, clock=lambda: now[0])
    >>> breaker.record(False); breaker.allow(), breaker.record(False), breaker.allow()
    (True, None, False)
    >>> now[0] = 10.0; breaker.allow(), breaker.allow()
    (True, False)
    >>> breaker.record(True); breaker.is_open
    False
    """

    def __init__(self, failures: int, open_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        if failures < 1:
            raise ValueError(f"failures must be >= 1, got {failures}")
        if not open_s > 0:
            raise ValueError(f"open_s must be > 0, got {open_s}")
        self.failures = failures
        self.open_s = open_s
        self.clock = clock
        self._reset()

    def _reset(self) -> None:
        self._in_a_row = 0
        self._opened_at: float | None = None
        self._trying = False

    @property
    def is_open(self) -> bool:
        return self._opened_at is not None

    def allow(self) -> bool:
        """Whether to try a delivery now (once per opening when it is half-open)."""
        if self._opened_at is None:
            return True
        if self._trying or self.clock() - self._opened_at < self.open_s:
            return False
        self._trying = True
        return True

    def record(self, delivered: bool) -> None:
        if delivered:
            self._reset()
            return
        self._in_a_row += 1
        self._trying = False
        if self._opened_at is not None or self._in_a_row >= self.failures:
            self._opened_at = self.clock()


class QueuedSink:
    """Runs ``sink`` in a task of its own, fed by a queue of at most ``queue_size`` alerts.

    ``dead_letter`` publishes an :class:`Undelivered` alert's record (the worker sends it to
    the ``dead-letter`` topic); ``topic`` is the alerts topic the records name as origin.
    Call :meth:`start` inside the running loop and :meth:`close` when done.
    """

    def __init__(
        self,
        sink: AlertSink,
        dead_letter: Callable[[Undelivered], Awaitable[None]],
        *,
        topic: str,
        queue_size: int = 1_000,
        breaker: CircuitBreaker | None = None,
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if queue_size < 1:
            raise ValueError(f"queue_size must be >= 1, got {queue_size}")
        self.sink = sink
        self.dead_letter = dead_letter
        self.topic = topic
        self.breaker = breaker or CircuitBreaker(5, 30.0)
        self.metrics = metrics
        self.clock = clock
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(queue_size)
        self._task: asyncio.Task[None] | None = None
        self._current: dict[str, Any] | None = None  # the alert being delivered

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.ensure_future(self._run())

    async def submit(self, alert: dict[str, Any]) -> None:
        """Queue ``alert``; dead-letter it at once when the queue is full. Never waits on
        the receiver."""
        self.start()
        try:
            self.queue.put_nowait(alert)
        except asyncio.QueueFull:
            await self._give_up(alert, f"queue full ({self.queue.maxsize} alerts waiting)")
        self._gauges()

    async def idle(self) -> None:
        """Wait until every queued alert was delivered or dead-lettered (tests)."""
        await self.queue.join()

    async def close(self, grace_s: float = 5.0) -> None:
        """Let the queue drain for up to ``grace_s``, then dead-letter what is left."""
        if self._task is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(self.queue.join()), grace_s)
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._current is not None:  # cut off mid-delivery
            await self._give_up(self._current, "the worker stopped before it was delivered")
            self._current = None
        while not self.queue.empty():
            alert = self.queue.get_nowait()
            await self._give_up(alert, "the worker stopped before it was delivered")
            self.queue.task_done()
        self._gauges()
        await self.sink.close()

    async def _run(self) -> None:
        while True:
            alert = self._current = await self.queue.get()
            try:
                await self._deliver(alert)
            except Exception:  # a sink bug must not end delivery for good
                log.exception("alert sink %s: delivering alert %s failed", self.sink.name, alert.get("alert_id", "?"))
                with contextlib.suppress(Exception):
                    await self._give_up(alert, "the sink raised (see the worker log)")
            self._current = None  # (a cancellation leaves it for close() to dead-letter)
            self.queue.task_done()
            self._gauges()

    async def _deliver(self, alert: dict[str, Any]) -> None:
        if not self.breaker.allow():
            await self._give_up(alert, f"circuit open after {self.breaker.failures} undeliverable alerts in a row")
            return
        delivered = await self.sink.deliver(alert)
        self.breaker.record(delivered)
        if delivered:
            self._count("delivered")
        else:
            await self._give_up(alert, self.sink.last_error or "not delivered")

    async def _give_up(self, alert: dict[str, Any], error: str) -> None:
        record = self.sink.failure_record(alert, error, topic=self.topic, now=self.clock())
        self._count("dead_lettered")
        await self.dead_letter(Undelivered(alert, error, record))

    def _count(self, outcome: str) -> None:
        if self.metrics is not None:
            self.metrics.alert_sink_alerts.labels(self.sink.name, outcome).inc()

    def _gauges(self) -> None:
        if self.metrics is not None:
            self.metrics.alert_sink_queue.labels(self.sink.name).set(self.queue.qsize())
            self.metrics.alert_sink_breaker_open.labels(self.sink.name).set(int(self.breaker.is_open))


__all__ = ["AlertSink", "CircuitBreaker", "QueuedSink", "Undelivered"]
