"""The catalog index: every product's tower states computed once, memory-mapped at load.

A folder::

    index.json    format, kind, artifact_sha256, dim, dtype, counts, sha256 of every other file
    vectors.npy   product vectors (float16 by default): one row per token (late interaction) or per product
    offsets.npy   int64, products + 1: product i owns vectors[offsets[i]:offsets[i + 1]]
    pooled.npy    late interaction only: each product's mean token vector, normalised (the first stage of search)
    ids.json      ids (as given: str or int), the text key each state was computed from, truncation flags

Loading refuses an index made with another artifact (its manifest hash differs: the vectors would
mean nothing to this query tower) and one whose files fail their checksums. ``update_index`` writes a
complete new folder next to the old one and swaps it in by rename (``edgerank.io.atomic_dir``, stdlib
only), so an update that fails halfway leaves the previous index as it was.

Whole-catalog search. Bi-encoder: one matrix-vector product over all products. Late interaction:
exact MaxSim over every token of a 50k-product catalog means converting ~1M float16 token vectors
per query, which alone costs more than the 50 ms budget on a 2-core CPU; so a first stage scores
each product's pooled vector against the query's mean vector (one small matrix-vector product) and
exact MaxSim reranks the best ``depth`` (default 1000). ``depth=None`` searches exhaustively (exact,
in chunks). bench/results/catalog-*.md records the timings and the first stage's recall.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from ..artifact import Artifact, ArtifactError, confined_path, sha256_file
from ..io import atomic_dir
from .products import read_candidates
from .towers import ProductStates, TowerScorer, text_key

INDEX_FORMAT = 1
INDEX_FILE = "index.json"
DTYPES = ("float16", "float32", "int8")
#: int8 stores unit-vector components as round(x * 127): half the bytes of float16, each component
#: off by at most 0.004, and every matrix product still runs in float32 after one multiply
INT8_SCALE = 127.0
DEFAULT_DEPTH = 1000
_BUILD_BATCH = 256  # products tokenized and run per step: bounds memory while indexing a large catalog
_SEARCH_CHUNK = 2048  # products per exhaustive MaxSim step


class CatalogIndexError(ArtifactError):
    """An index that cannot be used with this artifact: missing, stale, tampered or of another format."""


@dataclass
class CatalogIndex:
    path: Path
    meta: dict[str, Any]
    ids: list[str | int]
    keys: list[str]
    truncated: np.ndarray
    vectors: np.ndarray  # memory-mapped, stored as meta["dtype"]
    offsets: np.ndarray
    pooled: np.ndarray | None  # float32, late interaction only

    def __post_init__(self) -> None:
        self._row = {str(pid): i for i, pid in enumerate(self.ids)}
        self._search_matrix: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.ids)

    def lookup(self, ids: Sequence[str | int], texts: Sequence[str]) -> np.ndarray:
        """Index row of each product, or -1 where the id is unknown or its text changed since indexing."""
        rows = np.full(len(ids), -1, dtype=np.int64)
        for i, (pid, text) in enumerate(zip(ids, texts)):
            row = self._row.get(str(pid))
            if row is not None and self.keys[row] == text_key(text):
                rows[i] = row
        return rows

    def floats(self, stored: np.ndarray) -> np.ndarray:
        """float32 vectors from their stored form."""
        out = np.asarray(stored, dtype=np.float32)
        return out * np.float32(1 / INT8_SCALE) if self.meta["dtype"] == "int8" else out

    def vectors_of(self, row: int) -> np.ndarray:
        return self.floats(self.vectors[self.offsets[row]:self.offsets[row + 1]])

    def gather(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Vectors (float32) and offsets of ``rows``, in that order, with one fancy-indexed read."""
        starts, lengths = self.offsets[rows], self.offsets[rows + 1] - self.offsets[rows]
        offsets = np.concatenate([[0], np.cumsum(lengths)])
        take = np.repeat(starts - offsets[:-1], lengths) + np.arange(offsets[-1])
        return self.floats(self.vectors[take]), offsets

    def search(self, scorer: TowerScorer, query_vectors: np.ndarray, top_k: int, depth: int | None = DEFAULT_DEPTH
               ) -> tuple[np.ndarray, np.ndarray]:
        """Rows and logits of the ``top_k`` best products, best first (ties: lower row first)."""
        n = len(self)
        if scorer.kind == "bi-encoder":
            if self._search_matrix is None:  # float32 copy made once: float16 matrix products are slow in numpy
                self._search_matrix = self.floats(self.vectors)
            candidates = np.arange(n)
            logits = scorer.scale * (self._search_matrix @ query_vectors[0]) + scorer.bias
        else:
            if depth is not None and depth < n:
                q = query_vectors.mean(axis=0)
                first = self.pooled @ q
                candidates = np.sort(np.argpartition(-first, depth - 1)[:depth])
            else:
                candidates = np.arange(n)
            logits = np.empty(len(candidates), dtype=np.float32)
            for start in range(0, len(candidates), _SEARCH_CHUNK):
                rows = candidates[start:start + _SEARCH_CHUNK]
                vectors, offsets = self.gather(rows)
                logits[start:start + len(rows)] = scorer.scores(query_vectors, vectors, offsets)
        k = min(top_k, len(candidates))
        best = np.argpartition(-logits, k - 1)[:k] if k < len(candidates) else np.arange(len(candidates))
        best = best[np.lexsort((candidates[best], -logits[best]))]
        return candidates[best], np.asarray(logits[best], dtype=np.float32)

    def describe(self) -> dict[str, Any]:
        return {"index": str(self.path), "products": len(self), "vectors": int(self.offsets[-1]),
                "dtype": self.meta["dtype"], "bytes": int(sum((self.path / f).stat().st_size for f in self.meta["files"]))}


def build_index(artifact: Artifact, scorer: TowerScorer, products: Sequence[Any], out: str | os.PathLike, *,
                dtype: str | None = None, progress=None) -> Path:
    """Index ``products`` (dicts or objects with id, title, description) at ``out``, replacing it atomically."""
    candidates = read_candidates(products)
    dtype = dtype or scorer.store_dtype
    if dtype not in DTYPES:
        raise CatalogIndexError(f"index dtype {dtype!r} is not one of {', '.join(DTYPES)}")
    texts = [c.text for c in candidates]
    states = _run_products(scorer, texts, progress)
    ids = [c.id for c in candidates]
    return _write(Path(out), artifact, scorer, ids, [text_key(t) for t in texts], states, dtype)


def update_index(artifact: Artifact, scorer: TowerScorer, path: str | os.PathLike, products: Sequence[Any], *,
                 progress=None) -> tuple[Path, dict[str, int]]:
    """Add new products and replace changed ones (same id); the old index stays in place until the new
    one is complete. Returns the path and counts of added, replaced and unchanged products."""
    old = load_index(path, artifact)
    candidates = read_candidates(products)
    rows = old.lookup([c.id for c in candidates], [c.text for c in candidates])
    changed = [c for c, r in zip(candidates, rows) if r < 0]
    replaced = {str(c.id) for c in changed} & set(old._row)
    keep = np.array([i for i, pid in enumerate(old.ids) if str(pid) not in replaced], dtype=np.int64)
    kept_vectors, kept_offsets = old.gather(keep) if len(keep) else (np.empty((0, old.meta["dim"]), np.float32),
                                                                      np.zeros(1, np.int64))
    new = _run_products(scorer, [c.text for c in changed], progress)
    states = ProductStates(np.concatenate([kept_vectors, new.vectors]),
                           np.concatenate([kept_offsets, kept_offsets[-1] + new.offsets[1:]]),
                           np.concatenate([old.truncated[keep], new.truncated]))
    ids = [old.ids[i] for i in keep] + [c.id for c in changed]
    keys = [old.keys[i] for i in keep] + [text_key(c.text) for c in changed]
    out = _write(Path(path), artifact, scorer, ids, keys, states, old.meta["dtype"])
    counts = {"added": len(changed) - len(replaced), "replaced": len(replaced), "unchanged": len(candidates) - len(changed)}
    return out, counts


def load_index(path: str | os.PathLike, artifact: Artifact, *, verify: bool = True) -> CatalogIndex:
    """Open an index for ``artifact``: refused when made with another artifact or when a file was modified.

    Every file it opens is listed in ``index.json`` with its sha256, confined to the folder and a
    regular file (as an artifact's files are), so a tampered index fails here, not in a query."""
    path = Path(path)
    meta = _read_meta(path)
    if meta.get("artifact_sha256") != artifact.sha256:
        raise CatalogIndexError(f"{path}: stale index: it was built with another artifact (sha256 "
                                f"{str(meta.get('artifact_sha256'))[:12]}..., this one is {artifact.sha256[:12]}...); "
                                f"rebuild it with edgerank index --artifact {artifact.path}")
    files = _index_files(path, meta, artifact.kind)
    if verify:
        for name, real in files.items():
            if sha256_file(real) != meta["files"][name]:
                raise CatalogIndexError(f"{path}: checksum mismatch for {name}: the index is corrupt or was modified")
    try:
        listing = json.loads(files["ids.json"].read_text())
        offsets = np.load(files["offsets.npy"])
        vectors = np.load(files["vectors.npy"], mmap_mode="r")
        pooled = np.load(files["pooled.npy"]).astype(np.float32) if "pooled.npy" in files else None
        ids, keys, truncated = listing["ids"], listing["keys"], np.asarray(listing["truncated"], dtype=bool)
    except (ValueError, KeyError, TypeError, OSError, EOFError) as e:
        reason = (str(e).splitlines() or [type(e).__name__])[0]
        raise CatalogIndexError(f"{path}: unreadable index file ({reason})") from None
    if (len(offsets) != len(ids) + 1 or len(keys) != len(ids) or len(truncated) != len(ids) or vectors.ndim != 2
            or offsets[-1] != len(vectors) or vectors.shape[1] != meta["dim"]):
        raise CatalogIndexError(f"{path}: ids, offsets and vectors do not agree in size")
    return CatalogIndex(path, meta, ids, keys, truncated, vectors, offsets, pooled)


def _read_meta(path: Path) -> dict[str, Any]:
    """``index.json``, checked for the fields the loader reads."""
    meta_file = _confined(path, INDEX_FILE) if path.is_dir() else None
    if meta_file is None:
        raise CatalogIndexError(f"{path}: not an edgerank catalog index (no {INDEX_FILE})")
    try:
        meta = json.loads(meta_file.read_text())
    except (ValueError, RecursionError) as e:
        raise CatalogIndexError(f"{path / INDEX_FILE}: corrupt ({(str(e).splitlines() or ['?'])[0]})") from None
    if not isinstance(meta, dict):
        raise CatalogIndexError(f"{path / INDEX_FILE}: corrupt (not a JSON object)")
    if meta.get("format") != INDEX_FORMAT:
        raise CatalogIndexError(f"{path}: index format {meta.get('format')!r}; this edgerank reads {INDEX_FORMAT}")
    if meta.get("dtype") not in DTYPES:
        raise CatalogIndexError(f"{path}: {INDEX_FILE} field 'dtype' must be one of {', '.join(DTYPES)}")
    if isinstance(meta.get("dim"), bool) or not isinstance(meta.get("dim"), int) or meta["dim"] < 1:
        raise CatalogIndexError(f"{path}: {INDEX_FILE} field 'dim' must be a positive integer")
    if not isinstance(meta.get("files"), dict):
        raise CatalogIndexError(f"{path}: {INDEX_FILE} field 'files' must be a JSON object")
    return meta


def _index_files(path: Path, meta: dict[str, Any], kind: str) -> dict[str, Path]:
    """Real paths of the files the loader opens for a ``kind`` artifact: each listed in ``index.json``,
    present and confined."""
    needed = ["ids.json", "offsets.npy", "vectors.npy"] + (["pooled.npy"] if kind == "late-interaction" else [])
    out = {}
    for name in needed:
        if name not in meta["files"]:
            raise CatalogIndexError(f"{path}: {INDEX_FILE} does not list {name}, so it cannot be verified")
        real = _confined(path, name)
        if real is None:
            raise CatalogIndexError(f"{path}: file {name} listed in {INDEX_FILE} is missing")
        out[name] = real
    return out


def _confined(path: Path, name: str) -> Path | None:
    """``artifact.confined_path`` for an index file, failing as a CatalogIndexError."""
    try:
        return confined_path(path, name)
    except ArtifactError as e:
        raise CatalogIndexError(str(e)) from None


def _run_products(scorer: TowerScorer, texts: Sequence[str], progress=None) -> ProductStates:
    """The product tower over ``texts`` in steps of ``_BUILD_BATCH``; ``progress(done, total)`` after each."""
    parts = []
    for start in range(0, len(texts), _BUILD_BATCH):
        parts.append(scorer.products(texts[start:start + _BUILD_BATCH]))
        if progress is not None:
            progress(min(start + _BUILD_BATCH, len(texts)), len(texts))
    if not parts:
        return ProductStates(np.empty((0, scorer.dim), np.float32), np.zeros(1, np.int64), np.zeros(0, bool))
    offsets = [parts[0].offsets]
    for p in parts[1:]:
        offsets.append(offsets[-1][-1] + p.offsets[1:])
    return ProductStates(np.concatenate([p.vectors for p in parts]), np.concatenate(offsets),
                         np.concatenate([p.truncated for p in parts]))


def _write(out: Path, artifact: Artifact, scorer: TowerScorer, ids: list, keys: list[str], states: ProductStates,
           dtype: str) -> Path:
    with atomic_dir(out) as tmp:
        stored = np.rint(states.vectors * INT8_SCALE).clip(-127, 127) if dtype == "int8" else states.vectors
        np.save(tmp / "vectors.npy", stored.astype(dtype))
        np.save(tmp / "offsets.npy", states.offsets.astype(np.int64))
        if scorer.kind == "late-interaction":  # only orders the first stage: float16 is plenty
            np.save(tmp / "pooled.npy", _pooled(states).astype(np.float16))
        (tmp / "ids.json").write_text(json.dumps({"ids": ids, "keys": keys, "truncated": states.truncated.tolist()}))
        files = {p.name: sha256_file(p) for p in sorted(tmp.iterdir())}
        meta = {"format": INDEX_FORMAT, "edgerank_version": __version__, "kind": scorer.kind,
                "artifact": str(artifact.path), "artifact_sha256": artifact.sha256, "dim": scorer.dim,
                "dtype": dtype, "products": len(ids), "vectors": int(states.offsets[-1]), "files": files}
        (tmp / INDEX_FILE).write_text(json.dumps(meta, indent=2) + "\n")
    return out


def _pooled(states: ProductStates) -> np.ndarray:
    """Each product's mean token vector, normalised: what the search's first stage compares."""
    sums = np.add.reduceat(states.vectors, states.offsets[:-1], axis=0) if len(states) else states.vectors[:0]
    norms = np.linalg.norm(sums, axis=1, keepdims=True)
    return sums / np.maximum(norms, 1e-12)


__all__ = ["CatalogIndex", "CatalogIndexError", "DEFAULT_DEPTH", "build_index", "load_index", "update_index"]
