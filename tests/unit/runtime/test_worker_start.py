"""What a worker loads before it joins its group: every module it imports then is CPU spent
between its launch and its first event (docs/performance.md, "Start-up and restart")."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys

import faust
import pytest

from detectors import deferred
from streams.cli import OWN_COMMANDS, build_parser
from streams.runtime.worker import import_deferred_while_joining

#: Run as ``driftstream worker`` would be, up to the app it starts (Kafka is never touched):
#: the modules loaded by then, as JSON.
LOADED_BEFORE_FAUST_STARTS = """
import json, sys
import streams.runtime.worker as worker

def run_worker(settings, tasks=()):
    from streams.runtime.app import create_app
    create_app(settings, tasks=tasks)
    print(json.dumps(sorted(sys.modules)))

worker.run_worker = run_worker
from streams.cli import main
sys.exit(main(["worker"]))
"""


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    """The modules a worker loaded before it starts Faust (the app built, the group not joined)."""
    env = {**os.environ, "DRIFTSTREAM_DATA_DIR": str(tmp_path_factory.mktemp("worker") / "data")}
    result = subprocess.run([sys.executable, "-c", LOADED_BEFORE_FAUST_STARTS], capture_output=True, text=True,
                            timeout=120, env=env, check=False)
    assert result.returncode == 0, result.stderr
    return set(json.loads(result.stdout.splitlines()[-1]))


def test_the_worker_loads_no_other_command_before_it_starts(loaded: set[str]) -> None:
    assert "streams.runtime.app" in loaded  # the probe got as far as the app
    others = sorted(m for m in loaded if m.startswith(("streams.offline", "streams.updater", "streams.sdk")))
    assert others == []


def test_the_worker_joins_its_group_before_it_loads_river_or_scipy(loaded: set[str]) -> None:
    """They load in a thread while it waits for the group (detectors.deferred)."""
    assert "streams.runtime.app" in loaded
    assert sorted(m for m in loaded if m.split(".")[0] in {"river", "scipy"}) == []


def test_own_commands_are_the_commands_this_module_defines() -> None:
    parser = build_parser("worker")
    (sub,) = [action for action in parser._actions if action.dest == "command"]  # noqa: SLF001 - argparse keeps them here
    assert set(sub.choices) == OWN_COMMANDS
    everything = build_parser()
    (sub,) = [action for action in everything._actions if action.dest == "command"]  # noqa: SLF001
    assert OWN_COMMANDS < set(sub.choices)
    assert {"backtest", "calibrate", "model", "replay", "updater"} <= set(sub.choices)


def test_the_deferred_imports_start_when_the_group_join_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    monkeypatch.setattr(deferred, "import_now", lambda: calls.append("imported"))
    app = faust.App("test-worker-start", broker="kafka://127.0.0.1:1")
    thread = import_deferred_while_joining(app)
    assert thread.ident is None  # not with the app: its start-up would share the GIL with them

    async def rebalances() -> None:
        for _ in range(3):  # Faust revokes the (empty) assignment before each JoinGroup
            await app.on_partitions_revoked.send(set())

    asyncio.run(rebalances())
    thread.join(5)
    assert calls == ["imported"]

