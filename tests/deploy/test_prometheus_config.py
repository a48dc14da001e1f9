"""Prometheus config and alerting rules: promtool checks, rule unit tests, metric names."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

PROMETHEUS = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"
RULE_FILES = sorted((PROMETHEUS / "rules").glob("driftstream-*.yml"))
RULE_TESTS = PROMETHEUS / "rules" / "tests.yml"


def _alert_rules() -> list[dict[str, Any]]:
    return [
        rule
        for path in RULE_FILES
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
        if "alert" in rule
    ]


def _run(*args: str, cwd: Path = PROMETHEUS) -> str:
    done = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=60)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    return output


def test_both_rule_files_exist() -> None:
    assert [p.name for p in RULE_FILES] == ["driftstream-drift.yml", "driftstream-service.yml"]


def test_promtool_check_config(promtool: str) -> None:
    output = _run(promtool, "check", "config", "prometheus.yml")
    assert f"SUCCESS: {len(RULE_FILES)} rule files found" in output


@pytest.mark.parametrize("path", RULE_FILES, ids=lambda p: p.name)
def test_promtool_check_rules(promtool: str, path: Path) -> None:
    assert "SUCCESS" in _run(promtool, "check", "rules", str(path))


def test_promtool_test_rules(promtool: str) -> None:
    assert "SUCCESS" in _run(promtool, "test", "rules", RULE_TESTS.name, cwd=RULE_TESTS.parent)


def test_every_alert_has_a_unit_test() -> None:
    tested = {
        case["alertname"]
        for test in yaml.safe_load(RULE_TESTS.read_text())["tests"]
        for case in test.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    assert {rule["alert"] for rule in _alert_rules()} <= tested
    assert {"DriftstreamWorkerDown", "DriftstreamDriftAlertPage"} <= tested


@pytest.mark.parametrize("rule", _alert_rules(), ids=lambda r: r["alert"])
def test_alert_is_routed_and_explained(rule: dict[str, Any]) -> None:
    assert rule["labels"]["notify"] in ("page", "ticket")
    assert rule["annotations"]["summary"] and rule["annotations"]["description"]


def test_p0_p1_page_and_p2_p3_make_tickets() -> None:
    routes = {
        rule["labels"]["notify"]: rule["expr"]
        for rule in _alert_rules()
        if "driftstream_alerts_firing" in rule["expr"]
    }
    assert 'severity=~"P0|P1"' in routes["page"]
    assert 'severity=~"P2|P3"' in routes["ticket"]


@pytest.mark.parametrize("rule", _alert_rules(), ids=lambda r: r["alert"])
def test_rule_uses_only_exported_metrics(
    rule: dict[str, Any], exported: set[str], names_in: Callable[[str], set[str]]
) -> None:
    used = names_in(rule["expr"])
    assert used or rule["expr"].startswith("up{"), f"{rule['alert']}: no metric found"
    assert used <= exported, f"{rule['alert']}: not exported: {sorted(used - exported)}"


def test_scrapes_metrics_and_loads_both_rule_files() -> None:
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    [job] = [j for j in config["scrape_configs"] if j["job_name"] == "driftstream"]
    assert job["metrics_path"] == "/metrics"
    assert sorted(config["rule_files"]) == sorted(f"rules/{p.name}" for p in RULE_FILES)
