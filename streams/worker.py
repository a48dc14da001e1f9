"""Run the driftstream worker process (``driftstream worker``)."""

from __future__ import annotations

import asyncio
import logging

from .settings import Settings


def install_uvloop() -> bool:
    """Use uvloop when installed; it must happen before faust is imported to take effect."""
    try:
        import uvloop
    except ImportError:
        return False
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return True


def run_worker(settings: Settings) -> None:
    """Create the topics, build the app and run it until SIGTERM/SIGINT."""
    install_uvloop()
    import faust

    from .app import create_app
    from .topics import ensure_topics

    asyncio.run(ensure_topics(settings))
    asyncio.set_event_loop(asyncio.new_event_loop())
    app = create_app(settings)
    worker = faust.Worker(app, loglevel=settings.log_level, quiet=True, redirect_stdouts=False)
    # Faust leaves the root logger at DEBUG: every filtered-out debug call still costs time.
    logging.getLogger().setLevel(settings.log_level)
    worker.execute_from_commandline()
