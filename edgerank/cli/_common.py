"""Options and error handling shared by the subcommands.

Imports only click at load time: the runtime subcommands (rank, serve, index, search) run on the base
install, which has no pandas or torch, so the data, training and export layers load only inside the
commands that use them.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable

import click

#: Errors that end a command with one line and exit 2, as (module, class): looked up only among loaded
#: modules, since an error whose module never loaded cannot have been raised.
EXPECTED_ERRORS = (
    ("edgerank.data", "DataError"),
    ("edgerank.modeling", "ModelError"),
    ("edgerank.export.config", "ExportError"),
    ("edgerank.artifact", "ArtifactError"),
    ("edgerank.runtime.errors", "RankerInputError"),
    ("edgerank.runtime.errors", "BackendError"),
    ("edgerank.bench", "BenchError"),
)

BAD_INPUT_HELP = (
    "\b\nBad input stops with one line naming file, row and field (exit 2): missing column, empty file,\n"
    "undecodable bytes, empty or non-numeric label. Skipped with a counted warning: rows with an empty\n"
    "query or title, repeated (query_id, product_id) pairs (first kept)."
)


def expected_errors() -> tuple[type[BaseException], ...]:
    """The EXPECTED_ERRORS classes of the modules loaded so far, plus missing and existing files."""
    loaded = [getattr(sys.modules[module], name) for module, name in EXPECTED_ERRORS if module in sys.modules]
    return (FileNotFoundError, FileExistsError, *loaded)


def run_guarded(fn: Callable) -> Callable:
    """Turn expected failures (bad data, unusable models) into one line on stderr and exit 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except KeyboardInterrupt:
            click.echo("interrupted: completed checkpoints are kept; run the same command to resume", err=True)
            sys.exit(130)
        except Exception as e:
            if not isinstance(e, expected_errors()):
                raise
            click.echo(f"error: {e}", err=True)
            sys.exit(2)

    return wrapper


def data_options(fn: Callable) -> Callable:
    """--column / --label-map / --gain-offset, shared by every command that reads judgements."""
    fn = click.option(
        "--gain-offset",
        default="auto",
        show_default=True,
        help="Label meaning 'no gain'; nDCG gain = relevance - offset. 'auto' = the file's smallest label.",
    )(fn)
    fn = click.option(
        "--label-map",
        "label_map",
        multiple=True,
        metavar="LABEL=GAIN",
        help="Map categorical labels to gains (ESCI's esci_label gets E=1,S=0.1,C=0.01,I=0 by default).",
    )(fn)
    fn = click.option(
        "--column",
        "columns",
        multiple=True,
        metavar="CANONICAL=NAME",
        help="Read a canonical column (query_id, query, product_id, product_title, "
        "product_description, relevance) from another name, e.g. query=search_term.",
    )(fn)
    return fn


def parse_data_options(columns, label_map, gain_offset) -> dict:
    from ..data import parse_mapping

    lm = {k: _number(v, "--label-map") for k, v in parse_mapping(label_map, "--label-map").items()} or None
    offset = gain_offset if gain_offset == "auto" else _number(gain_offset, "--gain-offset")
    return {"columns": parse_mapping(columns, "--column"), "label_map": lm, "gain_offset": offset}


def _number(value: str, option: str) -> float:
    from ..data import DataError

    try:
        return float(value)
    except ValueError:
        raise DataError(f"{option}: not a number: {value!r}") from None
