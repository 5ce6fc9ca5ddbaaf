"""``edgerank eval``: a model next to BM25 (and a teacher) on serving lists and judged lists."""

from __future__ import annotations

import click

from ._common import BAD_INPUT_HELP, data_options, parse_data_options, run_guarded


@click.command("eval", epilog=BAD_INPUT_HELP)
@click.option("--model", required=True, type=click.Path(), help="Cross-encoder folder (teacher or student).")
@click.option("--data", required=True, type=click.Path(), help="Judged table to evaluate on.")
@click.option(
    "--teacher",
    type=click.Path(),
    help="Teacher folder: adds the share of its gain over BM25 kept and the fidelity to its order.",
)
@click.option("--max-length", default=128, show_default=True, type=int)
@click.option(
    "--list-size",
    default=100,
    show_default=True,
    type=int,
    help="Serving lists: each judged query topped up to this many products from the catalog "
    "(unjudged = gain 0); 0 evaluates the judged lists only.",
)
@click.option(
    "--fill",
    "fills",
    default="bm25,random",
    show_default=True,
    help="How serving lists are topped up: bm25 (the query's best unjudged BM25 matches), random "
    "(seeded draws), both comma-separated, or none.",
)
@click.option(
    "--catalog",
    type=click.Path(),
    help="Products file to fill serving lists from (default: every distinct product of --data).",
)
@click.option("--queries", type=int, help="A seeded sample of this many queries (default: every evaluable one).")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of the random fill and the query sample.")
@click.option("--batch-size", default=64, show_default=True, type=int, help="Pairs per forward pass.")
@click.option("--json", "json_out", type=click.Path(), help="Also write the report as JSON here.")
@data_options
@run_guarded
def command(
    model,
    data,
    teacher,
    max_length,
    list_size,
    fills,
    catalog,
    queries,
    seed,
    batch_size,
    json_out,
    columns,
    label_map,
    gain_offset,
):
    """nDCG@10, MRR@10, the teacher's gain kept and fidelity to it, on serving lists and judged lists,
    over queries with two or more distinct labels, next to BM25."""
    from ..core.serving import parse_fills
    from ..data import DataError
    from ..evaluate import evaluate_model, format_report
    from ..io import write_json
    from ..modeling import load_cross_encoder, load_tokenizer

    try:
        fill_names = parse_fills(fills)
    except ValueError as e:
        raise DataError(f"--fill: {e}") from None
    if list_size < 0 or (queries is not None and queries < 1):
        raise DataError("--list-size must be 0 or more and --queries at least 1")
    m = load_cross_encoder(model, require_head=True)
    t = (load_cross_encoder(teacher, require_head=True), load_tokenizer(teacher)) if teacher else None
    report = evaluate_model(
        m,
        load_tokenizer(model),
        data,
        max_length=max_length,
        teacher=t,
        batch_size=batch_size,
        list_size=(list_size or None) if fill_names else None,
        fills=fill_names,
        catalog=catalog,
        queries=queries,
        seed=seed,
        **parse_data_options(columns, label_map, gain_offset),
    )
    click.echo(format_report(report))
    if json_out:
        write_json(json_out, report)
