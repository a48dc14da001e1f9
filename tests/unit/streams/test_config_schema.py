"""The monitoring config is checked whole when it is loaded: each error names file and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from streams.exceptions import ConfigError
from streams.offline.pipeline import OfflinePipeline
from streams.offline.simulate import Simulation, SimulationConfig
from streams.pipeline.config_defaults import DEFAULTS
from streams.pipeline.monitor_config import MonitorConfig

PSI_PARAMS = "bins, window, step, psi_above, warning_psi_above, epsilon"


@pytest.mark.parametrize(("toml", "message"), [
    ("[defaults.data_drift.numeric]\npsi_abov = 0.1\n",
     f"defaults.data_drift.numeric.psi_abov: unknown parameter of psi; expected one of: {PSI_PARAMS}"),
    ("[models.churn.prediction_drift.numeric]\nbins = 1\n",
     "models.churn.prediction_drift.numeric: psi: parameter 'bins' must be an int >= 2, got 1"),
    ("[defaults.data_drift.categorical]\ntype = \"ks\"\n",
     "defaults.data_drift.categorical.type: unknown or unsuitable detector 'ks'; expected one of: chi2, psi_categorical"),
    ("[defaults.data_drift]\nnumerik = { type = \"ks\" }\n",
     "defaults.data_drift.numerik: unknown key; expected one of: numeric, categorical"),
    ("[defaults.performance]\nmetric = \"f1\"\n", "defaults: performance.metric is not a key: list the metrics in "
                                                "performance.metrics"),
    ("[models.churn.performance]\nmetrics = [\"accuracy\", \"f2\"]\n",
     "models.churn.performance.metrics: expected a non-empty list of distinct metrics from: accuracy, precision, "
     "recall, f1, roc_auc, log_loss, brier, mae, mse, rmse, r2, map@K, ndcg@K, mrr@K, precision@K, recall@K, "
     "hit_rate@K (ranking, K an int from 1 to 1000), "
     "got ['accuracy', 'f2']"),
    ("[defaults.performance.max_drop]\naccuracy = 0.2\n",
     "defaults.performance.max_drop.accuracy: unknown key; expected one of: precision, recall, f1, roc_auc, r2, map, "
     "ndcg"),
    # ranking metrics name their cutoff; one threshold per family
    ("[models.recs.performance]\nmetrics = [\"ndcg@5\", \"map@0\"]\n",
     "models.recs.performance.metrics: 'map@0': K must be an int from 1 to 1000, got '0'"),
    ("[models.recs.performance]\nmetrics = [\"ndcg@ten\"]\n",
     "models.recs.performance.metrics: 'ndcg@ten': K must be an int from 1 to 1000, got 'ten'"),
    ("[models.recs.performance]\nmetrics = [\"ndcg@1001\"]\n",
     "models.recs.performance.metrics: 'ndcg@1001': K must be an int from 1 to 1000, got '1001'"),
    ("[models.recs.performance]\nmetrics = [\"mrr\"]\n",
     "models.recs.performance.metrics: 'mrr': K must be an int from 1 to 1000, got ''"),
    ("[models.recs.performance]\nmetrics = [\"precision\", \"recall@0\"]\n",  # precision: classification's
     "models.recs.performance.metrics: 'recall@0': K must be an int from 1 to 1000, got '0'"),
    ("[models.recs.performance]\nmetrics = [\"top@10\"]\n",
     "models.recs.performance.metrics: expected a non-empty list of distinct metrics from: accuracy"),
    ("[models.recs.performance]\nk = 10\n", "models.recs.performance.k: unknown key; expected one of: window"),
    ("[models.recs.performance.max_drop]\n\"ndcg@5\" = 0.1\n",
     "models.recs.performance.max_drop.ndcg@5: unknown key; expected one of: precision, recall, f1, roc_auc, r2, "
     "map, ndcg"),
    ("[models.recs.performance.max_drop]\nndcg = -0.1\n",
     "models.recs.performance.max_drop.ndcg: expected a number >= 0, got -0.1"),
    ("[models.recs.metric_series.detectors]\n\"map@3\" = { type = \"three_sigma\" }\n",
     "models.recs.metric_series.detectors.map@3: map@3 is not computed; list it in performance.metrics"),
    # a ranking's errors (1 - a query's score) lie in [0, 1]: DDM and EDDM take only 0/1
    ("[models.recs]\nconcept_drift.ranking = [{ type = \"ddm\" }]\n",
     "models.recs.concept_drift.ranking[0].type: ddm takes only 0/1 errors, not this task's; expected one of: "
     "adwin, hddm_a, hddm_w, kswin, page_hinkley"),
    ("[models.recs]\nconcept_drift.regression = [{ type = \"hddm_a\" }]\n",
     "models.recs.concept_drift.regression[0].type: hddm_a takes only errors in [0, 1], not this task's; "
     "expected one of: adwin, kswin, page_hinkley"),
    ("[defaults.performance.max_increase]\nbrier = -1\n",
     "defaults.performance.max_increase.brier: expected a number >= 0, got -1"),
    ("[defaults.performance]\npositive_class = 1.5\n",
     "defaults.performance.positive_class: expected a class label (a string, an int or a boolean), got 1.5"),
    ("[defaults.performance]\nmin_labels = 50\n", "defaults: performance.min_labels is not supported"),
    ("[defaults.performance]\nmax_accuracy_drop = 2\n",
     "defaults.performance.max_accuracy_drop: expected a number in [0, 1], got 2"),
    ("[defaults.alerts]\ncooldown_s = \"10m\"\n", "defaults.alerts.cooldown_s: expected a number >= 0, got '10m'"),
    ("[defaults.severity]\nconcept_drift = \"P5\"\n", "defaults.severity.concept_drift: expected one of P0, P1, P2, P3, got 'P5'"),
    ("[defaults]\nreference_size = 1\n", "defaults.reference_size: expected an int >= 2, got 1"),
    ("[defaults]\nignore_features = \"id\"\n", "defaults.ignore_features: expected a list of feature names, got 'id'"),
    ("[models.churn]\nstrict_models = true\n", "models.churn.strict_models: applies to all models; set it in [defaults]"),
    ("[[defaults.concept_drift.classification]]\ntype = \"psi\"\n",
     "defaults.concept_drift.classification[0].type: unknown or unsuitable detector 'psi'; expected one of: adwin, "),
    ("[[defaults.concept_drift.regression]]\ntype = \"adwin\"\ndelta = 2.0\n",
     "defaults.concept_drift.regression[0]: adwin: parameter 'delta'"),
    ("[[defaults.concept_drift.regression]]\ntype = \"adwin\"\n[[defaults.concept_drift.regression]]\ntype = \"adwin\"\n",
     "defaults.concept_drift.regression[1]: a second 'adwin' detector; each type may appear once"),
    ("[defaults.concept_drift.classification]\ntype = \"adwin\"\n",
     "defaults.concept_drift.classification: expected a list of detectors"),
    ("[models.churn.feature_detectors]\nage = { type = \"adwin\" }\n",
     "models.churn.feature_detectors.age.type: unknown or unsuitable detector 'adwin'; expected one of: chi2, ks, "),
    ("[models.churn.feature_detectors.age]\nnumeric = { type = \"ks\" }\n",
     "models.churn.feature_detectors.age: 'categorical' is missing"),
    ("[models.churn.feature_detectors.age]\nnumeric = { type = \"ks\", p_value_below = 3 }\ncategorical = { type = \"chi2\" }\n",
     "models.churn.feature_detectors.age.numeric: ks: parameter 'p_value_below'"),
    ("[defaults.reference]\nprofile = \"missing.json\"\n",
     "defaults.reference.profile: cannot read reference profile missing.json"),
    ("[models.churn.latency]\nslo_ms = { p99 = 0 }\n",
     "models.churn.latency.slo_ms.p99: expected a number of milliseconds > 0 (absent: no SLO), got 0"),
    ("[defaults.latency]\npercentiles = [\"p50\"]\nslo_ms = { p95 = 200 }\n",
     "defaults.latency.slo_ms.p95: p95 is not in latency.percentiles"),
    ("[defaults.latency]\nwindow = 0\n", "defaults.latency.window: expected an int >= 1, got 0"),
    ("[defaults.latency]\np99_slo = 200\n", "defaults.latency.p99_slo: unknown key; expected one of: percentiles"),
    ("[defaults.metric_series.detectors]\nrecall = { type = \"three_sigma\" }\n",
     "defaults.metric_series.detectors.recall: recall is not computed"),
    ("[defaults.metric_series.detectors]\naccuracy = { type = \"three_sigma\", sigma = 4 }\n",
     "defaults.metric_series.detectors.accuracy.sigma: unknown parameter of three_sigma"),
    ("[defaults.severity]\nlatency = \"P9\"\n", "defaults.severity.latency: expected one of P0, P1, P2, P3, got 'P9'"),
])
def test_a_bad_config_is_refused_naming_file_key_and_what_is_allowed(tmp_path: Path, toml: str, message: str) -> None:
    path = tmp_path / "monitor.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError) as caught:
        MonitorConfig.load(path)
    text = str(caught.value)
    assert text.startswith(f"{path}: {message}"), text
    assert "\n" not in text


def test_the_defaults_pass_and_an_override_of_another_type_drops_the_defaults_parameters(tmp_path: Path) -> None:
    assert MonitorConfig.from_mapping({"defaults": DEFAULTS}).defaults == DEFAULTS
    config = MonitorConfig.from_mapping({"models": {"churn": {
        "data_drift": {"numeric": {"type": "ks", "window": 400, "step": 100}},
        "prediction_drift": {"numeric": {"window": 400}},
        "feature_detectors": {"age": {"numeric": {"type": "wasserstein"}, "categorical": {"type": "chi2"}}},
    }}})
    churn = config.for_model("churn")
    assert churn.data_drift["numeric"] == {"type": "ks", "window": 400, "step": 100}  # no psi 'bins' or 'psi_above'
    assert churn.prediction_drift["numeric"] == {**DEFAULTS["prediction_drift"]["numeric"], "window": 400}
    # what passed the check runs: the monitor builds every one of these detectors on real events
    preds, labels = Simulation(SimulationConfig(events=3000, seed=4, model_id="churn")).generate()
    pipe = OfflinePipeline(config, keep_samples=False)
    pipe.feed_events([("predictions", p) for p in preds] + [("ground-truth", y) for y in labels])
    pipe.finish()
    watched = {w.key: w.detector.name for w in pipe.monitors["churn"].monitor.watched.values()}
    assert watched["data:age"] == "wasserstein" and watched["data:tenure_months"] == "ks", watched
