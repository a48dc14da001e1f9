"""Artifact bytes that depend only on the model: equal models pickle to equal bytes,
whatever their history and whatever the process's hash seed.

A replay after a crash must write the artifact the crashed run wrote (same sha256), yet
pickle writes an object graph as it finds it in memory:

- **Sets** are written in iteration order, which depends on the order their elements were
  added and on string hashes (random per process, ``PYTHONHASHSEED``). A river
  ``OneHotEncoder`` keeps the categories seen per feature in sets, so a model resumed from a
  checkpoint (its sets rebuilt by the unpickler) could write other bytes than the same
  model that never stopped. Here every set and frozenset is written sorted.
- **Shared parts** are written once and referenced after; which equal parts are one object
  depends on where they came from (orjson shares dict keys, an unpickled graph does not).
  A round trip through pickle first makes the sharing a function of the bytes.

Only the writing changes: the bytes load with :func:`pickle.loads`.

>>> a, b = set(), set()
>>> for word in ("pro", "basic", "enterprise", "free"):
...     a.add(word)
>>> for word in ("free", "enterprise", "basic", "pro"):
...     b.add(word)
>>> dumps({"plan": a}) == dumps({"plan": b})
True
>>> pickle.loads(dumps({"plan": a})) == {"plan": a}
True
"""

from __future__ import annotations

import io
import pickle
from typing import Any

__all__ = ["dumps"]

PROTOCOL = pickle.HIGHEST_PROTOCOL


def _ordered(items: set[Any] | frozenset[Any]) -> list[Any]:
    """The elements in an order that depends only on their values."""
    try:
        return sorted(items)
    except TypeError:  # elements that do not compare (mixed types): by their own bytes
        return sorted(items, key=_write)


class _CanonicalPickler(pickle._Pickler):  # type: ignore[name-defined,misc]
    """pickle's pure-Python writer, the one that asks :meth:`reducer_override` about every
    object (the C writer skips sets): a set is written as ``set(sorted elements)``. It is the
    standard library's private name, slower than the C writer (about 3 ms for a demo model,
    written once per version); ``test_equal_models_write_equal_artifacts_whatever_their_sets_history``
    fails if it stops asking."""

    def reducer_override(self, obj: Any) -> Any:
        kind = type(obj)
        if kind is set or kind is frozenset:
            return kind, (_ordered(obj),)
        return NotImplemented


def _write(obj: Any) -> bytes:
    out = io.BytesIO()
    _CanonicalPickler(out, protocol=PROTOCOL).dump(obj)
    return out.getvalue()


def dumps(obj: Any) -> bytes:
    """``obj`` pickled canonically: sets sorted, after a round trip that settles sharing."""
    return _write(pickle.loads(_write(obj)))
