"""Render a benchmark's results: markdown tables for people (terminal, README, bench/results/), JSON for machines."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from ..io import atomic_write_bytes, write_json
from ..metrics import format_kept


def _fmt(value: Any, spec: str = ".1f", suffix: str = "") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:{spec}}{suffix}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"] + [
        "| " + " | ".join(r) + " |" for r in rows
    ]


def _kept(quality: dict[str, Any]) -> str:
    """The share of the teacher's gain kept and its 95% interval; a dash without a teacher (or a share)."""
    if quality.get("gain_kept") is None or math.isnan(quality["gain_kept"]):
        return "–"
    return format_kept(quality["gain_kept"], quality.get("gain_kept_ci95"))


def quality_table(results: dict[str, Any]) -> list[str]:
    """One row per subject: what it costs to hold and how well it ranks (judged lists)."""
    rows = []
    for s in results["subjects"]:
        q, mem = s.get("quality", {}), s.get("memory") or {}
        rows.append(
            [
                s["name"],
                str(s.get("precision") or "–"),
                str(s.get("device") or "–"),
                _fmt(s.get("size_mb")),
                _fmt(s.get("load_ms"), ".0f"),
                _fmt(mem.get("peak_rss_mb"), ".0f") if "error" not in mem else "error",
                _fmt(q.get("ndcg@10"), ".4f"),
                _fmt(q.get("mrr@10"), ".4f"),
                _kept(q),
                _fmt(q.get("kendall_tau"), ".3f"),
                _fmt(q.get("top10_overlap"), ".2f"),
            ]
        )
    bm25 = results["bm25"]["judged"]
    rows.append(
        ["BM25", "–", "–", "–", "–", "–", _fmt(bm25["ndcg@10"], ".4f"), _fmt(bm25["mrr@10"], ".4f"), "0.0%", "–", "–"]
    )
    n = results["workload"]["headline_n"]
    return _table(
        [
            "subject",
            "precision",
            "device",
            "size MB",
            "load ms",
            "peak RSS MB",
            "nDCG@10",
            "MRR@10",
            "teacher gain kept (95% CI)",
            f"Kendall τ (N={n})",
            f"top-10 overlap (N={n})",
        ],
        rows,
    )


def serving_table(results: dict[str, Any]) -> list[str]:
    """One row per subject and fill: quality where a kiosk ranks (judged products topped up from the
    catalog; unjudged = gain 0) and fidelity to the teacher, which needs no labels."""
    rows = []
    for fill in ("random", "bm25"):
        for s in results["subjects"]:
            q = ((s.get("quality") or {}).get("serving") or {}).get(fill)
            if q:
                rows.append(
                    [
                        fill,
                        s["name"],
                        _fmt(q.get("ndcg@10"), ".4f"),
                        _fmt(q.get("mrr@10"), ".4f"),
                        _kept(q),
                        _fmt(q.get("top10_overlap"), ".2f"),
                        _fmt(q.get("kendall_tau"), ".3f"),
                    ]
                )
        bm25 = (results["bm25"].get("serving") or {}).get(fill)
        if bm25:
            rows.append([fill, "BM25", _fmt(bm25["ndcg@10"], ".4f"), _fmt(bm25["mrr@10"], ".4f"), "0.0%", "–", "–"])
    return (
        _table(
            [
                "fill",
                "subject",
                "nDCG@10",
                "MRR@10",
                "teacher gain kept over BM25 (95% CI)",
                "top-10 overlap with teacher",
                "Kendall τ with teacher",
            ],
            rows,
        )
        if rows
        else []
    )


def latency_table(results: dict[str, Any]) -> list[str]:
    """One row per subject and candidate count: latency of ranking one query's N candidates."""
    rows = []
    for n in results["workload"]["candidates"]:
        for s in results["subjects"]:
            lat = s["latency"].get(str(n))
            if lat is None:
                continue
            rows.append(
                [
                    s["name"],
                    str(n),
                    _fmt(lat["p50_ms"], ".2f"),
                    _fmt(lat["p95_ms"], ".2f"),
                    _fmt(lat["p99_ms"], ".2f"),
                    _fmt(lat["pairs_per_s"], ".0f"),
                    _fmt(lat.get("speedup_vs_teacher"), ".2f", "×"),
                    _paired(lat.get("paired")),
                    _fmt(lat.get("vs_edgerank"), ".2f", "×"),
                    _fmt(lat.get("ndcg@10"), ".4f"),
                ]
            )
    return _table(
        [
            "subject",
            "N",
            "p50 ms",
            "p95 ms",
            "p99 ms",
            "pairs/s",
            "speed-up vs teacher",
            "peer / edgerank per list, interleaved (95% CI)",
            "peer / edgerank, timed apart",
            "nDCG@10 (N list)",
        ],
        rows,
    )


def _paired(paired: dict[str, Any] | None) -> str:
    """A peer's median per-list time ratio to edgerank, interleaved, with its interval over lists
    (``paired.py``); a dash for non-peers."""
    if not paired:
        return "–"
    low, high = paired["ci95"]
    return f"{paired['ratio']:.2f}× ({low:.2f} to {high:.2f})"


def order_warnings(results: dict[str, Any], tolerance: float = 0.10) -> list[str]:
    """Lines for interleaved ratios that depend on which side ran first by more than ``tolerance``:
    then one call still slowed the next (``paired.SETTLE_S``) and the ratio is not to be trusted."""
    lines = []
    for s in results["subjects"]:
        for n, lat in s.get("latency", {}).items():
            paired = lat.get("paired") or {}
            first, second = paired.get("ratio_edgerank_first"), paired.get("ratio_peer_first")
            if first and second and abs(math.log(first / second)) > math.log1p(tolerance):
                lines.append(
                    f"- **order effect** {s['name']}, N={n}: {first:.2f}× with edgerank first, "
                    f"{second:.2f}× with the peer first"
                )
    return [""] + lines if lines else []


def machine_line(machine: dict[str, Any]) -> str:
    libs = ", ".join(f"{k} {v}" for k, v in machine.get("libraries", {}).items())
    return (
        f"{machine['cpu']} ({machine['arch']}; {', '.join(machine['cpu_flags']) or 'no listed flags'}), "
        f"{machine.get('usable_cores')} usable / {machine.get('logical_cores')} logical cores, "
        f"{machine.get('memory_gb', '?')} GB, load average {machine.get('load_average')}, "
        f"GPU: {machine.get('gpu') or 'none'}; Python {machine['python']}; {libs}"
    )


def to_markdown(results: dict[str, Any]) -> str:
    w, ref = results["workload"], results["reference"]
    lines = [
        f"## edgerank bench — {w['data_name']}",
        "",
        f"{w['queries']} timed queries, candidate lists of {', '.join(map(str, w['candidates']))} "
        f"(judged products topped up from the file's catalog, seed {w['seed']}); {w['threads']} threads, "
        f"{w['warmup']} warm-up calls, {w['repeat']} timed calls per list; max length {w['max_length']}.",
        "",
        "### Latency of ranking one query's N candidates",
        "",
        "Peer ratios (> 1: edgerank is faster): *interleaved* times the peer and its edgerank artifact "
        "back to back on every list, so machine drift cancels, and gives the median over lists of the "
        "peer's time over edgerank's, with a bootstrap interval over lists (the headline); *timed apart* "
        "divides the p50s of the two separate timing passes, minutes apart.",
        "",
    ]
    lines += latency_table(results)
    lines += order_warnings(results)
    serving = serving_table(results)
    if serving:
        lines += [
            "",
            f"### Quality on serving lists of {w.get('headline_n')} (each timed query's judged products "
            "topped up from the catalog at random and with BM25's best matches; unjudged = gain 0)",
            "",
        ]
        lines += serving + [
            "",
            "BM25-filled lists hold BM25's own unjudged matches, which count gain 0 although "
            "many are relevant: label-based numbers there are biased against any ranker that finds "
            "them, so read fidelity to the teacher on that fill.",
        ]
    lines += [
        "",
        f"### Size, memory and quality on the judged lists ({w.get('quality_queries', w['queries'])} "
        "queries; secondary: short, mostly relevant lists; gain kept = share of the teacher's nDCG@10 "
        "gain over BM25)",
        "",
    ]
    lines += quality_table(results)
    for s in results["subjects"]:
        if s.get("index"):
            ix = s["index"]
            lines.append(
                f"- {s['name']} ranks from a warm catalog index of the file's {ix['products']} products: "
                f"built in {ix['build_s']:.1f} s ({ix['build_s_per_10k']:.1f} s / 10k products), "
                f"{ix['bytes'] / 2**20:.1f} MB ({ix['mb_per_10k']:.1f} MB / 10k)."
            )
    lines += [
        "",
        f"Reference GEMM {ref['shape']['tokens']}×{ref['shape']['hidden']}×{ref['shape']['inner']}: "
        f"{ref['ms']:.2f} ms median ({ref['gflops']:.0f} GFLOP/s).",
    ]
    for s in results["skipped"]:
        lines.append(f"- skipped {s['name']}: {s['reason']}")
    lines += [
        "",
        f"Machine: {machine_line(results['machine'])}",
        f"Run at {results['created']}, edgerank {results['edgerank_version']}.",
    ]
    return "\n".join(lines) + "\n"


def write_results(
    results: dict[str, Any], *, json_path: str | Path | None = None, markdown_path: str | Path | None = None
) -> None:
    """Write the JSON and/or markdown forms atomically (a crashed run leaves the previous files)."""
    if json_path:
        write_json(json_path, results)
    if markdown_path:
        atomic_write_bytes(markdown_path, to_markdown(results).encode())
