"""Ranking metrics against independent references: scikit-learn's nDCG (ties included), bm25s used
directly, and hand-worked MRR, gain-kept and agreement values; the metrics load without pandas or torch."""

from __future__ import annotations

import itertools
import subprocess
import sys

import numpy as np
import pytest

from edgerank.core import QueryGroup
from edgerank.metrics import (
    BM25Baseline,
    agreement,
    evaluate,
    gain_kept,
    gain_kept_interval,
    mrr_at_k,
    ndcg_at_k,
    ndcg_per_query,
)

sklearn_metrics = pytest.importorskip("sklearn.metrics", reason="scikit-learn is in the `test` extra")


def _group(query: str, texts: list[str], labels: list[float] | None = None) -> QueryGroup:
    return QueryGroup(
        query_id=query,
        query=query,
        product_ids=tuple(texts),
        texts=tuple(texts),
        labels=None if labels is None else np.asarray(labels, dtype=np.float64),
        rows=np.arange(len(texts)),
    )


@pytest.mark.parametrize("k", [1, 3, 5, 10])
def test_ndcg_matches_sklearn_including_ties(k):
    rng = np.random.default_rng(k)
    for _ in range(200):
        n = int(rng.integers(2, 16))
        gains = rng.integers(0, 4, n).astype(float) * rng.choice([1.0, 0.5])
        if gains.max() == 0:
            gains[0] = 1.0
        # coarse scores make ties common, also across the k cut-off
        scores = rng.integers(0, 4, n).astype(float)
        expected = sklearn_metrics.ndcg_score([gains], [scores], k=k)
        assert ndcg_at_k(gains, scores, k) == pytest.approx(expected, abs=1e-12)


def test_ndcg_ties_are_averaged_not_broken_by_position():
    gains = np.array([0.0, 0.0, 2.0])
    constant = np.zeros(3)
    # the relevant product last in the table gets no lucky first place: expected value over orders
    assert ndcg_at_k(gains, constant, 10) == pytest.approx(np.mean(1 / np.log2([2, 3, 4])))
    assert ndcg_at_k(gains, np.array([0.0, 1.0, 2.0]), 10) == 1.0
    assert ndcg_at_k(np.zeros(3), np.arange(3.0), 10) == 0.0


def test_mrr_counts_the_first_relevant_product():
    gains = np.array([0.0, 2.0, 0.0, 1.0])
    assert mrr_at_k(gains, np.array([4.0, 3.0, 2.0, 1.0])) == 0.5  # order: 0, 1(relevant) ...
    assert mrr_at_k(gains, np.array([0.0, 1.0, 3.0, 2.0])) == 0.5  # order: 2, 3(relevant, gain 1) ...
    assert mrr_at_k(gains, np.array([1.0, 0.0, 9.0, 0.0])) == pytest.approx(1 / 3)  # 2, 0, then a relevant one
    assert mrr_at_k(gains, np.array([9.0, 0.0, 8.0, 0.0]), k=2) == 0.0  # nothing relevant in the top 2
    assert mrr_at_k(np.zeros(3), np.arange(3.0)) == 0.0  # no relevant product at all
    # product 2 first, then a tie of {0, 1, 3} holding both relevant: rank 2 with p=2/3, rank 3 with p=1/3
    assert mrr_at_k(gains, np.array([0.0, 0.0, 9.0, 0.0])) == pytest.approx(2 / 3 / 2 + 1 / 3 / 3)


def test_mrr_of_tied_scores_is_the_mean_over_every_tie_break():
    rng = np.random.default_rng(0)
    for _ in range(100):
        n = int(rng.integers(2, 7))
        gains, scores = rng.integers(0, 3, n).astype(float), rng.integers(0, 3, n).astype(float)
        k = int(rng.integers(1, 5))
        brute = []
        for tie_break in itertools.permutations(range(n)):
            order = np.lexsort((tie_break, -scores))[:k]
            hits = np.flatnonzero(gains[order] > 0)
            brute.append(1.0 / (hits[0] + 1) if len(hits) else 0.0)
        assert mrr_at_k(gains, scores, k) == pytest.approx(np.mean(brute), abs=1e-12)


def test_evaluate_averages_over_queries_with_two_labels_only():
    groups = [
        _group("a", ["x", "y"], [1.0, 0.0]),
        _group("b", ["x", "y"], [1.0, 1.0]),
        _group("c", ["x", "y", "z"], [0.0, 0.0, 1.0]),
    ]
    scores = [np.array([1.0, 0.0]), np.array([0.0, 1.0]), np.array([3.0, 2.0, 1.0])]
    report = evaluate(groups, scores)
    assert report["queries"] == 2
    assert report["ndcg@10"] == pytest.approx((1.0 + 0.5) / 2)
    assert report["mrr@10"] == pytest.approx((1.0 + 1 / 3) / 2)  # the only relevant product first, third
    with pytest.raises(ValueError, match="two distinct labels"):
        evaluate(groups[1:2], scores[1:2])


def test_gain_kept_is_the_share_of_the_teachers_improvement():
    assert gain_kept(model=0.90, teacher=0.95, baseline=0.85) == pytest.approx(0.5)
    assert gain_kept(model=0.95, teacher=0.95, baseline=0.85) == pytest.approx(1.0)
    assert gain_kept(model=0.80, teacher=0.95, baseline=0.85) == pytest.approx(-0.5)  # worse than BM25
    assert np.isnan(gain_kept(model=0.9, teacher=0.85, baseline=0.85))


def test_ndcg_per_query_lists_the_queries_evaluate_averages():
    groups = [
        _group("a", ["x", "y"], [1.0, 0.0]),
        _group("b", ["x", "y"], [1.0, 1.0]),
        _group("c", ["x", "y", "z"], [0.0, 0.0, 1.0]),
    ]
    scores = [np.array([1.0, 0.0]), np.array([0.0, 1.0]), np.array([3.0, 2.0, 1.0])]
    per_query = ndcg_per_query(groups, scores)
    assert per_query.tolist() == pytest.approx([1.0, 0.5])  # query b has one label and is left out
    assert per_query.mean() == pytest.approx(evaluate(groups, scores)["ndcg@10"])


def test_gain_kept_interval_resamples_queries_paired_across_rankers():
    rng = np.random.default_rng(3)
    baseline = rng.uniform(0.6, 0.9, 500)
    teacher = baseline + rng.normal(0.02, 0.05, 500)
    # a model that is the teacher on every query keeps all of its gain in every resample: only a
    # paired bootstrap (the same queries for all three) gives exactly [1, 1]
    assert gain_kept_interval(teacher, teacher, baseline) == (pytest.approx(1.0), pytest.approx(1.0))
    assert gain_kept_interval(baseline, teacher, baseline) == (pytest.approx(0.0), pytest.approx(0.0))
    half = baseline + (teacher - baseline) / 2 + rng.normal(0.0, 0.03, 500)
    low, high = gain_kept_interval(half, teacher, baseline)
    point = gain_kept(half.mean(), teacher.mean(), baseline.mean())
    assert low < point < high and high - low < 0.6
    assert gain_kept_interval(half, teacher, baseline) == (low, high)  # seeded: reports are reproducible
    # ten times fewer queries: a wider interval
    low10, high10 = gain_kept_interval(half[:50], teacher[:50], baseline[:50])
    assert high10 - low10 > 2 * (high - low)
    with pytest.raises(ValueError, match="same non-empty list"):
        gain_kept_interval(half[:10], teacher, baseline)


def test_agreement_kendall_tau_and_top_overlap():
    ref = [np.array([5.0, 4.0, 3.0, 2.0, 1.0, 0.0]), np.array([1.0, 2.0])]
    same = agreement(ref, [r * 10 + 1 for r in ref], top=3)
    assert same == {"kendall_tau": pytest.approx(1.0), "top3_overlap": pytest.approx(1.0)}
    reverse = agreement(ref, [-r for r in ref], top=3)
    assert reverse["kendall_tau"] == pytest.approx(-1.0)
    assert reverse["top3_overlap"] == pytest.approx((0.0 + 1.0) / 2)  # a 2-item list compares both
    constant = agreement(ref[:1], [np.zeros(6)], top=3)
    assert constant["kendall_tau"] == 0.0  # undefined tau counts as no agreement, not as NaN
    # single-product lists carry no order and are left out
    assert agreement(ref[:1] + [np.array([1.0])], [ref[0], np.array([7.0])], top=3)["kendall_tau"] == pytest.approx(1.0)


def test_bm25_ranks_an_exact_term_match_above_an_unrelated_product():
    groups = [
        _group("cordless drill", ["Makita Cordless Drill 18V", "Garden Hose 50 ft", "Paint Roller"]),
        _group("garden hose", ["Garden Hose 50 ft", "Makita Cordless Drill 18V"]),
    ]
    scores = BM25Baseline().score(groups)
    assert scores[0][0] > 0 and scores[0][0] > scores[0][1] == scores[0][2] == 0.0
    assert scores[1][0] > scores[1][1] == 0.0


def test_bm25_scores_equal_a_bm25s_index_built_directly():
    import bm25s

    groups = [
        _group("red cordless drill", ["Red Cordless Drill Kit", "Blue Drill", "Red Paint", "Drill Bits"]),
        _group("paint roller", ["Red Paint", "Paint Roller Cover 9 in.", "Roller Skates"]),
        _group("the", ["The Drill"]),
    ]  # a query of stopwords only scores zero everywhere
    ours = BM25Baseline(k1=1.2, b=0.6).score(groups)

    corpus = sorted({t for g in groups for t in g.texts})
    index = bm25s.BM25(k1=1.2, b=0.6)
    index.index(bm25s.tokenize(corpus, stopwords="en", show_progress=False), show_progress=False)
    for g, got in zip(groups, ours):
        query_tokens = bm25s.tokenize([g.query], stopwords="en", show_progress=False)
        if not query_tokens.vocab:
            np.testing.assert_array_equal(got, np.zeros(len(g.texts)))
            continue
        docs, scores = index.retrieve(
            bm25s.tokenize([g.query], stopwords="en", return_ids=False, show_progress=False),
            k=len(corpus),
            show_progress=False,
        )
        by_doc = dict(zip(docs[0].tolist(), scores[0].tolist()))
        expected = [by_doc[corpus.index(t)] for t in g.texts]
        np.testing.assert_allclose(got, expected, rtol=1e-6)
    assert ours[0][0] == max(ours[0])


def test_importing_the_metrics_loads_neither_pandas_nor_torch():
    code = (
        "import sys, edgerank.metrics, edgerank.core.compare, edgerank.core.serving; "
        "print(sorted(m for m in ('pandas', 'torch', 'scipy', 'bm25s') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_gain_kept_interval_leaves_out_resamples_where_the_teacher_ties_the_baseline():
    baseline = np.array([0.5, 0.5, 0.5, 0.5, 0.5])
    teacher = baseline + np.array([0.2, 0.0, 0.0, 0.0, 0.0])  # one query of five carries the whole gain
    model = baseline + np.array([0.1, 0.0, 0.0, 0.0, 0.0])
    low, high = gain_kept_interval(model, teacher, baseline)
    assert low == pytest.approx(0.5) and high == pytest.approx(0.5)  # every resample with a gain keeps half
    assert np.isnan(gain_kept_interval(baseline, baseline, baseline)[0])  # no gain at all: no share
