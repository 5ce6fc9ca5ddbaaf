"""``edgerank index``: precompute a catalog student's product states once, for rank and search."""

from __future__ import annotations

import time

import click

from ._common import run_guarded


@click.command("index")
@click.option("--artifact", required=True, type=click.Path(), help="A late-interaction or bi-encoder artifact.")
@click.option(
    "--products",
    "products_paths",
    required=True,
    multiple=True,
    type=click.Path(),
    help="Catalog as CSV/TSV/JSONL: id, title, optional description (product_id/product_title also "
    "read). Repeat for several files; a repeated id keeps its first row.",
)
@click.option("--out", required=True, type=click.Path(), help="Index folder (written atomically).")
@click.option(
    "--update",
    is_flag=True,
    help="Add new and replace changed products in the index at --out "
    "instead of rebuilding it; the old index stays until the new one is complete.",
)
@click.option(
    "--dtype",
    type=click.Choice(["float16", "float32", "int8", "residual-2bit", "residual-1bit"]),
    help="Stored token vectors (default: the artifact's, float16). int8 halves the index again; "
    "residual-2bit / residual-1bit (late interaction) keep a centroid id and 2 or 1 bits per "
    "dimension: ~7x / ~12x smaller than float16, at some recall (docs/catalog.md).",
)
@click.option("--threads", type=click.IntRange(min=1), help="Intra-op threads (default: all cores).")
@run_guarded
def command(artifact, products_paths, out, update, dtype, threads):
    """Run the product tower of ARTIFACT over every product and write a checksummed, memory-mappable
    index tied to this artifact's hash (a stale or modified index is refused at load)."""
    from ..artifact import ArtifactError, load_artifact
    from ..runtime.catalog import build_index, update_index
    from ..runtime.products import read_products_file
    from ..runtime.towers import TOWER_KINDS, TowerScorer

    art = load_artifact(artifact)
    if art.kind not in TOWER_KINDS:
        raise ArtifactError(
            f"{art.path}: a catalog index needs a late-interaction or bi-encoder artifact, not a {art.kind}"
        )
    products, seen, repeated = [], set(), 0
    for path in products_paths:
        for row in read_products_file(path):
            key = str(row.get("id"))
            if key in seen:
                repeated += 1
                continue
            seen.add(key)
            products.append(row)
    if repeated:
        click.echo(f"skipped {repeated} row(s) repeating a product id (first kept)", err=True)
    scorer = TowerScorer(art, max_batch_size=64, **({"threads": threads} if threads else {}))
    if update and dtype:
        raise click.UsageError("--dtype applies to a new index; --update keeps the index's own")
    started = time.perf_counter()
    # click's bar, not tqdm: index runs on the base install, which has click and no tqdm
    with click.progressbar(length=len(products), label="indexing", file=click.get_text_stream("stderr")) as bar:
        progress = lambda done, total: bar.update(done - bar.pos)  # noqa: E731
        if update:
            path, counts = update_index(art, scorer, out, products, progress=progress)
            summary = ", ".join(f"{v} {k}" for k, v in counts.items())
        else:
            path = build_index(art, scorer, products, out, dtype=dtype, progress=progress)
    seconds = time.perf_counter() - started
    if not update:
        summary = f"{len(products)} products ({len(products) / max(seconds, 1e-9):.0f}/s)"
    size = sum(p.stat().st_size for p in path.iterdir())
    click.echo(f"wrote {path}: {summary} in {seconds:.1f} s; {size / 1e6:.2f} MB")
