"""The in-process figures of ``load_tests.throughput`` on a small workload (no broker)."""

from __future__ import annotations

import pytest

from load_tests.common import LoadTestError, count_roles, workload
from load_tests.throughput import drifting_config, minimum_rate, sdk_chunks, stages_rate
from streams.settings import Settings


def test_the_minimum_loop_joins_every_label_and_the_stages_apply_every_prediction() -> None:
    settings = Settings().replace(partitions=3)
    items = workload(drifting_config(3_000, seed=4))
    counts = count_roles(items)
    chunks = sdk_chunks(settings, items, chunk=1_000)
    assert sum(len(records) for records in chunks) < len(items) / 50  # many events per record
    minimum = minimum_rate(chunks, counts["predictions"])
    assert minimum["pairs"] == counts["ground-truth"]  # every label follows its prediction
    assert minimum["predictions_per_s"] > 0
    assert stages_rate(settings, chunks, counts["predictions"])["predictions_per_s"] > 0


def test_a_count_that_does_not_match_is_an_error_not_a_rate() -> None:
    settings = Settings().replace(partitions=2)
    items = workload(drifting_config(500, seed=4))
    chunks = sdk_chunks(settings, items)
    with pytest.raises(LoadTestError, match="expected 501"):
        minimum_rate(chunks, 501)
