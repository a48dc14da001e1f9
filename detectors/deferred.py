"""The libraries the detectors import on first use (river, scipy), and :func:`import_now`.

River's ``drift`` package imports scipy.stats; the two are about a second of CPU on the
development machines, more than half of what a worker loaded before it could join its
consumer group. So the detectors import them when they first compute, not with their modules:
a river wrapper when it first needs its river object (:mod:`detectors._river`), a statistical
test when it first evaluates. Checking a monitoring config, building the worker's app and
joining the group then load neither; the worker calls :func:`import_now` in a thread while it
waits for the group, which is I/O, so that the first batch finds them loaded.
"""

from __future__ import annotations

import importlib

__all__ = ["MODULES", "import_now"]

#: What the detectors import on first use, heaviest first.
MODULES = ("river.drift", "river.stats", "scipy.stats", "scipy.special")


def import_now() -> None:
    """Import :data:`MODULES` (a no-op for those already loaded)."""
    for name in MODULES:
        importlib.import_module(name)
