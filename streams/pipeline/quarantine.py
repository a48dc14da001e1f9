"""Quarantine: a model whose saved state cannot be loaded stops only itself.

A monitor state that fails to load (a corrupt or incompatible record, a reference profile
gone missing) used to raise inside the monitor batch, and the worker exited (status 70) and
crash-looped on the same record after every restart. Now the model is quarantined: its
``monitor-input`` payloads are dead-lettered (``model_quarantined``, with the load error and
the payload's origin) and every other model goes on. The quarantine lasts until the worker
restarts or the partition moves (the state is then tried again).

>>> q = Quarantine()
>>> q.add("m", "ValueError: bad state"); "m" in q, q.reason("m")
(True, 'ValueError: bad state')
>>> q.dead_letter("m", "monitor-input", 3, 42, {"pred": None}, 1.0)["reason"]
'model_quarantined'
"""

from __future__ import annotations

from typing import Any

from schemas import codec
from schemas.parsing import RecordError, dead_letter_record

MODEL_QUARANTINED = "model_quarantined"


class Quarantine:
    """Model keys that are quarantined, and why."""

    def __init__(self) -> None:
        self._reasons: dict[str, str] = {}

    def __contains__(self, key: object) -> bool:
        return key in self._reasons

    def __len__(self) -> int:
        return len(self._reasons)

    def add(self, key: str, reason: str) -> None:
        self._reasons[key] = reason

    def reason(self, key: str) -> str:
        return self._reasons[key]

    def clear(self) -> None:
        self._reasons.clear()

    def dead_letter(self, key: str, topic: str, partition: int | None, offset: int | None, payload: Any, now: float) -> dict[str, Any]:
        """The ``dead-letter`` record of a payload of quarantined model ``key``."""
        message = f"monitor-input: model {key!r} is quarantined: its state cannot be loaded: {self._reasons[key]}"
        raw = payload if isinstance(payload, bytes) else codec.dumps(payload)
        return dead_letter_record(topic, partition, offset, RecordError(None, MODEL_QUARANTINED, message, raw), now)


__all__ = ["MODEL_QUARANTINED", "Quarantine"]
