"""The updater's router: predictions, labels, update requests and rollbacks (those decided
elsewhere are followed, :data:`FOLLOWED_ACTIONS`) re-keyed by model id onto
``updater-input``, so each model's updates are decided by the one updater that owns its
``updater-input`` partition (Kafka's group assignment makes one owner per partition).

A source record whose events all go to one partition (one model, the common case) is sent
on as it is; one with several models becomes a JSON batch per partition, of at most
:data:`CHUNK_EVENTS` events each. Each carries its origin (``role``, source partition,
offset, part) in its headers: the owner skips a record whose origin it already applied, so
a router that restarts from its last commit and sends records again changes nothing. Within a batch the router sends predictions, then
labels, then requests (a batch's data is there before its request).

A label that does not name its model goes to the partition of its prediction's model when
the router saw that prediction (a bounded map), else to every partition: only the owner of
its prediction joins it; the others drop it once it leaves their join window.

>>> router = Router(partitions=4, max_bytes=1_000_000)
>>> pred = {"prediction_id": "p1", "model_id": "churn", "features": {"x": 1.0}, "prediction": 1, "timestamp": 5.0}
>>> [(r.partition, r.origin, r.value == codec.dumps(pred)) for r in router.route([("predictions", 0, 7, codec.dumps(pred))])]
[(1, ('predictions', 0, 7, 0), True)]
>>> [r.partition for r in router.route([("ground-truth", 1, 2, b'{"prediction_id": "p1", "label": 1, "timestamp": 9.0}')])]
[1]
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from schemas import codec
from schemas.errors import ContractError
from schemas.parsing import decode_record
from schemas.records import ModelUpdate

from schemas.partitioning import partition_for

__all__ = ["FOLLOWED_ACTIONS", "ROLES", "Routed", "Router"]

log = logging.getLogger(__name__)

#: The topics the router reads, in the order a batch's records are sent on.
ROLES = ("predictions", "ground-truth", "model-updates")

#: The ``model-updates`` actions the updater acts on: requests, and promotions and rollbacks
#: decided elsewhere (``driftstream model promote|rollback``), which it follows.
FOLLOWED_ACTIONS = ("update_requested", "promoted", "rolled_back")

#: Events per ``updater-input`` record: decoded events take more room than a column batch.
CHUNK_EVENTS = 500

#: Prediction ids whose model the router remembers, for labels that do not name it.
REMEMBERED_PREDICTIONS = 100_000


@dataclass(frozen=True)
class Routed:
    """One ``updater-input`` record: its partition, key (the model id of its first event,
    ``None`` for a label sent to every partition), value (the source record, or a JSON
    batch of its events) and origin ``(role, source partition, offset, part)``."""

    partition: int
    key: bytes | None
    value: bytes
    origin: tuple[str, int, int, int]

    def headers(self) -> list[tuple[str, bytes]]:
        role, partition, offset, part = self.origin
        return [("role", role.encode()), ("origin", f"{partition}:{offset}:{part}".encode())]

    @staticmethod
    def origin_of(headers: Any) -> tuple[str, int, int, int]:
        """The origin from a consumed record's headers."""
        found = {name: value for name, value in headers}
        partition, offset, part = (int(n) for n in found["origin"].decode().split(":"))
        return found["role"].decode(), partition, offset, part


class Router:
    """Turns source records ``(role, partition, offset, value)`` into :class:`Routed` records."""

    def __init__(self, partitions: int, max_bytes: int) -> None:
        if partitions < 1:
            raise ValueError(f"partitions must be >= 1, got {partitions}")
        self.partitions = partitions
        self.max_bytes = max_bytes
        self.models: OrderedDict[str, str] = OrderedDict()  # prediction id -> model id
        self.rejected_records = 0  # what the pipeline dead-letters: skipped here

    def route(self, records: Iterable[tuple[str, int, int, bytes | None]]) -> list[Routed]:
        by_role: dict[str, list[tuple[int, int, bytes]]] = {role: [] for role in ROLES}
        for role, partition, offset, value in records:
            if value is not None:
                by_role[role].append((partition, offset, value))
        out: list[Routed] = []
        for role in ROLES:
            for partition, offset, value in by_role[role]:
                out += self._one(role, partition, offset, value)
        return out

    def _one(self, role: str, partition: int, offset: int, value: bytes) -> list[Routed]:
        events = self._events(role, value)
        groups: dict[int, list[dict[str, Any]]] = {}
        keys: dict[int, bytes | None] = {}
        for event in events:
            model_id = event.get("model_id")
            if role == "predictions":
                self._remember(event["prediction_id"], model_id)
            elif role == "ground-truth" and model_id is None:
                model_id = self.models.get(event["prediction_id"])
            targets = range(self.partitions) if model_id is None else (partition_for(model_id, self.partitions),)
            for target in targets:
                groups.setdefault(target, []).append(event)
                keys.setdefault(target, None if model_id is None else model_id.encode())
        if len(groups) == 1 and len(next(iter(groups.values()))) == len(events):
            [(target, _)] = groups.items()  # all of it to one partition: as it came
            return [Routed(target, keys[target], value, (role, partition, offset, 0))]
        return [Routed(target, keys[target], codec.dumps(group[start:start + CHUNK_EVENTS]), (role, partition, offset, start // CHUNK_EVENTS))
                for target, group in sorted(groups.items()) for start in range(0, len(group), CHUNK_EVENTS)]

    def _events(self, role: str, value: bytes) -> list[dict[str, Any]]:
        if role == "model-updates":
            try:
                update = ModelUpdate.from_dict(codec.loads(value)).to_dict()
            except (ValueError, ContractError) as exc:  # orjson's errors are ValueErrors
                self.rejected_records += 1
                log.warning("model-updates: skipping an event that breaks the contract: %s", exc)
                return []
            return [update] if update["action"] in FOLLOWED_ACTIONS else []
        oks, errors = decode_record(value, role, self.max_bytes)  # type: ignore[arg-type]
        self.rejected_records += len(errors)
        return [event for _, event in oks]

    def _remember(self, prediction_id: str, model_id: str) -> None:
        self.models[prediction_id] = model_id
        if len(self.models) > REMEMBERED_PREDICTIONS:
            self.models.popitem(last=False)
