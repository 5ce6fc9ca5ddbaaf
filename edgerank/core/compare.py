"""The one comparison of rankers that ``edgerank eval``, the distill report, the export quality gate
and ``edgerank bench`` print: the same numbers, computed in one place, on the same list sets.

For every list set (serving lists per fill, then the judged lists) and every ranker:

- ``ndcg@10``, ``ndcg@5``, ``mrr@10`` over the queries with two or more distinct labels, with BM25's
  in its own row;
- with a teacher: ``gain_kept``, the share of the teacher's nDCG@10 gain over BM25 the ranker keeps,
  and ``gain_kept_ci95``, its paired bootstrap interval over queries (``metrics.gain_kept_interval``);
- fidelity to the teacher, which needs no labels and so also judges the unjudged fill-ins:
  ``top10_overlap`` = |top10(ranker) ∩ top10(teacher)| / 10, and ``kendall_tau`` (tau-b over the
  whole list, mean over queries). Kendall tau was chosen over teacher-graded nDCG@10 because it needs
  no map from the teacher's logits to gains (any such map is arbitrary and moves the number), it is
  defined for every list whatever its labels, and it is what the judged-list reports already give;
  the top-10 overlap covers what tau underweights, the set a shopper actually sees.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .groups import QueryGroup
from .metrics import agreement, evaluate, format_kept, gain_kept, gain_kept_interval, ndcg_per_query

TOP = 10
BASELINE = "bm25"


def compare(
    lists: Mapping[str, Sequence[QueryGroup]],
    scores: Mapping[str, Mapping[str, Sequence[np.ndarray]]],
    *,
    teacher: str | None = None,
    baseline: str = BASELINE,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, dict[str, dict[str, Any]]]:
    """``{list set: {ranker: numbers}}`` for every ranker in ``scores`` (``{ranker: {list set: scores
    per group}}``) that scored that list set. ``baseline`` names BM25's entry; without ``teacher``
    (or when it did not score a list set) the rows carry nDCG and MRR only."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for name, groups in lists.items():
        ranked = {r: by_list[name] for r, by_list in scores.items() if name in by_list}
        rows = {r: dict(evaluate(groups, s)) for r, s in ranked.items()}
        if teacher in ranked:
            per_query = {r: ndcg_per_query(groups, s) for r, s in ranked.items()}
            for r, row in rows.items():
                row.update(fidelity(ranked[teacher], ranked[r]))
                if r == baseline:  # keeps none of the gain by definition
                    row.update(gain_kept=0.0, gain_kept_ci95=[0.0, 0.0])
                elif baseline in ranked:
                    row.update(
                        _kept(
                            row,
                            rows[teacher],
                            rows[baseline],
                            per_query[r],
                            per_query[teacher],
                            per_query[baseline],
                            confidence,
                            seed,
                        )
                    )
        out[name] = rows
    return out


def fidelity(teacher: Sequence[np.ndarray], scores: Sequence[np.ndarray], top: int = TOP) -> dict[str, float]:
    """Top-``top`` overlap with the teacher's order and Kendall tau-b, means over queries."""
    agree = agreement(teacher, scores, top=top)
    return {f"top{top}_overlap": agree[f"top{top}_overlap"], "kendall_tau": agree["kendall_tau"]}


def _kept(row, teacher_row, baseline_row, model_q, teacher_q, baseline_q, confidence, seed) -> dict[str, Any]:
    kept = gain_kept(row["ndcg@10"], teacher_row["ndcg@10"], baseline_row["ndcg@10"])
    interval = gain_kept_interval(model_q, teacher_q, baseline_q, confidence=confidence, seed=seed)
    return {"gain_kept": kept, "gain_kept_ci95": list(interval)}


def describe_lists(lists: Mapping[str, Sequence[QueryGroup]]) -> dict[str, dict[str, Any]]:
    """Queries, pairs and list lengths of each list set, for reports."""
    out = {}
    for name, groups in lists.items():
        sizes = np.asarray([len(g.texts) for g in groups])
        out[name] = {
            "queries": len(groups),
            "pairs": int(sizes.sum()),
            "size": {"min": int(sizes.min()), "median": float(np.median(sizes)), "max": int(sizes.max())}
            if len(sizes)
            else None,
        }
    return out


def list_title(name: str, info: Mapping[str, Any] | None = None) -> str:
    """``serving, bm25 fill (100)`` / ``judged``: how a list set is named in tables."""
    if name == "judged":
        return "judged"
    size = f" ({info['size']['max']})" if info and info.get("size") else ""
    return f"serving, {name} fill{size}"


def format_comparison(
    comparison: Mapping[str, Mapping[str, Mapping[str, Any]]],
    lists: Mapping[str, Mapping[str, Any]] | None = None,
    names: Mapping[str, str] | None = None,
) -> str:
    """One markdown table, a row per list set and ranker; ``names`` relabels rankers (``bm25`` -> ``BM25``)."""
    names = {BASELINE: "BM25", **(names or {})}
    header = ["list", "ranker", "nDCG@10", "MRR@10", "teacher's gain kept (95% CI)", f"top-{TOP} overlap", "Kendall τ"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for name, rows in comparison.items():
        title = list_title(name, (lists or {}).get(name))
        for ranker, row in rows.items():
            cells = [
                title,
                names.get(ranker, ranker),
                f"{row['ndcg@10']:.4f}",
                f"{row['mrr@10']:.4f}",
                format_kept(row.get("gain_kept", float("nan")), row.get("gain_kept_ci95")),
                _num(row.get(f"top{TOP}_overlap"), ".3f"),
                _num(row.get("kendall_tau"), ".3f"),
            ]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _num(value: float | None, spec: str) -> str:
    return "–" if value is None or np.isnan(value) else format(value, spec)
