"""Alert delivery to an HTTP webhook (a generic JSON receiver or a Slack incoming webhook).

:class:`WebhookSink` posts one alert per request with a per-request timeout, and retries
with exponential backoff on connection errors, timeouts, 5xx and 429. Any other 4xx is the
receiver refusing the payload, so it is not retried. Redirects are not followed: a 3xx is a
failure (a 307 would re-post the alert to another host; a 302 turned into a GET without
the alert that counted as delivered). It runs off the processing path, behind a queue and
a circuit breaker (:class:`streams.sinks.queue.QueuedSink`). :meth:`WebhookSink.deliver` returns
``False`` when it gives up; the caller dead-letters :meth:`WebhookSink.failure_record`.
The URL is never logged or dead-lettered whole: Slack webhook paths are secrets.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from schemas.codec import dumps
from schemas.ids import stable_id
from schemas.parsing import RecordError, dead_letter_record

from streams.ops.metrics import Metrics
from streams.settings import Settings

log = logging.getLogger(__name__)

FORMATS = ("json", "slack")
#: Statuses worth retrying besides 5xx: the receiver is rate limiting us.
RETRY_STATUSES = frozenset({429})
JSON_HEADERS = {"Content-Type": "application/json"}


def slack_payload(alert: dict[str, Any]) -> dict[str, str]:
    """A Slack-compatible message for an alert.

    >>> slack_payload({"severity": "P1", "status": "firing", "model_id": "fraud",
    ...                "message": "PSI 0.31 above 0.2 on amount"})
    {'text': 'P1 firing fraud: PSI 0.31 above 0.2 on amount'}
    """
    return {
        "text": f"{alert.get('severity', '?')} {alert.get('status', '?')} "
        f"{alert.get('model_id', '?')}: {alert.get('message', '')}"
    }


class WebhookSink:
    """Posts alerts to ``url`` as JSON (``fmt="json"``: the alert itself) or Slack messages.

    ``retries`` is how many times a failed attempt is repeated (``retries + 1`` attempts
    at most), waiting ``backoff_s * 2**n`` before retry ``n`` (0-based). Deliveries are
    counted in ``metrics.webhook_deliveries`` by outcome: ``delivered``, ``retried``,
    ``failed``. Use it inside a running event loop and :meth:`close` it when done.
    """

    #: the sink's name in metrics (:class:`streams.sinks.queue.AlertSink`)
    name = "webhook"

    def __init__(
        self,
        url: str,
        fmt: str = "json",
        timeout_s: float = 5.0,
        retries: int = 3,
        backoff_s: float = 0.5,
        metrics: Metrics | None = None,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("url: expected an http:// or https:// URL with a host")
        if fmt not in FORMATS:
            raise ValueError(f"fmt={fmt!r}: expected one of {', '.join(FORMATS)}")
        if not timeout_s > 0:
            raise ValueError(f"timeout_s={timeout_s}: expected > 0")
        if retries < 0:
            raise ValueError(f"retries={retries}: expected >= 0")
        if backoff_s < 0:
            raise ValueError(f"backoff_s={backoff_s}: expected >= 0")
        self.url = url
        self.fmt = fmt
        self.timeout_s = timeout_s
        self.retries = retries
        self.backoff_s = backoff_s
        self.metrics = metrics
        #: ``scheme://host[:port]`` of the URL: safe to log.
        self.destination = f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"
        self._session: aiohttp.ClientSession | None = None
        self._last_error: str | None = None

    @classmethod
    def from_settings(
        cls, settings: Settings, metrics: Metrics | None = None
    ) -> WebhookSink | None:
        """The sink ``DRIFTSTREAM_WEBHOOK_*`` configures, or ``None`` when no URL is set.

        >>> WebhookSink.from_settings(Settings()) is None
        True
        >>> sink = WebhookSink.from_settings(Settings(webhook_url="https://hooks.example.com/x",
        ...                                           webhook_format="slack", webhook_retries=5))
        >>> sink.destination, sink.fmt, sink.retries
        ('https://hooks.example.com', 'slack', 5)
        """
        if settings.webhook_url is None:
            return None
        return cls(
            settings.webhook_url,
            fmt=settings.webhook_format,
            timeout_s=settings.webhook_timeout_s,
            retries=settings.webhook_retries,
            metrics=metrics,
        )

    @property
    def last_error(self) -> str | None:
        """Why the last failed :meth:`deliver` gave up (``None`` if it succeeded).

        Read it right after ``await sink.deliver(...)`` returns ``False``: with no await in
        between, no other delivery can have changed it.
        """
        return self._last_error

    async def deliver(self, alert: dict[str, Any]) -> bool:
        """Post one alert; ``True`` once the receiver answers 2xx, ``False`` on giving up."""
        body = dumps(slack_payload(alert) if self.fmt == "slack" else alert)
        for attempt in range(self.retries + 1):
            error, retriable = await self._post(body)
            if error is None:
                self._last_error = None
                self._count("delivered")
                return True
            if not retriable or attempt == self.retries:
                break
            self._count("retried")
            delay = self.backoff_s * 2**attempt
            log.info("webhook %s: %s; retry %d/%d in %.2fs",
                     self.destination, error, attempt + 1, self.retries, delay)
            await asyncio.sleep(delay)
        self._last_error = f"{error} after {attempt + 1} attempt(s)"
        self._count("failed")
        log.warning("webhook %s: giving up on alert %s: %s",
                    self.destination, alert.get("alert_id", "?"), self._last_error)
        return False

    def failure_record(self, alert: dict[str, Any], error: BaseException | str, *, topic: str, now: float) -> dict[str, Any]:
        """The ``dead-letter`` record of an alert that could not be delivered: the contract's
        fields (origin: the alerts ``topic``, no partition or offset; the alert's JSON as the
        raw bytes), plus the destination (scheme and host only), the format and the alert.

        >>> sink = WebhookSink("https://hooks.slack.com/services/T0/B0/SECRET", fmt="slack")
        >>> record = sink.failure_record({"alert_id": "a1"}, "HTTP 500 after 4 attempt(s)", topic="alerts", now=1.0)
        >>> record["reason"], record["message"], record["origin"], record["destination"]
        ... # doctest: +NORMALIZE_WHITESPACE
        ('webhook_failed', 'webhook: HTTP 500 after 4 attempt(s)',
         {'topic': 'alerts', 'partition': None, 'offset': None, 'index': None}, 'https://hooks.slack.com')
        """
        message = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
        record = dead_letter_record(topic, None, None, RecordError(None, "webhook_failed", f"webhook: {message}", dumps(alert)), now)
        return {
            **record,
            # not from an offset: one alert (incident) can fire several times as it grows,
            # each message with its own event_id
            "dead_letter_id": stable_id("dead-letter", "webhook", topic, alert.get("event_id") or alert.get("alert_id")),
            "destination": self.destination,
            "format": self.fmt,
            "alert": alert,
        }

    async def close(self) -> None:
        """Close the HTTP session (a later :meth:`deliver` opens a new one)."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _post(self, body: bytes) -> tuple[str | None, bool]:
        """One attempt: ``(None, _)`` on 2xx, else ``(error, retriable)``."""
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout_s)
            )
        try:
            async with self._session.post(self.url, data=body, headers=JSON_HEADERS, allow_redirects=False) as response:
                if 200 <= response.status < 300:
                    return None, False
                if 300 <= response.status < 400:  # never to another host, never as a GET
                    return f"HTTP {response.status} (redirects are not followed)", False
                retriable = response.status >= 500 or response.status in RETRY_STATUSES
                return f"HTTP {response.status}", retriable
        except asyncio.TimeoutError:
            return f"no answer within {self.timeout_s}s", True
        except aiohttp.ClientConnectionError as exc:
            return f"{type(exc).__name__}: {exc}", True
        except aiohttp.ClientError as exc:  # its text may quote the secret URL
            return type(exc).__name__, False

    def _count(self, outcome: str) -> None:
        if self.metrics is not None:
            self.metrics.webhook_deliveries.labels(outcome=outcome).inc()


__all__ = ["WebhookSink", "slack_payload", "FORMATS"]
