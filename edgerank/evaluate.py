"""Evaluate torch cross-encoders on a judged table, next to BM25 on the same candidate lists."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Mapping

import numpy as np

from .data import evaluable, group_queries, read_table
from .metrics import BM25Baseline, agreement, evaluate, format_kept, gain_kept, gain_kept_interval, ndcg_per_query

#: Below this spread of logits a model is treated as constant. A collapsed teacher (e.g. one trained
#: from fp16 weights loaded as-is) still scores, and tie-averaged nDCG hides it behind a plausible number.
CONSTANT_SCORE_STD = 1e-4


def evaluate_model(model, tokenizer, data: str | Path, *, max_length: int = 128, teacher=None,
                   columns: Mapping[str, str] | None = None, label_map: Mapping[str, float] | None = None,
                   gain_offset: float | str = "auto", batch_size: int = 64, score_fn=None) -> dict:
    """Metrics of ``model`` (and BM25, and optionally a teacher ``(model, tokenizer)``) on ``data``.

    With a teacher the report adds the share of the teacher's gain over BM25 kept and how closely
    the model follows the teacher's order. ``score_fn(groups) -> [scores per group]`` scores models
    that are not pair classifiers (the catalog students' towers) in place of ``model``.
    """
    from .modeling import score_groups

    df, read_report = read_table(data, columns=columns, label_map=label_map)
    groups = evaluable(group_queries(df, gain_offset))
    t0 = time.perf_counter()
    if score_fn is not None:
        scores = score_fn(groups)
    else:
        scores = score_groups(model, tokenizer, groups, max_length=max_length, batch_size=batch_size, progress=True)
    seconds = time.perf_counter() - t0
    bm25 = BM25Baseline().score(groups)
    report = {"data": str(data), "model": evaluate(groups, scores), "bm25": evaluate(groups, bm25),
              "pairs": int(sum(len(g.texts) for g in groups)), "score_seconds": round(seconds, 2)}
    report["gain_over_bm25"] = report["model"]["ndcg@10"] - report["bm25"]["ndcg@10"]
    flat = np.concatenate(scores)
    report["score_std"] = float(flat.std())
    report["warnings"] = read_report.warnings()
    if report["score_std"] < CONSTANT_SCORE_STD:
        report["warnings"].append(f"the model gives every pair the same score (std {report['score_std']:.2e}): "
                                  "it cannot rank; its nDCG is what a random order would get")
    if teacher is not None:
        t_scores = score_groups(teacher[0], teacher[1], groups, max_length=max_length, batch_size=batch_size)
        report["teacher"] = evaluate(groups, t_scores)
        report["gain_kept"] = gain_kept(report["model"]["ndcg@10"], report["teacher"]["ndcg@10"],
                                        report["bm25"]["ndcg@10"])
        report["gain_kept_ci95"] = list(gain_kept_interval(*(ndcg_per_query(groups, s) for s in (scores, t_scores, bm25))))
        report["agreement"] = agreement(t_scores, scores)
    return report


def format_report(report: dict) -> str:
    """A small markdown table for the terminal."""
    rows = [("model", report["model"])]
    if "teacher" in report:
        rows.append(("teacher", report["teacher"]))
    rows.append(("BM25", report["bm25"]))
    lines = ["| ranker | nDCG@10 | nDCG@5 | MRR@10 |", "|---|---|---|---|"]
    lines += [f"| {n} | {m['ndcg@10']:.4f} | {m['ndcg@5']:.4f} | {m['mrr@10']:.4f} |" for n, m in rows]
    tail = f"{report['model']['queries']} queries, {report['pairs']} pairs; gain over BM25 {report['gain_over_bm25']:+.4f}"
    if "gain_kept" in report:
        tail += (f"; teacher's gain kept, with its 95% CI over queries: "
                 f"{format_kept(report['gain_kept'], report['gain_kept_ci95'])}; "
                 f"Kendall tau vs teacher {report['agreement']['kendall_tau']:.3f}")
    return "\n".join(lines + ["", tail] + [f"warning: {w}" for w in report.get("warnings", [])])
