"""Shared fixtures of the deployment tests: repository paths, tools, the metrics exported."""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from streams.ops.gpu import GpuCollector
from streams.ops.metrics import create, exported_names

ROOT = Path(__file__).resolve().parents[2]
#: Metric names in PromQL: driftstream's own and the standard process collector's.
METRIC_NAME = re.compile(r"\b(?:driftstream|process)_[a-z_]+\b")
STRING_LITERAL = re.compile(r'"(?:[^"\\]|\\.)*"')


@pytest.fixture(scope="session")
def root() -> Path:
    """The repository root."""
    return ROOT


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not on PATH (CI installs it: apt-get install {name})")
    return path


@pytest.fixture(scope="session")
def promtool() -> str:
    """Path of promtool (Debian/Ubuntu package ``prometheus``)."""
    return _tool("promtool")


@pytest.fixture(scope="session")
def docker_compose() -> str:
    """Path of docker-compose (Debian/Ubuntu package ``docker-compose``)."""
    return _tool("docker-compose")


@pytest.fixture(scope="session")
def exported() -> set[str]:
    """Every sample name a worker exports: driftstream, process, platform and GPU metrics.

    The GPU families come from ``describe()``: without a GPU a scrape holds only
    ``driftstream_gpu_available``, but dashboards and rules are written for GPU hosts too.
    """
    registry = CollectorRegistry()
    create(registry)
    return exported_names(registry) | {family.name for family in GpuCollector().describe()}


def metric_names(expr: str) -> set[str]:
    """The driftstream and process metric names a PromQL expression refers to.

    String literals (label values) are dropped first, so ``{job="driftstream_x"}`` is no
    reference to a metric.
    """
    return set(METRIC_NAME.findall(STRING_LITERAL.sub('""', expr)))


@pytest.fixture(scope="session")
def names_in() -> Callable[[str], set[str]]:
    """:func:`metric_names`, for tests (conftest modules are not imported by name)."""
    return metric_names
