"""Every place that names a topic agrees with the one list, :data:`schemas.topics.ROLES`."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from schemas import TOPICS, schema_path, topics
from schemas.records import TOPIC_RECORDS
from streams.offline import replay
from streams.offline.backtest import ROLES as BACKTEST_ROLES
from streams.offline.pipeline import OfflineResult
from streams.settings import TOPIC_ROLES, Settings

ROOT = Path(__file__).resolve().parents[3]


def test_each_role_is_listed_once_and_every_derived_list_follows_it() -> None:
    assert len(set(topics.NAMES)) == len(topics.NAMES)
    assert TOPIC_ROLES == topics.NAMES
    assert TOPICS == tuple(TOPIC_RECORDS) == topics.CONTRACTS
    assert BACKTEST_ROLES == topics.INPUTS == ("predictions", "ground-truth")
    assert set(replay.PUBLISHED) == set(topics.OUTPUTS) == {"drift-events", "alerts", "model-updates", "dead-letter"}


def test_settings_name_every_role_and_refuse_others() -> None:
    settings = Settings(topic_prefix="t.")
    assert [settings.topic(role) for role in topics.NAMES] == [f"t.{role}" for role in topics.NAMES]
    with pytest.raises(KeyError, match="unknown topic role 'nope'"):
        settings.topic("nope")


def test_the_schema_files_are_those_of_the_contracts() -> None:
    files = {p.name.removesuffix(".schema.json") for p in schema_path("alerts").parent.glob("*.schema.json")}
    assert files == set(topics.CONTRACTS)
    for role in topics.CONTRACTS:
        assert TOPIC_RECORDS[role].topic == role


def test_a_replay_publishes_every_output() -> None:
    assert set(replay._messages(OfflineResult())) == set(topics.OUTPUTS)


def _named_roles(path: Path) -> set[str]:
    """The roles ``path`` names as string constants where a role goes: ``settings.topic(role)``,
    ``produce(role, ...)``, ``outputs.add(role, ...)``."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.args):
            continue
        first = node.args[0]
        if not (isinstance(first, ast.Constant) and isinstance(first.value, str)):
            continue
        receiver = ast.unparse(node.func.value)
        if node.func.attr in ("topic", "produce") or (node.func.attr == "add" and receiver.endswith("outputs")):
            found.add(first.value)
    return found


def test_the_code_names_no_role_outside_the_list() -> None:
    named = {role: str(path.relative_to(ROOT)) for path in (ROOT / "streams").rglob("*.py") for role in _named_roles(path)}
    assert {role: where for role, where in named.items() if role not in topics.NAMES} == {}
    assert {"monitor-input", "join-outcomes", "dead-letter", "alerts", "drift-events", "model-updates"} <= set(named)


def test_the_docs_list_every_topic() -> None:
    contracts = (ROOT / "docs" / "contracts.md").read_text()
    section = contracts[contracts.index("## Topics"):contracts.index("\n## ", contracts.index("## Topics") + 1)]
    table = re.findall(r"^\| `([a-z-]+)` \|", section, re.MULTILINE)
    assert tuple(table) == topics.NAMES
    readme = (ROOT / "README.md").read_text()
    create = readme[readme.index("create them yourself"):readme.index("(each preceded by")]
    assert tuple(re.findall(r"`([a-z-]+)`", create)) == topics.NAMES
