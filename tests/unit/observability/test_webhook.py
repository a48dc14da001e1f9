"""``streams.sinks.webhook.WebhookSink`` against a real aiohttp server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import base64
import re
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import orjson
import pytest
from aiohttp import web

from schemas.records import DeadLetter
from streams.ops.broker import free_port
from streams.ops.metrics import Metrics, create
from streams.sinks.webhook import WebhookSink

ALERT = {
    "alert_id": "a-1",
    "model_id": "fraud",
    "severity": "P1",
    "status": "firing",
    "message": "PSI 0.31 above 0.2 on amount",
}
#: Every test finishes well inside this, or something hangs.
DEADLINE_S = 10.0


class Receiver:
    """A webhook receiver that answers with scripted statuses, or holds requests open."""

    def __init__(self) -> None:
        self.bodies: list[Any] = []
        self.statuses: list[int] = []
        self.hold = False
        self.release = asyncio.Event()
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        assert request.content_type == "application/json"
        self.bodies.append(await request.json())
        if self.hold:
            await self.release.wait()
        return web.Response(status=self.statuses.pop(0) if self.statuses else 200)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    rec = Receiver()
    app = web.Application()
    app.router.add_post("/hooks/{token}", rec.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port = runner.addresses[0][1]
    rec.url = f"http://127.0.0.1:{port}/hooks/secret-token"
    yield rec
    rec.release.set()
    await runner.cleanup()


@pytest.fixture
def metrics() -> Metrics:
    return create(process_collectors=False)


def _deliveries(metrics: Metrics) -> dict[str, float]:
    return {
        outcome: metrics.webhook_deliveries.labels(outcome=outcome)._value.get()
        for outcome in ("delivered", "retried", "failed")
    }


async def _deliver(sink: WebhookSink, alert: dict[str, Any] = ALERT) -> bool:
    try:
        return await asyncio.wait_for(sink.deliver(alert), DEADLINE_S)
    finally:
        await sink.close()


async def test_json_posts_the_alert_itself(receiver: Receiver, metrics: Metrics) -> None:
    assert await _deliver(WebhookSink(receiver.url, metrics=metrics))
    assert receiver.bodies == [ALERT]
    assert _deliveries(metrics) == {"delivered": 1, "retried": 0, "failed": 0}


async def test_numpy_values_are_serialised(receiver: Receiver) -> None:
    assert await _deliver(WebhookSink(receiver.url), {**ALERT, "statistic": np.float64(0.31)})
    assert receiver.bodies[0]["statistic"] == 0.31


async def test_slack_posts_a_text_message(receiver: Receiver) -> None:
    assert await _deliver(WebhookSink(receiver.url, fmt="slack"))
    assert receiver.bodies == [{"text": "P1 firing fraud: PSI 0.31 above 0.2 on amount"}]


@pytest.mark.parametrize("status", [500, 503, 429])
async def test_retries_then_succeeds(receiver: Receiver, metrics: Metrics, status: int) -> None:
    receiver.statuses = [status, status]
    sink = WebhookSink(receiver.url, retries=3, backoff_s=0.001, metrics=metrics)
    assert await _deliver(sink)
    assert len(receiver.bodies) == 3 and sink.last_error is None
    assert _deliveries(metrics) == {"delivered": 1, "retried": 2, "failed": 0}


async def test_gives_up_after_the_last_retry(receiver: Receiver, metrics: Metrics) -> None:
    receiver.statuses = [502] * 10
    sink = WebhookSink(receiver.url, retries=2, backoff_s=0.001, metrics=metrics)
    assert not await _deliver(sink)
    assert len(receiver.bodies) == 3
    assert sink.last_error == "HTTP 502 after 3 attempt(s)"
    assert _deliveries(metrics) == {"delivered": 0, "retried": 2, "failed": 1}
    record = sink.failure_record(ALERT, sink.last_error, topic="prod.alerts", now=5.0)
    assert record["reason"] == "webhook_failed" and record["alert"] == ALERT
    DeadLetter.from_dict(record)  # the dead-letter contract holds
    assert orjson.loads(base64.b64decode(record["raw_b64"])) == ALERT
    assert "secret-token" not in repr(record)


@pytest.mark.parametrize("status", [400, 404, 413])
async def test_client_errors_are_not_retried(
    receiver: Receiver, metrics: Metrics, status: int
) -> None:
    receiver.statuses = [status]
    sink = WebhookSink(receiver.url, retries=3, backoff_s=0.001, metrics=metrics)
    assert not await _deliver(sink)
    assert len(receiver.bodies) == 1
    assert sink.last_error == f"HTTP {status} after 1 attempt(s)"
    assert _deliveries(metrics) == {"delivered": 0, "retried": 0, "failed": 1}


async def test_a_silent_receiver_times_out_each_attempt(
    receiver: Receiver, metrics: Metrics
) -> None:
    receiver.hold = True
    sink = WebhookSink(receiver.url, timeout_s=0.2, retries=1, backoff_s=0.001, metrics=metrics)
    assert not await _deliver(sink)
    assert len(receiver.bodies) == 2
    assert sink.last_error == "no answer within 0.2s after 2 attempt(s)"
    assert _deliveries(metrics) == {"delivered": 0, "retried": 1, "failed": 1}


async def test_connection_refused_is_retried_then_fails(
    metrics: Metrics, caplog: pytest.LogCaptureFixture
) -> None:
    sink = WebhookSink(
        f"http://127.0.0.1:{free_port()}/hooks/secret-token",
        retries=1, backoff_s=0.001, metrics=metrics,
    )
    assert not await _deliver(sink)
    assert sink.last_error is not None and "ClientConnectorError" in sink.last_error
    assert _deliveries(metrics) == {"delivered": 0, "retried": 1, "failed": 1}
    assert "secret-token" not in caplog.text


async def test_close_then_deliver_opens_a_new_session(receiver: Receiver) -> None:
    sink = WebhookSink(receiver.url)
    assert await _deliver(sink)
    assert await _deliver(sink)
    assert len(receiver.bodies) == 2


def test_failure_record_describes_an_exception() -> None:
    sink = WebhookSink("https://user:pw@hooks.example.com:8443/T0/B0/secret")
    record = sink.failure_record(ALERT, TimeoutError("slow"), topic="prod.alerts", now=5.0)
    assert DeadLetter.from_dict(record).reason == "webhook_failed"
    assert {k: record[k] for k in ("message", "destination", "format", "alert", "origin", "timestamp")} == {
        "message": "webhook: TimeoutError: slow",
        "destination": "https://hooks.example.com:8443",
        "format": "json",
        "alert": ALERT,
        "origin": {"topic": "prod.alerts", "partition": None, "offset": None, "index": None},
        "timestamp": 5.0,
    }
    assert record["dead_letter_id"] == sink.failure_record(ALERT, "other", topic="prod.alerts", now=9.0)["dead_letter_id"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"url": "ftp://example.com/x"}, "url: expected an http:// or https:// URL"),
        ({"url": "http://"}, "url: expected an http:// or https:// URL"),
        ({"fmt": "teams"}, "fmt='teams': expected one of json, slack"),
        ({"timeout_s": 0}, "timeout_s=0: expected > 0"),
        ({"retries": -1}, "retries=-1: expected >= 0"),
        ({"backoff_s": -0.5}, "backoff_s=-0.5: expected >= 0"),
    ],
)
def test_bad_parameters_are_named(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        WebhookSink(**{"url": "http://127.0.0.1/hook", **kwargs})
