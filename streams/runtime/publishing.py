"""Publishing the pipeline's outputs: records straight to the producer, alerts also to
their sink and to the alert metrics.

Straight to the producer: through a Faust topic, sends waited behind other work, and
Faust's message futures, sensors and callbacks cost as much as the send
(docs/performance.md).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import faust

from schemas import codec
from schemas.records import SEVERITIES

from streams.ops.metrics import Metrics
from streams.pipeline.cardinality import SeriesCap
from streams.pipeline.stages import Outputs
from streams.runtime.worker_log import log_alert
from streams.settings import Settings
from streams.sinks.queue import CircuitBreaker, QueuedSink, Undelivered
from streams.sinks.webhook import WebhookSink

__all__ = ["Publisher", "delivered"]



async def delivered(futures: list[Any]) -> None:
    """Wait until the broker has the records of ``futures``."""
    if futures:
        await asyncio.gather(*futures)


class Publisher:
    """Hands records to the producer by topic role; counts and forwards alerts."""

    def __init__(self, app: faust.App, settings: Settings, metrics: Metrics, series: SeriesCap) -> None:
        self.app = app
        self.settings = settings
        self.metrics = metrics
        self.series = series
        #: model id -> its alerts firing (id -> severity), for ``alerts_firing``
        self.firing: dict[str, dict[str, str]] = {}
        # alerts reach the webhook from a queue of their own: a slow receiver never holds
        # up the monitors (streams.sinks.queue)
        webhook = WebhookSink.from_settings(settings, metrics)
        self.alert_sink = None if webhook is None else QueuedSink(
            webhook, self._dead_letter_alert, topic=settings.topic("alerts"), queue_size=settings.webhook_queue_size,
            breaker=CircuitBreaker(settings.webhook_breaker_failures, settings.webhook_breaker_open_s), metrics=metrics,
        )

    async def produce(self, role: str, key: bytes | None, value: bytes) -> Any:
        """Hand one record to the producer for the topic of ``role`` (the key picks the
        partition, as a Faust topic's send does); returns its delivery future."""
        return await self.app.producer.send(self.settings.topic(role), key, value, partition=None, timestamp=None, headers=None)

    async def send(self, outputs: Outputs, since: float | None = None) -> list[Any]:
        """Hand outputs to the producer; returns the delivery futures to wait on. ``since``:
        the record timestamp the alerts' processing latency is measured from."""
        futures = []
        for role, items in outputs.encoded().items():
            for key, value in items:
                futures.append(await self.produce(role, key.encode() if key is not None else None, value))
        for alert in outputs.messages.get("alerts", ()):
            await self._on_alert(alert[1], since)
        return futures

    async def publish(self, outputs: Outputs) -> None:
        """Publish outputs and wait until the broker has them."""
        await delivered(await self.send(outputs))

    async def dead_letter(self, record: dict[str, Any]) -> Any:
        """Hand a dead-letter record to the producer and count it; returns its delivery future."""
        self.metrics.dead_letters.labels(record["reason"]).inc()
        return await self.produce("dead-letter", record["dead_letter_id"].encode(), codec.dumps(record))

    async def close(self) -> None:
        """Give the alert sink a moment to drain (what it cannot deliver is dead-lettered)."""
        if self.alert_sink is not None:
            await self.alert_sink.close(grace_s=min(5.0, self.settings.shutdown_grace_s / 4))

    async def _on_alert(self, alert: dict[str, Any], since: float | None) -> None:
        m = self.metrics
        log_alert(alert)
        if alert["status"] == "firing" and since is not None:
            # processing time; the event's age is event_time_lag_seconds
            m.processing_latency_seconds.observe(max(0.0, time.time() - since))
        if alert["status"] != "resolved" and self.alert_sink is not None:
            await self.alert_sink.submit(alert)  # queued: delivery never holds up the monitors
        if not self.series.exports(alert["model_id"]):  # past DRIFTSTREAM_MAX_MODEL_SERIES
            return
        m.alerts.labels(alert["model_id"], alert["severity"], alert["status"]).inc()
        firing = self.firing.setdefault(alert["model_id"], {})
        if alert["status"] != "resolved":
            firing[alert["alert_id"]] = alert["severity"]
        else:
            firing.pop(alert["alert_id"], None)
        for severity in SEVERITIES:
            m.alerts_firing.labels(alert["model_id"], severity).set(sum(1 for s in firing.values() if s == severity))

    async def _dead_letter_alert(self, undelivered: Undelivered) -> None:
        """An alert the sink gave up on goes to the dead-letter topic (from the sink's task);
        its record's reason is ``webhook_failed``."""
        await self.dead_letter(undelivered.record)
