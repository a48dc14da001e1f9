"""A bound on the worker's shutdown: it exits within ``DRIFTSTREAM_SHUTDOWN_GRACE_S``.

On SIGTERM Faust commits the consumer's offsets before anything else stops, and aiokafka's
commit waits for a group coordinator with no deadline: with the broker gone, a worker
never exited on its own (seen: 90 s until the supervisor killed it; here: minutes). The
hand-over already has its own bound (``handover_timeout_s``). The watchdog is armed when
the worker starts stopping; if the worker is still there ``grace_s`` later, it logs why and
leaves at once. That is as safe as a crash, which the worker is built to survive: what the
last checkpoint does not cover is applied again by the next owner.

A thread, not a task: it must fire even if the event loop is stuck.

>>> fired = []
>>> dog = ShutdownWatchdog(0.01, on_expiry=lambda grace: fired.append(grace))
>>> dog.arm(); dog.arm()  # the second is a no-op
>>> dog.join(5.0)
>>> fired
[0.01]
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable

log = logging.getLogger("streams.runtime.worker")

#: Exit status of a worker that could not finish its shutdown within the grace time
#: (sysexits EX_UNAVAILABLE: typically the broker it had to commit to is gone).
EXIT_SHUTDOWN_TIMED_OUT = 69


def exit_after_grace(grace_s: float) -> None:
    """Log why, flush the log, and leave now (no cleanup runs: it is what hangs)."""
    log.error(
        "shutdown did not finish within %.0f s (DRIFTSTREAM_SHUTDOWN_GRACE_S); exiting with status %d. "
        "The next owner of the partitions applies again what the last checkpoint does not cover",
        grace_s, EXIT_SHUTDOWN_TIMED_OUT, extra={"event": "shutdown_timed_out", "fields": {"grace_s": grace_s}},
    )
    for handler in logging.getLogger().handlers:
        handler.flush()
    os._exit(EXIT_SHUTDOWN_TIMED_OUT)


class ShutdownWatchdog:
    """Calls ``on_expiry(grace_s)`` ``grace_s`` after :meth:`arm`, unless the process is
    gone by then (a daemon thread does not keep it alive)."""

    def __init__(self, grace_s: float, on_expiry: Callable[[float], None] = exit_after_grace) -> None:
        if not grace_s > 0:
            raise ValueError(f"grace_s={grace_s}: expected > 0")
        self.grace_s = grace_s
        self.on_expiry = on_expiry
        self._timer: threading.Timer | None = None

    def arm(self) -> None:
        if self._timer is None:
            self._timer = threading.Timer(self.grace_s, self.on_expiry, args=(self.grace_s,))
            self._timer.daemon = True
            self._timer.start()

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()

    def join(self, timeout_s: float | None = None) -> None:
        if self._timer is not None:
            self._timer.join(timeout_s)


__all__ = ["EXIT_SHUTDOWN_TIMED_OUT", "ShutdownWatchdog", "exit_after_grace"]
