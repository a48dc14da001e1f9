"""The no-op Faust baseline: one agent, ``async for _ in stream: pass``, over one topic.

Run as a subprocess by ``throughput``; it writes ``{"records", "first_s", "last_s"}``
(wall-clock times of the first and last record its agent saw) to ``--out`` once it has
seen ``--expect`` records, then keeps idling until its parent stops it::

    python -m load_tests.noop_faust --broker kafka://127.0.0.1:PORT --topic T --expect N --out F
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import uuid
from collections.abc import Sequence
from pathlib import Path

from streams.ops.broker import free_port
from streams.runtime.worker import install_uvloop
from streams.settings import Settings

from .arrivals import Arrivals


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--broker", required=True)
    p.add_argument("--topic", required=True)
    p.add_argument("--expect", type=int, required=True)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)

    install_uvloop()  # before faust is imported, as the worker does
    import faust

    from streams.runtime.app import faust_settings

    settings = Settings.from_env({}).for_embedded_broker(args.broker).replace(
        app_id=f"noop-{uuid.uuid4().hex[:8]}", web_port=free_port(), data_dir=str(args.out.parent / "faust-data")
    )
    conf = faust_settings(settings)
    conf.update(web_enabled=False)
    asyncio.set_event_loop(asyncio.new_event_loop())
    app = faust.App(settings.app_id, **conf)
    topic = app.topic(args.topic, key_serializer="raw", value_serializer="raw")
    arrivals = Arrivals(args.expect, args.out)

    @app.agent(topic, name="noop")
    async def noop(stream: faust.StreamT) -> None:
        async for _ in stream:
            arrivals.count()

    worker = faust.Worker(app, loglevel="WARNING", quiet=True, redirect_stdouts=False)
    logging.getLogger().setLevel(logging.WARNING)  # Faust leaves the root logger at DEBUG
    worker.execute_from_commandline()


if __name__ == "__main__":
    main()
