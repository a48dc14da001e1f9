"""The monitoring config every model starts from, before the config file's overrides.

Its own module because both the config loader (:mod:`streams.pipeline.monitor_config`) and the
checker of allowed keys (:mod:`streams.pipeline.config_schema`) read it.
"""

from __future__ import annotations

from typing import Any

#: The defaults every model starts from (documented in the README).
DEFAULTS: dict[str, Any] = {
    "reference_size": 1000,
    "strict_models": False,
    "features": None,  # None: every feature seen in the reference
    "ignore_features": [],
    "max_features": 200,
    "reference": {"profile": None},
    # a feature whose values split the model into segments, each monitored as well as the
    # whole model (streams/pipeline/segments.py); None: off
    "segment_by": None,
    "segments": {"max": 10},  # the most frequent values of the reference; the rest go to "other"
    "data_drift": {
        "numeric": {"type": "psi", "bins": 10, "window": 1000, "step": 250, "psi_above": 0.1},
        "categorical": {
            "type": "psi_categorical", "window": 1000, "step": 250, "psi_above": 0.1,
        },
    },
    "feature_detectors": {},
    "prediction_drift": {
        "numeric": {"type": "psi", "bins": 10, "window": 1000, "step": 250, "psi_above": 0.1},
        "categorical": {
            "type": "psi_categorical", "window": 1000, "step": 250, "psi_above": 0.1,
        },
    },
    # per feature, over the last `window` predictions (streams/pipeline/quality.py); [] turns them off
    "data_quality": {
        "checks": ["missing_rate", "out_of_range", "unseen_category", "type_change"],
        "window": 1000,
        "max_missing_increase": 0.1,  # above the reference's missing rate
        "max_out_of_range": 0.05,  # share of numbers outside the reference's range
        "max_unseen_category": 0.05,  # share of categories the reference did not have
        "max_type_change": 0.01,  # share of values of a type the reference did not have
    },
    # CBPE: a binary classifier's performance estimated from its scores, before labels
    # (streams/pipeline/estimation.py); no metrics: off
    "estimated_performance": {
        "metrics": [],  # of: accuracy, precision, recall, f1, roc_auc
        "window": 1000,  # scored predictions per window (one estimate each)
        # drift when an estimate falls this much below the reference's estimate
        "max_drop": {"accuracy": 0.1, "precision": 0.1, "recall": 0.1, "f1": 0.1, "roc_auc": 0.05},
        "compare_after": 0.5,  # share of a window labelled before its estimate meets the realized value
        "max_error": 0.1,  # |estimate - realized| above this: the estimate is off (kind estimated_performance)
        "max_windows": 32,  # windows kept waiting for their labels
    },
    # p50/p95/p99 of the predictions' latency_ms over the last `window` that carry one
    # (streams/pipeline/latency.py); an SLO makes a percentile a check of kind `latency`
    "latency": {
        "percentiles": ["p50", "p95", "p99"],  # exported; empty: off
        "window": 1000,
        "slo_ms": {"p50": None, "p95": None, "p99": None},  # None: no SLO
    },
    # a detector on a metric's checkpoint series, e.g. detectors.f1 = {type = "three_sigma"}
    # (streams/pipeline/series.py); its reference is the series' first `reference_points` values
    "metric_series": {"reference_points": 20, "detectors": {}},
    "concept_drift": {
        "classification": [{"type": "adwin", "delta": 0.002}, {"type": "ddm", "warm_start": 500}],
        "regression": [{"type": "adwin", "delta": 0.002}],
        # on 1 - each query's score by the model's first ranking metric
        "ranking": [{"type": "adwin", "delta": 0.002}],
    },
    "performance": {
        "window": 1000,
        # the metrics of each task that are checked; a task none of them is for gets its
        # default (accuracy, MAE, ndcg@10); ranking metrics name their cutoff: map@K, ndcg@K,
        # mrr@K, precision@K, recall@K, hit_rate@K;
        # see streams/pipeline/performance.py
        "metrics": ["accuracy", "mae"],
        "positive_class": None,  # None: 1 when labels are 0/1 or booleans, else macro averages
        "max_accuracy_drop": 0.1,
        "max_mae_increase": 0.5,
        # higher-is-better metrics: drift when the value falls this much below its baseline
        # (map, ndcg, mrr, hit_rate, and precision and recall for rankings too: every cutoff)
        "max_drop": {"precision": 0.1, "recall": 0.1, "f1": 0.1, "roc_auc": 0.05, "r2": 0.1, "map": 0.1, "ndcg": 0.1,
                     "mrr": 0.1, "hit_rate": 0.1},
        # lower-is-better metrics: drift when the value rises this share above its baseline
        "max_increase": {"log_loss": 0.5, "brier": 0.5, "mse": 0.5, "rmse": 0.5},
        # a concept-drift detection alerts only if the error rose at least this much
        "min_error_increase": 0.05,
    },
    "alerts": {
        "cooldown_s": 600.0,
        "resolve_after_s": 300.0,
        "group_window_s": 300.0,
    },
    "severity": {
        "concept_drift": "P2",
        "prediction_drift": "P2",
        "data_quality": "P3",
        "estimated_performance": "P2",
        "latency": "P2",
        "anomaly": "P3",
        "data_drift": {"moderate": "P3", "significant": "P3", "severe": "P2"},
        "data_drift_severe_psi": 0.5,
        "performance": [[0.25, "P0"], [0.1, "P1"], [0.0, "P2"]],
        "many_features": 3,
    },
}
