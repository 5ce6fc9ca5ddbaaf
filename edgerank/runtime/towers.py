"""Score with a catalog-student artifact (late interaction or bi-encoder): run the towers, join them in numpy.

Products are held as one flat float32 matrix of vectors with row ``offsets`` per product: a late
interaction product has one row per token, a bi-encoder product exactly one. A bi-encoder is then
MaxSim with one vector on each side, so both kinds share ``similarity``. The same layout is what the
catalog index stores, so cached and freshly computed products mix in one matrix product.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..artifact import Artifact, ArtifactError
from ..batching import length_batches
from .backends import open_backend
from .products import Candidate
from .tokenize import EncodedPairs, PairEncoder, clip

TOWER_KINDS = ("late-interaction", "bi-encoder")
_FEEDS = ("input_ids", "attention_mask", "token_type_ids")
_TOWER_FIELDS = ("dim", "interaction", "scale", "bias", "query_max_length", "product_max_length")


class TextEncoder(PairEncoder):
    """``[CLS] text [SEP]`` for one tower: the pair encoder's truncation, clipping and padding, one text per row."""

    def encode_texts(self, texts: Sequence[str]) -> EncodedPairs:
        clipped = [clip(t, self.max_chars) for t in texts]
        encodings = self._tok.encode_batch([t for t, _ in clipped])
        return EncodedPairs(
            ids=[e.ids for e in encodings],
            type_ids=[e.type_ids for e in encodings],
            lengths=np.fromiter((len(e.ids) for e in encodings), dtype=np.int64, count=len(encodings)),
            truncated=np.fromiter(
                (bool(e.overflowing) or c for e, (_, c) in zip(encodings, clipped)), dtype=bool, count=len(encodings)
            ),
        )


@dataclass(frozen=True)
class ProductStates:
    """Vectors of several products: ``vectors[offsets[i]:offsets[i + 1]]`` belong to product ``i``."""

    vectors: np.ndarray
    offsets: np.ndarray
    truncated: np.ndarray

    def __len__(self) -> int:
        return len(self.offsets) - 1


def text_key(text: str) -> str:
    """What a cached product state was computed from: a changed title or description misses the cache."""
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:16]


def similarity(query: np.ndarray, vectors: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Mean over query vectors of the best dot product with any vector of each product (unscaled)."""
    sims = vectors @ query.T  # (rows, query vectors)
    if len(vectors) != len(offsets) - 1:  # more than one row per product: max within each product's rows
        sims = np.maximum.reduceat(sims, offsets[:-1], axis=0)
    return sims.mean(axis=1)


class TowerScorer:
    """The query and product towers of one artifact, with the score map from its manifest."""

    def __init__(self, artifact: Artifact, max_batch_size: int, **backend_options: Any):
        spec = artifact.manifest.get("towers") or {}
        missing = [f for f in _TOWER_FIELDS if f not in spec]
        if missing:
            raise ArtifactError(f"{artifact.path}: manifest 'towers' lacks {', '.join(missing)}")
        expected = {"late-interaction": "maxsim", "bi-encoder": "dot"}[artifact.kind]
        if spec["interaction"] != expected:
            raise ArtifactError(
                f"{artifact.path}: a {artifact.kind} artifact joins its towers by {expected}, "
                f"not {spec['interaction']!r}"
            )
        tok = artifact.manifest.get("tokenizer") or {}
        file = artifact.file(tok.get("file", "tokenizer.json"))
        self.query_encoder = TextEncoder(file, spec["query_max_length"], pad_id=tok.get("pad_id"))
        self.encoder = TextEncoder(file, spec["product_max_length"], pad_id=tok.get("pad_id"))
        self.query_backend = open_backend("onnxruntime", artifact, "query", **backend_options)
        same = artifact.graph("query")["file"] == artifact.graph("product")["file"]
        self.backend = (
            self.query_backend if same else open_backend("onnxruntime", artifact, "product", **backend_options)
        )
        # a shared graph reads the tower's segment as token_type_ids (export/towers.py)
        self._segments = {r: artifact.graph(r).get("segment") for r in ("query", "product")}
        unknown = sorted({n for b in (self.query_backend, self.backend) for n in b.input_names} - set(_FEEDS))
        if unknown:
            raise ArtifactError(
                f"{artifact.path}: tower graph inputs {unknown} are not ones edgerank feeds ({', '.join(_FEEDS)})"
            )
        self.kind, self.dim = artifact.kind, int(spec["dim"])
        self.scale, self.bias = float(spec["scale"]), float(spec["bias"])
        self.store_dtype = spec.get("store_dtype", "float16")
        self.max_batch_size = max_batch_size

    def _run(self, backend, encoder: TextEncoder, texts: Sequence[str], segment: int | None) -> ProductStates:
        enc = encoder.encode_texts(texts)
        late = self.kind == "late-interaction"
        offsets = np.concatenate([[0], np.cumsum(enc.lengths if late else np.ones(len(texts), np.int64))])
        vectors = np.empty((int(offsets[-1]), self.dim), dtype=np.float32)
        for rows in length_batches(enc.lengths, self.max_batch_size):
            feeds = encoder.pad(enc, rows)
            if segment is not None:
                feeds["token_type_ids"].fill(segment)
            out = backend.run_raw(feeds)
            if out.shape[-1] != self.dim:
                raise ArtifactError(f"tower graph returned vectors of size {out.shape[-1]}, manifest says {self.dim}")
            for j, r in enumerate(rows):
                vectors[offsets[r] : offsets[r + 1]] = out[j, : enc.lengths[r]] if late else out[j]
        return ProductStates(vectors, offsets, enc.truncated)

    def products(self, texts: Sequence[str]) -> ProductStates:
        """Product tower states, as the catalog index stores them."""
        return self._run(self.backend, self.encoder, texts, self._segments["product"])

    def query(self, query: str) -> tuple[np.ndarray, bool]:
        """Query tower vectors (one row for a bi-encoder) and whether the query was cut."""
        states = self._run(self.query_backend, self.query_encoder, [query], self._segments["query"])
        return states.vectors, bool(states.truncated[0])

    def scores(self, query_vectors: np.ndarray, vectors: np.ndarray, offsets: np.ndarray) -> np.ndarray:
        return (self.scale * similarity(query_vectors, vectors, offsets) + self.bias).astype(np.float32)

    def score(self, queries: Sequence[str], texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Logits for aligned pairs (each distinct query runs once) and which pairs were cut; the
        cross-encoder scorer's signature, so ``Ranker.score`` and explanations work unchanged."""
        out = np.empty(len(queries), dtype=np.float32)
        truncated = np.zeros(len(queries), dtype=bool)
        rows_of: dict[str, list[int]] = {}
        for i, q in enumerate(queries):
            rows_of.setdefault(q, []).append(i)
        for q, rows in rows_of.items():
            qv, q_cut = self.query(q)
            states = self.products([texts[i] for i in rows])
            out[rows] = self.scores(qv, states.vectors, states.offsets)
            truncated[rows] = states.truncated | q_cut
        return out, truncated

    def score_candidates(
        self, query: str, candidates: Sequence[Candidate], index=None
    ) -> tuple[np.ndarray, np.ndarray, int]:
        """Logits for one query's candidates, taking product states from ``index`` (a ``CatalogIndex``)
        where it holds the same id with the same text; returns how many came from it."""
        qv, q_cut = self.query(query)
        texts = [c.text for c in candidates]
        cached = index.lookup([c.id for c in candidates], texts) if index is not None else np.full(len(texts), -1)
        logits, truncated = np.empty(len(texts), dtype=np.float32), np.zeros(len(texts), dtype=bool)
        hit, fresh = np.flatnonzero(cached >= 0), np.flatnonzero(cached < 0)
        if len(hit):  # one read of every cached product's rows, not one per product
            vectors, offsets = index.gather(cached[hit])
            logits[hit], truncated[hit] = self.scores(qv, vectors, offsets), index.truncated[cached[hit]]
        if len(fresh):
            computed = self.products([texts[i] for i in fresh])
            logits[fresh], truncated[fresh] = self.scores(qv, computed.vectors, computed.offsets), computed.truncated
        return logits, truncated | q_cut, len(hit)
