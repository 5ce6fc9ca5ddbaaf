"""``edgerank rank``: rank a product file for one query with an exported artifact."""

from __future__ import annotations

import json

import click

from ._common import run_guarded
from ._runtime import blend_option, runtime_options


@click.command("rank")
@click.option("--artifact", required=True, type=click.Path(), help="Artifact folder or .zip (from edgerank export).")
@click.option("--query", required=True, help="The shopper's query.")
@click.option(
    "--products",
    "products_path",
    required=True,
    type=click.Path(),
    help="Candidates as CSV/TSV (header) or JSONL: id, title, optional description "
    "(product_id/product_title/product_description also read); other columns feed --blend.",
)
@click.option("--top-k", type=click.IntRange(min=1), help="Show only the best K.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option("--explain", is_flag=True, help="Weight of each query word per product (costs words x top-k pairs).")
@click.option(
    "--index", type=click.Path(), help="Catalog index of a late-interaction/bi-encoder artifact (edgerank index)."
)
@runtime_options
@blend_option
@run_guarded
def command(artifact, query, products_path, top_k, as_json, explain, index, threads, providers, max_batch_size, blend):
    """Products sorted by relevance (or by blended score with --blend), with truncations counted."""
    from ..runtime import Blend
    from ..runtime.products import read_products_file
    from ._runtime import load_ranker

    ranker = load_ranker(artifact, threads, providers, max_batch_size, index)
    blend_weights = Blend.from_file(blend) if blend else None
    products = read_products_file(products_path)
    result = ranker.rank(query, products, top_k=top_k, explain=explain, blend=blend_weights)
    if as_json:
        click.echo(json.dumps(result.to_dict(), ensure_ascii=False, indent=2))
        return
    for item in result:
        title = str(item.product.get("title", ""))
        line = (
            f"{item.rank:>4}  {item.score:>9.4f}  p={item.probability:.3f}  {str(item.id):<14.14} "
            f"{title[:70]}{' [truncated]' if item.truncated else ''}"
        )
        click.echo(line)
        if item.explanation:
            click.echo("      " + "  ".join(f"{w}:{d:+.3f}" for w, d in item.explanation))
    note = f"{result.candidates} candidates, {result.truncated} cut to {ranker.max_length} tokens"
    if result.cached is not None:
        note += (
            f"; {result.cached} product state(s) from the catalog index, {result.candidates - result.cached} computed"
        )
    if result.missing_signals:
        note += "; missing blend signals: " + ", ".join(f"{k} x{v}" for k, v in result.missing_signals.items())
    click.echo(note, err=True)
