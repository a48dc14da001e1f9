"""A seeded simulated model: predictions, delayed and partly missing labels, injected drifts.

Used by ``driftstream demo`` and ``driftstream simulate``, the tests and the load tests.
The model scores churn from six features; the world it predicts can change:

- **concept drift** at ``concept_drift_at``: the true rule flips, so the model's accuracy
  falls from about 0.9 to about 0.35 while its inputs look the same;
- **feature drift** at ``feature_drift_at``: ``sessions_7d`` shifts up by 1.5 standard
  deviations (a feature the model ignores, so only data drift shows).

>>> sim = Simulation(SimulationConfig(events=1000, seed=3))
>>> preds, labels = sim.generate()
>>> len(preds), 850 < len(labels) < 950
(1000, True)
>>> preds[0]["model_id"], sorted(preds[0]["features"])[:2]
('churn-model', ['age', 'income'])
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

PLANS = ("basic", "pro", "enterprise")
REGIONS = ("eu", "us", "apac")


@dataclass(frozen=True)
class SimulationConfig:
    """What to simulate; positions count predictions from 0."""

    events: int = 20_000
    seed: int = 42
    model_id: str = "churn-model"
    model_version: str | None = None
    #: Event time of the first prediction (epoch seconds) and predictions per event-time second.
    start: float = 1_700_000_000.0
    event_rate: float = 50.0
    concept_drift_at: int | None = 12_000
    feature_drift_at: int | None = 6_000
    label_fraction: float = 0.9
    label_delay_s: tuple[float, float] = (1.0, 20.0)
    id_prefix: str = "p"


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


class Simulation:
    """Generates the prediction and ground-truth events of :class:`SimulationConfig`."""

    def __init__(self, config: SimulationConfig) -> None:
        self.config = config

    def generate(self, start_index: int = 0, count: int | None = None) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Predictions ``[start_index, start_index + count)`` and their labels (if any)."""
        cfg = self.config
        count = cfg.events - start_index if count is None else count
        rng = np.random.default_rng([cfg.seed, start_index])
        idx = np.arange(start_index, start_index + count)
        age = rng.normal(40, 12, count).clip(18, 90)
        income = rng.lognormal(10.5, 0.4, count)
        tenure = rng.gamma(2.0, 12.0, count)
        sessions = rng.normal(10, 3, count)
        if cfg.feature_drift_at is not None:
            sessions = np.where(idx >= cfg.feature_drift_at, sessions + 4.5, sessions)
        plan = rng.choice(len(PLANS), count, p=[0.6, 0.3, 0.1])
        region = rng.choice(len(REGIONS), count, p=[0.4, 0.4, 0.2])
        signal = -0.08 * (age - 40) + -0.05 * (tenure - 24) + 0.6 * (plan == 0) - 0.2
        noise = rng.normal(0, 0.35, count)
        score = _sigmoid(4.0 * signal)
        prediction = (signal > 0).astype(int)
        truth = (signal + noise > 0).astype(int)
        if cfg.concept_drift_at is not None:
            flipped = (-signal + noise > 0.3).astype(int)
            truth = np.where(idx >= cfg.concept_drift_at, flipped, truth)
        ts = cfg.start + idx / cfg.event_rate
        has_label = rng.random(count) < cfg.label_fraction
        delay = rng.uniform(*cfg.label_delay_s, count)
        preds: list[dict[str, Any]] = []
        labels: list[dict[str, Any]] = []
        for j in range(count):
            pid = f"{cfg.id_prefix}{idx[j]}"
            confidence = float(score[j] if prediction[j] == 1 else 1.0 - score[j])
            preds.append({
                "prediction_id": pid,
                "model_id": cfg.model_id,
                "model_version": cfg.model_version,
                "timestamp": float(ts[j]),
                "features": {
                    "age": round(float(age[j]), 2),
                    "income": round(float(income[j]), 2),
                    "tenure_months": round(float(tenure[j]), 2),
                    "sessions_7d": round(float(sessions[j]), 2),
                    "plan": PLANS[plan[j]],
                    "region": REGIONS[region[j]],
                },
                "prediction": int(prediction[j]),
                "score": round(confidence, 6),
                "latency_ms": round(float(rng.gamma(2.0, 4.0)), 3),
            })
            if has_label[j]:
                labels.append({
                    "prediction_id": pid,
                    "label": int(truth[j]),
                    "timestamp": float(ts[j] + delay[j]),
                    "model_id": cfg.model_id,
                })
        return preds, labels

    def in_event_time_order(self, start_index: int = 0, count: int | None = None) -> list[tuple[str, dict[str, Any]]]:
        """Both streams merged in event time: what a live system sees, label delays included."""
        preds, labels = self.generate(start_index, count)
        merged = [(p["timestamp"], 0, "predictions", p) for p in preds]
        merged += [(lab["timestamp"], 1, "ground-truth", lab) for lab in labels]
        merged.sort(key=lambda item: (item[0], item[1]))
        return [(role, event) for _, _, role, event in merged]


def expected_positions(config: SimulationConfig) -> dict[str, int | None]:
    """The injected drift points, for summaries and scoring."""
    return {"concept_drift_at": config.concept_drift_at, "feature_drift_at": config.feature_drift_at}


def event_time_of(config: SimulationConfig, position: int) -> float:
    return config.start + position / config.event_rate

