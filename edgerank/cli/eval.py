"""``edgerank eval``: nDCG/MRR of a model next to BM25 (and a teacher)."""

from __future__ import annotations

import click

from ._common import BAD_INPUT_HELP, data_options, parse_data_options, run_guarded


@click.command("eval", epilog=BAD_INPUT_HELP)
@click.option("--model", required=True, type=click.Path(), help="Cross-encoder folder (teacher or student).")
@click.option("--data", required=True, type=click.Path(), help="Judged table to evaluate on.")
@click.option("--teacher", type=click.Path(), help="Teacher folder: adds the share of its gain over BM25 kept.")
@click.option("--max-length", default=128, show_default=True, type=int)
@click.option("--json", "json_out", type=click.Path(), help="Also write the report as JSON here.")
@data_options
@run_guarded
def command(model, data, teacher, max_length, json_out, columns, label_map, gain_offset):
    """nDCG@10, nDCG@5, MRR@10 over queries with two or more distinct labels, next to BM25."""
    from ..evaluate import evaluate_model, format_report
    from ..io import write_json
    from ..modeling import load_cross_encoder, load_tokenizer

    m = load_cross_encoder(model, require_head=True)
    t = (load_cross_encoder(teacher, require_head=True), load_tokenizer(teacher)) if teacher else None
    report = evaluate_model(m, load_tokenizer(model), data, max_length=max_length, teacher=t,
                            **parse_data_options(columns, label_map, gain_offset))
    click.echo(format_report(report))
    if json_out:
        write_json(json_out, report)
