"""``edgerank search``: the best products of a whole catalog index for one query (catalog students)."""

from __future__ import annotations

import json

import click

from ._common import run_guarded


@click.command("search")
@click.option("--artifact", required=True, type=click.Path(), help="A late-interaction or bi-encoder artifact.")
@click.option("--index", required=True, type=click.Path(), help="Its catalog index (edgerank index).")
@click.option("--query", required=True, help="The shopper's query.")
@click.option("--top-k", default=10, show_default=True, type=click.IntRange(min=1))
@click.option(
    "--depth",
    default=128,
    show_default=True,
    type=click.IntRange(min=1),
    help="Late interaction: products reranked by MaxSim over their stored vectors after the centroid stages.",
)
@click.option("--exact", is_flag=True, help="Late interaction: exact MaxSim over the whole catalog (slower).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option("--threads", type=click.IntRange(min=1), help="Intra-op threads (default: all cores).")
@run_guarded
def command(artifact, index, query, top_k, depth, exact, as_json, threads):
    """Rank every product of INDEX for QUERY: no candidate list needed."""
    from ..runtime import Ranker

    ranker = Ranker.load(artifact, threads=threads, index=index)
    result = ranker.search(query, top_k=top_k, depth=None if exact else max(depth, top_k))
    if as_json:
        click.echo(json.dumps(result.to_dict(), ensure_ascii=False, indent=2))
        return
    for item in result:
        click.echo(f"{item.rank:>4}  {item.score:>9.4f}  p={item.probability:.3f}  {item.id}")
    click.echo(f"{result.candidates} products searched", err=True)
