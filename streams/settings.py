"""One frozen, typed settings object, read from ``DRIFTSTREAM_*`` environment variables.

Every process of driftstream (worker, CLI, SDK, tests, load tests) builds its Kafka
configuration from this object, so the embedded broker and a production Apache Kafka
cluster go through identical code.

>>> s = Settings.from_env({"DRIFTSTREAM_BROKER": "kafka://k1:9092,k2:9092",
...                        "DRIFTSTREAM_TOPIC_PREFIX": "prod."})
>>> s.bootstrap_servers
'k1:9092,k2:9092'
>>> s.topic("alerts")
'prod.alerts'
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from schemas import topics

log = logging.getLogger(__name__)

ENV_PREFIX = "DRIFTSTREAM_"

#: The topics driftstream reads and writes, by their role (the prefix is prepended).
TOPIC_ROLES = topics.NAMES

#: What a group instance id may hold (Kafka's rule for names; it also becomes part of the
#: client id, which the broker puts in front of the member ids it gives out).
INSTANCE_ID = re.compile(r"[A-Za-z0-9._-]{1,200}")

SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


class SettingsError(ValueError):
    """A ``DRIFTSTREAM_*`` variable has a value that cannot be used."""


class SecretStr:
    """A string that never shows itself in logs, reprs or tracebacks.

    >>> SecretStr("hunter2")
    SecretStr('**********')
    >>> SecretStr("hunter2").get_secret_value()
    'hunter2'
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get_secret_value(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "SecretStr('**********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SecretStr) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


def _parse_bool(name: str, raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise SettingsError(f"{ENV_PREFIX}{name.upper()}={raw!r}: expected a boolean (true/false)")


def _coerce(name: str, annotation: str, raw: str) -> Any:
    try:
        if annotation == "int":
            return int(raw)
        if annotation == "float":
            return float(raw)
        if annotation == "bool":
            return _parse_bool(name, raw)
        if annotation == "SecretStr | None":
            return SecretStr(raw) if raw else None
        if annotation == "str | None":
            return raw or None
        return raw
    except SettingsError:  # a ValueError already naming the variable (a bad boolean)
        raise
    except ValueError as exc:
        raise SettingsError(
            f"{ENV_PREFIX}{name.upper()}={raw!r}: expected {annotation} ({exc})"
        ) from None


@dataclass(frozen=True)
class Settings:
    """Configuration of every driftstream process. Field ``x`` is read from ``DRIFTSTREAM_X``."""

    #: Kafka bootstrap servers, ``kafka://host:port[,host:port]`` (Faust's URL form).
    broker: str = "kafka://localhost:9092"
    #: Prepended to every topic name, e.g. ``staging.`` (also namespaces replays).
    topic_prefix: str = ""
    #: Faust application id; also the consumer group.
    app_id: str = "driftstream"
    #: Partitions for topics driftstream creates.
    partitions: int = 4
    replication_factor: int = 1
    #: Largest accepted event record, in bytes (larger ones are dead-lettered).
    max_message_bytes: int = 1_048_576
    #: Event-time window in which a prediction waits for its label.
    join_window_s: float = 86_400.0
    #: Data-drift reference: the first N events of each model (unless a profile is given).
    reference_size: int = 1_000
    #: Optional per-model monitoring config file (TOML or YAML).
    config_path: str | None = None
    #: Faust table store: ``memory://`` (demo, tests) or ``rocksdb://`` (production).
    store: str = "memory://"
    data_dir: str = "./driftstream-data"
    #: Micro-batching of the pipeline agents (:mod:`streams.runtime.batching`): a join batch closes
    #: this long after its first event ... (each batch costs a state delta, a commit record
    #: and a monitor-input message per model: longer batches cost latency, shorter ones
    #: throughput; docs/performance.md)
    batch_max_records: int = 2_000
    batch_within_s: float = 0.1
    #: ... a monitor batch this long after its first event.
    monitor_batch_within_s: float = 0.1
    #: Hand a batch over as soon as its input is caught up (no sooner than half of its
    #: ``within_s`` after the previous one) instead of always waiting ``within_s``: lower
    #: alert latency, at the price of more batches, so more CPU, at moderate rates
    #: (docs/performance.md); a saturated worker's batches fill from its backlog either way.
    batch_when_caught_up: bool = True
    #: How often the monitor agent writes the state of each model it changed (a checkpoint,
    #: with the monitor-input offset it covers): a crashed or rebalanced worker resumes
    #: from it and applies what came after again. Writing the states after every batch
    #: cost the worker as much as the detectors.
    monitor_checkpoint_s: float = 1.0
    #: An input partition with nothing unread on the broker for this long is idle and holds
    #: no model's results back (:mod:`streams.pipeline.event_time`). Only partitions with no lag
    #: idle, so this adds latency when one goes quiet, never changes a result.
    idle_after_s: float = 0.25
    #: Input bytes joined per step: bounds a step's state delta, outbox and column batches.
    batch_max_bytes: int = 1_048_576
    #: Record bytes fetched ahead of each pipeline agent (its input buffer); past that,
    #: Faust pauses the partitions' fetches until it drains.
    input_buffer_bytes: int = 16_777_216
    #: Events a worker's monitors may hold for the event-time frontier before the join
    #: partitions ahead of the slowest are paused (:mod:`streams.runtime.alignment`). A soft bound:
    #: what was fetched before the pause still comes.
    max_held_events: int = 200_000
    #: An event stamped more than this far ahead of its Kafka record's timestamp is
    #: dead-lettered (``clock_skew``, :mod:`streams.pipeline.clock`): one such event would close the
    #: join window over every pending prediction. An hour absorbs unsynchronised clocks
    #: while a skewed event may expire predictions at most an hour early (1/24 of the
    #: default window); keep it well below the join window.
    max_clock_skew_s: float = 3_600.0
    #: Models a worker monitors per ``monitor-input`` partition; events of further models
    #: are dead-lettered (``too_many_models``, :mod:`streams.pipeline.cardinality`). A model costs
    #: about 29 KB of state and a few dozen Prometheus series.
    max_models: int = 1_000
    #: A model with no event for this long (wall clock) is dropped from the worker's memory;
    #: its state stays in the monitor-state changelog, and its next event loads it from
    #: there as a rebalance would (results are unchanged: only memory is freed).
    model_idle_evict_s: float = 3_600.0
    #: Models a worker exports per-model Prometheus series for (detector statistics,
    #: coverage, alerts): each has dozens to hundreds; the rest are counted only.
    max_model_series: int = 100
    #: This worker's name in the consumer group, unique per worker and the same across its
    #: restarts (e.g. ``worker-1``, a StatefulSet pod name): a restarted worker then takes its
    #: predecessor's place at once instead of waiting out its session (docs/delivery.md,
    #: "Restarts"). Unset: a new member per process, as before.
    instance_id: str | None = None
    #: With an instance id: use Kafka's static group membership (``group.instance.id``,
    #: KIP-345), under which a restart moves no partition. Off: the worker removes its
    #: predecessor's member from the group before it joins (the embedded broker's way: it
    #: holds every static join and sync 3 s). A static member does not leave the group when
    #: it stops, so a worker that stops for good keeps its partitions for a session timeout.
    static_membership: bool = True
    #: Consumer-group timing; short values make the embedded broker start in seconds.
    session_timeout_s: float = 30.0
    heartbeat_interval_s: float = 3.0
    rebalance_timeout_s: float = 60.0
    #: How long a silent partition may lag before offsets are committed anyway.
    commit_interval_s: float = 1.0
    #: Worker web server (Prometheus ``/metrics``, ``/health``, ``/ready``).
    web_host: str = "127.0.0.1"
    web_port: int = 6066
    #: Producer batching window in milliseconds: every table write and output an agent
    #: waits for waits this long first (aiokafka batches what gathers while a request is in
    #: flight anyway).
    producer_linger_ms: int = 1
    #: Longest a consumer fetch waits for data (the worker's, its updater's and the SDK
    #: subscriber's; Faust's own default is 1500 ms, aiokafka's 500 ms). Tansu answers an
    #: empty fetch when the wait is over, not when a record arrives, so each hop of the
    #: pipeline can wait this long (figures: docs/performance.md).
    fetch_max_wait_ms: int = 25
    #: Security for production Kafka.
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str = "PLAIN"
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    #: Optional alert webhook (``json`` or ``slack`` payloads).
    webhook_url: str | None = None
    webhook_format: str = "json"
    webhook_timeout_s: float = 5.0
    webhook_retries: int = 3
    #: Alerts waiting for the webhook (:mod:`streams.sinks.queue`); one that finds the queue full
    #: is dead-lettered (``webhook_failed``) at once, so a slow receiver never stalls the
    #: monitors.
    webhook_queue_size: int = 1_000
    #: Consecutive undeliverable alerts that open the webhook's circuit breaker, and how
    #: long it stays open (alerts meanwhile are dead-lettered without a try).
    webhook_breaker_failures: int = 5
    webhook_breaker_open_s: float = 30.0
    #: Directory of the reference model updater's artifacts.
    model_store_dir: str = "./driftstream-models"
    #: Optional HMAC key: artifacts are signed with it and refused unless their signature
    #: checks out (the store folder then need not be trusted).
    model_store_key: SecretStr | None = None
    #: Run the reference model updater inside the worker process too.
    run_updater: bool = False
    #: The updater's canary / A-B comparison of two versions served at once
    #: (:class:`streams.updater.canary.ComparisonConfig`, which checks them at start-up):
    #: ``publish`` or ``auto``, labelled pairs of each version before the first comparison
    #: and between two, and the significance level of a decision.
    comparison_policy: str = "publish"
    comparison_min_pairs: int = 500
    comparison_every_pairs: int = 1_000
    comparison_p_value_below: float = 0.01
    #: The worker's own lines (start, partitions, ready, status, alerts, shutdown) are INFO;
    #: Faust and aiokafka stay at WARNING unless this is DEBUG.
    log_level: str = "INFO"
    #: ``text`` or ``json`` (one object per line).
    log_format: str = "text"
    #: Longest a worker takes to stop on SIGTERM; past it, it exits (status 69) and the next
    #: owner applies again what its last checkpoint missed. Keep it under the supervisor's
    #: own grace (Kubernetes' default 30 s, docker-compose's stop_grace_period).
    shutdown_grace_s: float = 25.0
    #: Python's garbage collector runs after this many new container objects (its own
    #: default, 700, cost the pipeline a third of its throughput: see streams.runtime.gc_tuning).
    gc_threshold: int = 50_000
    #: glibc malloc arenas of the worker process (0: glibc's default, up to 8 per core,
    #: which let its memory creep up by 8 MB per million events: see streams.runtime.malloc_arenas).
    malloc_arena_max: int = 2

    def __post_init__(self) -> None:
        if self.security_protocol not in SECURITY_PROTOCOLS:
            raise SettingsError(
                f"{ENV_PREFIX}SECURITY_PROTOCOL={self.security_protocol!r}: "
                f"expected one of {', '.join(SECURITY_PROTOCOLS)}"
            )
        if self.sasl_mechanism not in SASL_MECHANISMS:
            raise SettingsError(
                f"{ENV_PREFIX}SASL_MECHANISM={self.sasl_mechanism!r}: "
                f"expected one of {', '.join(SASL_MECHANISMS)}"
            )
        if self.log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
            raise SettingsError(
                f"{ENV_PREFIX}LOG_LEVEL={self.log_level!r}: expected one of DEBUG, INFO, WARNING, ERROR, CRITICAL"
            )
        if self.log_format not in ("text", "json"):
            raise SettingsError(f"{ENV_PREFIX}LOG_FORMAT={self.log_format!r}: expected text or json")
        if not self.shutdown_grace_s > 0:
            raise SettingsError(f"{ENV_PREFIX}SHUTDOWN_GRACE_S={self.shutdown_grace_s}: expected > 0")
        if self.partitions < 1:
            raise SettingsError(f"{ENV_PREFIX}PARTITIONS={self.partitions}: expected >= 1")
        if self.gc_threshold < 100:
            raise SettingsError(f"{ENV_PREFIX}GC_THRESHOLD={self.gc_threshold}: expected >= 100")
        if self.malloc_arena_max < 0:
            raise SettingsError(f"{ENV_PREFIX}MALLOC_ARENA_MAX={self.malloc_arena_max}: expected >= 0 (0: glibc's default)")
        if not self.idle_after_s >= 0:
            raise SettingsError(f"{ENV_PREFIX}IDLE_AFTER_S={self.idle_after_s}: expected >= 0")
        if self.input_buffer_bytes < 65_536:
            raise SettingsError(f"{ENV_PREFIX}INPUT_BUFFER_BYTES={self.input_buffer_bytes}: expected >= 65536")
        if self.max_held_events < 1:
            raise SettingsError(f"{ENV_PREFIX}MAX_HELD_EVENTS={self.max_held_events}: expected >= 1")
        if not self.max_clock_skew_s > 0:
            raise SettingsError(f"{ENV_PREFIX}MAX_CLOCK_SKEW_S={self.max_clock_skew_s}: expected > 0")
        if self.max_models < 1:
            raise SettingsError(f"{ENV_PREFIX}MAX_MODELS={self.max_models}: expected >= 1")
        if not self.model_idle_evict_s > 0:
            raise SettingsError(f"{ENV_PREFIX}MODEL_IDLE_EVICT_S={self.model_idle_evict_s}: expected > 0")
        if self.max_model_series < 1:
            raise SettingsError(f"{ENV_PREFIX}MAX_MODEL_SERIES={self.max_model_series}: expected >= 1")
        if self.webhook_queue_size < 1:
            raise SettingsError(f"{ENV_PREFIX}WEBHOOK_QUEUE_SIZE={self.webhook_queue_size}: expected >= 1")
        if self.webhook_breaker_failures < 1:
            raise SettingsError(f"{ENV_PREFIX}WEBHOOK_BREAKER_FAILURES={self.webhook_breaker_failures}: expected >= 1")
        if not self.webhook_breaker_open_s > 0:
            raise SettingsError(f"{ENV_PREFIX}WEBHOOK_BREAKER_OPEN_S={self.webhook_breaker_open_s}: expected > 0")
        if not self.monitor_checkpoint_s > 0:
            raise SettingsError(f"{ENV_PREFIX}MONITOR_CHECKPOINT_S={self.monitor_checkpoint_s}: expected > 0")
        if self.max_message_bytes < 1024:
            raise SettingsError(
                f"{ENV_PREFIX}MAX_MESSAGE_BYTES={self.max_message_bytes}: expected >= 1024"
            )
        if self.webhook_format not in ("json", "slack"):
            raise SettingsError(
                f"{ENV_PREFIX}WEBHOOK_FORMAT={self.webhook_format!r}: expected json or slack"
            )
        if self.instance_id is not None and not INSTANCE_ID.fullmatch(self.instance_id):
            raise SettingsError(
                f"{ENV_PREFIX}INSTANCE_ID={self.instance_id!r}: expected 1-200 of A-Z a-z 0-9 . _ -"
            )
        if not 0 < self.heartbeat_interval_s < self.session_timeout_s:
            raise SettingsError(
                f"{ENV_PREFIX}HEARTBEAT_INTERVAL_S={self.heartbeat_interval_s}: expected > 0 and below "
                f"DRIFTSTREAM_SESSION_TIMEOUT_S ({self.session_timeout_s})"
            )
        if not self.broker.startswith("kafka://"):
            raise SettingsError(
                f"{ENV_PREFIX}BROKER={self.broker!r}: expected kafka://host:port[,host:port]"
            )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Build settings from ``DRIFTSTREAM_*`` variables, then apply keyword overrides."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            raw = env.get(ENV_PREFIX + f.name.upper())
            if raw is not None:
                values[f.name] = _coerce(f.name, str(f.type), raw)
        values.update(overrides)
        settings = cls(**values)
        if settings.sasl_username and settings.security_protocol == "SASL_PLAINTEXT":
            log.warning(
                "SASL is configured without SSL (DRIFTSTREAM_SECURITY_PROTOCOL=SASL_PLAINTEXT): "
                "credentials travel in clear text; use SASL_SSL in production"
            )
        return settings

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)

    @property
    def bootstrap_servers(self) -> str:
        """``host:port[,host:port]`` for aiokafka and kcat."""
        return ",".join(part.split("://", 1)[-1] for part in self.broker.split(","))

    @property
    def handover_timeout_s(self) -> float:
        """Longest a worker spends handing its partitions over at a rebalance or shutdown
        (:meth:`streams.runtime.checkpoint.Checkpointer.hand_over`): half the session timeout, so a rebalance is not held up."""
        return self.session_timeout_s / 2

    @property
    def client_id(self) -> str | None:
        """The Kafka client id of a worker with an instance id (the broker builds the member ids
        it gives out from it: :mod:`streams.runtime.membership`); ``None``: Faust's own."""
        return f"driftstream-{self.instance_id}" if self.instance_id else None

    def topic(self, role: str) -> str:
        """The full name of a topic by its role (see ``TOPIC_ROLES``)."""
        if role not in TOPIC_ROLES:
            raise KeyError(f"unknown topic role {role!r}; expected one of {TOPIC_ROLES}")
        return f"{self.topic_prefix}{role}"

    def kafka_client_kwargs(self) -> dict[str, Any]:
        """Connection and security keyword arguments shared by every aiokafka client."""
        kwargs: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap_servers,
            "security_protocol": self.security_protocol,
        }
        if self.security_protocol in ("SSL", "SASL_SSL"):
            from aiokafka.helpers import create_ssl_context

            kwargs["ssl_context"] = create_ssl_context(
                cafile=self.ssl_cafile, certfile=self.ssl_certfile, keyfile=self.ssl_keyfile
            )
        if self.security_protocol.startswith("SASL"):
            kwargs["sasl_mechanism"] = self.sasl_mechanism
            kwargs["sasl_plain_username"] = self.sasl_username
            kwargs["sasl_plain_password"] = (
                self.sasl_password.get_secret_value() if self.sasl_password else None
            )
        return kwargs

    def to_env(self) -> dict[str, str]:
        """``DRIFTSTREAM_*`` variables that rebuild these settings in a child process."""
        env: dict[str, str] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value is None:
                continue
            if isinstance(value, SecretStr):
                value = value.get_secret_value()
            elif isinstance(value, bool):
                value = "true" if value else "false"
            env[ENV_PREFIX + f.name.upper()] = str(value)
        return env

    def for_embedded_broker(self, url: str) -> Settings:
        """These settings pointed at the embedded broker, with group timings that make a
        worker start processing in seconds there (Tansu's group join takes half the session
        timeout; production keeps the sane defaults), and no static membership (Tansu holds a
        static member's join and sync 3 s each: a restart replaces its predecessor instead,
        :mod:`streams.runtime.membership`)."""
        return self.replace(
            broker=url,
            static_membership=False,
            session_timeout_s=4.0,
            heartbeat_interval_s=1.0,
            rebalance_timeout_s=10.0,
        )

    def redacted(self) -> dict[str, Any]:
        """All settings as a dict safe to log (secrets masked)."""
        return {
            f.name: (repr(v) if isinstance(v, SecretStr) else v)
            for f in dataclasses.fields(self)
            for v in [getattr(self, f.name)]
        }


__all__ = ["ENV_PREFIX", "TOPIC_ROLES", "SecretStr", "Settings", "SettingsError"]
