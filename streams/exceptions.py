"""The errors of the ``streams`` package, one hierarchy with a ``retriable`` flag."""

from __future__ import annotations


class DriftstreamError(Exception):
    """Base of every error raised by driftstream's streaming side."""

    retriable: bool = False


class BrokerError(DriftstreamError):
    """The embedded broker could not be found, started or reached."""


class KafkaUnreachableError(DriftstreamError):
    """Kafka could not be reached (refused, timed out, or the handshake failed)."""

    retriable = True


class PublishError(DriftstreamError):
    """An event could not be published (invalid, or the broker refused it)."""


class ConfigError(DriftstreamError):
    """A monitoring config file or profile is invalid."""


class OffsetGapError(DriftstreamError):
    """A partition skipped offsets that were never applied to state."""

    retriable = True
