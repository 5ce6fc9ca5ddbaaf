"""Options and error handling shared by the subcommands."""

from __future__ import annotations

import functools
import sys
from typing import Callable

import click

from ..data import DataError, parse_mapping

BAD_INPUT_HELP = (
    "\b\nBad input stops with one line naming file, row and field (exit 2): missing column, empty file,\n"
    "undecodable bytes, empty or non-numeric label. Skipped with a counted warning: rows with an empty\n"
    "query or title, repeated (query_id, product_id) pairs (first kept)."
)


def run_guarded(fn: Callable) -> Callable:
    """Turn expected failures (bad data, unusable models) into one line on stderr and exit 2."""
    from ..artifact import ArtifactError
    from ..bench import BenchError
    from ..export.config import ExportError
    from ..modeling import ModelError
    from ..runtime.errors import BackendError, RankerInputError

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (DataError, ModelError, ExportError, ArtifactError, RankerInputError, BackendError, BenchError,
                FileNotFoundError, FileExistsError) as e:
            click.echo(f"error: {e}", err=True)
            sys.exit(2)
        except KeyboardInterrupt:
            click.echo("interrupted: completed checkpoints are kept; run the same command to resume", err=True)
            sys.exit(130)
    return wrapper


def data_options(fn: Callable) -> Callable:
    """--column / --label-map / --gain-offset, shared by every command that reads judgements."""
    fn = click.option("--gain-offset", default="auto", show_default=True,
                      help="Label meaning 'no gain'; nDCG gain = relevance - offset. 'auto' = the file's smallest label.")(fn)
    fn = click.option("--label-map", "label_map", multiple=True, metavar="LABEL=GAIN",
                      help="Map categorical labels to gains (ESCI's esci_label gets E=1,S=0.1,C=0.01,I=0 by default).")(fn)
    fn = click.option("--column", "columns", multiple=True, metavar="CANONICAL=NAME",
                      help="Read a canonical column (query_id, query, product_id, product_title, "
                           "product_description, relevance) from another name, e.g. query=search_term.")(fn)
    return fn


def parse_data_options(columns, label_map, gain_offset) -> dict:
    lm = {k: _number(v, "--label-map") for k, v in parse_mapping(label_map, "--label-map").items()} or None
    offset = gain_offset if gain_offset == "auto" else _number(gain_offset, "--gain-offset")
    return {"columns": parse_mapping(columns, "--column"), "label_map": lm, "gain_offset": offset}


def _number(value: str, option: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise DataError(f"{option}: not a number: {value!r}") from None
