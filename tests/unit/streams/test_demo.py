"""What ``driftstream demo`` shows at its end, through the offline pipeline (the worker's
stages): each injected drift is one incident, first detected after its injection."""

from __future__ import annotations

from streams.cli import _simulation_config, build_parser
from streams.offline.demo import summarize
from streams.offline.pipeline import OfflinePipeline
from streams.offline.simulate import Simulation


def test_the_demos_two_drifts_are_two_incidents() -> None:
    config = _simulation_config(build_parser().parse_args(["demo"]))
    pipe = OfflinePipeline(keep_samples=False)
    pipe.feed_events(Simulation(config).in_event_time_order())
    alerts = pipe.finish().alerts
    final = {a["alert_id"]: a for a in alerts}  # the last publication of each incident
    assert len(final) == 2, [(a["kind"], a["prediction_id"]) for a in alerts]
    data, quality = sorted(final.values(), key=lambda a: a["timestamp"])
    assert data["kind"] == "data_drift" and {m["feature"] for m in data["members"]} == {"sessions_7d"}
    assert quality["kind"] in ("concept_drift", "performance")
    assert {m["kind"] for m in quality["members"]} <= {"concept_drift", "performance"}
    for alert, injected in ((data, config.feature_drift_at), (quality, config.concept_drift_at)):
        assert 0 <= int(alert["prediction_id"].removeprefix(config.id_prefix)) - injected < 1_000
    # the summary sets each incident against its own injection: both after it
    lines = [line for line in summarize(alerts, config, {}).splitlines() if "first fired at prediction #" in line]
    assert len(lines) == 2 and all("(+" in line and "events after injection" in line for line in lines)
