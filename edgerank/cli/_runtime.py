"""Options shared by the commands that run an artifact (rank, serve)."""

from __future__ import annotations

from collections.abc import Callable

import click


def blend_option(fn: Callable) -> Callable:
    return click.option("--blend", type=click.Path(), help="Per-shop blend weights (JSON or TOML); off by default.")(fn)


def runtime_options(fn: Callable) -> Callable:
    fn = click.option(
        "--max-batch-size",
        default=16,
        show_default=True,
        type=click.IntRange(min=1),
        help="Pairs per forward pass; bounds memory for long candidate lists.",
    )(fn)
    fn = click.option("--providers", help="ONNX Runtime execution providers in order, e.g. cuda,cpu (default cpu).")(fn)
    fn = click.option("--threads", type=click.IntRange(min=1), help="Intra-op threads (default: all cores).")(fn)
    return fn


def load_ranker(artifact, threads, providers, max_batch_size, index=None):
    from ..runtime import Ranker

    return Ranker.load(artifact, providers=providers, threads=threads, max_batch_size=max_batch_size, index=index)
