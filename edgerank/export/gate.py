"""The quality gate: an exported model may ship only if it ranks (almost) as the fp32 model does.

Measured where a kiosk ranks: on serving lists (``edgerank.core.serving``), each judged query of
the eval table topped up to ``list_size`` products from the table's catalog, once with BM25's near
misses and once at random, and scored through the runtime's own ``Ranker`` loaded from the
artifact folder, one list per call as ``Ranker.rank`` scores (dynamic INT8 scores depend on the
batch, see ``edgerank.batching``), so the gate measures exactly what ships. Two checks, both
thresholds options:

- gain: on the random-fill lists the export keeps at least ``1 - max_quality_drop`` (default 99%)
  of the fp32 model's nDCG@10 gain over BM25. Raw nDCG hides losses (BM25 alone scores ~0.86
  there), so the allowance is a share of what the model adds. When the fp32 model does not beat
  BM25 (an untrained or collapsed model) the share applies to its nDCG@10 instead, and the report
  says so. The random fill is the gated one because its fill-ins are truly irrelevant: on BM25-filled
  lists unjudged near misses can be relevant, and nDCG there is biased.
- fidelity: the mean top-10 overlap with the fp32 model's order is at least ``min_agreement``
  (default 0.97) on every fill; it needs no labels, so it also judges the BM25-filled lists.

The judged lists are compared too, as a secondary row (and fit the probability map).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from ..core.compare import compare, describe_lists
from ..core.groups import QueryGroup
from ..core.serving import DEFAULT_LIST_SIZE, FILLS
from ..metrics import catalog_bm25
from .config import ExportError

GAIN_FILL = "random"
MAX_QUALITY_DROP = 0.01
MIN_AGREEMENT = 0.97

ScoreFn = Callable[[Sequence[QueryGroup]], list[np.ndarray]]


def gate_lists(
    data: str | os.PathLike,
    *,
    list_size: int | None = DEFAULT_LIST_SIZE,
    seed: int = 0,
    read_kwargs: Mapping[str, Any] | None = None,
):
    """The gate's list sets (serving lists per fill, then ``judged``) and the catalog they came from."""
    from ..data import DataError
    from ..evaluate import evaluation_lists

    try:
        lists, catalog, _ = evaluation_lists(data, list_size=list_size, fills=FILLS, seed=seed, **(read_kwargs or {}))
    except DataError as e:
        if "two distinct labels" in str(e):
            raise ExportError(
                f"{data}: no query has two distinct labels: the quality gate has nothing to measure"
            ) from None
        raise
    return lists, catalog


def runtime_scores(
    folder: str | os.PathLike, lists: Mapping[str, Sequence[QueryGroup]], threads: int | None = None
) -> dict[str, list[np.ndarray]]:
    """Scores of every list through ``Ranker.load(folder).score``, one list per call: what ships."""
    from ..runtime import Ranker

    ranker = Ranker.load(folder, threads=threads)
    return {name: [ranker.score([(g.query, t) for t in g.texts]) for g in groups] for name, groups in lists.items()}


def quality_gate(
    lists: Mapping[str, Sequence[QueryGroup]],
    fp32: Mapping[str, Sequence[np.ndarray]],
    exported: Mapping[str, Sequence[np.ndarray]],
    bm25: Mapping[str, Sequence[np.ndarray]],
    *,
    max_quality_drop: float = MAX_QUALITY_DROP,
    min_agreement: float = MIN_AGREEMENT,
) -> dict[str, Any]:
    """The gate's numbers and verdict (``passed``, with ``reasons`` when it fails) from each ranker's
    scores of every list set (``{list set: scores per group}``)."""
    comparison = compare(lists, {"fp32": fp32, "exported": exported, "bm25": bm25}, teacher="fp32")
    gated = GAIN_FILL if GAIN_FILL in comparison else "judged"
    fills = [name for name in comparison if name != "judged"] or ["judged"]
    report = _gain_check(comparison[gated], max_quality_drop) | {"gated_on": gated}
    report["top10_overlap"] = {name: comparison[name]["exported"]["top10_overlap"] for name in fills}
    for name, overlap in report["top10_overlap"].items():
        if overlap < min_agreement:
            report["reasons"].append(
                f"top-10 overlap with the fp32 model on {_where(name)} is {overlap:.3f} < {min_agreement:g}"
            )
    judged = comparison["judged"]
    report.update(
        {
            "queries": judged["fp32"]["queries"],
            "lists": describe_lists(lists),
            "comparison": comparison,
            **{
                k: {m: judged[k][m] for m in ("ndcg@10", "ndcg@5", "mrr@10", "queries")}
                for k in ("fp32", "exported", "bm25")
            },
            "max_quality_drop": max_quality_drop,
            "min_agreement": min_agreement,
            "passed": not report["reasons"],
        }
    )
    return report


def _where(name: str) -> str:
    return "the judged lists" if name == "judged" else f"{name}-fill serving lists"


def _gain_check(rows: Mapping[str, Mapping[str, Any]], max_quality_drop: float) -> dict[str, Any]:
    """The share of the fp32 gain over BM25 kept on one list set, or (no gain) the nDCG@10 drop."""
    fp32, exported, bm25 = (rows[k]["ndcg@10"] for k in ("fp32", "exported", "bm25"))
    gain = fp32 - bm25
    basis, scale = ("gain over BM25", gain) if gain > 0 else ("nDCG@10 (fp32 model does not beat BM25)", fp32)
    allowed, drop = max_quality_drop * scale, fp32 - exported
    reasons = []
    if drop > allowed:
        reasons.append(
            f"nDCG@10 fell by {drop:.4f} ({fp32:.4f} -> {exported:.4f}), more than the allowed "
            f"{allowed:.4f} ({max_quality_drop:g} x fp32 {basis})"
        )
    return {
        "gain_over_bm25": {"fp32": gain, "exported": exported - bm25},
        "gain_kept": rows["exported"]["gain_kept"],
        "gain_kept_ci95": rows["exported"]["gain_kept_ci95"],
        "ndcg_drop": drop,
        "allowed_drop": allowed,
        "drop_basis": basis,
        "reasons": reasons,
    }


def run_gate(
    folder: str | os.PathLike,
    reference: ScoreFn,
    data: str | os.PathLike,
    *,
    list_size: int | None = DEFAULT_LIST_SIZE,
    seed: int = 0,
    read_kwargs: Mapping[str, Any] | None = None,
    max_quality_drop: float = MAX_QUALITY_DROP,
    min_agreement: float = MIN_AGREEMENT,
    threads: int | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Gate the artifact at ``folder`` against ``reference`` (the fp32 model: ``groups -> scores``) on
    ``data``; raises ``ExportError`` when it fails. Returns the gate's numbers and the probability map
    fitted on the artifact's logits of the judged lists."""
    from .probability import fit_probability

    lists, catalog = gate_lists(data, list_size=list_size, seed=seed, read_kwargs=read_kwargs)
    exported = runtime_scores(folder, lists, threads)
    fp32 = {name: reference(groups) for name, groups in lists.items()}
    report = quality_gate(
        lists,
        fp32,
        exported,
        catalog_bm25(lists, catalog),
        max_quality_drop=max_quality_drop,
        min_agreement=min_agreement,
    )
    report.update(data=str(data), list_size=list_size, catalog=len(catalog))
    if not report["passed"]:
        raise ExportError(
            f"quality gate failed on {data} ({report['queries']} queries): "
            + "; ".join(report["reasons"])
            + ". Nothing was written."
        )
    judged = lists["judged"]
    probability = fit_probability(np.concatenate(exported["judged"]), np.concatenate([g.labels for g in judged]))
    return report, probability
