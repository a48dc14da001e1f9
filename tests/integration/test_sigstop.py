"""A worker SIGSTOPped past the session timeout, then resumed, stops nobody and loses nothing.

The group gives its partitions to the other worker while it is stopped; resumed, it finds
its session expired and rejoins. Neither worker may take that for a broker that lost its
data (exit 75), nor may the resumed one save its stale state over what the other applied
meanwhile (:meth:`streams.runtime.checkpoint.Checkpointer.hand_over`). The load test runs this 10 times on 2
and on 4 partitions (``python -m load_tests.faults --fault sigstop``); here once, on 2.
"""

from __future__ import annotations

import pytest

from load_tests.common import Harness
from load_tests.faults import sigstop_run
from streams.settings import Settings

pytestmark = pytest.mark.integration


def test_a_worker_stopped_past_the_session_timeout_rejoins_without_a_false_stop_or_a_loss(settings: Settings) -> None:
    with Harness() as h:
        row = sigstop_run(h.worker, settings, models=2, events_per_model=1_000, seed=11)
    assert row["paused_s"] > settings.session_timeout_s, row
    assert row["exit_statuses"] == [0, 0], row  # no false broker-lost-data stop (75), no error
    assert row["lost"] == 0, row
    # the same events give the same alerts as the offline run, unless some reached a monitor
    # below its event-time frontier (counted: a frozen worker's last "idle" claim released
    # the other partitions' events past its own; see docs/delivery.md)
    assert row["alerts_equal"] or row["late_events"] > 0, row
