"""Shared fixtures: one embedded broker per test session, a fresh namespace per test."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from streams.broker import EmbeddedBroker
from streams.settings import Settings


@pytest.fixture(scope="session")
def broker() -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker() as embedded:
        yield embedded


@pytest.fixture()
def settings(broker: EmbeddedBroker) -> Settings:
    """Settings for the embedded broker with a uuid topic prefix and consumer group."""
    ns = uuid.uuid4().hex[:10]
    return Settings.from_env({}).for_embedded_broker(broker.url).replace(
        topic_prefix=f"t{ns}.", app_id=f"ds-{ns}", partitions=2, batch_within_s=0.02,
    )


KcatRunner = Callable[..., "subprocess.CompletedProcess[bytes]"]


@pytest.fixture(scope="session")
def kcat() -> KcatRunner:
    """Run the Debian ``kcat`` binary (a Kafka client we did not write).

    Debian bookworm's librdkafka 2.0.2 cannot parse the tagged fields of Tansu's
    ApiVersions response, so kcat is run against the current librdkafka bundled in the
    confluent-kafka wheel (same soname, same C API); kcat itself is unchanged.
    """
    binary = shutil.which("kcat") or shutil.which("kafkacat")
    if binary is None:
        pytest.skip("kcat is not installed (Debian package kcat; .ci/run installs it)")
    import confluent_kafka

    libs = Path(confluent_kafka.__file__).parent.parent / "confluent_kafka.libs"
    bundled = sorted(libs.glob("librdkafka*.so*"))
    env = dict(os.environ)
    if bundled:
        libdir = Path(tempfile.mkdtemp(prefix="kcat-lib-"))
        (libdir / "librdkafka.so.1").symlink_to(bundled[0])
        env["LD_LIBRARY_PATH"] = str(libdir)

    def run(*args: str, input: bytes | None = None, timeout: float = 30) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run([binary, *args], input=input, capture_output=True, check=True, timeout=timeout, env=env)

    return run
