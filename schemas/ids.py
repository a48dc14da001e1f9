"""Deterministic identifiers.

An id is a pure function of the facts it names, so replaying a stream (or recovering a
partition) produces the same ids and consumers can deduplicate on them.

>>> stable_id("alert", "fraud-v1", "psi", "age", 1200)
'd56e87d0d30f39547545c637876e284f'
>>> len(stable_id("x")) == 32 and stable_id("a", 1) == stable_id("a", 1) != stable_id("a", "1")
True
"""

from __future__ import annotations

import hashlib

import orjson

__all__ = ["stable_id"]


def stable_id(*parts: str | int | float | bool | None) -> str:
    """Return 32 hex characters: the first 16 bytes of sha256 over the canonical JSON array of
    ``parts``.

    The JSON array keeps the parts' types and boundaries apart (``("a", "b")`` differs from
    ``("a b",)`` and ``1`` differs from ``"1"``; note ``1`` and ``1.0`` also differ). Only
    JSON scalars are allowed, which keeps the encoding canonical.
    """
    for part in parts:
        if part is None or isinstance(part, (str, int)):
            continue
        if isinstance(part, float) and part - part == 0.0:
            continue
        raise TypeError(
            "stable_id parts must be str, int, finite float, bool or None, "
            f"got {type(part).__name__} {part!r}"
        )
    return hashlib.sha256(orjson.dumps(parts)).hexdigest()[:32]
