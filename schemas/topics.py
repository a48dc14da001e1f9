"""Every topic driftstream reads or writes, by its role: the one list that the settings' topic
names, the contracts (a record and a JSON Schema each) and the outputs a replay publishes are
derived from. A topic prefix (``DRIFTSTREAM_TOPIC_PREFIX``) precedes each name.

>>> INPUTS
('predictions', 'ground-truth')
>>> [role.name for role in ROLES if role.kind == "output" and not role.contract]
['join-outcomes']
"""

from __future__ import annotations

from typing import Literal, NamedTuple


class TopicRole(NamedTuple):
    """One topic: ``input`` ones are published by the model servers, ``output`` ones written by
    the worker for its users, ``internal`` ones run between the worker's agents. ``contract``:
    it has a record in :mod:`schemas.records` and a ``schemas/<name>.schema.json``."""

    name: str
    kind: Literal["input", "output", "internal"]
    contract: bool


ROLES: tuple[TopicRole, ...] = (
    TopicRole("predictions", "input", contract=True),
    TopicRole("ground-truth", "input", contract=True),
    TopicRole("drift-events", "output", contract=True),
    TopicRole("alerts", "output", contract=True),
    TopicRole("model-updates", "output", contract=True),
    TopicRole("dead-letter", "output", contract=True),
    TopicRole("join-outcomes", "output", contract=False),
    TopicRole("monitor-input", "internal", contract=False),
    TopicRole("updater-input", "internal", contract=False),
)

#: Every role, in the order above.
NAMES: tuple[str, ...] = tuple(role.name for role in ROLES)

#: The roles with a contract: a record and a JSON Schema file.
CONTRACTS: tuple[str, ...] = tuple(role.name for role in ROLES if role.contract)

#: What model servers publish: the join's two inputs.
INPUTS: tuple[str, ...] = tuple(role.name for role in ROLES if role.kind == "input")

#: What the worker writes for its users under a contract (a replay publishes these).
OUTPUTS: tuple[str, ...] = tuple(role.name for role in ROLES if role.kind == "output" and role.contract)

__all__ = ["CONTRACTS", "INPUTS", "NAMES", "OUTPUTS", "ROLES", "TopicRole"]
