"""Starting an aiokafka client: one clear error, and nothing left open, when Kafka cannot
be reached.

aiokafka logs every failed bootstrap address at ERROR and then raises a
``KafkaConnectionError`` that names the addresses but not why they failed; a command would
print both (or a traceback), and a client whose ``start`` failed is never closed, so
Python warns "Unclosed AIOKafkaConsumer" at exit. :func:`start_client` keeps the logged
reason for its own message instead, closes the client and raises
:class:`~streams.exceptions.KafkaUnreachableError`.
"""

from __future__ import annotations

import logging
from typing import Any

from aiokafka.errors import KafkaError

from streams.exceptions import KafkaUnreachableError
from streams.settings import Settings

_BOOTSTRAP_LOGGER = "aiokafka"  # aiokafka.client logs under this name


class _BootstrapFailures(logging.Filter):
    """Swallows aiokafka's "Unable connect to ..." records and keeps the last reason."""

    def __init__(self) -> None:
        super().__init__()
        self.reason: str | None = None

    def filter(self, record: logging.LogRecord) -> bool:
        if record.getMessage().startswith("Unable connect to"):
            if record.args:
                self.reason = str(record.args[-1])  # type: ignore[index]
            return False
        return True


async def close_client(client: Any) -> None:
    """Stop a consumer or producer, or close an admin client."""
    stop = getattr(client, "stop", None) or client.close
    await stop()


async def start_client(client: Any, settings: Settings) -> Any:
    """``await client.start()``; on failure close it and raise ``KafkaUnreachableError``."""
    failures = _BootstrapFailures()
    logger = logging.getLogger(_BOOTSTRAP_LOGGER)
    logger.addFilter(failures)
    try:
        await client.start()
    except KafkaError as exc:
        await close_client(client)
        reason = failures.reason or str(exc)
        raise KafkaUnreachableError(
            f"cannot reach Kafka at {settings.bootstrap_servers} ({reason}); "
            "check DRIFTSTREAM_BROKER and that the broker is up"
        ) from None
    finally:
        logger.removeFilter(failures)
    return client


__all__ = ["close_client", "start_client"]
