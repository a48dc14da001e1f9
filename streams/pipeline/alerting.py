"""The alert policy: from detector decisions to alerts people act on.

Every detector decision is a drift event; this module decides which become alerts:

- **lifecycle**: a detector (a *member*) starts *firing* on drift and is *resolved* once
  its own stream shows no drift for ``resolve_after_s`` of event time;
- **cooldown**: a member that fires again within ``cooldown_s`` of its resolution is
  suppressed, so one drift is one alert, not dozens;
- **grouping** (one incident per drift): a member that fires while an open *incident* of
  its model has the same problem still firing (the model's quality: concept drift and
  performance; or the same feature; a prediction drift: any input's data drift, since the
  outputs follow the inputs) joins it: the drift continues. One that fires within
  ``group_window_s`` of event time of an open incident's first detection joins it too: one
  change seen by several detectors. Otherwise it opens a new incident: a new drift, or a
  problem that cleared and came back after the window. The incident keeps the time and
  position of its first detection, whatever joins later;
- **publication**: each state change of an incident is one alert: ``firing`` (opened),
  ``escalated`` (its severity rose as members joined), ``resolved`` (every member resolved).
  A member joining without raising the severity is not published; its ``kind``, detector
  and message name the most severe member, and the message every kind that fired (an
  escalation that changes the ``kind`` says so: "now performance, was data drift").

Each member's lifecycle depends only on its own stream, and the incident id only on the
model and its first detection, so the same events give the same alerts (same ids) live,
replayed and offline, however the streams were cut into batches (the monitor hands
observations over in event-time order).

>>> from streams.pipeline.monitor_config import MonitorConfig
>>> policy = AlertPolicy("churn", None, MonitorConfig().for_model("churn"))
>>> obs = Observation("data:age", "data_drift", "psi", "age", True, 0.4, 0.25, "above",
...                   None, 1000.0, 42, "p-42", "ev-1")
>>> [(a["status"], a["severity"], a["feature"]) for a in policy.observe(obs)]
[('firing', 'P3', 'age')]
>>> quiet = obs._replace(drift=False, statistic=0.01, timestamp=1400.0, position=900)
>>> [a["status"] for a in policy.observe(quiet)]
['resolved']
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

from schemas.ids import stable_id
from schemas.records import SEVERITIES

from streams.pipeline.monitor_config import ModelConfig



class Observation(NamedTuple):
    """One evaluation of one detector (``drift`` says whether it signalled drift)."""

    key: str
    kind: str
    detector: str
    feature: str | None
    drift: bool
    statistic: float
    threshold: float
    direction: str
    p_value: float | None
    timestamp: float
    position: int
    prediction_id: str
    drift_event_id: str
    baseline: float | None = None
    hold: bool = False  # keeps a firing member firing; never fires one


def _finite_or_none(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None


def _family(kind: str, feature: str | None) -> tuple[str, str | None]:
    """What a detection is about: the model's quality (concept drift, performance, its
    label-free estimate), or the distribution of one feature or prediction column."""
    return ("quality", None) if kind in ("concept_drift", "performance", "estimated_performance") else (kind, feature)


def _continues(member: dict[str, Any], obs: Observation) -> bool:
    """Whether a detection continues a firing member's problem: the same one, or a drift of
    the model's predictions while its inputs drift (the outputs follow the inputs)."""
    if member["status"] != "firing":
        return False
    if member["kind"] == "data_drift" and obs.kind == "prediction_drift":
        return True
    return _family(member["kind"], member["feature"]) == _family(obs.kind, obs.feature)


def _words(kind: str | None) -> str:
    return str(kind).replace("_", " ")


def _bump(severity: str) -> str:
    return SEVERITIES[max(0, SEVERITIES.index(severity) - 1)]


class AlertPolicy:
    """Per-model alert state: members (one per detector) and open incidents."""

    def __init__(self, model_id: str, model_version: str | None, config: ModelConfig, segment: str | None = None) -> None:
        self.model_id = model_id
        self.model_version = model_version
        self.config = config
        #: the segment whose alerts these are (``None``: the whole model's)
        self.segment = segment
        self.members: dict[str, dict[str, Any]] = {}
        self.incidents: dict[str, dict[str, Any]] = {}

    # -- persistence ---------------------------------------------------------------------
    def to_state(self) -> dict[str, Any]:
        return {"members": self.members, "incidents": self.incidents}

    def load_state(self, state: dict[str, Any]) -> None:
        self.members = state["members"]
        self.incidents = state["incidents"]

    # -- severity ------------------------------------------------------------------------
    def severity(self, obs: Observation) -> str:
        rules = self.config.severity
        if obs.kind == "performance":
            drop = abs(obs.statistic - (obs.baseline if obs.baseline is not None else obs.threshold))
            for minimum, severity in rules["performance"]:
                if drop >= minimum:
                    return str(severity)
            return "P2"
        if obs.kind == "data_drift":
            bands = rules["data_drift"]
            if obs.detector.endswith("psi"):
                if obs.statistic >= rules["data_drift_severe_psi"]:
                    return str(bands["severe"])
                return str(bands["significant"] if obs.statistic >= 0.2 else bands["moderate"])
            return str(bands["significant"])
        return str(rules.get(obs.kind, "P2"))

    # -- the lifecycle -------------------------------------------------------------------
    def observe(self, obs: Observation) -> list[dict[str, Any]]:
        """Apply one observation; return the alerts to publish (possibly none)."""
        alerts_cfg = self.config.alerts
        member = self.members.get(obs.key)
        if obs.drift:
            if obs.hold and (member is None or member["status"] != "firing"):
                return []
            if member is not None and member["status"] == "firing":
                member["last_drift_ts"] = obs.timestamp
                if obs.drift_event_id:  # a drift still held (no new drift event) has none
                    member["related"] = (member["related"] + [obs.drift_event_id])[-20:]
                return []
            if (
                member is not None
                and member["resolved_at"] is not None
                and obs.timestamp < member["resolved_at"] + alerts_cfg["cooldown_s"]
            ):
                member["suppressed"] += 1
                return []
            return self._fire(obs, member)
        if (
            member is not None
            and member["status"] == "firing"
            and obs.timestamp - member["last_drift_ts"] >= alerts_cfg["resolve_after_s"]
        ):
            return self._resolve(obs, member)
        return []

    def _open_incident(self, obs: Observation) -> str | None:
        """The open incident a detection joins: the latest one where the same problem (the
        model's quality, or the same feature's data; for a prediction drift, any input's
        data) is still firing, else the latest one whose first detection is at most
        ``group_window_s`` of event time away (a window from its first detection, not a
        fixed bucket), else none."""
        window = self.config.alerts["group_window_s"]
        same: tuple[float, str] | None = None
        near: tuple[float, str] | None = None
        for incident_id, incident in self.incidents.items():
            opened = self._first(incident)["fired_at"]
            # a problem that resolved here and fires again is a new drift unless it is near
            if any(_continues(self.members[k], obs) for k in incident["members"]):
                same = max(same or (opened, incident_id), (opened, incident_id))
            if abs(obs.timestamp - opened) < window:
                near = max(near or (opened, incident_id), (opened, incident_id))
        best = same or near
        return None if best is None else best[1]

    def _first(self, incident: dict[str, Any]) -> dict[str, Any]:
        """An incident's first detection (time, position, prediction), fixed when it opened:
        a member that joins later with an earlier event time never moves it back."""
        first = incident.get("first")
        if first is None:  # written before incidents recorded it: its earliest member's
            first = min((self.members[k] for k in incident["members"]), key=lambda m: m["fired_at"])
        return {"fired_at": first["fired_at"], "position": first["position"], "prediction_id": first["prediction_id"]}

    def _fire(self, obs: Observation, previous: dict[str, Any] | None) -> list[dict[str, Any]]:
        incident_id = self._open_incident(obs)
        opened = incident_id is None
        if incident_id is None:
            # a segment's incident id names it: the same detection time and key in two
            # segments are two incidents
            incident_id = stable_id(self.model_id, self.model_version or "", "incident", obs.timestamp, obs.key,
                                    *(() if self.segment is None else ("segment", self.segment)))
            self.incidents[incident_id] = {
                "members": [], "former": [], "severity": None, "kind": None,
                "first": {"fired_at": obs.timestamp, "position": obs.position, "prediction_id": obs.prediction_id},
            }
        if previous is not None and previous["incident"] != incident_id:
            self._leave(previous["incident"], obs.key, previous)
        member = {
            "status": "firing",
            "incident": incident_id,
            "kind": obs.kind,
            "detector": obs.detector,
            "feature": obs.feature,
            "value": _finite_or_none(obs.statistic),
            "threshold": _finite_or_none(obs.threshold),
            "direction": obs.direction,
            "severity": self.severity(obs),
            "fired_at": obs.timestamp,
            "position": obs.position,
            "prediction_id": obs.prediction_id,
            "last_drift_ts": obs.timestamp,
            "resolved_at": None,
            "related": [obs.drift_event_id],
            "suppressed": previous["suppressed"] if previous else 0,
        }
        self.members[obs.key] = member
        incident = self.incidents[incident_id]
        if obs.key not in incident["members"]:
            incident["members"].append(obs.key)
        severity = self._severity_of(incident_id)
        published = incident.get("severity")
        if opened or published is None:
            status = "firing"
        elif SEVERITIES.index(severity) < SEVERITIES.index(published):
            status = "escalated"
        else:
            return []  # nothing new to say: the incident's state did not change
        alert = self._alert(incident_id, status, obs.timestamp, was_kind=incident.get("kind"))
        incident["severity"] = severity
        incident["kind"] = alert["kind"]
        return [alert]

    def _leave(self, incident_id: str, key: str, member: dict[str, Any]) -> None:
        """A resolved member fires into another incident: its old incident (still open for
        its other members) keeps it as it was when it resolved."""
        incident = self.incidents.get(incident_id)
        if incident is None or key not in incident["members"]:
            return
        incident["members"].remove(key)
        incident.setdefault("former", []).append(dict(member))

    def snapshot(self, incident_id: str) -> dict[str, Any]:
        """The incident as an alert would show it now (not a publication)."""
        return self._alert(incident_id, "firing", 0.0)

    def _resolve(self, obs: Observation, member: dict[str, Any]) -> list[dict[str, Any]]:
        member["status"] = "resolved"
        member["resolved_at"] = obs.timestamp
        incident_id = member["incident"]
        incident = self.incidents.get(incident_id)
        if incident is None:
            return []
        if any(self.members[k]["status"] == "firing" for k in incident["members"]):
            return []
        alert = self._alert(incident_id, "resolved", obs.timestamp)
        del self.incidents[incident_id]
        return [alert]

    def resolve_all(self, timestamp: float, reason: str) -> list[dict[str, Any]]:
        """Resolve every open incident now (its detectors were replaced), saying why."""
        alerts = []
        for incident_id in sorted(self.incidents):
            for key in self.incidents[incident_id]["members"]:
                member = self.members[key]
                if member["status"] == "firing":
                    member["status"] = "resolved"
                    member["resolved_at"] = timestamp
            alert = self._alert(incident_id, "resolved", timestamp)
            alert["message"] += f" ({reason})"
            alerts.append(alert)
        self.incidents = {}
        return alerts

    def _members(self, incident_id: str) -> list[dict[str, Any]]:
        """Every member an incident has had, in the order they fired."""
        incident = self.incidents[incident_id]
        keyed = [(self.members[k]["fired_at"], k, self.members[k]) for k in incident["members"]]
        keyed += [(m["fired_at"], "", m) for m in incident.get("former", [])]
        return [m for _, _, m in sorted(keyed, key=lambda t: (t[0], t[1]))]

    def _severity_of(self, incident_id: str) -> str:
        members = self._members(incident_id)
        severity = min((m["severity"] for m in members), key=SEVERITIES.index)
        # features, not members: several detectors may watch one feature
        drifting_features = len({m["feature"] for m in members if m["kind"] == "data_drift"})
        if drifting_features >= self.config.severity["many_features"]:
            severity = _bump(severity)
        return severity

    def _alert(self, incident_id: str, status: str, timestamp: float, was_kind: str | None = None) -> dict[str, Any]:
        """The publication of an incident's state; ``was_kind``: the ``kind`` it was last
        published with, named in an escalation that changes it."""
        members = self._members(incident_id)
        first = self._first(self.incidents[incident_id])
        # what the alert is about: its most severe member (the earliest among equals)
        lead = min(members, key=lambda m: SEVERITIES.index(m["severity"]))
        severity = self._severity_of(incident_id)
        related = [event_id for m in members for event_id in m["related"]]
        # versions are named as the model server names them ("v2", "2024-06-01"): no prefix added
        version = f" {self.model_version}" if self.model_version else ""
        if self.segment is not None:
            version += f" (segment {self.config.segment_by}={self.segment})"
        what = ", ".join(
            f"{m['detector']}" + (f"[{m['feature']}]" if m["feature"] else "") for m in members
        )
        kinds = list(dict.fromkeys(m["kind"] for m in sorted(members, key=lambda m: SEVERITIES.index(m["severity"]))))
        if status == "resolved":
            message = f"resolved on model {self.model_id}{version}: {what} back within threshold"
        else:
            message = (
                f"{' and '.join(_words(k) for k in kinds)} on model {self.model_id}{version}: "
                f"{what} crossed threshold ({lead['detector']} = "
                f"{format_number(lead['value'])}{against(lead['direction'], lead['threshold'], ' {} {}')})"
            )
            if status == "escalated":
                change = f", now {_words(lead['kind'])} (was {_words(was_kind)})" if was_kind not in (None, lead["kind"]) else ""
                message = f"escalated to {severity}{change}: {message}"
        return {
            "alert_id": incident_id,
            "event_id": stable_id(incident_id, status, severity if status == "escalated" else ""),
            "incident_id": incident_id,
            "model_id": self.model_id,
            "model_version": self.model_version,
            "severity": severity,
            "status": status,
            "kind": lead["kind"],
            "detector": lead["detector"],
            "feature": lead["feature"],
            "value": lead["value"],
            "threshold": lead["threshold"],
            "direction": lead["direction"],
            "message": message,
            # the incident keeps the time and position of its first detection
            "timestamp": first["fired_at"] if status != "resolved" else timestamp,
            "position": first["position"],
            "prediction_id": first["prediction_id"],
            "related": related,
            "members": [
                {
                    "detector": m["detector"],
                    "feature": m["feature"],
                    "kind": m["kind"],
                    "value": m["value"],
                    "threshold": m["threshold"],
                    "direction": m["direction"],
                    "severity": m["severity"],
                    "fired_at": m["fired_at"],
                    "status": m["status"],
                }
                for m in members
            ],
            **({} if self.segment is None else {"segment": self.segment}),
        }


def against(direction: str, threshold: float | None, form: str) -> str:
    """``form`` filled with the direction and threshold a value crossed, or nothing for a
    detector without one (ADWIN and DDM decide by their own test).

    >>> against("above", 0.5, " ({} {})"), against("above", None, " ({} {})")
    (' (above 0.5)', '')
    """
    return "" if threshold is None else form.format(direction, format_number(threshold))


def format_number(x: float | None) -> str:
    """A statistic for people: 4 significant digits, ``n/a`` when undefined."""
    return "n/a" if x is None else f"{x:.4g}"

