"""Evaluate torch cross-encoders on serving lists and judged lists, next to BM25 (and a teacher).

The primary numbers are on serving lists (``edgerank.core.serving``): each judged query topped up
to ``list_size`` products from the data's catalog, once with BM25's near misses and once with random
products. The judged lists alone stay as a secondary row. Every number comes from
``edgerank.core.compare``, the comparison the distill report, export gate and bench print too.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .core.compare import compare, describe_lists, format_comparison
from .core.groups import Catalog, QueryGroup, sample_queries
from .core.metrics import format_kept
from .core.serving import DEFAULT_LIST_SIZE, FILLS, comparison_lists
from .data import DataError, file_catalog, group_queries, read_table, table_catalog
from .metrics import catalog_bm25

#: Below this spread of logits a model is treated as constant. A collapsed teacher (e.g. one trained
#: from fp16 weights loaded as-is) still scores, and tie-averaged nDCG hides it behind a plausible number.
CONSTANT_SCORE_STD = 1e-4

ScoreFn = Callable[[Sequence[QueryGroup]], list[np.ndarray]]


def evaluation_lists(
    data: str | Path,
    *,
    columns: Mapping[str, str] | None = None,
    label_map: Mapping[str, float] | None = None,
    gain_offset: float | str = "auto",
    list_size: int | None = DEFAULT_LIST_SIZE,
    fills: Sequence[str] = FILLS,
    catalog: str | Path | None = None,
    queries: int | None = None,
    seed: int = 0,
) -> tuple[dict[str, list[QueryGroup]], Catalog, list[str]]:
    """The list sets a table is judged on (serving lists per fill, then ``judged``), the catalog they
    were filled from (the table's distinct products, or a products file) and the read warnings.
    ``queries`` takes a seeded sample of the evaluable queries, for a cheaper run."""
    df, report = read_table(data, columns=columns, label_map=label_map)
    try:
        groups = sample_queries(group_queries(df, gain_offset), queries, seed)
    except ValueError as e:
        raise DataError(f"{data}: {e}") from None
    products = file_catalog(catalog) if catalog else table_catalog(df)
    return comparison_lists(groups, products, size=list_size, fills=fills, seed=seed), products, report.warnings()


def torch_scorer(model, tokenizer, *, max_length: int, batch_size: int, progress: bool = False) -> ScoreFn:
    """``groups -> scores per group`` for a torch cross-encoder, every group's pairs in one batched call."""
    from .modeling import score_groups

    return lambda groups: score_groups(
        model, tokenizer, groups, max_length=max_length, batch_size=batch_size, progress=progress
    )


def score_lists(score_fn: ScoreFn, lists: Mapping[str, Sequence[QueryGroup]]) -> dict[str, list[np.ndarray]]:
    """One scorer's scores of every list set."""
    return {name: score_fn(groups) for name, groups in lists.items()}


def evaluate_model(
    model,
    tokenizer,
    data: str | Path,
    *,
    max_length: int = 128,
    teacher=None,
    columns: Mapping[str, str] | None = None,
    label_map: Mapping[str, float] | None = None,
    gain_offset: float | str = "auto",
    batch_size: int = 64,
    score_fn: ScoreFn | None = None,
    list_size: int | None = None,
    fills: Sequence[str] = FILLS,
    catalog: str | Path | None = None,
    queries: int | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Metrics of ``model`` (and BM25, and optionally a teacher ``(model, tokenizer)``) on ``data``.

    ``list_size`` adds serving lists of that many products per query, one set per fill in ``fills``
    (None: the judged lists only, the cheap check training runs use). With a teacher each row adds
    the share of the teacher's gain over BM25 kept and the fidelity to the teacher's order.
    ``score_fn(groups) -> [scores per group]`` scores models that are not pair classifiers (the
    catalog students' towers) in place of ``model``. The judged row also stays at the top level
    (``model``, ``bm25``, ``teacher``, ``gain_kept``, ``agreement``) for the reports that read it.
    """
    lists, products, warnings = evaluation_lists(
        data,
        columns=columns,
        label_map=label_map,
        gain_offset=gain_offset,
        list_size=list_size,
        fills=fills,
        catalog=catalog,
        queries=queries,
        seed=seed,
    )
    own = score_fn or torch_scorer(model, tokenizer, max_length=max_length, batch_size=batch_size, progress=True)
    t0 = time.perf_counter()
    scores = {"model": score_lists(own, lists)}
    seconds = time.perf_counter() - t0
    if teacher is not None:
        scores["teacher"] = score_lists(torch_scorer(*teacher, max_length=max_length, batch_size=batch_size), lists)
    scores["bm25"] = catalog_bm25(lists, products)
    comparison = compare(lists, scores, teacher="teacher" if teacher is not None else None)
    report = {
        "data": str(data),
        "lists": describe_lists(lists),
        "catalog": len(products),
        "comparison": comparison,
        "pairs": int(sum(len(g.texts) for g in lists["judged"])),
        "score_seconds": round(seconds, 2),
        "warnings": warnings,
    }
    report.update(_judged_row(comparison["judged"]))
    report["score_std"] = float(np.concatenate(scores["model"]["judged"]).std())
    if report["score_std"] < CONSTANT_SCORE_STD:
        report["warnings"].append(
            f"the model gives every pair the same score (std {report['score_std']:.2e}): "
            "it cannot rank; its nDCG is what a random order would get"
        )
    return report


_RANKING = ("ndcg@10", "ndcg@5", "mrr@10", "queries")


def _judged_row(judged: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The judged lists' numbers under the top-level keys earlier reports used."""
    out: dict[str, Any] = {
        name: {k: judged[name][k] for k in _RANKING} for name in ("model", "teacher", "bm25") if name in judged
    }
    out["gain_over_bm25"] = out["model"]["ndcg@10"] - out["bm25"]["ndcg@10"]
    if "teacher" in judged:
        row = judged["model"]
        out.update(
            gain_kept=row["gain_kept"],
            gain_kept_ci95=row["gain_kept_ci95"],
            agreement={"kendall_tau": row["kendall_tau"], "top10_overlap": row["top10_overlap"]},
        )
    return out


def format_report(report: dict[str, Any]) -> str:
    """The comparison as a markdown table for the terminal, then one summary line and any warnings."""
    if "comparison" in report:
        table = format_comparison(report["comparison"], report.get("lists"))
    else:  # a report written before serving lists existed: the judged rows only
        table = format_comparison({"judged": {k: report[k] for k in ("model", "teacher", "bm25") if k in report}})
    queries = report.get("lists", {}).get("judged", {}).get("queries", report["model"]["queries"])
    tail = (
        f"{queries} queries, {report['pairs']} pairs in the judged lists; "
        f"judged nDCG@10 gain over BM25 {report['gain_over_bm25']:+.4f}"
    )
    if "gain_kept" in report:
        tail += (
            f"; teacher's gain kept on judged lists, with its 95% CI over queries: "
            f"{format_kept(report['gain_kept'], report['gain_kept_ci95'])}"
        )
    return "\n".join([table, "", tail] + [f"warning: {w}" for w in report.get("warnings", [])])
