"""The worker's own log: one line per event an operator needs, Faust's chatter kept down.

:func:`configure_logging` puts one handler on the root logger (text, or JSON lines with
``DRIFTSTREAM_LOG_FORMAT=json``), holds Faust, mode and aiokafka at WARNING unless
``DRIFTSTREAM_LOG_LEVEL=DEBUG``, and lets a framework message that repeats (aiokafka
logs every failed connection, dozens a second while the broker is away) through once per
:data:`REPEAT_WINDOW_S`. :class:`WorkerLog` writes the lines themselves: start, partitions
assigned and revoked, recovery progress, ready, a status line every minute, alerts and
shutdown. Each line also carries its fields (``event``, ...) for the JSON format.

>>> import io
>>> out = io.StringIO()
>>> handler = logging.StreamHandler(out)
>>> handler.setFormatter(JsonFormatter())
>>> record = logging.LogRecord("streams.runtime.worker", logging.INFO, "", 0, "ready after %.1f s", (2.0,), None)
>>> record.event, record.fields = "ready", {"after_s": 2.0}
>>> handler.emit(record)
>>> line = orjson.loads(out.getvalue())
>>> line["message"], line["event"], line["after_s"], line["level"]
('ready after 2.0 s', 'ready', 2.0, 'INFO')
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timezone
from importlib import metadata
from typing import IO, Any

import orjson
from prometheus_client import CollectorRegistry

LOG_FORMATS = ("text", "json")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
#: Loggers of the frameworks under driftstream: WARNING and above unless the level is DEBUG
#: (streams.runtime.consumer is a subclass of Faust's consumer service, and logs as Faust does).
FRAMEWORK_LOGGERS = ("faust", "mode", "aiokafka", "kafka", "streams.runtime.consumer")
#: A framework message repeated within this many seconds is counted, not written.
REPEAT_WINDOW_S = 30.0
#: Seconds between two recovery progress lines.
RECOVERY_EVERY_S = 5.0
#: Seconds between two status lines (events/s, consumer lag).
STATUS_EVERY_S = 60.0

log = logging.getLogger("streams.runtime.worker")

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message, the line's
    ``event`` and ``fields`` (see :func:`info`), and the exception if any."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        event = getattr(record, "event", None)
        if event is not None:
            out["event"] = event
        for key, value in (getattr(record, "fields", None) or {}).items():
            if key not in out:
                out[key] = value
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(out, default=str).decode()


class RepeatFilter(logging.Filter):
    """Let a framework logger's message (its template) through once per ``window_s``; the
    next one through says how many were held back. driftstream's own lines all pass."""

    def __init__(self, window_s: float = REPEAT_WINDOW_S, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.window_s = window_s
        self.clock = clock
        self._seen: dict[tuple[str, str], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith(FRAMEWORK_LOGGERS):
            return True
        key = (record.name, str(record.msg))
        now = self.clock()
        since, held = self._seen.get(key, (-float("inf"), 0))
        if now - since < self.window_s:
            self._seen[key] = (since, held + 1)
            return False
        self._seen[key] = (now, 0)
        if held:
            record.msg = f"{record.msg} ({held} more like this in the last {now - since:.0f} s)"
        return True


def level_number(level: str) -> int:
    return int(logging.getLevelName(level.upper()))


def configure_logging(level: str = "INFO", fmt: str = "text", stream: IO[str] | None = None) -> logging.Handler:
    """Send every log record at ``level`` or above to ``stream`` (stderr), formatted as
    ``fmt``; the frameworks' loggers at WARNING unless ``level`` is DEBUG."""
    number = level_number(level)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setLevel(number)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    handler.addFilter(RepeatFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(number)
    for name in FRAMEWORK_LOGGERS:
        logging.getLogger(name).setLevel(number if number <= logging.DEBUG else max(number, logging.WARNING))
    return handler


def info(event: str, message: str, *args: Any, level: int = logging.INFO, **fields: Any) -> None:
    """Log one line of the worker's own: ``message % args``, with ``event`` and ``fields``
    kept apart for the JSON format."""
    log.log(level, message, *args, extra={"event": event, "fields": fields})


def partitions_text(tps: Iterable[Any]) -> str:
    """``topic[0-2,5]`` per topic, sorted: a compact list of assigned partitions.

    >>> from collections import namedtuple
    >>> TP = namedtuple("TP", "topic partition")
    >>> partitions_text([TP("b", 1), TP("a", 0), TP("b", 0), TP("b", 2), TP("b", 5)])
    'a[0], b[0-2,5]'
    """
    by_topic: dict[str, list[int]] = {}
    for tp in tps:
        by_topic.setdefault(tp.topic, []).append(int(tp.partition))
    parts = []
    for topic, partitions in sorted(by_topic.items()):
        runs: list[list[int]] = []
        for p in sorted(partitions):
            if runs and p == runs[-1][-1] + 1:
                runs[-1].append(p)
            else:
                runs.append([p])
        parts.append(f"{topic}[{','.join(str(r[0]) if len(r) == 1 else f'{r[0]}-{r[-1]}' for r in runs)}]")
    return ", ".join(parts) or "none"


def log_alert(alert: Mapping[str, Any]) -> None:
    """One line per alert publication (fired, updated with members, resolved)."""
    status = "fired" if alert["status"] == "firing" else str(alert["status"])
    info(f"alert_{status}", "alert %s: %s %s (alert %s)", status, alert["severity"], alert["message"], alert["alert_id"],
         alert_id=alert["alert_id"], model_id=alert["model_id"], severity=alert["severity"], kind=alert["kind"],
         status=alert["status"])


class WorkerLog:
    """The worker's life in a few lines. ``readiness`` and ``recovering`` are read on each
    :meth:`tick` (about once a second); ``registry`` gives the status line its figures."""

    def __init__(
        self, registry: CollectorRegistry, input_topics: Iterable[str], *, clock: Callable[[], float] = time.monotonic,
        static_member: bool = False,
    ) -> None:
        self.registry = registry
        self.static_member = static_member  # a static member does not leave: its successor takes its place
        self.input_topics = tuple(input_topics)
        self.clock = clock
        #: when the process started (run_worker sets it to the start line's time)
        self.started = clock()
        self._stopping_at: float | None = None
        self._ready = False
        self._recovering_since: float | None = None
        self._recovery_logged = -float("inf")
        self._status_at = clock()
        self._consumed = self._consumed_total()

    @staticmethod
    def starting(settings: Any) -> float:
        """Log the start line; returns its time (``time.monotonic``)."""
        try:
            version = metadata.version("driftstream")
        except metadata.PackageNotFoundError:
            version = "unknown"
        data_dir = os.path.abspath(settings.data_dir)
        info("start", "driftstream worker %s starting: broker %s, group %s, data dir %s (store %s), web http://%s:%d "
             "(/metrics, /health, /ready), log level %s", version, settings.bootstrap_servers, settings.app_id, data_dir,
             settings.store, settings.web_host, settings.web_port, settings.log_level.upper(),
             version=version, broker=settings.bootstrap_servers, group=settings.app_id, data_dir=data_dir,
             store=settings.store, web=f"http://{settings.web_host}:{settings.web_port}")
        return time.monotonic()

    def on_assigned(self, sender: Any = None, assigned: Iterable[Any] = (), **_: Any) -> None:
        tps = list(assigned)
        info("assigned", "partitions assigned (%d): %s", len(tps), partitions_text(tps), partitions=len(tps))

    def on_revoked(self, sender: Any = None, revoked: Iterable[Any] = (), **_: Any) -> None:
        tps = list(revoked)
        if tps:  # a first assignment revokes nothing
            info("revoked", "partitions revoked (%d): %s", len(tps), partitions_text(tps), partitions=len(tps))

    def tick(self, readiness: Mapping[str, Any], recovery_remaining: int | None) -> None:
        """Log recovery progress, and readiness when it changes."""
        self.recovery(recovery_remaining)
        self.readiness(readiness)

    def recovery(self, recovery_remaining: int | None) -> None:
        """``recovery_remaining``: changelog records left to read, ``None`` when not recovering."""
        now = self.clock()
        if recovery_remaining is not None:
            if self._recovering_since is None:
                self._recovering_since = now
            if now - self._recovery_logged >= RECOVERY_EVERY_S:
                self._recovery_logged = now
                info("recovery", "recovering table state: %d changelog records to read", recovery_remaining,
                     remaining=recovery_remaining)
        elif self._recovering_since is not None:
            info("recovered", "table state recovered in %.1f s", now - self._recovering_since,
                 seconds=round(now - self._recovering_since, 3))
            self._recovering_since = None
            self._recovery_logged = -float("inf")

    def readiness(self, readiness: Mapping[str, Any]) -> None:
        """Log readiness when it changes (``/ready`` calls this too: its first 200 comes
        after the line)."""
        now = self.clock()
        ready = bool(readiness.get("ready"))
        if ready and not self._ready:
            info("ready", "ready after %.1f s: %d partitions assigned", now - self.started,
                 len(readiness.get("assigned_partitions", ())), after_s=round(now - self.started, 3))
        elif self._ready and not ready:
            why = ("the broker is unreachable" if not readiness.get("broker_reachable") else
                   "recovering table state" if not readiness.get("recovery_finished") else "no partitions assigned")
            info("not_ready", "not ready: %s", why, level=logging.WARNING, reason=why)
        self._ready = ready

    def status(self) -> None:
        """Input events/s since the last status line, and the consumer lag by topic."""
        now = self.clock()
        consumed = self._consumed_total()
        rate = (consumed - self._consumed) / max(now - self._status_at, 1e-9)
        self._status_at, self._consumed = now, consumed
        lag = self._lag_by_topic()
        info("status", "%.1f events/s in; consumer lag %d records (%s)", rate, sum(lag.values()),
             ", ".join(f"{t} {n:.0f}" for t, n in sorted(lag.items())) or "no partitions",
             events_per_s=round(rate, 3), lag_records=int(sum(lag.values())), lag_by_topic=lag)

    def stopping(self) -> None:
        self._stopping_at = self.clock()
        if self.static_member:  # KIP-345: no LeaveGroup, so a restart within the session moves no partition
            info("stopping", "stopping: committing, then closing; the group keeps this instance's place "
                 "(static membership) until its session expires")
        else:
            info("stopping", "stopping: handing partitions over, then leaving the group")

    def stopped(self) -> None:
        now = self.clock()
        took = now - (self._stopping_at if self._stopping_at is not None else now)
        info("stopped", "stopped in %.1f s, after running %.1f s", took, now - self.started,
             shutdown_s=round(took, 3), ran_s=round(now - self.started, 3))

    def _consumed_total(self) -> float:
        return sum(self.registry.get_sample_value("driftstream_events_consumed_total", {"topic": t}) or 0.0
                   for t in self.input_topics)

    def _lag_by_topic(self) -> dict[str, float]:
        lag: dict[str, float] = {}
        for family in self.registry.collect():
            if family.name == "driftstream_consumer_lag_records":
                for sample in family.samples:
                    topic = sample.labels["topic"]
                    lag[topic] = lag.get(topic, 0.0) + sample.value
        return lag


__all__ = [
    "FRAMEWORK_LOGGERS", "LOG_FORMATS", "LOG_LEVELS", "JsonFormatter", "RepeatFilter", "WorkerLog",
    "configure_logging", "log_alert", "partitions_text",
]
