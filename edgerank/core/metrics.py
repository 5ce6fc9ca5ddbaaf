"""Ranking quality: nDCG, MRR, the share of the teacher's gain kept (with its bootstrap interval) and
agreement with a reference order.

Short candidate lists (Home Depot has a median of 7 judged products per query) make raw nDCG
ratios meaningless: BM25 already scores ~0.89, so a student at "97% of the teacher" can be below
BM25. ``gain_kept`` measures what matters: the share of the teacher's improvement over BM25.
"""

from __future__ import annotations

from collections.abc import Sequence
from math import comb

import numpy as np

from .groups import QueryGroup


def _discounts(n: int, k: int) -> np.ndarray:
    d = 1.0 / np.log2(np.arange(2, n + 2))
    d[k:] = 0.0
    return d


def dcg_at_k(gains: np.ndarray, scores: np.ndarray, k: int) -> float:
    """DCG with linear gains; tied scores share their positions' discounts (as scikit-learn does),
    so a model that cannot tell products apart gets the expected value, not a lucky order."""
    order = np.argsort(-scores, kind="stable")
    s, g = scores[order], gains[order]
    disc = _discounts(len(s), k)
    total, start = 0.0, 0
    while start < len(s):
        end = start + 1
        while end < len(s) and s[end] == s[start]:
            end += 1
        total += g[start:end].mean() * disc[start:end].sum()
        start = end
    return float(total)


def ndcg_at_k(gains: np.ndarray, scores: np.ndarray, k: int = 10) -> float:
    """nDCG@k with linear gains and tie-averaged DCG (0 for a list with no gain at all)."""
    gains = np.asarray(gains, dtype=np.float64)
    ideal = np.sort(gains)[::-1]
    idcg = float((ideal * _discounts(len(ideal), k)).sum())
    if idcg == 0.0:
        return 0.0
    return dcg_at_k(gains, np.asarray(scores, dtype=np.float64), k) / idcg


def mrr_at_k(gains: np.ndarray, scores: np.ndarray, k: int = 10) -> float:
    """MRR@k as the field defines it: the reciprocal rank of the first relevant product (gain > 0)
    within the first k, 0 when none is there.

    Like nDCG, tied scores are averaged over their orders: a tie group of ``m`` products holding ``h``
    relevant ones gets the expected reciprocal rank of the first of them, not whatever position the
    table happened to list them in.
    """
    gains, scores = np.asarray(gains, dtype=np.float64), np.asarray(scores, dtype=np.float64)
    relevant = gains > 0
    if not relevant.any():
        return 0.0
    tie_score = scores[relevant].max()  # the tie group where the first relevant product lands
    above = int((scores > tie_score).sum())
    m, h = int((scores == tie_score).sum()), int((relevant & (scores == tie_score)).sum())
    # P(first relevant product is the (j+1)-th of the group) = C(m-j-1, h-1) / C(m, h)
    return float(sum(comb(m - j - 1, h - 1) / comb(m, h) / (above + j + 1) for j in range(m - h + 1) if above + j < k))


def _judged(groups: Sequence[QueryGroup], scores: Sequence[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
    """(labels, scores) of the queries with at least two distinct labels: the only ones a ranking can win or lose."""
    return [(g.labels, s) for g, s in zip(groups, scores) if g.labels is not None and len(np.unique(g.labels)) >= 2]


def evaluate(groups: Sequence[QueryGroup], scores: Sequence[np.ndarray]) -> dict[str, float]:
    """Mean nDCG@10, nDCG@5 and MRR@10 over queries with at least two distinct labels."""
    rows = _judged(groups, scores)
    if not rows:
        raise ValueError("no query has two distinct labels: nothing to evaluate")
    return {
        "ndcg@10": float(np.mean([ndcg_at_k(g, s, 10) for g, s in rows])),
        "ndcg@5": float(np.mean([ndcg_at_k(g, s, 5) for g, s in rows])),
        "mrr@10": float(np.mean([mrr_at_k(g, s, 10) for g, s in rows])),
        "queries": len(rows),
    }


def ndcg_per_query(groups: Sequence[QueryGroup], scores: Sequence[np.ndarray], k: int = 10) -> np.ndarray:
    """nDCG@k of each query that ``evaluate`` averages, in order: the unit a bootstrap resamples."""
    return np.asarray([ndcg_at_k(g, s, k) for g, s in _judged(groups, scores)], dtype=np.float64)


def gain_kept(model: float, teacher: float, baseline: float) -> float:
    """Share of the teacher's improvement over the baseline that a model keeps (1.0 = all of it)."""
    if teacher == baseline:
        return float("nan")
    return (model - baseline) / (teacher - baseline)


def _share(model: np.ndarray, teacher: np.ndarray, baseline: np.ndarray, axis: int = -1) -> np.ndarray:
    """``gain_kept`` of mean nDCGs along ``axis``: the statistic the bootstrap resamples."""
    base = baseline.mean(axis=axis)
    with np.errstate(divide="ignore", invalid="ignore"):
        return (model.mean(axis=axis) - base) / (teacher.mean(axis=axis) - base)


def gain_kept_interval(
    model: np.ndarray,
    teacher: np.ndarray,
    baseline: np.ndarray,
    *,
    confidence: float = 0.95,
    resamples: int = 2000,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval (``scipy.stats.bootstrap``) of ``gain_kept`` over queries, from
    the per-query nDCG of the three rankers.

    The teacher's gain over BM25 is often a fraction of a point, so the share kept is a ratio of
    two small differences and a few queries move it by tens of points: a bar such as "90% of the
    gain" can only be judged with this interval beside it. Resampling whole queries, the same ones
    for all three rankers (paired), keeps their correlation. As in ``gain_kept``, a resample where
    the teacher ties the baseline has no share and is left out; one where the teacher's gain
    changes sign gives a share far outside [0, 1], which widens the interval as it should. The
    percentile method, not BCa: BCa's jackknife fails on such ratios of near-ties.
    """
    import warnings

    from scipy.stats import DegenerateDataWarning, bootstrap

    model, teacher, baseline = (np.asarray(a, dtype=np.float64) for a in (model, teacher, baseline))
    if not len(model) == len(teacher) == len(baseline) > 0:
        raise ValueError("gain_kept_interval needs the same non-empty list of queries for all three rankers")
    if teacher.mean() == baseline.mean() or len(model) < 2:
        return float("nan"), float("nan")
    with warnings.catch_warnings():  # resamples without a share are dropped below, not a degenerate interval
        warnings.simplefilter("ignore", DegenerateDataWarning)
        result = bootstrap(
            (model, teacher, baseline),
            _share,
            paired=True,
            vectorized=True,
            n_resamples=resamples,
            confidence_level=confidence,
            method="percentile",
            batch=500,
            random_state=np.random.default_rng(seed),
        )
    shares = result.bootstrap_distribution
    finite = shares[np.isfinite(shares)]
    if finite.size == shares.size:
        return float(result.confidence_interval.low), float(result.confidence_interval.high)
    if finite.size == 0:
        return float("nan"), float("nan")
    tail = (1.0 - confidence) / 2.0 * 100.0
    low, high = np.percentile(finite, [tail, 100.0 - tail])
    return float(low), float(high)


def format_kept(kept: float, interval: Sequence[float] | None) -> str:
    """``83.1% (48% to 120%)``: a share of a small gain is only readable beside its interval, so every
    report prints the two together (the share alone when there is no interval)."""
    if kept is None or np.isnan(kept):
        return "–"
    if interval is None or any(v is None or np.isnan(v) for v in interval):
        return f"{kept:.1%}"
    return f"{kept:.1%} ({interval[0]:.0%} to {interval[1]:.0%})"


def top_overlap(reference: np.ndarray, scores: np.ndarray, top: int = 10) -> float:
    """|top-k(scores) ∩ top-k(reference)| / k, k = ``top`` or the whole list when it is shorter."""
    k = min(top, len(reference))
    return len(set(np.argsort(-reference, kind="stable")[:k]) & set(np.argsort(-scores, kind="stable")[:k])) / k


def agreement(reference: Sequence[np.ndarray], scores: Sequence[np.ndarray], top: int = 5) -> dict[str, float]:
    """How closely a model reproduces a reference order: mean Kendall tau-b per query and the mean
    overlap of the top-``top`` sets (lists shorter than ``top`` compare their whole length)."""
    from scipy.stats import kendalltau

    taus, overlaps = [], []
    for r, s in zip(reference, scores):
        r, s = np.asarray(r, dtype=np.float64), np.asarray(s, dtype=np.float64)
        if len(r) < 2:
            continue
        tau = kendalltau(r, s).statistic
        taus.append(0.0 if np.isnan(tau) else tau)
        overlaps.append(top_overlap(r, s, top))
    return {"kendall_tau": float(np.mean(taus)), f"top{top}_overlap": float(np.mean(overlaps))}
