"""Catalog students in a bench run: index the data file's whole catalog once, timed, so the tower
artifacts rank from a warm index as a kiosk would, and the report can state build time and size per
10k products next to the cross-encoders' latencies.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pandas as pd

from ..artifact import load_artifact
from ..runtime.towers import TOWER_KINDS
from .candidates import frame_records


def is_catalog_artifact(path: str | Path) -> bool:
    return load_artifact(path, verify=False).kind in TOWER_KINDS


def catalog_products(df: pd.DataFrame) -> list[dict[str, str]]:
    """Every product of the table once (its first row), as the records ``edgerank index`` reads."""
    return frame_records(df.drop_duplicates("product_id"))


def index_catalog(
    artifact: str | Path, products: list[dict[str, str]], out: Path, threads: int | None
) -> dict[str, Any]:
    """Build the index at ``out``; its build time and size, per 10k products too."""
    from ..runtime.catalog import build_index, load_index
    from ..runtime.towers import TowerScorer

    art = load_artifact(artifact)
    scorer = TowerScorer(art, max_batch_size=64, **({"threads": threads} if threads else {}))
    started = time.perf_counter()
    build_index(art, scorer, products, out)
    seconds = time.perf_counter() - started
    size = load_index(out, art, verify=False).describe()["bytes"]  # just written: no need to hash it again
    per_10k = 10_000 / len(products)
    return {
        "path": str(out),
        "products": len(products),
        "build_s": seconds,
        "bytes": size,
        "build_s_per_10k": seconds * per_10k,
        "mb_per_10k": size / 2**20 * per_10k,
    }
