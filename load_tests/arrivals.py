"""A baseline's records counted as they arrive: the wall-clock times of the first and the
last, written to a file (atomically, by a rename) once the expected number has arrived.
The no-op Faust agent (:mod:`load_tests.noop_faust`) and the Quix Streams peer
(:mod:`load_tests.peers`) report their rates this way.

>>> import json, tempfile
>>> out = Path(tempfile.mkdtemp()) / "seen.json"
>>> arrivals = Arrivals(2, out)
>>> arrivals.count(), out.exists(), arrivals.count(lambda: {"pairs": 1}), sorted(json.loads(out.read_bytes()))
(False, False, True, ['first_s', 'last_s', 'pairs', 'records'])
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from schemas import codec

__all__ = ["Arrivals"]


class Arrivals:
    """Counts records; on the ``expect``-th writes ``{"records", "first_s", "last_s"}`` (and
    what ``extra`` returns then) to ``out``."""

    def __init__(self, expect: int, out: Path) -> None:
        self.expect = expect
        self.out = out
        self.seen: dict[str, Any] = {"records": 0, "first_s": 0.0, "last_s": 0.0}

    def count(self, extra: Callable[[], dict[str, Any]] | None = None) -> bool:
        """One record arrived; whether it was the expected number's (the file is written)."""
        now = time.time()
        seen = self.seen
        if not seen["records"]:
            seen["first_s"] = now
        seen["records"] += 1
        seen["last_s"] = now
        if seen["records"] != self.expect:
            return False
        tmp = self.out.with_suffix(".tmp")
        tmp.write_bytes(codec.dumps({**seen, **(extra() if extra else {})}))
        tmp.rename(self.out)
        return True
