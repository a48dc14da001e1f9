"""Create driftstream's topics with the configured partitions (idempotent)."""

from __future__ import annotations

import contextlib

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from streams.runtime.kafka_connect import start_client
from streams.settings import TOPIC_ROLES, Settings


async def ensure_topics(settings: Settings, roles: tuple[str, ...] = TOPIC_ROLES) -> dict[str, int]:
    """Create any missing topic; return ``{topic: partitions}`` for all of ``roles``."""
    admin = AIOKafkaAdminClient(**settings.kafka_client_kwargs())
    await start_client(admin, settings)
    try:
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(settings.topic(role), settings.partitions, settings.replication_factor)
            for role in roles
            if settings.topic(role) not in existing
        ]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(missing)
        described = await admin.describe_topics([settings.topic(r) for r in roles])
        return {d["topic"]: len(d["partitions"]) for d in described}
    finally:
        await admin.close()
