"""docker-compose.yml and Dockerfile: valid, and every worker setting a DRIFTSTREAM_* variable."""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from streams.settings import ENV_PREFIX, Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]
WORKERS = ("worker-1", "worker-2")
#: ``${NAME:-default}`` interpolation, resolved as compose does with NAME unset.
INTERPOLATION = re.compile(r"\$\{[A-Z0-9_]+:-([^}]*)\}")


def _env(service: str) -> dict[str, str]:
    return {
        key: INTERPOLATION.sub(r"\1", str(value))
        for key, value in SERVICES[service]["environment"].items()
    }


@pytest.mark.parametrize("profile", [[], ["--profile", "demo"]], ids=["default", "demo"])
def test_docker_compose_config_is_valid(docker_compose: str, profile: list[str]) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}
    done = subprocess.run(
        [docker_compose, "-f", "docker-compose.yml", *profile, "config", "-q"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 0, done.stderr


def test_demo_producer_only_in_the_demo_profile() -> None:
    assert SERVICES["demo-producer"]["profiles"] == ["demo"]
    assert all("profiles" not in s for name, s in SERVICES.items() if name != "demo-producer")
    assert "driftstream simulate --broker" in " ".join(SERVICES["demo-producer"]["command"])


@pytest.mark.parametrize("service", [*WORKERS, "demo-producer"])
def test_driftstream_env_builds_settings(service: str) -> None:
    env = _env(service)
    fields = {ENV_PREFIX + f.name.upper() for f in dataclasses.fields(Settings)}
    assert set(env) <= fields, f"unknown variables: {sorted(set(env) - fields)}"
    settings = Settings.from_env(env)
    assert settings.bootstrap_servers == "kafka:9092"
    assert settings.store == "rocksdb://"
    assert (settings.web_host, settings.web_port) == ("0.0.0.0", 6066)
    assert settings.webhook_url is None
    assert settings.session_timeout_s >= 10 and settings.rebalance_timeout_s >= 30


def test_broker_address_lives_only_in_the_environment() -> None:
    for name, service in SERVICES.items():
        if name != "kafka":
            rest = {k: v for k, v in service.items() if k != "environment"}
            assert "kafka://" not in str(rest), f"{name} hard-codes the broker"
    assert _env("worker-1")["DRIFTSTREAM_BROKER"] == "kafka://kafka:9092"


def test_each_worker_has_its_own_instance_id_and_static_membership() -> None:
    ids = [Settings.from_env(_env(worker)).instance_id for worker in WORKERS]
    assert ids == list(WORKERS), ids
    assert all(Settings.from_env(_env(worker)).static_membership for worker in WORKERS)
    assert "DRIFTSTREAM_INSTANCE_ID" not in _env("demo-producer")


def test_workers_share_a_consumer_group_but_not_state() -> None:
    assert _env("worker-1")["DRIFTSTREAM_APP_ID"] == _env("worker-2")["DRIFTSTREAM_APP_ID"]
    volumes = [SERVICES[w]["volumes"][0].split(":")[0] for w in WORKERS]
    assert len(set(volumes)) == len(WORKERS)
    for worker in WORKERS:
        assert SERVICES[worker]["build"] == "."
        assert SERVICES[worker]["depends_on"]["kafka"]["condition"] == "service_healthy"


def test_kafka_runs_kraft_with_a_broker_healthcheck() -> None:
    kafka = SERVICES["kafka"]
    env = kafka["environment"]
    repository, tag = kafka["image"].split(":")
    assert repository == "apache/kafka" and tag.split(".")[0] in ("3", "4")
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == f"{env['KAFKA_NODE_ID']}@kafka:9093"
    assert "PLAINTEXT://kafka:9092" in env["KAFKA_ADVERTISED_LISTENERS"].split(",")
    assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "1"
    assert "/opt/kafka/bin/kafka-broker-api-versions.sh" in " ".join(kafka["healthcheck"]["test"])


def test_prometheus_scrapes_the_workers_web_port() -> None:
    config = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
    [job] = [j for j in config["scrape_configs"] if j["job_name"] == "driftstream"]
    port = _env("worker-1")["DRIFTSTREAM_WEB_PORT"]
    assert job["static_configs"][0]["targets"] == [f"{w}:{port}" for w in WORKERS]


def test_grafana_allows_anonymous_viewers() -> None:
    env = SERVICES["grafana"]["environment"]
    assert (env["GF_AUTH_ANONYMOUS_ENABLED"], env["GF_AUTH_ANONYMOUS_ORG_ROLE"]) == (
        "true", "Viewer",
    )


def test_dockerfile_installs_rocksdb_extra_and_runs_the_worker() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert dockerfile.startswith("#") and "\nFROM python:3.11-slim\n" in dockerfile
    assert 'pip install ".[rocksdb]"' in dockerfile
    assert dockerfile.rstrip().endswith('CMD ["driftstream", "worker"]')
