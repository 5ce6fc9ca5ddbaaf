"""Pareto plot: ranking quality against p50 latency, one point per subject, the frontier drawn.

This is how a user picks an artifact: the points on the frontier are the ones no other subject beats
on both speed and quality. Quality is the share of the teacher's gain over BM25 kept when a teacher
was benched (comparable across data sets), else nDCG@10.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from ..io import atomic_write_bytes

_COLOURS = {
    "edgerank": "tab:green",
    "teacher": "tab:red",
    "torch": "tab:orange",
    "peer": "tab:blue",
    "gpu": "tab:purple",
}
_PEER_MARKERS = ("s", "^", "D", "v", "P", "X")


def pareto_points(results: dict[str, Any]) -> tuple[str, list[tuple[str, str, float, float]]]:
    """The y-axis label and (name, role, p50 ms, quality) for every subject with both numbers."""
    n = str(results["workload"]["headline_n"])
    use_gain = any("gain_kept" in s.get("quality", {}) for s in results["subjects"])
    key, label = ("gain_kept", "teacher's gain over BM25 kept") if use_gain else ("ndcg@10", "nDCG@10")
    points = [
        (s["name"], s["role"], s["latency"][n]["p50_ms"], s["quality"][key])
        for s in results["subjects"]
        if n in s.get("latency", {}) and s.get("quality", {}).get(key) is not None
    ]
    return label, points


def frontier(points: list[tuple[str, str, float, float]]) -> list[tuple[str, str, float, float]]:
    """Points not beaten by another on both latency (lower) and quality (higher), fastest first."""
    best, out = float("-inf"), []
    for p in sorted(points, key=lambda p: (p[2], -p[3])):
        if p[3] > best:
            out.append(p)
            best = p[3]
    return out


def plot_pareto(results: dict[str, Any], out: str | Path) -> Path:
    """Write the PNG atomically and return its path."""
    import matplotlib

    matplotlib.use("Agg")  # no display on kiosks, CI or servers
    import matplotlib.pyplot as plt

    label, points = pareto_points(results)
    if not points:
        raise ValueError("no subject has both a latency and a quality number to plot")
    fig, ax = plt.subplots(figsize=(8, 5.5), dpi=120)
    peer_kinds = sorted({name.split(" · ")[0] for name, role, _, _ in points if role == "peer"})
    markers = {kind: _PEER_MARKERS[i % len(_PEER_MARKERS)] for i, kind in enumerate(peer_kinds)}
    for name, role, x, y in points:
        if role == "peer":
            # a peer sits at its artifact's quality, so text beside each one piles up on the artifact's
            # label: a hollow marker per peer kind, named once in the legend, keeps the plot readable
            ax.scatter(
                x,
                y,
                facecolors="none",
                edgecolors=_COLOURS["peer"],
                marker=markers[name.split(" · ")[0]],
                s=45,
                zorder=3,
            )
        else:
            ax.scatter(x, y, color=_COLOURS.get(role, "tab:gray"), s=40, zorder=4)
            ax.annotate(name, (x, y), textcoords="offset points", xytext=(5, 4), fontsize=7)
    edge = frontier(points)
    ax.step(
        [p[2] for p in edge],
        [p[3] for p in edge],
        where="post",
        color="gray",
        linestyle="--",
        linewidth=1,
        zorder=2,
        label="Pareto frontier",
    )
    for role, colour in _COLOURS.items():
        if role != "peer" and any(p[1] == role for p in points):
            ax.scatter([], [], color=colour, label=role)
    for kind, marker in markers.items():
        ax.scatter([], [], facecolors="none", edgecolors=_COLOURS["peer"], marker=marker, label=f"peer: {kind}")
    w = results["workload"]
    ax.set_xscale("log")
    ax.set_xlabel(f"p50 latency, ms per query of {w['headline_n']} candidates (log scale)")
    ax.set_ylabel(label)
    ax.set_title(
        f"{w['data_name']}: {w['queries']} timed queries, quality on {w.get('quality_queries', w['queries'])}, "
        f"{w['threads']} threads — {results['machine']['cpu']}",
        fontsize=9,
    )
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    atomic_write_bytes(out, buf.getvalue())
    return Path(out)
