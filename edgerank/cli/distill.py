"""``edgerank distill``: train a small student that keeps the teacher's ranking."""

from __future__ import annotations

import click

from ._common import BAD_INPUT_HELP, data_options, parse_data_options, run_guarded


def parse_layer_list(value: str | None) -> list[int] | None:
    """'0,5' -> [0, 5]; a malformed list is a usage error naming the option."""
    if not value:
        return None
    try:
        return [int(x) for x in value.split(",") if x.strip()]
    except ValueError:
        raise click.BadParameter(
            f"{value!r}: expected comma-separated layer numbers such as 0,5", param_hint="--teacher-layers"
        ) from None


def parse_temperature(value: str) -> float | str:
    """'auto' or a positive number; anything else is a usage error naming the option."""
    if value == "auto":
        return value
    try:
        t = float(value)
    except ValueError:
        t = 0.0
    if not t > 0:
        raise click.BadParameter(f"{value!r}: expected a positive number or 'auto'", param_hint="--temperature")
    return t


@click.command("distill", epilog=BAD_INPUT_HELP)
@click.option(
    "--teacher",
    required=True,
    type=click.Path(),
    help="Trained cross-encoder (with its head): a folder or a Hugging Face Hub id.",
)
@click.option(
    "--train",
    "train_path",
    required=True,
    type=click.Path(),
    help="Queries and candidates to distil on; the relevance column is optional.",
)
@click.option("--dev", "dev_path", type=click.Path(), help="Judged table for the report (teacher vs student vs BM25).")
@click.option("--out", required=True, type=click.Path(), help="Output folder for the student.")
@click.option(
    "--student-kind",
    default="cross-encoder",
    show_default=True,
    type=click.Choice(["cross-encoder", "late-interaction", "bi-encoder"]),
    help="cross-encoder, or a catalog student whose product side is precomputed (edgerank index).",
)
@click.option("--dim", type=int, help="Tower vector size (default 128 late-interaction, 384 bi-encoder).")
@click.option(
    "--query-max-length",
    default=32,
    show_default=True,
    type=int,
    help="Query tower tokens (towers only; --max-length is the product tower's).",
)
@click.option(
    "--pooled-weight",
    default=0.5,
    show_default=True,
    type=float,
    help="Late interaction: weight of the same losses on the pooled vectors whole-catalog search ranks by first.",
)
@click.option(
    "--separate-towers",
    is_flag=True,
    help="Towers: give the product tower its own copy of the encoder (default: one shared encoder).",
)
@click.option("--layers", type=int, help="Keep N teacher layers, spread across depth (default 2).")
@click.option(
    "--teacher-layers",
    callback=lambda ctx, param, v: parse_layer_list(v),
    help="Keep exactly these teacher layers (0-based, e.g. 0 or 0,5) instead of spreading --layers.",
)
@click.option(
    "--student", "student_dir", type=click.Path(), help="Another local HF model as the student (scores only)."
)
@click.option("--hidden-size", type=int, help="Narrower student (e.g. 256, 128) subcloned from the teacher.")
@click.option(
    "--loss",
    "loss",
    default="mse+listwise-kl",
    show_default=True,
    help="Teacher losses joined by '+': margin-mse, listwise-kl, mse.",
)
@click.option(
    "--label-weight", default=0.0, show_default=True, type=float, help="Add pointwise BCE on labels with this weight."
)
@click.option("--hidden-weight", type=float, help="Hidden-state transfer weight (default 1 for --hidden-size, else 0).")
@click.option(
    "--temperature",
    default="auto",
    show_default=True,
    callback=lambda ctx, param, v: parse_temperature(v),
    help="Softmax temperature of listwise-kl, or 'auto': the teacher's median within-query score spread.",
)
@click.option(
    "--catalog-fill",
    type=click.IntRange(min=0),
    help="Add N unjudged products of the training table's catalog to each query's list, teacher-scored: "
    "half the query's BM25 near misses, half random, as in the serving lists the student will "
    "rank. Default 16, or 0 with --teacher-scores; 0 distils on the judged lists alone.",
)
@click.option(
    "--augment",
    type=click.IntRange(min=0),
    help="Add N teacher-scored copies of each query's list under a perturbed query (a word dropped, "
    "replaced or added from the list's titles): more teacher judgements for a small student, "
    "at N+1 times the pairs to score and train on. Default 4, or 0 with --teacher-scores; "
    "--augment 0 for a quick run.",
)
@click.option(
    "--teacher-scores",
    type=click.Path(),
    help="Precomputed scores (query_id, product_id, score) instead of running the teacher.",
)
@click.option("--epochs", default=1.0, show_default=True, type=float)
@click.option("--batch-size", default=32, show_default=True, type=int, help="Pairs per batch (whole queries).")
@click.option("--lr", default=1e-4, show_default=True, type=float)
@click.option("--max-length", default=128, show_default=True, type=int)
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--checkpoint-every", default=200, show_default=True, type=int)
@click.option("--report-dir", type=click.Path(), help="Also write the report here (e.g. bench/results).")
@data_options
@run_guarded
def command(
    teacher,
    train_path,
    dev_path,
    out,
    student_kind,
    dim,
    query_max_length,
    pooled_weight,
    separate_towers,
    layers,
    teacher_layers,
    student_dir,
    hidden_size,
    loss,
    label_weight,
    hidden_weight,
    temperature,
    catalog_fill,
    augment,
    teacher_scores,
    epochs,
    batch_size,
    lr,
    max_length,
    seed,
    checkpoint_every,
    report_dir,
    columns,
    label_map,
    gain_offset,
):
    """Distil TEACHER into a student: N of its layers (--layers), a narrower copy (--hidden-size), or
    another model (--student). --student-kind late-interaction / bi-encoder trains catalog towers
    (query and product read apart; edgerank export, then edgerank index). Teacher scores are cached
    per teacher and reused across runs. Runs unchanged under `accelerate launch` / torchrun (DDP)."""
    from ..evaluate import format_report
    from ..train.distill import DistillConfig, distill
    from ..train.loop import LoopConfig

    config = DistillConfig(
        teacher=teacher,
        train=train_path,
        dev=dev_path,
        out=out,
        layers=layers,
        teacher_layers=teacher_layers,
        student=student_dir,
        hidden_size=hidden_size,
        losses=[x.strip() for x in loss.split("+") if x.strip()],
        label_weight=label_weight,
        hidden_weight=hidden_weight,
        temperature=temperature,
        max_length=max_length,
        catalog_fill=catalog_fill,
        augment=augment,
        teacher_scores=teacher_scores,
        report_dir=report_dir,
        student_kind=student_kind,
        dim=dim,
        query_max_length=query_max_length,
        pooled_weight=pooled_weight,
        shared_towers=not separate_towers,
        loop=LoopConfig(epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, checkpoint_every=checkpoint_every),
        **parse_data_options(columns, label_map, gain_offset),
    )
    result = distill(config, log=lambda m: click.echo(m, err=True))
    if "dev" in result:
        click.echo(format_report(result["dev"]))
        f = result["dev"]["flops_per_pair"]
        click.echo(
            f"FLOPs per pair at {result['dev']['median_tokens']} tokens: student {f['student'] / 1e6:.1f}M, "
            f"teacher {f['teacher'] / 1e6:.1f}M"
        )
        if "flops_per_query" in result["dev"]:
            click.echo(
                f"towers: the query tower costs {result['dev']['flops_per_query']['student'] / 1e6:.1f}M FLOPs "
                f"per query at {result['dev']['median_query_tokens']} tokens; products are precomputed"
            )
    click.echo(f"student saved to {out}")
