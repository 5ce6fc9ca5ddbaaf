"""Read the caller's products (dicts or objects) into what the model scores, without touching them.

A product needs an ``id`` (str or int) and a non-empty ``title``; ``description`` is optional. The
text the cross-encoder reads is built by ``edgerank.core.product_text``, the one rule training,
export and bench use too.
"""

from __future__ import annotations

import csv
import io
import json
import os
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.text import product_text
from .errors import RankerInputError

_MISSING = object()


def get_field(product: Any, name: str, default: Any = None) -> Any:
    """A field of a dict-like product (key) or of any other object (attribute)."""
    if isinstance(product, Mapping):
        return product.get(name, default)
    return getattr(product, name, default)


def check_text(value: Any, where: str, *, required: bool) -> str:
    """A usable string, or a ``RankerInputError`` naming ``where``.

    Strings with lone surrogates are refused here because the tokenizer cannot encode them and would
    otherwise fail deep inside with an unrelated message.
    """
    if value is None:
        if required:
            raise RankerInputError(f"{where}: missing")
        return ""
    if not isinstance(value, str):
        raise RankerInputError(f"{where}: expected a string, got {type(value).__name__}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise RankerInputError(f"{where}: not valid Unicode text (contains a lone surrogate)") from None
    if required and not _visible(value):
        raise RankerInputError(f"{where}: empty (no visible characters)")
    return value


def _visible(text: str) -> bool:
    """True when ``text`` has a character a reader could see: NULs, control and format characters
    (zero-width spaces, joiners, byte-order marks) and whitespace alone make an empty text."""
    return any(not c.isspace() and unicodedata.category(c) not in ("Cc", "Cf") for c in text)


@dataclass(frozen=True)
class Candidate:
    """One product as the ranker sees it; ``index`` points back into the caller's sequence."""

    index: int
    id: str | int
    text: str


def read_candidates(products: Any) -> list[Candidate]:
    """Validate every product before any scoring starts, so bad input costs no model time."""
    if isinstance(products, (str, bytes, Mapping)) or not isinstance(products, Sequence):
        raise RankerInputError(f"products: expected a list of products, got {type(products).__name__}")
    if not products:
        raise RankerInputError("products: empty list, nothing to rank")
    seen: dict[str, int] = {}
    out = []
    for i, product in enumerate(products):
        pid = get_field(product, "id", _MISSING)
        if pid is _MISSING or pid is None:
            raise RankerInputError(f"product {i}: no 'id'")
        if isinstance(pid, bool) or not isinstance(pid, (str, int)):
            raise RankerInputError(f"product {i}: field 'id': expected a string or integer, got {type(pid).__name__}")
        if isinstance(pid, int) and not -(2**63) <= pid < 2**64:  # before any str(): huge ints cannot be printed
            raise RankerInputError(
                f"product {i}: field 'id': integer ids must fit in 64 bits "
                f"(this one has {pid.bit_length()} bits); send long ids as strings"
            )
        where = f"product {i} (id {pid!r})"
        if isinstance(pid, str):
            check_text(pid, f"{where}: field 'id'", required=True)
        key = str(pid)
        if key in seen:
            raise RankerInputError(f"{where}: duplicate id (also product {seen[key]})")
        seen[key] = i
        title = check_text(get_field(product, "title"), f"{where}: field 'title'", required=True)
        description = check_text(get_field(product, "description"), f"{where}: field 'description'", required=False)
        out.append(Candidate(index=i, id=pid, text=product_text(title, description)))
    return out


#: column names other tools use for the three product fields (Home Depot / ESCI tables, feeds)
COLUMN_ALIASES = {
    "product_id": "id",
    "product_uid": "id",
    "product_title": "title",
    "name": "title",
    "product_description": "description",
}


def read_products_file(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Products from a CSV (header row) or JSONL file, as dicts, with common column names mapped
    onto ``id``/``title``/``description``. Other columns (``in_stock``, ``price`` ...) are kept for
    blending. Stdlib only, so a runtime-only install can read a shop's catalog export."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise RankerInputError(f"{path}: cannot read ({e.strerror})") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise RankerInputError(f"{path}: line {line}: not UTF-8 text") from None
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        rows = []
        for n, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except (ValueError, RecursionError) as e:
                raise RankerInputError(f"{path}: line {n}: not valid JSON ({e})") from None
            if not isinstance(row, dict):
                raise RankerInputError(f"{path}: line {n}: expected a JSON object")
            rows.append(row)
    elif suffix in (".csv", ".tsv"):
        try:
            rows = list(csv.DictReader(io.StringIO(text, newline=""), delimiter="\t" if suffix == ".tsv" else ","))
        except csv.Error as e:
            raise RankerInputError(f"{path}: not valid CSV ({e})") from None
        for n, row in enumerate(rows, start=2):
            if None in row or any(v is None for v in row.values()):
                raise RankerInputError(f"{path}: line {n}: wrong number of fields for the header")
    else:
        raise RankerInputError(f"{path}: unknown format '{path.suffix}' (use .csv, .tsv or .jsonl)")
    if not rows:
        raise RankerInputError(f"{path}: no products")
    return [_canonical_names(row) for row in rows]


def _canonical_names(row: dict[str, Any]) -> dict[str, Any]:
    """Rename aliased columns unless the row already has the canonical one (then both are kept)."""
    out = {}
    for k, v in row.items():
        name = COLUMN_ALIASES.get(k, k)
        out[k if name in row and name != k else name] = v
    return out
