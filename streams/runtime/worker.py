"""Run the driftstream worker process (``driftstream worker``)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from detectors import deferred

from streams.runtime.gc_tuning import tune_gc
from streams.runtime.malloc_arenas import limit_malloc_arenas
from streams.runtime.shutdown import ShutdownWatchdog
from streams.runtime.worker_log import WorkerLog, configure_logging
from streams.settings import Settings


def install_uvloop() -> bool:
    """Use uvloop when installed; it must happen before faust is imported to take effect."""
    try:
        import uvloop
    except ImportError:
        return False
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return True


def worker_class(base: type, watchdog: ShutdownWatchdog) -> type:
    """Faust's worker, with the watchdog armed as soon as it starts stopping (Service's
    ``on_stop`` hook runs before any of its services stop, on a signal or a crash)."""

    class Worker(base):  # type: ignore[misc, valid-type]
        async def on_stop(self) -> None:
            self.app.driftstream_log.stopping()
            watchdog.arm()
            await super().on_stop()

    return Worker


def import_deferred_while_joining(app: Any) -> threading.Thread:
    """Import what the detectors defer (:mod:`detectors.deferred`: river, scipy) in a thread
    that starts when ``app``'s consumer first joins its group (Faust revokes the empty
    assignment just before its JoinGroup). The join then waits on the broker (on Tansu, half the
    session timeout), so the imports, about a second of CPU, take none of the start's
    wall-clock time; started earlier, they would take the GIL from the start-up work that
    precedes the join."""
    thread = threading.Thread(target=deferred.import_now, name="driftstream-imports", daemon=True)

    async def joining(*_: Any, **__: Any) -> None:
        if thread.ident is None:  # the first rebalance only
            thread.start()

    app.on_partitions_revoked.connect(joining)
    return thread


def run_worker(settings: Settings, tasks: Sequence[Callable[..., Awaitable[None]]] = ()) -> None:
    """Create the topics, build the app (with ``tasks`` beside it) and run it until SIGTERM/SIGINT."""
    limit_malloc_arenas(settings.malloc_arena_max)  # before any thread starts
    configure_logging(settings.log_level, settings.log_format)
    started = WorkerLog.starting(settings)
    install_uvloop()
    tune_gc(settings.gc_threshold)
    import faust

    from streams.runtime.app import create_app
    from streams.runtime.membership import remove_predecessors
    from streams.runtime.topics import ensure_topics

    asyncio.run(ensure_topics(settings))
    asyncio.run(remove_predecessors(settings))  # a restart joins without waiting out its old session
    asyncio.set_event_loop(asyncio.new_event_loop())
    app = create_app(settings, tasks=tasks)
    app.driftstream_log.started = started  # type: ignore[attr-defined]
    # override_logging=False: the handler and levels are ours (configure_logging). Faust's
    # own setup put the root logger at DEBUG for its terminal spinner, which made aiokafka
    # build a log record for every request and wrote escape codes into the log.
    worker = worker_class(faust.Worker, ShutdownWatchdog(settings.shutdown_grace_s))(
        app, loglevel=settings.log_level, quiet=True, redirect_stdouts=False, override_logging=False,
    )
    worker.spinner = None
    import_deferred_while_joining(app)
    try:
        worker.execute_from_commandline()
    finally:
        app.driftstream_log.stopped()  # type: ignore[attr-defined]
