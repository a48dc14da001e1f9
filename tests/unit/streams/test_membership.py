"""streams.runtime.membership: which members are a worker's predecessors, and a removal that
cannot stop a worker from starting (the removal itself, on the real broker:
tests/integration/test_startup.py)."""

from __future__ import annotations

import asyncio
import logging

import pytest

from streams.runtime import membership
from streams.runtime.membership import predecessors, remove_predecessors
from streams.settings import Settings

UUID = "3b433ad2-f629-4882-b939-5542e260227e"


def test_a_predecessor_is_the_client_id_a_dash_and_a_uuid() -> None:
    ids = [f"driftstream-w1-{UUID}", f"driftstream-w1-a-{UUID}", f"driftstream-w1-{UUID}-x", f"driftstream-w10-{UUID}",
           f"faust-0.15.3-{UUID}", f"w1-{UUID}", "driftstream-w1-", "driftstream-w1-not-a-uuid"]
    assert predecessors("driftstream-w1", ids) == [f"driftstream-w1-{UUID}"]
    assert predecessors("driftstream-w1-a", ids) == [f"driftstream-w1-a-{UUID}"]


@pytest.mark.parametrize("env", [{}, {"DRIFTSTREAM_INSTANCE_ID": "w1"}])
def test_nothing_is_asked_without_an_instance_id_or_with_static_membership(env: dict[str, str]) -> None:
    # the broker address is never dialled: nothing to remove
    settings = Settings.from_env({"DRIFTSTREAM_BROKER": "kafka://127.0.0.1:1", **env})
    assert asyncio.run(remove_predecessors(settings)) == []


def test_a_broker_that_cannot_be_asked_costs_a_warning_not_the_start(caplog: pytest.LogCaptureFixture,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(membership, "TIMEOUT_S", 2.0)
    settings = Settings.from_env({"DRIFTSTREAM_BROKER": "kafka://127.0.0.1:1", "DRIFTSTREAM_INSTANCE_ID": "w1",
                                  "DRIFTSTREAM_STATIC_MEMBERSHIP": "false"})
    with caplog.at_level(logging.WARNING, logger="streams.runtime.worker"):
        assert asyncio.run(remove_predecessors(settings)) == []
    assert "could not remove this instance's earlier members from group driftstream" in caplog.text
