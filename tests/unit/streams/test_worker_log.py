"""The worker's own log lines: format, levels, repeats held back, status figures."""

from __future__ import annotations

import io
import logging
from collections import namedtuple
from collections.abc import Iterator

import orjson
import pytest
from prometheus_client import CollectorRegistry

from streams.ops.metrics import create
from streams.runtime.worker_log import RepeatFilter, WorkerLog, configure_logging, log_alert

TP = namedtuple("TP", "topic partition")


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture()
def out() -> Iterator[io.StringIO]:
    """configure_logging's output; the root logger and the framework levels restored after."""
    root = logging.getLogger()
    saved = (list(root.handlers), root.level,
             {n: logging.getLogger(n).level for n in ("faust", "mode", "aiokafka", "kafka", "streams.runtime.consumer")})
    stream = io.StringIO()
    yield stream
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in saved[0]:
        root.addHandler(handler)
    root.setLevel(saved[1])
    for name, level in saved[2].items():
        logging.getLogger(name).setLevel(level)


def _lines(stream: io.StringIO) -> list[dict]:
    return [orjson.loads(line) for line in stream.getvalue().splitlines()]


def test_json_lines_carry_the_event_and_its_fields_and_frameworks_stay_at_warning(out: io.StringIO) -> None:
    configure_logging("INFO", "json", out)
    registry = CollectorRegistry()
    worker_log = WorkerLog(registry, ["p", "g"])
    worker_log.on_assigned(None, {TP("p", 0), TP("p", 1), TP("g", 0)})
    logging.getLogger("faust.worker").info("Starting...")  # chatter: dropped
    logging.getLogger("aiokafka").warning("Marking the coordinator dead")
    lines = _lines(out)
    assert [(line["level"], line.get("event")) for line in lines] == [("INFO", "assigned"), ("WARNING", None)]
    assert lines[0]["message"] == "partitions assigned (3): g[0], p[0-1]" and lines[0]["partitions"] == 3


def test_debug_lets_the_frameworks_through(out: io.StringIO) -> None:
    configure_logging("DEBUG", "text", out)
    logging.getLogger("faust.worker").debug("Starting...")
    assert "DEBUG faust.worker: Starting..." in out.getvalue()


def test_a_repeated_framework_message_passes_once_per_window_and_says_how_many_were_held() -> None:
    clock = Clock()
    repeat = RepeatFilter(window_s=30.0, clock=clock)

    def record(name: str, msg: str) -> logging.LogRecord:
        return logging.LogRecord(name, logging.ERROR, "", 0, msg, None, None)

    passed = [repeat.filter(record("aiokafka", "Unable connect to node %s")) for _ in range(50)]
    assert passed == [True] + [False] * 49
    assert repeat.filter(record("aiokafka", "Unable to update metadata"))  # another message
    assert all(repeat.filter(record("streams.runtime.checkpoint", "monitor checkpoint skipped")) for _ in range(3))  # ours
    clock.now += 31
    later = record("aiokafka", "Unable connect to node %s")
    assert repeat.filter(later) and later.msg == "Unable connect to node %s (49 more like this in the last 31 s)"


def test_readiness_and_recovery_are_logged_when_they_change(out: io.StringIO) -> None:
    configure_logging("INFO", "json", out)
    clock = Clock()
    worker_log = WorkerLog(CollectorRegistry(), [], clock=clock)
    not_ready = {"ready": False, "broker_reachable": True, "recovery_finished": False}
    worker_log.tick(not_ready, 1200)
    clock.now += 2
    worker_log.tick(not_ready, 800)  # within RECOVERY_EVERY_S of the last line
    clock.now += 4
    worker_log.tick(not_ready, 300)
    clock.now += 1
    ready = {"ready": True, "broker_reachable": True, "recovery_finished": True, "assigned_partitions": ["p[0]"]}
    worker_log.tick(ready, None)
    worker_log.readiness(ready)  # /ready asks too: one line
    worker_log.tick({**ready, "ready": False, "broker_reachable": False}, None)
    events = [(line["event"], line["message"]) for line in _lines(out)]
    assert events == [
        ("recovery", "recovering table state: 1200 changelog records to read"),
        ("recovery", "recovering table state: 300 changelog records to read"),
        ("recovered", "table state recovered in 7.0 s"),
        ("ready", "ready after 7.0 s: 1 partitions assigned"),
        ("not_ready", "not ready: the broker is unreachable"),
    ]


def test_status_line_gives_input_events_per_second_and_lag_by_topic(out: io.StringIO) -> None:
    configure_logging("INFO", "json", out)
    registry = CollectorRegistry()
    metrics = create(registry, process_collectors=False)
    clock = Clock()
    worker_log = WorkerLog(registry, ["p", "g"], clock=clock)
    metrics.events_consumed.labels("p").inc(4_000)
    metrics.events_consumed.labels("g").inc(2_000)
    metrics.events_consumed.labels("monitor-input").inc(9_999)  # not input
    metrics.consumer_lag.labels("p", "0").set(100)
    metrics.consumer_lag.labels("p", "1").set(20)
    metrics.consumer_lag.labels("g", "0").set(5)
    clock.now += 60
    worker_log.status()
    [line] = _lines(out)
    assert line["message"] == "100.0 events/s in; consumer lag 125 records (g 5, p 120)"
    assert (line["events_per_s"], line["lag_records"]) == (100.0, 125)


def test_alerts_are_logged_fired_and_resolved(out: io.StringIO) -> None:
    configure_logging("INFO", "json", out)
    alert = {"alert_id": "a1", "model_id": "fraud", "severity": "P2", "kind": "data_drift", "status": "firing",
             "message": "data drift on model fraud: psi[amount] crossed threshold (psi = 0.3 above 0.25)"}
    log_alert(alert)
    log_alert({**alert, "status": "resolved", "message": "resolved on model fraud: psi[amount] back within threshold"})
    lines = _lines(out)
    assert [line["event"] for line in lines] == ["alert_fired", "alert_resolved"]
    assert lines[0]["message"] == ("alert fired: P2 data drift on model fraud: psi[amount] crossed threshold "
                                   "(psi = 0.3 above 0.25) (alert a1)")


@pytest.mark.parametrize(("static", "says"), [
    (False, "stopping: handing partitions over, then leaving the group"),
    (True, "stopping: committing, then closing; the group keeps this instance's place (static membership) "
           "until its session expires"),
])
def test_the_stopping_line_says_whether_the_worker_leaves_its_group(out: io.StringIO, static: bool, says: str) -> None:
    """A static member (an instance id on Kafka) sends no LeaveGroup: its successor takes its
    place, so saying it leaves would be wrong."""
    configure_logging("INFO", "json", out)
    WorkerLog(CollectorRegistry(), [], clock=Clock(), static_member=static).stopping()
    assert [(line["event"], line["message"]) for line in _lines(out)] == [("stopping", says)]
