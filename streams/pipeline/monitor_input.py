"""The records of the ``monitor-input`` topic, from the join to the model monitors.

Each is one model's share of one join batch (:class:`JoinedBatch`), or a control forwarded
from ``model-updates`` (:class:`Control`: a re-baseline, or a version's retirement); the
join's progress records travel beside them (:mod:`streams.pipeline.event_time`). On the
topic and in the join's outbox they are JSON objects; :func:`from_json` makes the record the
monitor stage takes, once per payload (not per event).

>>> batch = JoinedBatch("churn", None, source=0, seq=3, pred={"ts": [1.0]}, pairs=None, matched=0, expired=1)
>>> from_json(batch.to_json()) == batch
True
>>> control = Control("retire", "e", "churn", "v1", 5.0, "v2 serves")
>>> from_json(control.to_json()) == control
True
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple, Union


class JoinedBatch(NamedTuple):
    """One model's events of join batch ``seq`` of join partition ``source``: its new
    predictions and its joined pairs as columns (``None``: none), and how many of its
    predictions the batch matched with a label or let expire unlabelled."""

    model_id: str
    model_version: str | None
    source: int
    seq: int
    pred: dict[str, Any] | None
    pairs: dict[str, Any] | None
    matched: int = 0
    expired: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"model_id": self.model_id, "model_version": self.model_version, "source": self.source, "seq": self.seq,
                "pred": self.pred, "pairs": self.pairs, "join": {"matched": self.matched, "expired": self.expired}}


class Control(NamedTuple):
    """``rebaseline`` the monitor of ``model_id@model_version`` now, or ``retire`` it once the
    event-time frontier passes ``timestamp``; applied once per ``event_id``."""

    control: str
    event_id: str
    model_id: str
    model_version: str | None
    timestamp: float
    reason: str

    def to_json(self) -> dict[str, Any]:
        return self._asdict()


MonitorInput = Union[JoinedBatch, Control]


def from_json(payload: Mapping[str, Any]) -> MonitorInput:
    """The record of a decoded ``monitor-input`` payload (not a progress record)."""
    if "control" in payload:
        return Control(payload["control"], payload["event_id"], payload["model_id"], payload["model_version"],
                       float(payload["timestamp"]), payload["reason"])
    join = payload.get("join") or {}
    return JoinedBatch(payload["model_id"], payload["model_version"], int(payload["source"]), int(payload["seq"]),
                       payload.get("pred"), payload.get("pairs"), int(join.get("matched", 0)), int(join.get("expired", 0)))


__all__ = ["Control", "JoinedBatch", "MonitorInput", "from_json"]
