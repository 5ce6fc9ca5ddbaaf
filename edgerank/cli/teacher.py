"""``edgerank teacher``: fine-tune a cross-encoder teacher."""

from __future__ import annotations

import json

import click

from ._common import BAD_INPUT_HELP, data_options, parse_data_options, run_guarded


@click.command("teacher", epilog=BAD_INPUT_HELP)
@click.option(
    "--train", "train_path", required=True, type=click.Path(), help="Judged query–product table (CSV/JSONL/Parquet)."
)
@click.option("--dev", "dev_path", type=click.Path(), help="Held-out table for the final evaluation.")
@click.option("--out", required=True, type=click.Path(), help="Output folder (a standard Hugging Face model).")
@click.option(
    "--backbone",
    default="all-MiniLM-L6-v2",
    show_default=True,
    help="A Hugging Face Hub id (through the Hub cache: HF_HOME, HF_HUB_OFFLINE), a local model "
    "folder, or a packaged name: all-MiniLM-L6-v2, all-mpnet-base-v2.",
)
@click.option("--epochs", default=1.0, show_default=True, type=float)
@click.option("--batch-size", default=32, show_default=True, type=int, help="Pairs per batch (whole queries).")
@click.option("--lr", default=5e-5, show_default=True, type=float)
@click.option("--max-length", default=128, show_default=True, type=int, help="Tokens per (query, product) pair.")
@click.option(
    "--loss",
    type=click.Choice(["pointwise", "listwise", "pointwise+listwise"]),
    default="pointwise",
    show_default=True,
    help="BCE on the graded label, ListNet over each query's list, or their sum.",
)
@click.option(
    "--negatives",
    default=8,
    show_default=True,
    type=click.IntRange(min=0),
    help="Unjudged products of the training table's catalog added to each query's list as its lowest "
    "grade, half the query's BM25 near misses, half random: the products a serving list is "
    "filled with. 0 trains on the judged lists alone.",
)
@click.option("--seed", default=0, show_default=True, type=int)
@click.option(
    "--checkpoint-every", default=200, show_default=True, type=int, help="Steps between resumable checkpoints."
)
@data_options
@run_guarded
def command(
    train_path,
    dev_path,
    out,
    backbone,
    epochs,
    batch_size,
    lr,
    max_length,
    loss,
    negatives,
    seed,
    checkpoint_every,
    columns,
    label_map,
    gain_offset,
):
    """Fine-tune a cross-encoder ([CLS] query [SEP] product [SEP] -> one logit).

    Runs unchanged under DDP: `torchrun --standalone --nproc_per_node N $(which edgerank) teacher ...`
    (on CPU too, with gloo; `accelerate launch --cpu` starts one process unless mpirun is set up),
    or `accelerate launch --multi_gpu`. Interrupted? Run the same command again:
    it resumes from the last checkpoint kept in OUT.partial/.
    """
    from ..evaluate import format_report
    from ..train.loop import LoopConfig
    from ..train.teacher import TeacherConfig, train_teacher

    config = TeacherConfig(
        train=train_path,
        dev=dev_path,
        out=out,
        backbone=backbone,
        loss=loss,
        max_length=max_length,
        negatives=negatives,
        loop=LoopConfig(epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, checkpoint_every=checkpoint_every),
        **parse_data_options(columns, label_map, gain_offset),
    )
    metrics = train_teacher(config, log=lambda m: click.echo(m, err=True))
    if "dev" in metrics:
        click.echo(format_report(metrics["dev"]))
    click.echo(f"teacher saved to {out} ({json.dumps(metrics['train'])})")
