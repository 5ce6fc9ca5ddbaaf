"""Read query–product relevance tables into one canonical frame.

Every later stage (teacher, distill, export, bench) consumes the frame this module returns, so all
validation happens here, once, with errors that name the file, the row and the field.

Canonical columns: ``query_id, query, product_id, product_title, product_description, relevance``.
Rows are numbered from 1 in the order they appear in the file (the header is not a row).

What stops the read (``DataError``, one line, non-zero exit in the CLI): an unreadable or empty file,
undecodable bytes, a missing required column, a label that is empty or not a number, a label name
without a mapping. What is skipped with a counted warning: rows whose query or title is empty
(they cannot be scored) and repeated (query, product) pairs (the first is kept).
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .core.groups import Catalog, QueryGroup, evaluable, score_by_group  # noqa: F401 (also read from here)
from .core.text import product_text

CANONICAL = ("query_id", "query", "product_id", "product_title", "product_description", "relevance")

#: Amazon's gains for the ESCI labels (Reddy et al. 2022, the Shopping Queries baseline).
ESCI_GAINS: dict[str, float] = {"E": 1.0, "S": 0.1, "C": 0.01, "I": 0.0}

#: Other names seen in public product-search data, mapped onto the canonical ones.
ALIASES: dict[str, str] = {
    "search_term": "query",  # Home Depot (Kaggle)
    "product_uid": "product_id",  # Home Depot (Kaggle)
    "title": "product_title",
    "product_name": "product_title",
    "description": "product_description",
    "qid": "query_id",
    "label": "relevance",
    "esci_label": "relevance",  # ESCI; mapped through ESCI_GAINS unless told otherwise
}


class DataError(ValueError):
    """Bad input, with a message that names the file, the row and the field."""


@dataclass
class ReadReport:
    """What a read skipped, so callers can print it rather than lose it."""

    path: str
    rows: int = 0
    skipped: dict[str, int] = field(default_factory=dict)

    def skip(self, reason: str, n: int = 1) -> None:
        if n:
            self.skipped[reason] = self.skipped.get(reason, 0) + n

    def warnings(self) -> list[str]:
        return [f"{self.path}: skipped {n} row(s): {why}" for why, n in self.skipped.items()]


def stable_id(prefix: str, text: str) -> str:
    """An id that is the same on every machine and run (Python's hash() is salted per process)."""
    return prefix + hashlib.sha1(text.encode("utf-8")).hexdigest()[:12]


def _decode(path: Path, raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        row = raw[: e.start].count(b"\n")  # header is line 0 for CSV; JSONL rows start at line 0
        raise DataError(
            f"{path}: row {row if path.suffix.lower() in {'.csv', '.tsv'} else row + 1}: "
            f"undecodable bytes (not UTF-8) at byte offset {e.start}"
        ) from None


def _load_raw(path: Path) -> pd.DataFrame:
    if not path.exists():
        raise DataError(f"{path}: no such file")
    if not path.is_file():
        raise DataError(f"{path}: not a file (give the table itself: .csv, .tsv, .jsonl or .parquet)")
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".parquet":
        try:
            return pd.read_parquet(path)
        except Exception as e:  # pyarrow raises many types for a broken file
            raise DataError(f"{path}: not a readable Parquet file ({e.__class__.__name__}: {e})") from None
    raw = path.read_bytes()
    if suffixes and suffixes[-1] in {".zst", ".zstd"}:
        import zstandard

        raw = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(raw)).read()
        suffixes = suffixes[:-1]
    if not raw.strip():
        raise DataError(f"{path}: empty file")
    text = _decode(path, raw)
    kind = suffixes[-1] if suffixes else ""
    if kind in {".csv", ".tsv"}:
        try:
            return pd.read_csv(io.StringIO(text), sep="\t" if kind == ".tsv" else ",", dtype=str, keep_default_na=False)
        except pd.errors.ParserError as e:
            ragged = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(e))
            if ragged:  # pandas counts the header as line 1; our rows start after it
                raise DataError(
                    f"{path}: row {int(ragged[2]) - 1}: expected {ragged[1]} fields, saw {ragged[3]}"
                ) from None
            raise DataError(f"{path}: not valid CSV ({' '.join(str(e).split())})") from None
    if kind in {".jsonl", ".json", ".ndjson"}:
        records = []
        for i, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{path}: row {i}: not valid JSON ({e.msg})") from None
            if not isinstance(rec, dict):
                raise DataError(f"{path}: row {i}: expected a JSON object")
            records.append(rec.get("fields", rec) if "put" in rec else rec)  # Vespa feed lines
        return pd.DataFrame.from_records(records)
    raise DataError(f"{path}: unknown format '{path.suffix}' (use .csv, .tsv, .jsonl, .parquet)")


def _to_text(series: pd.Series) -> pd.Series:
    return series.map(lambda v: "" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v).strip())


def _parse_labels(path: Path, values: pd.Series, label_map: Mapping[str, float] | None) -> np.ndarray:
    out = np.empty(len(values), dtype=np.float64)
    for i, v in enumerate(values.tolist()):
        if label_map is not None and str(v).strip() in label_map:
            out[i] = label_map[str(v).strip()]
            continue
        if v is None or str(v).strip() == "":
            raise DataError(f"{path}: row {i + 1}: field 'relevance': empty")
        try:
            x = float(v)
        except (TypeError, ValueError):
            hint = (
                f" (no mapping for label '{v}'; pass --label-map)"
                if label_map is not None or not str(v).strip().lstrip("-").replace(".", "", 1).isdigit()
                else ""
            )
            raise DataError(f"{path}: row {i + 1}: field 'relevance': not a number: {v!r}{hint}") from None
        if math.isnan(x) or math.isinf(x):
            raise DataError(f"{path}: row {i + 1}: field 'relevance': missing or not finite ({v!r})")
        out[i] = x
    return out


def read_table(
    path: str | Path,
    *,
    columns: Mapping[str, str] | None = None,
    label_map: Mapping[str, float] | None = None,
    require_relevance: bool = True,
    products: str | Path | None = None,
) -> tuple[pd.DataFrame, ReadReport]:
    """Read one table and return it in canonical form with a report of skipped rows.

    ``columns`` maps canonical names to names in the file (``{"query": "search_term"}``) and wins
    over the built-in aliases. ``label_map`` turns categorical labels into gains; ESCI's
    ``esci_label`` gets Amazon's gains when no map is given. ``products`` is an optional catalog
    (CSV/JSONL/Parquet, e.g. ESCI's product feed) joined on ``product_id`` to supply titles and
    descriptions the judgement table lacks.
    """
    path = Path(path)
    df = _load_raw(path)
    if len(df) == 0:
        raise DataError(f"{path}: no rows")
    report = ReadReport(path=str(path), rows=len(df))

    _check_mapped(path, df, columns)
    rename = {c: ALIASES[c] for c in df.columns if c in ALIASES and ALIASES[c] not in df.columns}
    rename.update({name: canon for canon, name in (columns or {}).items()})
    if "esci_label" in df.columns and rename.get("esci_label") == "relevance" and label_map is None:
        label_map = ESCI_GAINS
    df = df.rename(columns=rename)

    if products is not None:
        df = _join_products(path, df, Path(products))

    required = ["query", "product_title"] + (["relevance"] if require_relevance else [])
    for col in required:
        if col not in df.columns:
            raise DataError(
                f"{path}: missing column '{col}' (found: {', '.join(map(str, df.columns))}; "
                f"map one with --column {col}=NAME)"
            )

    out = pd.DataFrame(index=df.index)
    out["query"] = _to_text(df["query"])
    out["product_title"] = _to_text(df["product_title"])
    out["product_description"] = _to_text(df["product_description"]) if "product_description" in df else ""
    out["query_id"] = _to_text(df["query_id"]) if "query_id" in df else ""
    out.loc[out["query_id"] == "", "query_id"] = out["query"].map(lambda q: stable_id("q-", q))
    out["product_id"] = _to_text(df["product_id"]) if "product_id" in df else ""
    no_pid = out["product_id"] == ""
    out.loc[no_pid, "product_id"] = out.loc[no_pid, "product_title"].map(lambda t: stable_id("p-", t))
    if "relevance" in df.columns:
        out["relevance"] = _parse_labels(path, df["relevance"], label_map)
    out = out.reset_index(drop=True)

    empty = (out["query"] == "") | (out["product_title"] == "")
    report.skip("empty query or product title", int(empty.sum()))
    dup = out.duplicated(subset=["query_id", "product_id"], keep="first") & ~empty
    report.skip("repeated (query_id, product_id) pair; first kept", int(dup.sum()))
    out = out[~(empty | dup)]
    out.insert(0, "row", out.index + 1)  # 1-based row in the source file, for later messages
    out = out.reset_index(drop=True)
    if len(out) == 0:
        raise DataError(f"{path}: no usable rows after skipping ({'; '.join(report.warnings())})")
    return out[[c for c in ("row",) + CANONICAL if c in out.columns]], report


def _check_mapped(path: Path, df: pd.DataFrame, columns: Mapping[str, str] | None) -> None:
    """A --column naming nothing in the file is a typo, not a wish to fall back on the aliases."""
    for canon, name in (columns or {}).items():
        if name not in df.columns:
            raise DataError(
                f"{path}: --column {canon}={name}: no column '{name}' (found: {', '.join(map(str, df.columns))})"
            )


def _join_products(path: Path, df: pd.DataFrame, products: Path) -> pd.DataFrame:
    cat, _ = read_catalog(products)
    if "product_id" not in df.columns:
        raise DataError(f"{path}: missing column 'product_id' needed to join {products}")
    df = df.copy()
    df["product_id"] = _to_text(df["product_id"])
    idx = cat.set_index("product_id")
    for col in ("product_title", "product_description"):
        if col not in df.columns:
            df[col] = df["product_id"].map(idx[col])
    missing = df["product_title"].isna()
    if missing.any():
        first = int(np.flatnonzero(missing.to_numpy())[0])
        raise DataError(
            f"{path}: row {first + 1}: field 'product_id': {df['product_id'].iloc[first]!r} not found in "
            f"{products} ({int(missing.sum())} row(s) unmatched)"
        )
    return df


def read_catalog(path: str | Path, *, columns: Mapping[str, str] | None = None) -> tuple[pd.DataFrame, ReadReport]:
    """Read a product catalog (id, title, optional description), e.g. for ranking or topping up lists."""
    path = Path(path)
    df = _load_raw(path)
    if len(df) == 0:
        raise DataError(f"{path}: no rows")
    report = ReadReport(path=str(path), rows=len(df))
    rename = {c: ALIASES[c] for c in df.columns if c in ALIASES and ALIASES[c] not in df.columns}
    _check_mapped(path, df, columns)
    if "id" in df.columns and "product_id" not in df.columns:
        rename["id"] = "product_id"
    rename.update({name: canon for canon, name in (columns or {}).items()})
    df = df.rename(columns=rename)
    for col in ("product_id", "product_title"):
        if col not in df.columns:
            raise DataError(f"{path}: missing column '{col}' (found: {', '.join(map(str, df.columns))})")
    out = pd.DataFrame(
        {
            "product_id": _to_text(df["product_id"]),
            "product_title": _to_text(df["product_title"]),
            "product_description": _to_text(df["product_description"]) if "product_description" in df else "",
        }
    )
    bad = (out["product_id"] == "") | (out["product_title"] == "")
    report.skip("empty product id or title", int(bad.sum()))
    out = out[~bad]
    dup = out.duplicated("product_id", keep="first")
    report.skip("repeated product_id; first kept", int(dup.sum()))
    return out[~dup].reset_index(drop=True), report


def product_texts(df: pd.DataFrame) -> list[str]:
    """Each row's product text (``edgerank.core.product_text``, the rule the runtime applies too)."""
    return [product_text(t, d) for t, d in zip(df["product_title"], df["product_description"])]


def table_catalog(df: pd.DataFrame) -> Catalog:
    """Every distinct product of a table (its first row's text), the catalog serving lists are filled
    from when no products file is given: a split's products are what its queries could be shown."""
    rows = np.flatnonzero(~df["product_id"].duplicated(keep="first").to_numpy())  # positions, as QueryGroup.rows
    first = df.iloc[rows]
    return Catalog(
        product_ids=tuple(map(str, first["product_id"])), texts=tuple(product_texts(first)), rows=rows.astype(np.int64)
    )


def file_catalog(path: str | Path, *, columns: Mapping[str, str] | None = None) -> Catalog:
    """A products file (``read_catalog``) as a catalog; its rows point into that file, not a judged table."""
    df, _ = read_catalog(path, columns=columns)
    return Catalog(product_ids=tuple(df["product_id"]), texts=tuple(product_texts(df)), rows=None)


def gain_offset(df: pd.DataFrame, offset: float | str = "auto") -> float:
    """The label that means "no gain". ``auto`` takes the table's smallest label (1.0 for Home Depot's
    1–3 scale, 0 for ESCI gains), so nDCG gains are ``relevance - offset`` and never negative."""
    if offset == "auto":
        return float(df["relevance"].min()) if "relevance" in df else 0.0
    return float(offset)


def group_queries(df: pd.DataFrame, offset: float | str = "auto") -> list[QueryGroup]:
    """Build each query's candidate list, in the order the products appear in the table."""
    off = gain_offset(df, offset)
    texts = np.asarray(product_texts(df), dtype=object)
    has_labels = "relevance" in df.columns
    gains = (df["relevance"].to_numpy(dtype=np.float64) - off) if has_labels else None
    # Columns become arrays once: converting a (pyarrow-backed) column per query made this quadratic
    # in the table, minutes for the 250k rows of an augmented Home Depot train set.
    queries, product_ids = df["query"].to_numpy(dtype=object), df["product_id"].to_numpy(dtype=object)
    groups = []
    for qid, idx in df.groupby("query_id", sort=False).indices.items():
        groups.append(
            QueryGroup(
                query_id=str(qid),
                query=str(queries[idx[0]]),
                product_ids=tuple(product_ids[idx]),
                texts=tuple(texts[idx]),
                labels=gains[idx] if gains is not None else None,
                rows=np.asarray(idx),
            )
        )
    return groups


def split_by_query(df: pd.DataFrame, dev_fraction: float = 0.1, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split so no query crosses splits, by a stable hash of the query id (same split on every machine)."""
    if not 0.0 < dev_fraction < 1.0:
        raise ValueError("dev_fraction must be between 0 and 1")
    bucket = df["query_id"].map(lambda q: int(hashlib.sha1(f"{seed}:{q}".encode()).hexdigest()[:8], 16) / 2**32)
    is_dev = bucket < dev_fraction
    return df[~is_dev].reset_index(drop=True), df[is_dev].reset_index(drop=True)


def parse_mapping(items: Iterable[str], what: str) -> dict[str, str]:
    """Parse ``KEY=VALUE`` options from the command line."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key or not value:
            raise DataError(f"{what}: expected KEY=VALUE, got {item!r}")
        out[key.strip()] = value.strip()
    return out
