"""Shared fixtures: one embedded broker per test session, a fresh namespace per test."""

from __future__ import annotations

import gc
import subprocess
import uuid
from collections.abc import Callable, Iterator

import pytest

from streams.ops.broker import EmbeddedBroker
from streams.settings import Settings


#: Tests that load both cores for a while, or time what they see (load-test smoke runs, the
#: event-time scenarios, whose producers must stay within the idle wait): the default
#: command runs two test processes (``-n 2 --dist loadgroup``, pytest-xdist), and these run
#: one after another on one of them, never beside each other.
HEAVY = ("tests/load/", "tests/integration/test_event_time.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if any(part in item.nodeid for part in HEAVY):
            item.add_marker(pytest.mark.xdist_group("heavy"))


@pytest.fixture(autouse=True)
def _gc_threshold_restored() -> Iterator[None]:
    """Commands run in-process (backtest, replay, the backtest benchmark) tune the garbage
    collector for their process, as they should; it must not leak into the next test."""
    saved = gc.get_threshold()
    yield
    gc.set_threshold(*saved)


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


@pytest.fixture(scope="session")
def kcat() -> Callable[..., "subprocess.CompletedProcess[bytes]"]:
    """Run the Debian ``kcat`` binary, a Kafka client we did not write (see load_tests.kcat
    for why it runs against the librdkafka of the confluent-kafka wheel)."""
    from load_tests.kcat import KcatUnavailable, kcat_runner

    try:
        return kcat_runner()
    except KcatUnavailable as exc:
        pytest.skip(str(exc))
