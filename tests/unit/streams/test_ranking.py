"""Ranking models: MAP@k, NDCG@k, MRR@k, precision@k, recall@k and hit rate per query, their
window, and their drift end to end."""

from __future__ import annotations

import math

import numpy as np
import orjson
import pytest

from detectors.metrics.ranking import (
    average_precision_at_k, gains, hit_at_k, ndcg_at_k, precision_at_k, recall_at_k, reciprocal_rank_at_k,
)
from streams.offline.pipeline import OfflinePipeline
from streams.pipeline.monitor import ModelMonitor
from streams.pipeline.monitor_config import MonitorConfig
from streams.pipeline.performance import RankingWindow, metrics_for, task_of

N = 3_000  # queries before the ranker degrades, and after
ITEMS = [f"item-{j}" for j in range(60)]


# -- values against hand computations ----------------------------------------------------------------

def test_average_precision_at_k_by_hand() -> None:
    # relevant a, b, c; hits at ranks 1 and 3 of the top 4: (1/1 + 2/3) / min(3, 4)
    assert average_precision_at_k(gains(["a", "b", "c"]), ["a", "x", "b", "y", "c"], 4) == pytest.approx((1 + 2 / 3) / 3)
    # k smaller than the relevant set: divided by k
    assert average_precision_at_k(gains(["a", "b", "c"]), ["x", "a"], 2) == pytest.approx((1 / 2) / 2)
    assert average_precision_at_k(gains(["a"]), ["x", "y"], 2) == 0.0
    assert math.isnan(average_precision_at_k(gains([]), ["a"], 5))  # no relevant item: not scored
    # a graded label counts its items of gain > 0 as relevant
    assert average_precision_at_k(gains({"a": 3, "b": 0}), ["b", "a"], 2) == pytest.approx(1 / 2)


def test_ndcg_at_k_by_hand_with_binary_and_graded_gains() -> None:
    log2 = math.log2
    # binary: hits at ranks 2 and 3; ideal: ranks 1 and 2
    assert ndcg_at_k(gains(["a", "b"]), ["x", "a", "b"], 3) == pytest.approx((1 / log2(3) + 1 / log2(4)) / (1 + 1 / log2(3)))
    # graded (linear gains): c=3 at rank 1, a=1 at rank 3; ideal order c, b, a
    relevance = gains({"a": 1, "b": 2, "c": 3})
    dcg = 3 + 1 / log2(4)
    ideal = 3 + 2 / log2(3) + 1 / log2(4)
    assert ndcg_at_k(relevance, ["c", "x", "a"], 3) == pytest.approx(dcg / ideal)
    # the ideal is cut at k too: with k = 1 the best single item is c
    assert ndcg_at_k(relevance, ["b"], 1) == pytest.approx(2 / 3)
    # a repeated item counts at its first rank only (else a list repeating one hit scores above 1)
    assert ndcg_at_k(gains(["a"]), ["a", "a", "a"], 3) == 1.0
    assert average_precision_at_k(gains(["a", "b"]), ["a", "a", "b"], 3) == pytest.approx((1 + 2 / 2) / 2)


def test_reciprocal_rank_precision_recall_and_hits_at_k_by_hand() -> None:
    relevance = gains({"a": 1, "b": 2, "c": 0})  # c has gain 0: not relevant
    ranked = ["x", "b", "c", "a", "y"]
    assert reciprocal_rank_at_k(relevance, ranked, 5) == 0.5 and reciprocal_rank_at_k(relevance, ranked, 1) == 0.0
    assert precision_at_k(relevance, ranked, 4) == 0.5 and precision_at_k(relevance, ["b"], 4) == 0.25  # short list: misses
    assert recall_at_k(relevance, ranked, 2) == 0.5 and recall_at_k(relevance, ranked, 4) == 1.0
    assert (hit_at_k(relevance, ranked, 1), hit_at_k(relevance, ranked, 2)) == (0.0, 1.0)
    # a repeated item counts once, at its first rank
    assert precision_at_k(gains(["a"]), ["a", "a"], 2) == 0.5 and recall_at_k(gains(["a", "b"]), ["a", "a", "b"], 2) == 1.0
    for score in (reciprocal_rank_at_k, precision_at_k, recall_at_k, hit_at_k):
        assert math.isnan(score(gains([]), ["a"], 3))  # no relevant item: not scored


@pytest.mark.parametrize("name", ["mrr@10", "precision@5", "recall@5", "hit_rate@3"])
def test_every_ranking_family_watches_a_degraded_ranker(name: str) -> None:
    """Each family is a metric of the config (baseline, max_drop, a performance drift event)
    as MAP and NDCG are."""
    cfg = MonitorConfig.from_mapping({"defaults": {"performance": {"metrics": [name]}}})
    m = ModelMonitor("recs", None, cfg.for_model("recs"))
    queries = _queries()
    events = []
    for lo in range(0, len(queries), 500):
        ids = range(lo, lo + 500)
        ts = [float(i) for i in ids]
        events += m.process({"pairs": {"pid": [f"q{i}" for i in ids], "ts": ts, "pred_ts": ts, "label_ts": ts,
                                       "prediction": [queries[i][0] for i in ids], "label": [queries[i][1] for i in ids],
                                       "score": [None] * 500}}).drift_events
    family, k = name.split("@")
    score = {"mrr": reciprocal_rank_at_k, "precision": precision_at_k, "recall": recall_at_k, "hit_rate": hit_at_k}[family]
    scored = [(r, gains(y)) for r, y in queries[:1_100] if gains(y)][:1_000]
    assert m.checked == [name] and m.baseline == pytest.approx(np.mean([score(g, r, int(k)) for r, g in scored]))
    drifts = [e for e in events if e["kind"] == "performance" and e["drift"]]
    assert drifts and {e["detector"] for e in drifts} == {name} and min(e["position"] for e in drifts) >= N


def test_the_window_keeps_the_last_scored_queries_and_skips_queries_without_a_relevant_item() -> None:
    w = RankingWindow(["map@2", "ndcg@2"], window=2)
    w.add(w.score([["a", "b"], ["a", "b"], ["x", "a"], ["a"]],
                  [["a"], [], ["a"], "not a ranking label"]))
    # scored: query 1 (AP 1, NDCG 1) and query 3 (AP 1/2, NDCG 1/log2(3)); 2 and 4 have no score
    assert len(w) == 2
    assert w.value("map@2") == pytest.approx(0.75)
    assert w.value("ndcg@2") == pytest.approx((1 + 1 / math.log2(3)) / 2)
    w.add(w.score([["b"]], [["a"]]))  # a miss pushes the first query out
    assert w.value("map@2") == pytest.approx(0.25) and len(w) == 2
    # the state is plain JSON, and only the configured metrics' scores are loaded back
    restored = RankingWindow(["ndcg@2", "map@5"], window=2)
    restored.load_state(orjson.loads(orjson.dumps(w.to_state())))
    assert restored.value("ndcg@2") == w.value("ndcg@2") and len(restored.scores["map@5"]) == 0


def test_a_list_prediction_is_a_ranking_and_ranking_metrics_name_their_cutoff() -> None:
    assert (task_of(["a", "b"]), task_of([]), task_of(1), task_of("cat"), task_of(0.3)) == (
        "ranking", "ranking", "classification", "classification", "regression")
    assert metrics_for("ranking", ["accuracy", "ndcg@5", "map@10"]) == ["map@10", "ndcg@5"]
    assert metrics_for("ranking", ["accuracy", "mae"]) == ["ndcg@10"]  # the default config
    assert metrics_for("classification", ["ndcg@5", "f1"]) == ["f1"]


# -- drift of a degraded ranker -------------------------------------------------------------------------

def _queries(seed: int = 11) -> list[tuple[list[str], list[str] | dict[str, float]]]:
    """Each query's ranked list (20 items) and its label: first a good ranker (two of three
    relevant items on top), then a degraded one (the relevant items at ranks 9 to 11). Every
    fifth label is graded, every 50th query has no relevant item."""
    rng = np.random.default_rng(seed)
    queries = []
    for i in range(2 * N):
        relevant = [int(j) for j in rng.choice(len(ITEMS), 3, replace=False)]
        rest = [int(j) for j in rng.permutation(len(ITEMS)) if j not in relevant]
        order = rest[:8] + relevant + rest[8:] if i >= N else relevant[:2] + rest[:3] + relevant[2:] + rest[3:]
        ranked = [ITEMS[j] for j in order[:20]]
        label: list[str] | dict[str, float] = [ITEMS[j] for j in relevant]
        if i % 5 == 0:
            label = {ITEMS[j]: float(g) for j, g in zip(relevant, (3, 2, 1))}
        if i % 50 == 0:
            label = []
        queries.append((ranked, label))
    return queries


CONFIG = {"defaults": {"performance": {"metrics": ["map@10", "ndcg@5"]}}}


def _events(queries: list) -> list[tuple[str, dict]]:
    """Predictions, each query's label 30 s of event time after it (predictions 1 s apart)."""
    t0 = 1_700_000_000.0
    events = [(t0 + i, "predictions", {"prediction_id": f"q{i}", "model_id": "recs", "timestamp": t0 + i,
                                       "prediction": ranked, "features": {"position": float(i % 7)}})
              for i, (ranked, _) in enumerate(queries)]
    events += [(t0 + i + 30.5, "ground-truth", {"prediction_id": f"q{i}", "label": label, "timestamp": t0 + i + 30.5})
               for i, (_, label) in enumerate(queries)]
    return [(role, event) for _, role, event in sorted(events, key=lambda e: e[0])]


def _monitor(queries: list, batch: int, round_trip_at: int | None = None) -> tuple[ModelMonitor, list[dict], list[dict]]:
    cfg = MonitorConfig.from_mapping(CONFIG)
    m = ModelMonitor("recs", None, cfg.for_model("recs"))
    events, alerts = [], []
    for lo in range(0, len(queries), batch):
        if lo == round_trip_at:  # a restarted worker: the state from the changelog, as JSON
            m = ModelMonitor.from_state(orjson.loads(orjson.dumps(m.to_state())), cfg)
        ids = range(lo, min(lo + batch, len(queries)))
        ts = [float(i) for i in ids]
        preds = [queries[i][0] for i in ids]
        result = m.process({"pairs": {"pid": [f"q{i}" for i in ids], "ts": ts, "pred_ts": ts, "label_ts": ts,
                                      "prediction": preds, "label": [queries[i][1] for i in ids],
                                      "score": [None] * len(ids)}})
        events += result.drift_events
        alerts += result.alerts
    return m, events, alerts


def test_a_degraded_ranker_drifts_on_both_metrics_and_fires_a_performance_alert() -> None:
    queries = _queries()
    m, events, alerts = _monitor(queries, batch=500)
    assert m.task == "ranking" and m.checked == ["map@10", "ndcg@5"]
    # the baselines are the first full window's values: the good ranker's, by hand
    scored = [(r, gains(y)) for r, y in queries[:1_100] if gains(y)][:1_000]
    assert m.baseline == pytest.approx(np.mean([average_precision_at_k(g, r, 10) for r, g in scored]))
    assert m.baselines["ndcg@5"] == pytest.approx(np.mean([ndcg_at_k(g, r, 5) for r, g in scored]))
    performance = [e for e in events if e["kind"] == "performance"]
    drifts = [e for e in performance if e["drift"]]
    assert {e["detector"] for e in drifts} == {"map@10", "ndcg@5"}
    assert all(e["position"] >= N for e in drifts) and min(e["position"] for e in drifts) < N + 500
    first = drifts[0]
    assert first["direction"] == "below"
    assert first["threshold"] == pytest.approx((m.baseline if first["detector"] == "map@10" else m.baselines["ndcg@5"]) - 0.1)
    # ADWIN on the error stream (1 - each query's AP@10) sees the change too, and only it
    concept = [e for e in events if e["kind"] == "concept_drift" and e["drift"]]
    assert concept and all(N <= e["position"] < N + 500 for e in concept)
    fired = [a for a in alerts if a["kind"] == "performance"]
    assert fired and fired[0]["detector"] in ("map@10", "ndcg@5") and fired[0]["position"] >= N
    # the drop after the change is large (the relevant items left the top 5): paged
    assert fired[-1]["severity"] in ("P0", "P1")


def test_ranking_results_do_not_depend_on_batching_or_a_state_round_trip() -> None:
    queries = _queries()
    _, whole, alerts = _monitor(queries, batch=500)
    _, cut, cut_alerts = _monitor(queries, batch=333, round_trip_at=2_331)
    assert cut == whole and cut_alerts == alerts


def test_the_offline_pipeline_gives_the_same_events_however_the_input_is_cut() -> None:
    items = _events(_queries())
    config = MonitorConfig.from_mapping(CONFIG)
    runs = []
    for partitions, batch in ((1, 500), (3, 277)):
        pipe = OfflinePipeline(config, window_s=3_600, partitions=partitions, keep_samples=False)
        pipe.feed_events(items, batch_size=batch)
        runs.append(pipe.finish())
    one, three = runs
    assert one.dead_letters == [] and one.counts["join:matched"] == 2 * N
    assert [e["event_id"] for e in three.drift_events] == [e["event_id"] for e in one.drift_events]
    assert three.alerts == one.alerts
    performance = [a for a in one.alerts if a["kind"] == "performance"]
    assert performance and min(a["position"] for a in performance) >= N
    # no prediction drift on the item lists (they are no distribution to compare), none on the feature
    assert not any(e["kind"] in ("prediction_drift", "data_drift") and e["drift"] for e in one.drift_events)


def test_bad_ranking_events_are_dead_lettered_with_their_reason_and_the_rest_pass() -> None:
    good = {"prediction_id": "q1", "model_id": "recs", "timestamp": 1.0, "prediction": ["a", "b"]}
    pipe = OfflinePipeline(MonitorConfig.from_mapping(CONFIG), window_s=3_600)
    pipe.feed_events([
        ("predictions", good),
        ("predictions", {**good, "prediction_id": "q2", "prediction": ["a", "a"]}),
        ("predictions", {**good, "prediction_id": "q3", "prediction": ["a", 1.5]}),
        ("ground-truth", {"prediction_id": "q1", "label": {"a": -2}, "timestamp": 2.0}),
        ("ground-truth", {"prediction_id": "q1", "label": {"a": 2}, "timestamp": 2.0}),
    ])
    result = pipe.finish()
    assert sorted((d["reason"], d["message"]) for d in result.dead_letters) == [
        ("out_of_range", "ground-truth: field 'label.a' must be a gain (a finite number >= 0), got -2"),
        ("out_of_range", "predictions: field 'prediction' must not repeat an item, got 'a' twice"),
        ("wrong_type", "predictions: field 'prediction[1]' must be an item id (a non-empty string of at most 256 "
                       "characters, or an integer), got number"),
    ]
    assert result.counts["join:matched"] == 1
