"""What a join or monitor batch that raised leaves behind: nothing saved after it.

A batch that raised may have left part of itself in the caches (a join's offsets, a
model's detectors), which a checkpoint or a hand-over would then save as applied. So a
failed batch (a bug, a broker that stays unreachable past the producer's timeout) ends
the worker with :data:`EXIT_BATCH_FAILED` rather than leave it running with that agent
dead; restarted, it resumes from its tables. A cancelled batch (shutdown) ends quietly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterator

__all__ = ["EXIT_BATCH_FAILED", "BatchGuard"]

log = logging.getLogger(__name__)

#: Exit status of a worker whose join or monitor batch raised (sysexits EX_SOFTWARE).
EXIT_BATCH_FAILED = 70


class BatchGuard:
    """Wraps every batch; :attr:`interrupted` once one did not finish."""

    def __init__(self, on_fatal: Callable[[str, int], None]) -> None:
        self.on_fatal = on_fatal
        self.interrupted = False

    @contextlib.contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        try:
            yield
        except asyncio.CancelledError:
            self.interrupted = True
            raise
        except Exception as exc:
            self.interrupted = True
            log.exception("%s batch failed", stage)
            self.on_fatal(
                f"a {stage} batch failed ({exc!r}); exiting with status {EXIT_BATCH_FAILED} without saving "
                "anything more. Restarted, the worker resumes from its last saved state.",
                EXIT_BATCH_FAILED,
            )
            raise
