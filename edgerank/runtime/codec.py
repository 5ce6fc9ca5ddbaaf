"""Token vectors of a late-interaction index as a centroid id and a few bits per dimension.

Residual compression as in ColBERTv2 (Santhanam et al., 2022, "ColBERTv2: Effective and Efficient
Retrieval via Lightweight Late Interaction"): every token vector is stored as the id of its nearest
centroid plus its residual from that centroid, each dimension cut into ``2**nbits`` buckets whose
boundaries are quantiles of the residuals of that dimension. A 128-dimension vector takes
2 + 32 bytes at 2 bits (256 as float16). Decoding is one table look-up per stored byte: every
byte value of every byte position maps to the ``8 // nbits`` floats it stands for.

The centroids also drive whole-catalog search (PLAID, Santhanam et al., 2022): a query token's
score against a product token is approximated by its score against that token's centroid, so one
``(query tokens x centroids)`` product scores every token of the catalog at once.

Centroids are found by spherical k-means in two levels (``coarse`` cells, then centroids within each
cell's sample): assigning a token costs ``sqrt(K)``-ish dot products instead of ``K``, which keeps
indexing a million products within minutes on two cores. Numpy only: the runtime needs nothing more.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

MAX_CENTROIDS = 1 << 16  # codes are stored as uint16
NBITS = (1, 2)
_KMEANS_ITERS = 8
_CHUNK = 8192  # rows per matrix product while assigning: bounds the (rows x centroids) scores


def centroid_count(tokens: int) -> int:
    """Centroids for ``tokens`` stored vectors: the power of two nearest ``8 * sqrt(tokens)`` (at
    least 4, at most ``MAX_CENTROIDS``): ~8k for 1M tokens, each listing ~100 tokens."""
    k = 1 << max(2, int(round(np.log2(max(8 * np.sqrt(max(tokens, 1)), 1)))))
    return int(min(k, MAX_CENTROIDS))


@dataclass(frozen=True)
class Codec:
    """Centroids (``cells x per_cell``, row ``cell * per_cell + j``), their coarse cells and, for a
    compressed index, the per-dimension residual buckets."""

    coarse: np.ndarray  # (cells, dim) float32
    centroids: np.ndarray  # (cells * per_cell, dim) float32
    cutoffs: np.ndarray | None = None  # (2**nbits - 1, dim): bucket boundaries, ascending
    weights: np.ndarray | None = None  # (2**nbits, dim): what each bucket decodes to

    @property
    def nbits(self) -> int | None:
        return None if self.weights is None else int(np.log2(len(self.weights)))

    @property
    def per_cell(self) -> int:
        return len(self.centroids) // len(self.coarse)

    @classmethod
    def train(cls, sample: np.ndarray, centroids: int, nbits: int | None, seed: int = 0) -> Codec:
        """Centroids from ``sample`` (unit token vectors, float32) and, with ``nbits``, residual buckets."""
        rng = np.random.default_rng(seed)
        cells = 1 << (int(np.log2(centroids)) // 2)
        coarse = _pad(_kmeans(sample, cells, rng), cells)
        cell = _nearest(sample, coarse)
        fine = [
            _pad(
                _kmeans(sample[cell == c], centroids // cells, rng) if (cell == c).any() else coarse[c : c + 1],
                centroids // cells,
            )
            for c in range(cells)
        ]
        # rounded to float16 once here, so the index stores them exactly as codes and residuals saw them
        codec = cls(_half(coarse), _half(np.concatenate(fine)))
        if nbits is None:
            return codec
        if nbits not in NBITS or sample.shape[1] * nbits % 8:
            raise ValueError(f"residuals of {nbits} bits over {sample.shape[1]} dimensions do not pack into bytes")
        residuals = sample - codec.centroids[codec.assign(sample)]
        buckets = 1 << nbits
        cutoffs = np.quantile(residuals, np.arange(1, buckets) / buckets, axis=0).astype(np.float32)
        weights = np.quantile(residuals, (np.arange(buckets) + 0.5) / buckets, axis=0).astype(np.float32)
        return cls(coarse, codec.centroids, cutoffs.reshape(buckets - 1, -1), weights.reshape(buckets, -1))

    def assign(self, x: np.ndarray) -> np.ndarray:
        """Nearest centroid (largest dot product) of each row: nearest cell first, then within it."""
        cell = _nearest(x, self.coarse)
        out = np.empty(len(x), dtype=np.uint16)
        order = np.argsort(cell, kind="stable")
        bounds = np.searchsorted(cell[order], np.arange(len(self.coarse) + 1))
        k = self.per_cell
        for c in np.flatnonzero(np.diff(bounds)):
            rows = order[bounds[c] : bounds[c + 1]]
            out[rows] = c * k + _nearest(x[rows], self.centroids[c * k : (c + 1) * k])
        return out

    def encode(self, x: np.ndarray, codes: np.ndarray) -> np.ndarray:
        """Residual buckets of each row, packed most significant first: (rows, dim * nbits / 8) uint8."""
        residual = x - self.centroids[codes]
        buckets = np.zeros(residual.shape, dtype=np.uint8)
        for cut in self.cutoffs:
            buckets += residual > cut
        per = 8 // self.nbits
        shifts = (8 - self.nbits * (np.arange(per) + 1)).astype(np.uint8)
        return (buckets.reshape(len(x), -1, per) << shifts).sum(axis=2, dtype=np.uint8)

    def decode(self, codes: np.ndarray, packed: np.ndarray) -> np.ndarray:
        """float32 vectors of stored rows: centroid plus the residual each byte stands for."""
        n, width = packed.shape
        flat = packed + np.arange(0, width * 256, 256, dtype=np.intp)  # row of each byte in the flat table
        out = np.take(self._table.reshape(width * 256, -1), flat, axis=0).reshape(n, -1)  # take: a fast path
        out += np.take(self.centroids, codes, axis=0)
        out /= np.maximum(np.sqrt(np.einsum("ij,ij->i", out, out)), 1e-12)[:, None]  # unit, as the tower made them
        return out

    @cached_property
    def _table(self) -> np.ndarray:
        """(bytes per vector, 256, dims per byte): the residual values of every byte value at every position."""
        per, mask = 8 // self.nbits, (1 << self.nbits) - 1
        values = np.arange(256)
        fields = np.stack([(values >> (8 - self.nbits * (p + 1))) & mask for p in range(per)], axis=1)  # (256, per)
        dims = np.arange(self.weights.shape[1]).reshape(-1, per)  # (bytes, per)
        return self.weights[fields[None, :, :], dims[:, None, :]].astype(np.float32)


def _nearest(x: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Index of the largest dot product per row, ``_CHUNK`` rows at a time."""
    out = np.empty(len(x), dtype=np.int64)
    for start in range(0, len(x), _CHUNK):
        out[start : start + _CHUNK] = np.argmax(x[start : start + _CHUNK] @ centroids.T, axis=1)
    return out


def _kmeans(x: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Spherical k-means (unit centroids, dot-product assignment); an emptied cluster keeps its centroid."""
    k = min(k, len(x))
    centroids = x[rng.choice(len(x), k, replace=False)].astype(np.float32)
    for _ in range(_KMEANS_ITERS):
        assigned = _nearest(x, centroids)
        order = np.argsort(assigned, kind="stable")
        used, starts = np.unique(assigned[order], return_index=True)
        sums = np.add.reduceat(x[order], starts, axis=0)
        centroids[used] = sums / np.maximum(np.linalg.norm(sums, axis=1, keepdims=True), 1e-12)
    return centroids


def _half(x: np.ndarray) -> np.ndarray:
    return x.astype(np.float16).astype(np.float32)


def _pad(centroids: np.ndarray, k: int) -> np.ndarray:
    """``k`` rows: repeats of the first fill the rest (a repeat never wins ``argmax``, so stays unused)."""
    if len(centroids) >= k:
        return centroids[:k]
    return np.concatenate([centroids, np.repeat(centroids[:1], k - len(centroids), axis=0)])


__all__ = ["Codec", "MAX_CENTROIDS", "NBITS", "centroid_count"]
