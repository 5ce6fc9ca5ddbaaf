"""The catalog index: every product's tower states computed once, memory-mapped at load.

A folder::

    index.json     format, kind, artifact_sha256, dim, dtype, counts, sha256 of every other file
    ids.json       ids (as given: str or int), the text key each state was computed from, truncation flags
    offsets.npy    int64, products + 1: product i owns stored rows offsets[i]:offsets[i + 1]
    vectors.npy    float16 (default), float32 or int8 rows: one per token (late interaction) or per product
    -- late interaction also --
    centroids.npy, coarse.npy   the codec's centroids and their coarse cells (edgerank/runtime/codec.py)
    codes.npy      uint16: each token's centroid
    residuals.npy, bucket_cutoffs.npy, bucket_weights.npy
                   ``residual-2bit`` / ``residual-1bit`` indexes, in place of vectors.npy: each token's
                   residual from its centroid, packed (ColBERTv2's compression, ~7x smaller than float16)

Loading refuses an index made with another artifact (its manifest hash differs: the vectors would
mean nothing to this query tower) and one whose files fail their checksums. Building streams the
product tower into memory-mapped files, so a catalog of millions of products never sits in memory as
float32. ``update_index`` writes a complete new folder next to the old one and swaps it in by rename
(``edgerank.io.atomic_dir``), so an update that fails halfway leaves the previous index as it was; it
keeps the index's centroids, so kept products are copied as stored, never re-quantized.

Whole-catalog search. Bi-encoder: one matrix-vector product over all products. Late interaction
(PLAID's stages, Santhanam et al. 2022): each query token's ``nprobe`` best centroids name the
candidate products (the tokens listed under them), first scored from those lists alone; the best are
scored by the MaxSim of the query against their tokens' centroids (one gather from a ``centroids x
query tokens`` score matrix); the best ``depth`` of those are reranked by MaxSim over their stored
vectors (decoded, for a compressed index). ``depth=None`` searches
exhaustively (exact MaxSim over every stored vector, in chunks). Indexes of format 1 (no centroids)
still load and search through their pooled vectors. bench/results/catalog-index.md records timings,
sizes and the recall of the staged search.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from ..artifact import Artifact, ArtifactError, confined_path, sha256_file
from ..io import atomic_dir
from .codec import Codec, centroid_count
from .products import read_candidates
from .towers import ProductStates, TowerScorer, text_key

INDEX_FORMAT = 2
READ_FORMATS = (1, 2)
INDEX_FILE = "index.json"
FLOAT_DTYPES = ("float16", "float32", "int8")
RESIDUAL_BITS = {"residual-2bit": 2, "residual-1bit": 1}
DTYPES = FLOAT_DTYPES + tuple(RESIDUAL_BITS)
#: int8 stores unit-vector components as round(x * 127): half the bytes of float16, each component
#: off by at most 0.004, and every matrix product still runs in float32 after one multiply
INT8_SCALE = 127.0
DEFAULT_DEPTH = 128
#: centroids probed per query token: with ~8 sqrt(tokens) centroids, recall@10 of the staged search
#: against exhaustive MaxSim ~0.97 on Home Depot (bench/results/catalog-index.md)
DEFAULT_NPROBE = 8
_BUILD_BATCH = 256  # products tokenized and run per step
_TOKEN_CHUNK = 1 << 16  # stored rows per step while counting, assigning centroids and compressing
_CODEC_SAMPLE = 32  # token vectors sampled per centroid to train the codec
_BROAD, _MIN_BROAD = 0.02, 256  # a list of more products than this share (and count) is not probed
#: products scored by centroid MaxSim: 16 per product reranked exactly, and at least 0.8% of the catalog
#: (the inverted lists' first score loses more of the best in a large catalog)
_REFINE, _REFINE_SHARE = 16, 0.008
_SEARCH_CHUNK = 2048  # products per exhaustive MaxSim step
_STATES_TMP = "states.tmp.npy"  # float16 token vectors of a residual index being built, removed before sealing

Progress = Callable[[int, int], None]


class CatalogIndexError(ArtifactError):
    """An index that cannot be used with this artifact: missing, stale, tampered or of another format."""


@dataclass
class CatalogIndex:
    path: Path
    meta: dict[str, Any]
    ids: list[str | int]
    keys: list[str]
    truncated: np.ndarray
    vectors: np.ndarray  # memory-mapped stored rows: meta["dtype"], or packed residuals (uint8)
    offsets: np.ndarray
    pooled: np.ndarray | None  # float32, format-1 late-interaction indexes only
    codes: np.ndarray | None = None  # memory-mapped uint16 centroid per token (format 2 late interaction)
    codec: Codec | None = None
    _lists: tuple[np.ndarray, np.ndarray, np.ndarray] | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self._row = {str(pid): i for i, pid in enumerate(self.ids)}
        self._search_matrix: np.ndarray | None = None
        # plain views of the same mapped pages: np.memmap's indexing wrapper costs more than a small read
        self._stored = self.vectors.view(np.ndarray)
        self._codes = self.codes.view(np.ndarray) if self.codes is not None else None

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def compressed(self) -> bool:
        return self.meta["dtype"] in RESIDUAL_BITS

    def lookup(self, ids: Sequence[str | int], texts: Sequence[str]) -> np.ndarray:
        """Index row of each product, or -1 where the id is unknown or its text changed since indexing."""
        rows = np.full(len(ids), -1, dtype=np.int64)
        for i, (pid, text) in enumerate(zip(ids, texts)):
            row = self._row.get(str(pid))
            if row is not None and self.keys[row] == text_key(text):
                rows[i] = row
        return rows

    def floats(self, stored: np.ndarray) -> np.ndarray:
        """float32 vectors from stored float rows (float16, float32 or int8)."""
        out = np.asarray(stored, dtype=np.float32)
        return out * np.float32(1 / INT8_SCALE) if self.meta["dtype"] == "int8" else out

    def rows_vectors(self, take: np.ndarray | slice) -> np.ndarray:
        """float32 vectors of stored rows ``take`` (decoded for a compressed index)."""
        if self.compressed:
            return self.codec.decode(self._codes[take], self._stored[take])
        return self.floats(self._stored[take])

    def vectors_of(self, row: int) -> np.ndarray:
        return self.rows_vectors(slice(int(self.offsets[row]), int(self.offsets[row + 1])))

    def token_rows(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Stored-row indices of the products ``rows`` (in that order) and the offsets that split them."""
        starts, lengths = self.offsets[rows], self.offsets[rows + 1] - self.offsets[rows]
        offsets = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        return np.repeat(starts - offsets[:-1], lengths) + np.arange(offsets[-1]), offsets

    def gather(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Vectors (float32) and offsets of ``rows``, in that order, with one fancy-indexed read."""
        take, offsets = self.token_rows(rows)
        return self.rows_vectors(take), offsets

    def search(
        self,
        scorer: TowerScorer,
        query_vectors: np.ndarray,
        top_k: int,
        depth: int | None = DEFAULT_DEPTH,
        *,
        nprobe: int = DEFAULT_NPROBE,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Rows and logits of the ``top_k`` best products, best first (ties: lower row first)."""
        if scorer.kind == "bi-encoder":
            if self._search_matrix is None:  # float32 copy made once: float16 matrix products are slow in numpy
                self._search_matrix = self.floats(self.vectors)
            candidates = np.arange(len(self))
            logits = scorer.scale * (self._search_matrix @ query_vectors[0]) + scorer.bias
        else:
            candidates = self._candidates(query_vectors, depth, nprobe)
            logits = self._maxsim(scorer, query_vectors, candidates)
        k = min(top_k, len(candidates))
        best = np.argpartition(-logits, k - 1)[:k] if k < len(candidates) else np.arange(len(candidates))
        best = best[np.lexsort((candidates[best], -logits[best]))]
        return candidates[best], np.asarray(logits[best], dtype=np.float32)

    def _candidates(self, query_vectors: np.ndarray, depth: int | None, nprobe: int) -> np.ndarray:
        """Rows to rerank by exact MaxSim, ascending: every row, or the first stages' best ``depth``."""
        if depth is None or depth >= len(self):
            return np.arange(len(self))
        if self.codec is None:  # format 1: pooled vectors against the query's mean vector
            first = self.pooled @ query_vectors.mean(axis=0)
            return np.sort(np.argpartition(-first, depth - 1)[:depth])
        by_centroid = self.codec.centroids @ query_vectors.T  # (centroids, query tokens)
        candidates, approx = self._probe(by_centroid.T, nprobe)
        candidates = _best(candidates, approx, max(_REFINE * depth, int(_REFINE_SHARE * len(self))))
        if len(candidates) <= depth:
            return np.sort(candidates)
        take, offsets = self.token_rows(candidates)
        by_centroid = np.take(by_centroid, self._codes[take], axis=0)  # each token scored by its centroid
        return np.sort(_best(candidates, np.maximum.reduceat(by_centroid, offsets[:-1], axis=0).sum(axis=1), depth))

    def _probe(self, scores: np.ndarray, nprobe: int) -> tuple[np.ndarray, np.ndarray]:
        """Products with a token under any query token's ``nprobe`` best centroids, and a first score
        read off the inverted lists alone: per query token, its best probed centroid the product has
        (the ``nprobe``-th best centroid's score where it has none), summed over query tokens."""
        starts, products, broad = self.inverted_lists()
        nprobe = min(nprobe, scores.shape[1])
        narrow = -scores  # a copy, ascending for argpartition
        narrow[:, broad] = np.inf
        probed = np.argpartition(narrow, nprobe - 1, axis=1)[:, :nprobe]  # (query tokens, nprobe)
        values = np.take_along_axis(scores, probed, axis=1)
        lo, sizes = starts[probed].ravel(), (starts[probed + 1] - starts[probed]).ravel()
        offsets = np.zeros(len(sizes) + 1, dtype=np.int64)
        np.cumsum(sizes, out=offsets[1:])
        hits = products[np.repeat(lo - offsets[:-1], sizes) + np.arange(offsets[-1])]
        candidates, which = np.unique(hits, return_inverse=True)
        best = np.repeat(values.min(axis=1)[None, :], len(candidates), axis=0)
        token = np.repeat(np.arange(probed.size) // nprobe, sizes)
        np.maximum.at(best, (which, token), np.repeat(values.ravel(), sizes))
        return candidates, best.sum(axis=1)

    def inverted_lists(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per centroid, the products with a token under it: ``products[starts[c]:starts[c + 1]]``,
        ascending; and the broad centroids, whose lists hold over ``_BROAD`` of the catalog ([CLS],
        [SEP], "in."): they name no candidates (the centroid stage still counts them). Built from
        ``codes`` on first use (a counting sort) rather than stored: smaller files."""
        if self._lists is None:
            lengths = np.diff(self.offsets)
            token_product = np.repeat(np.arange(len(self), dtype=np.int32), lengths)
            order = np.argsort(self.codes, kind="stable")  # stable: products stay ascending within a centroid
            codes, products = self.codes[order], token_product[order]
            first = np.ones(len(codes), dtype=bool)
            first[1:] = (codes[1:] != codes[:-1]) | (products[1:] != products[:-1])
            starts = np.searchsorted(codes[first], np.arange(len(self.codec.centroids) + 1))
            broad = np.flatnonzero(np.diff(starts) > max(_BROAD * len(self), _MIN_BROAD))
            self._lists = (starts, products[first], broad)
        return self._lists

    def _maxsim(self, scorer: TowerScorer, query_vectors: np.ndarray, candidates: np.ndarray) -> np.ndarray:
        """Exact MaxSim logits of ``candidates`` over their stored vectors, ``_SEARCH_CHUNK`` products at a time."""
        logits = np.empty(len(candidates), dtype=np.float32)
        for start in range(0, len(candidates), _SEARCH_CHUNK):
            rows = candidates[start : start + _SEARCH_CHUNK]
            vectors, offsets = self.gather(rows)
            logits[start : start + len(rows)] = scorer.scores(query_vectors, vectors, offsets)
        return logits

    def describe(self) -> dict[str, Any]:
        return {
            "index": str(self.path),
            "products": len(self),
            "vectors": int(self.offsets[-1]),
            "dtype": self.meta["dtype"],
            "bytes": int(sum((self.path / f).stat().st_size for f in self.meta["files"])),
        }


def _best(rows: np.ndarray, scores: np.ndarray, k: int) -> np.ndarray:
    """The ``k`` rows of highest score (all of them when there are no more), in no particular order."""
    return rows if len(rows) <= k else rows[np.argpartition(-scores, k - 1)[:k]]


def build_index(
    artifact: Artifact,
    scorer: TowerScorer,
    products: Sequence[Any],
    out: str | os.PathLike,
    *,
    dtype: str | None = None,
    progress: Progress | None = None,
) -> Path:
    """Index ``products`` (dicts or objects with id, title, description) at ``out``, replacing it atomically.

    The product tower's states stream into memory-mapped files batch by batch, so memory stays
    bounded however large the catalog; a compressed index keeps float16 states in a scratch file
    only until its codec has encoded them."""
    candidates = read_candidates(products)
    dtype = _check_dtype(dtype or scorer.store_dtype, scorer.kind)
    texts = [c.text for c in candidates]
    late = scorer.kind == "late-interaction"
    lengths = _token_lengths(scorer, texts) if late else np.ones(len(texts), dtype=np.int64)
    offsets = np.zeros(len(texts) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    with atomic_dir(out) as tmp:
        name, stored = (_STATES_TMP, "float16") if dtype in RESIDUAL_BITS else ("vectors.npy", dtype)
        states = np.lib.format.open_memmap(tmp / name, mode="w+", dtype=stored, shape=(int(offsets[-1]), scorer.dim))
        truncated = _stream_products(scorer, texts, offsets, states, progress)
        codec = _write_codes(tmp, states, dtype, _train_codec(states, dtype)) if late else None
        del states
        (tmp / _STATES_TMP).unlink(missing_ok=True)
        _seal(
            tmp,
            artifact,
            scorer,
            [c.id for c in candidates],
            [text_key(t) for t in texts],
            truncated,
            offsets,
            dtype,
            codec,
        )
    return Path(out)


def update_index(
    artifact: Artifact,
    scorer: TowerScorer,
    path: str | os.PathLike,
    products: Sequence[Any],
    *,
    progress: Progress | None = None,
) -> tuple[Path, dict[str, int]]:
    """Add new products and replace changed ones (same id); the old index stays in place until the new
    one is complete. Kept products are copied as stored and new ones encoded with the index's own
    centroids. Returns the path and counts of added, replaced and unchanged products."""
    old = load_index(path, artifact)
    candidates = read_candidates(products)
    rows = old.lookup([c.id for c in candidates], [c.text for c in candidates])
    changed = [c for c, r in zip(candidates, rows) if r < 0]
    replaced = {str(c.id) for c in changed} & set(old._row)
    keep = np.array([i for i, pid in enumerate(old.ids) if str(pid) not in replaced], dtype=np.int64)
    take, kept_offsets = old.token_rows(keep)
    new = _run_products(scorer, [c.text for c in changed], progress)
    offsets = np.concatenate([kept_offsets, kept_offsets[-1] + new.offsets[1:]])
    dtype = old.meta["dtype"]
    with atomic_dir(path) as tmp:
        codec = _append_rows(tmp, old, take, new.vectors, scorer.kind == "late-interaction")
        _seal(
            tmp,
            artifact,
            scorer,
            [old.ids[i] for i in keep] + [c.id for c in changed],
            [old.keys[i] for i in keep] + [text_key(c.text) for c in changed],
            np.concatenate([old.truncated[keep], new.truncated]),
            offsets,
            dtype,
            codec,
        )
    counts = {
        "added": len(changed) - len(replaced),
        "replaced": len(replaced),
        "unchanged": len(candidates) - len(changed),
    }
    return Path(path), counts


def load_index(path: str | os.PathLike, artifact: Artifact, *, verify: bool = True) -> CatalogIndex:
    """Open an index for ``artifact``: refused when made with another artifact or when a file was modified.

    Every file it opens is listed in ``index.json`` with its sha256, confined to the folder and a
    regular file (as an artifact's files are), so a tampered index fails here, not in a query."""
    path = Path(path)
    meta = _read_meta(path)
    if meta.get("artifact_sha256") != artifact.sha256:
        raise CatalogIndexError(
            f"{path}: stale index: it was built with another artifact (sha256 "
            f"{str(meta.get('artifact_sha256'))[:12]}..., this one is {artifact.sha256[:12]}...); "
            f"rebuild it with edgerank index --artifact {artifact.path}"
        )
    files = _index_files(path, meta, artifact.kind)
    if verify:
        for name, real in files.items():
            if sha256_file(real) != meta["files"][name]:
                raise CatalogIndexError(f"{path}: checksum mismatch for {name}: the index is corrupt or was modified")
    try:
        listing = json.loads(files["ids.json"].read_text())
        offsets = np.load(files["offsets.npy"])
        stored = "residuals.npy" if meta["dtype"] in RESIDUAL_BITS else "vectors.npy"
        vectors = np.load(files[stored], mmap_mode="r")
        pooled = np.load(files["pooled.npy"]).astype(np.float32) if "pooled.npy" in files else None
        codes = np.load(files["codes.npy"], mmap_mode="r") if "codes.npy" in files else None
        codec = _load_codec(files) if codes is not None else None
        ids, keys, truncated = listing["ids"], listing["keys"], np.asarray(listing["truncated"], dtype=bool)
    except (ValueError, KeyError, TypeError, OSError, EOFError) as e:
        reason = (str(e).splitlines() or [type(e).__name__])[0]
        raise CatalogIndexError(f"{path}: unreadable index file ({reason})") from None
    _check_sizes(path, meta, ids, keys, truncated, offsets, vectors, codes, codec)
    return CatalogIndex(path, meta, ids, keys, truncated, vectors, offsets, pooled, codes, codec)


def _check_sizes(
    path: Path,
    meta: dict[str, Any],
    ids: list,
    keys: list,
    truncated: np.ndarray,
    offsets: np.ndarray,
    vectors: np.ndarray,
    codes: np.ndarray | None,
    codec: Codec | None,
) -> None:
    """Refuse files that disagree in size (each file's checksum can hold while they do not fit together)."""
    nbits = RESIDUAL_BITS.get(meta["dtype"])
    width = meta["dim"] * nbits // 8 if nbits else meta["dim"]
    if (
        len(offsets) != len(ids) + 1
        or len(keys) != len(ids)
        or len(truncated) != len(ids)
        or vectors.ndim != 2
        or offsets[-1] != len(vectors)
        or vectors.shape[1] != width
    ):
        raise CatalogIndexError(f"{path}: ids, offsets and vectors do not agree in size")
    if codes is None:
        return
    if (
        codes.shape != (len(vectors),)
        or codec.centroids.shape[1] != meta["dim"]
        or codec.coarse.shape[1] != meta["dim"]
        or len(codec.centroids) % len(codec.coarse)
        or (nbits is not None) != (codec.weights is not None)
        or (len(codes) and int(codes.max()) >= len(codec.centroids))
    ):
        raise CatalogIndexError(f"{path}: codes, centroids and residual buckets do not agree in size")
    if nbits and (
        codec.weights.shape != (1 << nbits, meta["dim"]) or codec.cutoffs.shape != ((1 << nbits) - 1, meta["dim"])
    ):
        raise CatalogIndexError(f"{path}: residual buckets are not those of {meta['dtype']}")


def _load_codec(files: dict[str, Path]) -> Codec:
    arrays = {
        name: np.load(files[f"{name}.npy"]).astype(np.float32) if f"{name}.npy" in files else None
        for name in ("coarse", "centroids", "bucket_cutoffs", "bucket_weights")
    }
    return Codec(arrays["coarse"], arrays["centroids"], arrays["bucket_cutoffs"], arrays["bucket_weights"])


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
    if meta.get("format") not in READ_FORMATS:
        raise CatalogIndexError(
            f"{path}: index format {meta.get('format')!r}; this edgerank reads {', '.join(map(str, READ_FORMATS))}"
        )
    if meta.get("dtype") not in (DTYPES if meta["format"] >= 2 else FLOAT_DTYPES):
        raise CatalogIndexError(f"{path}: {INDEX_FILE} field 'dtype' must be one of {', '.join(DTYPES)}")
    if isinstance(meta.get("dim"), bool) or not isinstance(meta.get("dim"), int) or meta["dim"] < 1:
        raise CatalogIndexError(f"{path}: {INDEX_FILE} field 'dim' must be a positive integer")
    if not isinstance(meta.get("files"), dict):
        raise CatalogIndexError(f"{path}: {INDEX_FILE} field 'files' must be a JSON object")
    return meta


def _needed_files(meta: dict[str, Any], kind: str) -> list[str]:
    """The files the loader opens for a ``kind`` artifact, by format and dtype."""
    if kind != "late-interaction":
        return ["ids.json", "offsets.npy", "vectors.npy"]
    if meta["format"] == 1:
        return ["ids.json", "offsets.npy", "vectors.npy", "pooled.npy"]
    stored = (
        ["residuals.npy", "bucket_cutoffs.npy", "bucket_weights.npy"]
        if meta["dtype"] in RESIDUAL_BITS
        else ["vectors.npy"]
    )
    return ["ids.json", "offsets.npy", "codes.npy", "centroids.npy", "coarse.npy"] + stored


def _index_files(path: Path, meta: dict[str, Any], kind: str) -> dict[str, Path]:
    """Real paths of the files the loader opens for a ``kind`` artifact: each listed in ``index.json``,
    present and confined."""
    out = {}
    for name in _needed_files(meta, kind):
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


def _check_dtype(dtype: str, kind: str) -> str:
    if dtype not in DTYPES:
        raise CatalogIndexError(f"index dtype {dtype!r} is not one of {', '.join(DTYPES)}")
    if dtype in RESIDUAL_BITS and kind != "late-interaction":
        raise CatalogIndexError(
            f"index dtype {dtype} compresses token vectors: late-interaction indexes only "
            f"(a bi-encoder index holds one vector per product; use float16 or int8)"
        )
    return dtype


def _token_lengths(scorer: TowerScorer, texts: Sequence[str]) -> np.ndarray:
    """Tokens per product, counted before the tower runs so the stored rows can be laid out up front."""
    parts = [
        scorer.encoder.encode_texts(texts[s : s + _TOKEN_CHUNK]).lengths for s in range(0, len(texts), _TOKEN_CHUNK)
    ]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)


def _stream_products(
    scorer: TowerScorer, texts: Sequence[str], offsets: np.ndarray, out: np.ndarray, progress: Progress | None
) -> np.ndarray:
    """The product tower over ``texts`` in steps of ``_BUILD_BATCH``, written into ``out`` as stored;
    returns the truncation flags. ``progress(done, total)`` after each step."""
    truncated = np.zeros(len(texts), dtype=bool)
    for start in range(0, len(texts), _BUILD_BATCH):
        end = min(start + _BUILD_BATCH, len(texts))
        part = scorer.products(texts[start:end])
        if part.offsets[-1] != offsets[end] - offsets[start]:
            raise CatalogIndexError(
                "the product tower returned another number of token vectors than the tokenizer counted"
            )
        out[offsets[start] : offsets[end]] = _stored(part.vectors, out.dtype)
        truncated[start:end] = part.truncated
        if progress is not None:
            progress(end, len(texts))
    return truncated


def _run_products(scorer: TowerScorer, texts: Sequence[str], progress: Progress | None = None) -> ProductStates:
    """The product tower over ``texts`` (float32, in memory): the few new products of an update."""
    parts = []
    for start in range(0, len(texts), _BUILD_BATCH):
        parts.append(scorer.products(texts[start : start + _BUILD_BATCH]))
        if progress is not None:
            progress(min(start + _BUILD_BATCH, len(texts)), len(texts))
    if not parts:
        return ProductStates(np.empty((0, scorer.dim), np.float32), np.zeros(1, np.int64), np.zeros(0, bool))
    offsets = [parts[0].offsets]
    for p in parts[1:]:
        offsets.append(offsets[-1][-1] + p.offsets[1:])
    return ProductStates(
        np.concatenate([p.vectors for p in parts]),
        np.concatenate(offsets),
        np.concatenate([p.truncated for p in parts]),
    )


def _stored(vectors: np.ndarray, dtype: np.dtype | str) -> np.ndarray:
    """float32 vectors as a float index stores them."""
    if np.dtype(dtype) == np.int8:
        return np.rint(vectors * INT8_SCALE).clip(-127, 127).astype(np.int8)
    return vectors.astype(dtype, copy=False)


def _as_floats(stored: np.ndarray) -> np.ndarray:
    """float32 from stored float rows (the inverse of ``_stored``, up to its rounding)."""
    out = np.asarray(stored, dtype=np.float32)
    return out * np.float32(1 / INT8_SCALE) if stored.dtype == np.int8 else out


def _train_codec(states: np.ndarray, dtype: str) -> Codec:
    """A codec trained on ``_CODEC_SAMPLE`` token vectors per centroid, drawn from the stored ``states``."""
    k = centroid_count(len(states))
    rng = np.random.default_rng(0)
    take = np.sort(rng.choice(len(states), min(len(states), _CODEC_SAMPLE * k), replace=False))
    return Codec.train(_as_floats(states[take]), k, RESIDUAL_BITS.get(dtype))


def _write_codes(tmp: Path, states: np.ndarray, dtype: str, codec: Codec) -> Codec:
    """``codes.npy`` (and, compressed, ``residuals.npy``) for every stored row, ``_TOKEN_CHUNK`` at a time."""
    codes = np.lib.format.open_memmap(tmp / "codes.npy", mode="w+", dtype=np.uint16, shape=(len(states),))
    residuals = None
    if codec.nbits:
        residuals = np.lib.format.open_memmap(
            tmp / "residuals.npy", mode="w+", dtype=np.uint8, shape=(len(states), states.shape[1] * codec.nbits // 8)
        )
    for start in range(0, len(states), _TOKEN_CHUNK):
        x = _as_floats(states[start : start + _TOKEN_CHUNK])
        codes[start : start + len(x)] = chunk = codec.assign(x)
        if residuals is not None:
            residuals[start : start + len(x)] = codec.encode(x, chunk)
    codes.flush()
    if residuals is not None:
        residuals.flush()
    return codec


def _append_rows(tmp: Path, old: CatalogIndex, take: np.ndarray, new: np.ndarray, late: bool) -> Codec | None:
    """The stored rows of an update: the old index's rows ``take`` as stored, then ``new`` (float32)
    encoded like them. A format-1 late-interaction index gains its codes here (its codec is trained)."""
    if not old.compressed:
        vectors = np.concatenate([np.asarray(old.vectors[take]), _stored(new, old.vectors.dtype)])
        np.save(tmp / "vectors.npy", vectors)
        if not late:
            return None
        if old.codec is None:
            return _write_codes(
                tmp,
                np.load(tmp / "vectors.npy", mmap_mode="r"),
                old.meta["dtype"],
                _train_codec(vectors, old.meta["dtype"]),
            )
    codes = old.codec.assign(new)
    np.save(tmp / "codes.npy", np.concatenate([np.asarray(old.codes[take]), codes]))
    if old.compressed:
        np.save(tmp / "residuals.npy", np.concatenate([np.asarray(old.vectors[take]), old.codec.encode(new, codes)]))
    return old.codec


def _seal(
    tmp: Path,
    artifact: Artifact,
    scorer: TowerScorer,
    ids: list,
    keys: list[str],
    truncated: np.ndarray,
    offsets: np.ndarray,
    dtype: str,
    codec: Codec | None,
) -> None:
    """The small files, then ``index.json`` with the sha256 of every file (written last: a folder
    without it is no index)."""
    np.save(tmp / "offsets.npy", offsets.astype(np.int64))
    if codec is not None:  # float16 holds them exactly: Codec.train rounds them so
        np.save(tmp / "centroids.npy", codec.centroids.astype(np.float16))
        np.save(tmp / "coarse.npy", codec.coarse.astype(np.float16))
        if codec.nbits:
            np.save(tmp / "bucket_cutoffs.npy", codec.cutoffs)
            np.save(tmp / "bucket_weights.npy", codec.weights)
    (tmp / "ids.json").write_text(json.dumps({"ids": ids, "keys": keys, "truncated": truncated.tolist()}))
    files = {p.name: sha256_file(p) for p in sorted(tmp.iterdir())}
    meta = {
        "format": INDEX_FORMAT,
        "edgerank_version": __version__,
        "kind": scorer.kind,
        "artifact": str(artifact.path),
        "artifact_sha256": artifact.sha256,
        "dim": scorer.dim,
        "dtype": dtype,
        "products": len(ids),
        "vectors": int(offsets[-1]),
        "files": files,
    }
    if codec is not None:
        meta["codec"] = {"centroids": len(codec.centroids), "cells": len(codec.coarse), "nbits": codec.nbits}
    (tmp / INDEX_FILE).write_text(json.dumps(meta, indent=2) + "\n")


__all__ = [
    "CatalogIndex",
    "CatalogIndexError",
    "DEFAULT_DEPTH",
    "DEFAULT_NPROBE",
    "DTYPES",
    "build_index",
    "load_index",
    "update_index",
]
