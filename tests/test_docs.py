"""The guides' commands are real: every `edgerank ...` line in README.md and docs/ parses with the
options and values the CLI has today (`make demo` runs the quick start's chain end to end)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest

from edgerank.cli import main

ROOT = Path(__file__).resolve().parents[1]
GUIDES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def documented_commands() -> list[tuple[str, str]]:
    out = []
    for path in GUIDES:
        for block in re.findall(r"```(?:bash|sh|console)\n(.*?)```", path.read_text(), re.S):
            for line in block.replace("\\\n", " ").splitlines():
                line = line.split(" #")[0].strip()
                if line.startswith("edgerank "):
                    out.append((path.relative_to(ROOT).as_posix(), line))
    return out


def test_the_guides_show_commands():
    files = {f for f, _ in documented_commands()}
    assert len(documented_commands()) >= 20 and {"README.md", "docs/export.md", "docs/runtime.md"} <= files


@pytest.mark.parametrize("where, line", documented_commands())
def test_documented_command_parses(where, line):
    args = shlex.split(line)[1:]
    command = main.get_command(click.Context(main), args[0])
    assert command is not None, f"{where}: no command {args[0]!r}"
    try:
        command.make_context(args[0], args[1:])
    except click.exceptions.Exit:  # --help
        pass
    except click.UsageError as e:
        pytest.fail(f"{where}: `{line}`: {e.format_message()}")
