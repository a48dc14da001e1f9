"""Alert delivery from a real worker to a real local HTTP receiver, and the dead letter of an
alert the receiver refused."""

from __future__ import annotations

import asyncio
import base64
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import orjson
import pytest

from schemas.records import DeadLetter
from streams.offline.simulate import Simulation, SimulationConfig
from streams.runtime.topics import ensure_topics
from streams.runtime.worker_process import WorkerProcess
from streams.settings import Settings

from .support import publish_events, read_topic, wait_for

pytestmark = pytest.mark.integration


class Receiver(ThreadingHTTPServer):
    """Accepts the first ``accept`` posts (200), refuses the rest (400: not retried); with
    ``hang``, holds every post open until ``release`` is set."""

    daemon_threads = True

    def __init__(self, accept: int, hang: bool = False) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.accept = accept
        self.hang = hang
        self.release = threading.Event()
        self.bodies: list[dict] = []
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hooks/secret-path"


class _Handler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        body = orjson.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with self.server.lock:
            self.server.bodies.append(body)
            status = 200 if len(self.server.bodies) <= self.server.accept else 400
        if self.server.hang:
            self.server.release.wait(60)
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_: object) -> None:
        return


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver(accept=1)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _apply_simulation(worker: WorkerProcess, settings: Settings, config: SimulationConfig, deadline_s: float,
                      what: str) -> None:
    """Once ``worker`` is ready, publish ``config``'s events and wait until its monitors applied them all."""
    worker.wait_ready(90)
    sent = publish_events(settings, Simulation(config).in_event_time_order())
    everything = sent["predictions"] + sent["ground-truth"]
    wait_for(lambda: worker.metric("driftstream_events_consumed_total", topic=settings.topic("monitor-input")) >= everything,
             deadline_s, what)


def test_alerts_are_posted_and_a_refused_one_is_dead_lettered(settings: Settings, receiver: Receiver) -> None:
    # the breaker stays closed: every firing alert is posted once
    settings = settings.replace(webhook_url=receiver.url, webhook_retries=1, webhook_timeout_s=2.0,
                                webhook_breaker_failures=1_000)
    asyncio.run(ensure_topics(settings))
    config = SimulationConfig(events=12_000, seed=11, feature_drift_at=4_000, concept_drift_at=7_000)
    with WorkerProcess(settings) as worker:
        _apply_simulation(worker, settings, config, 120, "the monitors to apply everything")
        wait_for(lambda: len(receiver.bodies) >= 2, 30, "two alerts posted to the webhook")
        refused = worker.metric("driftstream_dead_letters_total", reason="webhook_failed")

    # an incident is posted when it fires and each time it escalates: each message once
    firing = {a["event_id"]: a for _, a in read_topic(settings, settings.topic("alerts")) if a["status"] != "resolved"}
    posted = [body["event_id"] for body in receiver.bodies]
    assert set(posted) == set(firing) and len(posted) == len(set(posted))
    dead = [d for _, d in read_topic(settings, settings.topic("dead-letter")) if d["reason"] == "webhook_failed"]
    assert len(dead) == len({d["dead_letter_id"] for d in dead}) == refused == len(posted) - 1  # all but the first
    for record in dead:
        DeadLetter.from_dict(record)  # the dead-letter contract holds
        assert record["origin"]["topic"] == settings.topic("alerts")
        assert record["message"] == "webhook: HTTP 400 after 1 attempt(s)"
        assert orjson.loads(base64.b64decode(record["raw_b64"])) == record["alert"] == firing[record["alert"]["event_id"]]
        assert "secret-path" not in orjson.dumps(record).decode()


def test_a_hanging_receiver_never_holds_up_the_monitors(settings: Settings) -> None:
    """A receiver that never answers used to stall the monitor batch for the whole timeout
    per alert: every alert now reaches the alerts topic while the webhook hangs, and the
    alerts it could not deliver are dead-lettered."""
    receiver = Receiver(accept=0, hang=True)
    thread = threading.Thread(target=receiver.serve_forever, daemon=True)
    thread.start()
    try:
        settings = settings.replace(webhook_url=receiver.url, webhook_retries=0, webhook_timeout_s=60.0,
                                    webhook_queue_size=1)
        asyncio.run(ensure_topics(settings))
        config = SimulationConfig(events=12_000, seed=11, feature_drift_at=4_000, concept_drift_at=7_000)
        with WorkerProcess(settings) as worker:
            # well inside one webhook timeout: nothing waited on the receiver
            _apply_simulation(worker, settings, config, 50, "the monitors to apply everything while the webhook hangs")
            # every publication but a resolution goes to the webhook (firing, then escalated)
            firing = [a for _, a in read_topic(settings, settings.topic("alerts")) if a["status"] != "resolved"]
            assert len(firing) >= 3 and len(receiver.bodies) == 1  # one in flight, one queued, the rest refused
            wait_for(lambda: worker.metric("driftstream_alert_sink_alerts_total", sink="webhook", outcome="dead_lettered")
                     >= len(firing) - 2, 30, "the alerts past the queue to be dead-lettered")
        # the one in flight and the one queued are dead-lettered as the worker stops
        firing = [a for _, a in read_topic(settings, settings.topic("alerts")) if a["status"] != "resolved"]
        dead = [d for _, d in read_topic(settings, settings.topic("dead-letter")) if d["reason"] == "webhook_failed"]
        assert sorted(d["alert"]["event_id"] for d in dead) == sorted(a["event_id"] for a in firing)
        assert {"queue full" in d["message"] for d in dead} == {True, False}
    finally:
        receiver.release.set()
        receiver.shutdown()
        receiver.server_close()
