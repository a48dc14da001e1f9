"""``replay`` and ``backtest`` on the same events give the same alerts (same ids)."""

from __future__ import annotations

import argparse
import asyncio
import os
from pathlib import Path
from typing import Any

import orjson
import pytest

from schemas import codec
from streams.exceptions import ConfigError
from streams.offline import backtest_cli
from streams.offline import replay
from streams.offline.simulate import Simulation, SimulationConfig
from streams.runtime.topics import ensure_topics
from streams.settings import Settings

from .support import final_alerts, publish_events, read_topic

pytestmark = pytest.mark.integration


def _cli(argv: list[str], settings: Settings, monkeypatch: pytest.MonkeyPatch) -> int:
    """Run a ``backtest``/``replay`` command as ``driftstream`` would, with ``settings`` as env."""
    for name in [n for n in os.environ if n.startswith("DRIFTSTREAM_")]:
        monkeypatch.delenv(name)
    for name, value in settings.to_env().items():
        monkeypatch.setenv(name, value)
    parser = argparse.ArgumentParser(prog="driftstream")
    sub = parser.add_subparsers(dest="command", required=True)
    backtest_cli.add_cli(sub)
    replay.add_cli(sub)
    args = parser.parse_args(argv)
    return int(args.func(args))


def _essence(alerts: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return {
        alert_id: (a["status"], a["kind"], a["severity"], a["members"])
        for alert_id, a in alerts.items()
    }


def _differences(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """Readable differences between two ``_essence`` results (empty when equal)."""
    out = [f"only in one run: {k}" for k in set(a) ^ set(b)]
    for k in set(a) & set(b):
        for name, x, y in zip(("status", "kind", "severity"), a[k][:3], b[k][:3]):
            if x != y:
                out.append(f"{k} {name}: {x} != {y}")
        for m, n in zip(a[k][3], b[k][3]):
            if m != n:
                out.append(f"{k} member: {m} != {n}")
        if len(a[k][3]) != len(b[k][3]):
            out.append(f"{k} members: {[m['detector'] for m in a[k][3]]} != {[m['detector'] for m in b[k][3]]}")
    return out


def _report_alerts(out: Path) -> dict[str, dict[str, Any]]:
    report = orjson.loads((out / "report.json").read_bytes())
    return {a["alert_id"]: a for a in report["runs"][0]["alerts"]}


def test_replay_publishes_what_it_reports_and_backtest_agrees(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The commands on the same events: ``replay`` (reading the topics, publishing under a
    prefix) and ``backtest`` (reading files) give the same alerts. The live worker against
    both, for several partition counts and timings: ``test_event_time.py``."""
    asyncio.run(ensure_topics(settings))
    config = SimulationConfig(events=8_000, seed=5, feature_drift_at=2_500, concept_drift_at=4_500)
    sim = Simulation(config)
    preds, labels = sim.generate()
    publish_events(settings, sim.in_event_time_order())

    replayed_out = tmp_path / "replay"
    assert _cli(["replay", "--out", str(replayed_out), "--publish-prefix", "replay."], settings, monkeypatch) == 0
    replayed = _report_alerts(replayed_out)
    assert replayed, "the simulated drifts raised no alert"

    (tmp_path / "p.jsonl").write_bytes(b"".join(codec.dumps(p) + b"\n" for p in preds))
    (tmp_path / "l.jsonl").write_bytes(b"".join(codec.dumps(lab) + b"\n" for lab in labels))
    offline_out = tmp_path / "backtest"
    argv = ["backtest", str(tmp_path / "p.jsonl"), str(tmp_path / "l.jsonl"), "--out", str(offline_out)]
    assert _cli(argv, settings, monkeypatch) == 0
    offline = _report_alerts(offline_out)

    # the replay's own outputs went to the namespaced topics
    published = final_alerts([v for _, v in read_topic(settings.replace(topic_prefix="replay."), "replay.alerts")])
    assert not _differences(_essence(published), _essence(replayed))
    assert not _differences(_essence(replayed), _essence(offline))


def test_replay_refuses_the_live_prefix_and_filters_event_time(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ConfigError, match="live topic prefix"):
        _cli(["replay", "--publish-prefix", settings.topic_prefix], settings, monkeypatch)
    asyncio.run(ensure_topics(settings))
    config = SimulationConfig(events=1_200, seed=2, feature_drift_at=None, concept_drift_at=None)
    publish_events(settings, Simulation(config).in_event_time_order())
    since, until = config.start + 4.0, config.start + 10.0  # predictions 200..499 at 50/s
    out = tmp_path / "window"
    argv = ["replay", "--since", str(since), "--until", str(until), "--to-offset", "100", "--out", str(out)]
    assert _cli(argv, settings, monkeypatch) == 0
    report = orjson.loads((out / "report.json").read_bytes())
    assert report["events"]["predictions"] == 300
    assert report["inputs"]["window"]["since"] == since
