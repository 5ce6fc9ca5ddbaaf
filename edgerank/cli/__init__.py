"""The ``edgerank`` command line: one thin module per subcommand over a library call."""

from __future__ import annotations

import sys

import click

from .. import __version__
from ._common import run_guarded


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="edgerank")
def main() -> None:
    """Turn a heavy BERT cross-encoder product ranker into a fast local one.

    Chain: teacher -> distill -> export -> rank / serve / bench. Every path is a local file;
    nothing is downloaded.
    """


def _register() -> None:
    from . import bench, build_engine, distill, export, index, rank, search, serve, teacher
    from . import eval as eval_cmd

    for module in (teacher, distill, eval_cmd, rank, serve, export, build_engine, bench, index, search):
        main.add_command(module.command)


_register()

__all__ = ["main", "run_guarded"]

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
