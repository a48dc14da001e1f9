"""driftstream's topic contracts: one Python record and one JSON Schema file per topic.

* :mod:`schemas.parsing` - strict, fast validation of the input topics and record decoding
  into ``(oks, errs)``; bad events become dead-letter records.
* :mod:`schemas.records` - frozen dataclasses for every topic.
* :mod:`schemas.codec` - the one orjson wrapper (and the faust ``"orjson"`` codec).
* :mod:`schemas.ids` - deterministic ids.
* :mod:`schemas.partitioning` - the partition of an event: where a prediction and its label meet.
* :mod:`schemas.topics` - every topic by its role, the one list the others derive from.
* :mod:`schemas.errors` - :class:`ContractError` and its reason codes.

The JSON Schema of a topic is ``schemas/<topic>.schema.json`` (draft 2020-12):

>>> import json
>>> sorted(json.loads(schema_path("ground-truth").read_text())["required"])
['label', 'prediction_id', 'timestamp']
"""

from __future__ import annotations

from pathlib import Path

from schemas.topics import CONTRACTS

#: The topics with a contract (:data:`schemas.topics.ROLES` lists every topic).
TOPICS: tuple[str, ...] = CONTRACTS


def schema_path(topic: str) -> Path:
    """The JSON Schema file of ``topic`` (one of :data:`TOPICS`)."""
    if topic not in TOPICS:
        raise ValueError(f"topic must be one of {', '.join(TOPICS)}, got {topic!r}")
    return Path(__file__).with_name(f"{topic}.schema.json")


__all__ = ["TOPICS", "schema_path"]
