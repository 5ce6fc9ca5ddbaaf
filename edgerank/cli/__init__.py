"""The ``edgerank`` command line: one thin module per subcommand over a library call.

Subcommand modules load when their command runs, so ``edgerank rank`` loads the runtime and nothing
of the training or export stack (the base install has neither pandas nor torch).
"""

from __future__ import annotations

import importlib
import sys

import click

from .. import __version__
from ._common import run_guarded

#: Command name -> module under edgerank.cli holding ``command``, in the order ``--help`` lists them.
COMMANDS = {
    "teacher": "teacher",
    "distill": "distill",
    "eval": "eval",
    "rank": "rank",
    "serve": "serve",
    "export": "export",
    "build-engine": "build_engine",
    "bench": "bench",
    "index": "index",
    "search": "search",
}


class LazyGroup(click.Group):
    """A group that imports a subcommand's module only when that command is asked for."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        module = COMMANDS.get(cmd_name)
        return importlib.import_module(f"{__name__}.{module}").command if module else None


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="edgerank")
def main() -> None:
    """Turn a heavy BERT cross-encoder product ranker into a fast local one.

    Chain: teacher -> distill -> export -> rank / serve / bench. Models are local folders or Hugging
    Face Hub ids (read through the Hub cache); data and artifacts are local files.
    """


__all__ = ["main", "run_guarded"]

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
