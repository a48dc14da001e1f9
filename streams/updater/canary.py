"""Side-by-side tracking of the versions of one model that serve at the same time.

A canary or an A-B split serves two versions of a model together: each prediction is tagged
with the version that made it. :class:`SideBySide` keeps, per model and per served version
(an *arm*), its labelled pairs (the served prediction, its score and its label, at the
prediction's event time). Two arms are *paired* once both have a pair; from then on a pair
of either arm at or after the other's first event time counts towards the next look. When
both have ``min_pairs`` such pairs, and then every ``every_pairs`` more, the two are compared
over the same event-time span: from the later of the two arms' first kept pairs to the
earlier of their last ones, among each arm's ``window_pairs`` most recent pairs
(:mod:`streams.updater.comparison` does the statistics). A look whose common span holds
fewer than ``min_pairs // 2`` pairs of either arm (a window slid past it) is skipped.

Pairs are kept only while a model has two or more arms, so a model served by one version
costs a few numbers. A version with no labelled prediction for ``idle_after_s`` of event
time no longer serves: its arm is dropped. With an uneven split the busier version's window
must span the rarer one's ``min_pairs``: ``window_pairs`` at least ``min_pairs / share``.

A full switch makes no comparison: the old version's pairs end where the new one's begin,
so their common span holds too few pairs.

Everything depends on the pairs and their order only (no wall clock), so a replay of the
same ``updater-input`` records from a checkpoint makes the same looks with the same ids.

>>> tracker = SideBySide(ComparisonConfig(min_pairs=50, every_pairs=50))
>>> looks = []
>>> for i in range(300):
...     version, j = ("v2" if i % 2 else "v1"), i // 2
...     right = j % 10 != 0 if version == "v2" else j % 4 != 0   # v2 right 90 %, v1 75 %
...     looks += tracker.observe("churn", version, "classification", 1, None, 1 if right else 0, float(i))
>>> [(c.baseline, c.candidate, c.n_baseline, c.n_candidate, c.decision) for c in looks]
[('v1', 'v2', 49, 49, 'inconclusive'), ('v1', 'v2', 99, 99, 'better')]
"""

from __future__ import annotations

import math
import re
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from schemas.ids import stable_id

from streams.settings import ENV_PREFIX, Settings, SettingsError
from streams.updater.comparison import MetricTest, decide, delong, mean_difference, two_proportions
from streams.updater.model_store import version_number

__all__ = ["POLICIES", "Comparison", "ComparisonConfig", "SideBySide"]

#: ``publish``: comparison events only; ``auto``: the updater also promotes a significantly
#: better canary and rolls back a significantly worse one (:class:`~streams.updater.decisions.Updater`).
POLICIES = ("publish", "auto")


@dataclass(frozen=True)
class ComparisonConfig:
    """When two served versions are compared, and what the updater does with the result."""

    #: Labelled pairs of each version in the common span before the first comparison.
    min_pairs: int = 500
    #: More pairs of each version between two comparisons.
    every_pairs: int = 1_000
    #: Most recent labelled pairs kept per version while two serve (the largest sample compared).
    window_pairs: int = 20_000
    #: Significance level of a ``better`` / ``worse`` decision, over all metrics tested
    #: (Bonferroni). Each comparison is a new look at a growing sample, so keep it small.
    p_value_below: float = 0.01
    #: Event time without a labelled prediction after which a version no longer serves.
    idle_after_s: float = 3_600.0
    #: ``publish`` (default) or ``auto``.
    policy: str = "publish"

    def __post_init__(self) -> None:
        for name in ("min_pairs", "every_pairs", "window_pairs"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 2:
                raise ValueError(f"comparison.{name} must be an integer >= 2, got {getattr(self, name)!r}")
        if self.window_pairs < self.min_pairs:
            raise ValueError(f"comparison.window_pairs must be >= comparison.min_pairs ({self.min_pairs}), "
                             f"got {self.window_pairs}")
        if not 0.0 < self.p_value_below < 1.0:
            raise ValueError(f"comparison.p_value_below must be in (0, 1), got {self.p_value_below!r}")
        if not self.idle_after_s > 0 or math.isinf(self.idle_after_s):
            raise ValueError(f"comparison.idle_after_s must be a finite number > 0, got {self.idle_after_s!r}")
        if self.policy not in POLICIES:
            raise ValueError(f"comparison.policy must be one of {', '.join(POLICIES)}, got {self.policy!r}")

    @classmethod
    def from_settings(cls, settings: Settings) -> ComparisonConfig:
        """From the ``DRIFTSTREAM_COMPARISON_*`` variables; a bad one is refused naming it."""
        values = {name: getattr(settings, f"comparison_{name}") for name in ("policy", "min_pairs", "every_pairs", "p_value_below")}
        try:
            return cls(**values)
        except ValueError as exc:
            key = re.match(r"comparison\.(\w+)", str(exc))
            name = f"{ENV_PREFIX}COMPARISON_{key[1].upper()}" if key else f"{ENV_PREFIX}COMPARISON_*"
            raise SettingsError(f"{name}: {exc}") from None


@dataclass(frozen=True)
class Comparison:
    """One look at two versions served side by side: the tests and the decision for
    ``candidate`` against ``baseline`` over the event-time span ``[start, end]``."""

    event_id: str
    model_id: str
    baseline: str | None
    candidate: str | None
    look: int
    n_baseline: int
    n_candidate: int
    start: float
    end: float
    tests: tuple[MetricTest, ...]
    decision: str

    def metrics(self, p_value_below: float) -> dict[str, Any]:
        """The ``metrics`` of its ``comparison`` event (plain data)."""
        return {
            "baseline_version": self.baseline, "candidate_version": self.candidate, "look": self.look,
            "n_baseline": self.n_baseline, "n_candidate": self.n_candidate, "decision": self.decision,
            "p_value_below": p_value_below,
            "tests": {t.metric: {"baseline": t.baseline, "candidate": t.candidate, "difference": t.difference,
                                 "statistic": t.statistic if math.isfinite(t.statistic) else None,
                                 "p_value": t.p_value, "higher_is_better": t.higher_is_better} for t in self.tests},
        }

    def summary(self) -> str:
        parts = [f"{t.metric} {t.baseline:.4f} -> {t.candidate:.4f} ({t.difference:+.4f}, p = {t.p_value:.3g})"
                 for t in self.tests]
        return (f"{self.candidate} vs {self.baseline} on {self.n_candidate} and {self.n_baseline} labelled predictions "
                f"from event time {self.start} to {self.end}: {'; '.join(parts)}: {self.decision}")


# one labelled pair, all floats so a window becomes one numpy array at a look: event time,
# right (1/0, classification), P(positive), positive (1/0, binary labels only), absolute
# error (regression); NaN where it does not apply
_Pair = tuple[float, float, float, float, float]
_NAN = math.nan


@dataclass
class _Arm:
    version: str | None
    pairs: deque[_Pair]
    first_ts: float
    last_ts: float


@dataclass
class _Pairing:
    """Two arms compared, and how many pairs of each counted since they were paired."""

    baseline: str | None
    candidate: str | None
    counted: dict[str | None, int] = field(default_factory=dict)
    checks: int = 0  # looks due so far, published or skipped
    looks: int = 0  # looks published (numbers the event ids)
    settled: bool = False  # the updater acted on a look


@dataclass
class _Model:
    arms: dict[str | None, _Arm] = field(default_factory=dict)
    pairings: dict[tuple[str | None, str | None], _Pairing] = field(default_factory=dict)
    clock: float = -math.inf


def _order(a: _Arm, b: _Arm) -> tuple[_Arm, _Arm]:
    """(baseline, candidate): the lower ``v<n>``, else the one that served first."""
    na, nb = version_number(a.version), version_number(b.version)
    if na is not None and nb is not None:
        return (a, b) if na < nb else (b, a)
    return (a, b) if (a.first_ts, str(a.version)) <= (b.first_ts, str(b.version)) else (b, a)


def _binary(value: Any) -> float:
    """1.0 for the positive class 1 (or True), 0.0 for 0, NaN for anything else."""
    if isinstance(value, (bool, int, float)) and value in (0, 1):
        return float(value)
    return _NAN


def _pair(task: str, prediction: Any, score: Any, label: Any, ts: float) -> _Pair:
    if task == "regression":
        try:
            return (ts, _NAN, _NAN, _NAN, abs(float(prediction) - float(label)))
        except (TypeError, ValueError):
            return (ts, _NAN, _NAN, _NAN, _NAN)
    positive, predicted = _binary(label), _binary(prediction)
    probability = _NAN
    if positive == positive and predicted == predicted and isinstance(score, (int, float)) and 0.0 <= score <= 1.0:
        # ``score`` is the confidence of the predicted class (docs/contracts.md)
        probability = float(score) if predicted else 1.0 - float(score)
    return (ts, float(prediction == label), probability, positive, _NAN)


class SideBySide:
    """Per model, the served versions' labelled pairs and their comparisons (module docstring)."""

    def __init__(self, config: ComparisonConfig | None = None) -> None:
        self.config = config or ComparisonConfig()
        self.models: dict[str, _Model] = {}

    def observe(self, model_id: str, version: str | None, task: str, prediction: Any, score: Any, label: Any,
                timestamp: float) -> list[Comparison]:
        """One labelled served prediction; the comparisons it completes."""
        cfg = self.config
        m = self.models.get(model_id) or self.models.setdefault(model_id, _Model())
        m.clock = max(m.clock, timestamp)
        arm = m.arms.get(version)
        if arm is not None and len(m.arms) == 1:  # the common case: one version serves, nothing to keep
            arm.first_ts, arm.last_ts = min(arm.first_ts, timestamp), max(arm.last_ts, timestamp)
            return []
        for gone in [v for v, arm in m.arms.items() if arm.last_ts < m.clock - cfg.idle_after_s and v != version]:
            del m.arms[gone]
            m.pairings = {k: p for k, p in m.pairings.items() if gone not in k}
            if len(m.arms) == 1:  # one version serves again: nothing to compare it with
                next(iter(m.arms.values())).pairs.clear()
        arm = m.arms.get(version)
        if arm is None:
            arm = m.arms[version] = _Arm(version, deque(maxlen=cfg.window_pairs), timestamp, timestamp)
            for other in list(m.arms.values()):
                if other is not arm:
                    baseline, candidate = _order(other, arm)
                    m.pairings[(baseline.version, candidate.version)] = _Pairing(baseline.version, candidate.version)
        arm.first_ts, arm.last_ts = min(arm.first_ts, timestamp), max(arm.last_ts, timestamp)
        if len(m.arms) > 1:
            arm.pairs.append(_pair(task, prediction, score, label, timestamp))
        out: list[Comparison] = []
        for pairing in m.pairings.values():
            if version not in (pairing.baseline, pairing.candidate):
                continue
            other = m.arms[pairing.candidate if version == pairing.baseline else pairing.baseline]
            if timestamp < other.first_ts:
                continue  # before the two served together
            pairing.counted[version] = pairing.counted.get(version, 0) + 1
            due = cfg.min_pairs + pairing.checks * cfg.every_pairs
            if min(pairing.counted.get(pairing.baseline, 0), pairing.counted.get(pairing.candidate, 0)) >= due:
                pairing.checks += 1
                look = self._compare(model_id, task, m.arms[pairing.baseline], m.arms[pairing.candidate], pairing.looks + 1)
                if look is not None:
                    pairing.looks += 1
                    out.append(look)
        return out

    def _compare(self, model_id: str, task: str, baseline: _Arm, candidate: _Arm, look: int) -> Comparison | None:
        """Both arms' pairs over their common event-time span, tested."""
        pa, pb = np.array(baseline.pairs, dtype=float), np.array(candidate.pairs, dtype=float)
        start, end = float(max(pa[:, 0].min(), pb[:, 0].min())), float(min(pa[:, 0].max(), pb[:, 0].max()))
        a = pa[(pa[:, 0] >= start) & (pa[:, 0] <= end)]
        b = pb[(pb[:, 0] >= start) & (pb[:, 0] <= end)]
        if min(len(a), len(b)) < max(2, self.config.min_pairs // 2):
            return None  # the window moved past the common span: nothing to compare fairly
        tests = _tests(task, a, b)
        if not tests:
            return None
        decision = decide(tests, self.config.p_value_below)
        return Comparison(stable_id("comparison", model_id, baseline.version, candidate.version, look), model_id,
                          baseline.version, candidate.version, look, len(a), len(b), start, end, tuple(tests), decision)

    def settle(self, model_id: str, baseline: str | None, candidate: str | None) -> bool:
        """Mark the two versions' comparison as acted on; ``False`` if it already was (one
        switch per pair of versions, whatever later looks say)."""
        pairing = self.models[model_id].pairings.get((baseline, candidate))
        if pairing is None or pairing.settled:
            return False
        pairing.settled = True
        return True

    def state(self) -> dict[str, Any]:
        return {"models": self.models}

    def restore(self, state: dict[str, Any] | None) -> None:
        self.models = dict(state["models"]) if state else {}


def _tests(task: str, a: np.ndarray, b: np.ndarray) -> list[MetricTest]:
    """The tests of two windows of pairs (rows of :data:`_Pair`)."""
    if task == "regression":
        ea, eb = a[~np.isnan(a[:, 4]), 4], b[~np.isnan(b[:, 4]), 4]
        return [mean_difference(ea, eb)] if min(len(ea), len(eb)) >= 2 else []
    tests = [two_proportions(int(a[:, 1].sum()), len(a), int(b[:, 1].sum()), len(b))]
    # AUC only when every pair is scored: a scored subset need not be like the rest
    if not (np.isnan(a[:, 2]).any() or np.isnan(b[:, 2]).any()):
        ya, yb = a[:, 3] == 1.0, b[:, 3] == 1.0
        if min(ya.sum(), (~ya).sum(), yb.sum(), (~yb).sum()) >= 2:
            tests.append(delong(ya, a[:, 2], yb, b[:, 2]))
    return tests
