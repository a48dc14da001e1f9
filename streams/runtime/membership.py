"""A restarted worker takes its predecessor's place in the consumer group at once.

A worker killed (SIGKILL, OOM, a node lost) leaves its member in the group until the broker
expires its session; a successor joining meanwhile waits that out (the embedded broker then
even forms a generation around the dead member). With ``DRIFTSTREAM_INSTANCE_ID`` a worker
is recognisable across restarts, and one of two things takes the wait away:

- static membership (``group.instance.id``, KIP-345, Apache Kafka): the broker hands the
  instance's member to the new process, and no partition moves; Faust passes the id
  (:func:`streams.runtime.app.faust_settings`);
- without it (``DRIFTSTREAM_STATIC_MEMBERSHIP=false``, the embedded broker's setting, which
  holds every static join and sync 3 s): :func:`remove_predecessors`, before the worker
  joins, asks the group coordinator to remove the members an earlier process of this
  instance left behind. Both Apache Kafka and Tansu name a dynamic member
  ``<client id>-<uuid>``, and the client id carries the instance id
  (:attr:`streams.settings.Settings.client_id`), so those members are known by their id.

Instance ids must be unique per worker: two workers with the same one remove each other.

>>> predecessors("driftstream-w1", ["driftstream-w1-3b433ad2-f629-4882-b939-5542e260227e",
...                                 "driftstream-w1-a-9e2cdcf2-230f-4ad9-97b2-055d0b7181b6",
...                                 "faust-0.15.3-ab974266-5d9a-490f-8d16-ece926f5b9f5"])
['driftstream-w1-3b433ad2-f629-4882-b939-5542e260227e']
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Iterable

from aiokafka.client import AIOKafkaClient, CoordinationType
from aiokafka.errors import for_code
from aiokafka.protocol.admin import DescribeGroupsRequest
from aiokafka.protocol.group import LeaveGroupRequest

from streams.runtime.worker_log import info
from streams.settings import Settings

#: Longest the removal may take; past it the worker joins anyway (and waits out the old session).
TIMEOUT_S = 5.0


def predecessors(client_id: str, member_ids: Iterable[str]) -> list[str]:
    """The member ids the broker gave to earlier clients named ``client_id``: the client id,
    a dash, then a UUID (so instance ``w1`` never matches ``w1-a``'s members)."""
    found = []
    for member_id in member_ids:
        head, _, tail = member_id.partition(f"{client_id}-")
        if head == "" and tail and _is_uuid(tail):
            found.append(member_id)
    return found


def _is_uuid(text: str) -> bool:
    try:
        return str(uuid.UUID(text)) == text
    except ValueError:
        return False


async def remove_predecessors(settings: Settings) -> list[str]:
    """Remove from ``settings``' group the members earlier processes of this worker's
    instance left there (``[]`` without an instance id, or with static membership, which
    needs none of this); returns their ids. A failure is logged, never raised: the worker
    then joins as it would have without it."""
    client_id = settings.client_id
    if client_id is None or settings.static_membership:
        return []
    try:
        return await asyncio.wait_for(_remove(settings, client_id), TIMEOUT_S)
    except Exception as exc:  # noqa: BLE001 - an optimisation: the join works without it
        info("predecessors_not_removed", "could not remove this instance's earlier members from group %s "
             "(%r): the group may wait for their sessions to expire", settings.app_id, exc, level=logging.WARNING)
        return []


async def _remove(settings: Settings, client_id: str) -> list[str]:
    client = AIOKafkaClient(**settings.kafka_client_kwargs(), client_id=client_id)
    try:
        await client.bootstrap()
        node = await client.coordinator_lookup(CoordinationType.GROUP, settings.app_id)
        described = await client.send(node, DescribeGroupsRequest([settings.app_id]))
        group = described.groups[0]  # (error_code, group_id, state, protocol_type, protocol, members, ...)
        error = for_code(group[0])
        if error.errno != 0:
            raise error(f"describing group {settings.app_id}")
        removed = []
        for member_id in predecessors(client_id, (member[0] for member in group[5])):
            answer = await client.send(node, LeaveGroupRequest(settings.app_id, member_id))
            if answer.error_code == 0:
                removed.append(member_id)
        if removed:
            info("predecessors_removed", "removed %d earlier member(s) of instance %s from group %s: %s",
                 len(removed), settings.instance_id, settings.app_id, ", ".join(removed), members=removed)
        return removed
    finally:
        await client.close()


__all__ = ["TIMEOUT_S", "predecessors", "remove_predecessors"]
