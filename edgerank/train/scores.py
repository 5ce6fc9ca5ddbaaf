"""Teacher scores, computed once and reused across distillation runs and sweeps.

Scoring 50k pairs with a teacher costs minutes on a CPU, more than training a small student for an
epoch, so scores are cached in a Parquet file per teacher: ``<cache>/<teacher-hash>.parquet`` with
columns ``query_id, product_id, score`` (one file per max length too). The hash covers the teacher's weights and config, so a
retrained teacher never reuses stale scores. A score file made elsewhere (e.g. on a GPU box) with
the same columns is accepted as is.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pandas as pd

from ..data import DataError
from ..io import atomic_write_bytes
from ..modeling import MODELS_HOME, score_pairs

SCORES_HOME = MODELS_HOME.parent / "scores"


def teacher_hash(folder: str | os.PathLike) -> str:
    """sha256 over the files that decide the teacher's scores (weights, config, tokenizer)."""
    folder = Path(folder)
    h = hashlib.sha256()
    names = sorted(
        p.name
        for p in folder.iterdir()
        if p.suffix in {".safetensors", ".bin", ".json"}
        and p.name not in {"metrics.json"}
        and not p.name.startswith("edgerank_")
    )
    for name in names:
        h.update(name.encode())
        with open(folder / name, "rb") as f:
            while block := f.read(1 << 20):
                h.update(block)
    return h.hexdigest()


def read_score_file(path: str | os.PathLike) -> pd.DataFrame:
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such score file")
    df = (
        pd.read_parquet(path)
        if path.suffix == ".parquet"
        else pd.read_csv(path, dtype={"query_id": str, "product_id": str})
    )
    for col in ("query_id", "product_id", "score"):
        if col not in df.columns:
            raise DataError(f"{path}: missing column '{col}' in score file (need query_id, product_id, score)")
    df["query_id"], df["product_id"] = df["query_id"].astype(str), df["product_id"].astype(str)
    bad = ~np.isfinite(pd.to_numeric(df["score"], errors="coerce").to_numpy(dtype=float))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataError(f"{path}: row {i + 1}: field 'score': not a finite number: {df['score'].iloc[i]!r}")
    return df.drop_duplicates(["query_id", "product_id"], keep="last")


def lookup(scores: pd.DataFrame, pairs: pd.DataFrame, source: str) -> np.ndarray:
    """Scores for ``pairs`` (query_id, product_id) in order; a clear error when any are missing."""
    merged = pairs[["query_id", "product_id"]].merge(scores, on=["query_id", "product_id"], how="left")
    missing = merged["score"].isna()
    if missing.any():
        first = merged[missing].iloc[0]
        raise DataError(
            f"{source}: no teacher score for {int(missing.sum())} of {len(pairs)} pair(s), e.g. "
            f"query_id={first.query_id!r} product_id={first.product_id!r}"
        )
    return merged["score"].to_numpy(dtype=np.float32)


def teacher_scores(
    pairs: pd.DataFrame,
    *,
    teacher_dir: str | os.PathLike | None = None,
    model=None,
    tokenizer=None,
    score_file: str | os.PathLike | None = None,
    max_length: int = 128,
    cache_dir: str | os.PathLike | None = None,
    log=print,
) -> np.ndarray:
    """Teacher scores for ``pairs`` (columns query_id, query, product_id, text), in row order.

    With ``score_file`` the scores come from that file only. Otherwise the teacher's cache is read,
    only the missing pairs are scored, and the cache is rewritten atomically with them added.
    """
    if score_file is not None:
        return lookup(read_score_file(score_file), pairs, str(score_file))
    cache = Path(cache_dir or SCORES_HOME) / f"{teacher_hash(teacher_dir)[:24]}-len{max_length}.parquet"
    known = read_score_file(cache) if cache.exists() else pd.DataFrame(columns=["query_id", "product_id", "score"])
    keys = pairs[["query_id", "product_id"]].merge(known, on=["query_id", "product_id"], how="left")
    todo = keys["score"].isna().to_numpy()
    if todo.any():
        log(f"teacher: scoring {int(todo.sum())} pair(s) not in the cache {cache}")
        new = pairs.loc[todo, ["query_id", "product_id"]].copy()
        new["score"] = score_pairs(
            model,
            tokenizer,
            pairs.loc[todo, "query"].tolist(),
            pairs.loc[todo, "text"].tolist(),
            max_length=max_length,
            progress=True,
        )
        known = pd.concat([known, new], ignore_index=True) if len(known) else new
        cache.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(cache, known.to_parquet(index=False))
    else:
        log(f"teacher: all {len(pairs)} scores found in the cache {cache}")
    return lookup(known, pairs, str(cache))
