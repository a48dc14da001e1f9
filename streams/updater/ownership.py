"""One ``updater-input`` partition's updater: the models routed there, decided by whoever
owns the partition, with a checkpoint that a new owner (after a rebalance, a restart or a
SIGKILL) resumes from.

The checkpoint is the :class:`~streams.updater.decisions.Updater`'s state, the last
``updater-input`` offset it covers and, per source partition, the last source offset
applied (:mod:`streams.updater.routing` may send a record twice; its parts arrive in order). It is written with
:meth:`ModelStore.save_state` after the decisions it led to were published and before the
consumer commits: a restart from it reads the records after that offset again and makes
the same decisions, with the same ids and versions (a decision published twice keeps its
event id). A checkpoint is a pickle: another process loads it only with the store's key
(``DRIFTSTREAM_MODEL_STORE_KEY``, the same for every updater); without one an updater
resumes from its committed offsets with empty buffers, as it did before checkpoints.
"""

from __future__ import annotations

import logging
from typing import Any

from schemas import codec
from schemas.parsing import decode_record
from schemas.records import ModelUpdate

from streams.updater.model_store import ModelStore, UntrustedArtifactError

__all__ = ["PartitionUpdater", "checkpoint_name"]

log = logging.getLogger(__name__)


def checkpoint_name(partition: int) -> str:
    return f"updater-input-{partition}"


class PartitionUpdater:
    """The :class:`Updater` of one ``updater-input`` partition and the offsets it covers."""

    def __init__(self, partition: int, updater: Any, max_bytes: int) -> None:
        self.partition = partition
        self.max_bytes = max_bytes
        self.updater = updater
        self.offset = -1  # the last updater-input offset applied
        self.sources: dict[str, tuple[int, int]] = {}  # "role[partition]" -> the last (offset, part) applied
        self.dirty = False  # applied records since the last checkpoint
        self.applied: dict[str, int] = {}  # events applied per role since the last take_applied()

    @classmethod
    def resume(cls, partition: int, updater: Any, store: ModelStore, max_bytes: int) -> PartitionUpdater:
        """The partition's updater as of its last checkpoint (fresh with none)."""
        owner = cls(partition, updater, max_bytes)
        try:
            saved = store.load_state(checkpoint_name(partition))
        except UntrustedArtifactError as exc:  # no store key: another process's pickle is never loaded
            log.warning("updater-input[%d]: starting afresh from the committed offset, its update in flight lost: %s",
                        partition, exc)
            return owner
        if saved is not None:
            state, metadata = saved
            updater.restore(state["updater"])
            owner.sources = dict(state["sources"])
            owner.offset = int(metadata["offset"])
        return owner

    def apply(self, offset: int, origin: tuple[str, int, int, int], value: bytes) -> list[dict[str, Any]]:
        """One ``updater-input`` record (its origin and value); the decisions it led to."""
        if offset <= self.offset:
            return []
        self.offset, self.dirty = offset, True
        role, partition, source_offset, part = origin
        key, at = f"{role}[{partition}]", (source_offset, part)
        if at <= self.sources.get(key, (-1, -1)):
            return []  # the router sent it again after a restart
        self.sources[key] = at
        u = self.updater
        if role == "model-updates":  # checked by the router
            self._count(role, 1)
            return u.model_update(ModelUpdate.from_dict(codec.loads(value)).to_dict())
        handle = u.add_prediction if role == "predictions" else u.add_label
        out: list[dict[str, Any]] = []
        events = decode_record(value, role, self.max_bytes)[0]  # type: ignore[arg-type]
        for _, event in events:
            out += handle(event)
        self._count(role, len(events))
        return out

    def _count(self, role: str, events: int) -> None:
        self.applied[role] = self.applied.get(role, 0) + events

    def take_applied(self) -> dict[str, int]:
        """Events applied per role since the last call (the updater's progress, for metrics)."""
        applied, self.applied = self.applied, {}
        return applied

    def save(self, store: ModelStore) -> None:
        """Checkpoint what was applied (call it once its decisions are published)."""
        store.save_state(checkpoint_name(self.partition), {"updater": self.updater.state(), "sources": self.sources},
                         {"offset": self.offset, "partition": self.partition})
        self.dirty = False
