"""Suite files (``bench/suites/*.toml``): which data, which artifacts and models, which candidate counts.

A suite is the reviewable, versioned form of a command line: every key is a ``edgerank bench``
option (``artifacts``/``models`` are lists; ``reference`` is a table with ``tokens``, ``hidden``,
``inner``). Paths are relative to the suite file, so a suite means the same from any directory.
Options given on the command line win over the suite's.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from . import BenchError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

PATH_KEYS = ("data", "teacher", "json", "markdown", "plot", "check")
PATH_LIST_KEYS = ("artifacts", "models")
KNOWN = (
    set(PATH_KEYS)
    | set(PATH_LIST_KEYS)
    | {
        "description",
        "candidates",
        "threads",
        "warmup",
        "repeat",
        "queries",
        "quality_queries",
        "seed",
        "max_length",
        "peers",
        "memory",
        "gpu",
        "reference",
        "columns",
        "label_map",
        "gain_offset",
        "max_regression",
        "max_quality_drop",
    }
)


def load_suite(path: str | Path) -> dict[str, Any]:
    """The suite's options, with paths resolved against the suite file's folder."""
    path = Path(path)
    try:
        suite = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BenchError(f"{path}: no such suite file") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise BenchError(f"{path}: not a valid TOML suite ({e})") from None
    unknown = sorted(set(suite) - KNOWN)
    if unknown:
        raise BenchError(f"{path}: unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(KNOWN))})")
    base = path.parent
    for key in PATH_KEYS:
        if key in suite:
            suite[key] = str(base / suite[key])
    for key in PATH_LIST_KEYS:
        if key in suite:
            if not isinstance(suite[key], list):
                raise BenchError(f"{path}: '{key}' must be a list of paths")
            suite[key] = [str(base / p) for p in suite[key]]
    return suite
