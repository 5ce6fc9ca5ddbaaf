"""The public facade: ``Ranker.load(artifact)`` then ``rank(query, products)`` or ``score(pairs)``.

A Ranker holds no per-call state, so one instance serves many threads (the ONNX Runtime session and
the tokenizer are only read after load). It never mutates the caller's products: results point at
them, and the ordering lives in new objects.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..artifact import Artifact, load_artifact
from ..batching import DEFAULT_MAX_BATCH_SIZE
from .backends import open_backend
from .blend import Blend, relevance_probability
from .catalog import DEFAULT_DEPTH, CatalogIndex, CatalogIndexError, load_index
from .cross_encoder import CrossEncoderScorer
from .errors import BackendError, RankerInputError
from .explain import occlusion
from .products import check_text, read_candidates
from .tokenize import PairEncoder
from .towers import TOWER_KINDS, TowerScorer


@dataclass(frozen=True)
class RankedItem:
    """One ranked product. ``score`` is what the list is sorted by: the relevance logit, or the
    blended score when a blend was given; ``relevance`` (raw logit) and ``probability`` always stay."""

    id: str | int
    rank: int
    score: float
    relevance: float
    probability: float
    truncated: bool
    product: Any = field(repr=False)
    signals: Mapping[str, float] | None = None
    explanation: tuple[tuple[str, float], ...] | None = None

    def to_dict(self, *, include_product: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "rank": self.rank,
            "score": self.score,
            "relevance": self.relevance,
            "probability": self.probability,
            "truncated": self.truncated,
        }
        if self.signals is not None:
            out["signals"] = dict(self.signals)
        if self.explanation is not None:
            out["explanation"] = [{"word": w, "drop": d} for w, d in self.explanation]
        if include_product:
            out["product"] = self.product
        return out


@dataclass(frozen=True)
class RankResult:
    """Ranked items (best first) and what happened on the way: how many candidates, how many were cut
    to the max length, and how many lacked each blend signal."""

    items: tuple[RankedItem, ...]
    candidates: int
    truncated: int
    blended: bool = False
    missing_signals: Mapping[str, int] = field(default_factory=dict)
    #: catalog students only: products whose states came from the catalog index, the rest were computed
    cached: int | None = None

    def __iter__(self) -> Iterator[RankedItem]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> RankedItem:
        return self.items[i]

    @property
    def ids(self) -> list[str | int]:
        return [item.id for item in self.items]

    def to_dict(self, *, include_product: bool = False) -> dict[str, Any]:
        out = {
            "items": [i.to_dict(include_product=include_product) for i in self.items],
            "candidates": self.candidates,
            "truncated": self.truncated,
            "blended": self.blended,
            "missing_signals": dict(self.missing_signals),
        }
        if self.cached is not None:
            out.update(cached=self.cached, computed=self.candidates - self.cached)
        return out


class Ranker:
    def __init__(self, artifact: Artifact, scorer: CrossEncoderScorer | TowerScorer, index: CatalogIndex | None = None):
        self.artifact = artifact
        self._scorer = scorer
        self.index = index
        self._probability = (artifact.manifest.get("score") or {}).get("probability")
        relevance_probability(np.zeros(1), self._probability)  # refuse an unusable score map at load

    @classmethod
    def load(
        cls,
        path: str | os.PathLike,
        providers: Sequence[Any] | str | None = None,
        threads: int | None = None,
        max_batch_size: int = DEFAULT_MAX_BATCH_SIZE,
        backend: str = "onnxruntime",
        index: str | os.PathLike | None = None,
        **backend_options: Any,
    ) -> Ranker:
        """Verify the artifact (checksums, schema) and open it.

        ``providers`` (ONNX Runtime execution providers, e.g. ``["cuda", "cpu"]``; default CPU) and
        ``threads`` (intra-op threads; default all cores) apply to the onnxruntime backend.
        ``max_batch_size`` caps pairs per forward pass, bounding memory whatever the candidate count.
        Other backends: ``backend="tensorrt"`` (``engine=``, ``device=``) and ``backend="torch-cuda"``
        (``model_dir=``, ``device=``, ``dtype=``, ``cuda_graphs=``), each from its own pip extra.
        Catalog students (late-interaction, bi-encoder artifacts) run on onnxruntime; ``index`` is
        their catalog index (``edgerank index``), which ``rank`` reads cached product states from and
        ``search`` ranks whole.
        """
        if isinstance(max_batch_size, bool) or not isinstance(max_batch_size, int) or max_batch_size < 1:
            raise RankerInputError(f"max_batch_size must be a positive integer, got {max_batch_size!r}")
        artifact = load_artifact(path)
        if providers is not None:
            backend_options["providers"] = providers
        if threads is not None:
            backend_options["threads"] = threads
        if artifact.kind in TOWER_KINDS:
            if backend != "onnxruntime":
                raise BackendError(f"{artifact.kind} artifacts run on the onnxruntime backend, not {backend!r}")
            scorer = TowerScorer(artifact, max_batch_size, **backend_options)
            return cls(artifact, scorer, load_index(index, artifact) if index is not None else None)
        if index is not None:
            raise CatalogIndexError(
                f"{artifact.path}: a catalog index needs a late-interaction or bi-encoder artifact; "
                f"this one is a {artifact.kind}"
            )
        encoder = PairEncoder.from_artifact(artifact)
        engine = open_backend(backend, artifact, "model", **backend_options)
        return cls(artifact, CrossEncoderScorer(artifact, encoder, engine, max_batch_size))

    def with_index(self, index: CatalogIndex) -> Ranker:
        """The same loaded model over another catalog index: a server swaps indexes this way, so a
        request holding the old Ranker finishes on the old index."""
        return Ranker(self.artifact, self._scorer, index)

    @property
    def max_length(self) -> int:
        return self._scorer.encoder.max_length

    @property
    def max_batch_size(self) -> int:
        return self._scorer.max_batch_size

    def describe(self) -> dict[str, Any]:
        """What is loaded, for logs and the server's /health."""
        m = self.artifact.manifest
        return {
            "artifact": str(self.artifact.path),
            "sha256": self.artifact.sha256,
            "kind": self.artifact.kind,
            "precision": m.get("precision"),
            "max_length": self.max_length,
            "max_batch_size": self.max_batch_size,
            **self._scorer.backend.describe(),
            **(self.index.describe() if self.index is not None else {}),
        }

    def score(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        """Raw relevance logits for (query, product text) pairs, in input order."""
        if isinstance(pairs, (str, bytes, Mapping)) or not isinstance(pairs, Sequence):
            raise RankerInputError(f"pairs: expected a list of (query, text) pairs, got {type(pairs).__name__}")
        queries, texts = [], []
        for i, pair in enumerate(pairs):
            if isinstance(pair, (str, bytes)) or not isinstance(pair, Sequence) or len(pair) != 2:
                raise RankerInputError(f"pair {i}: expected a (query, text) pair")
            queries.append(check_text(pair[0], f"pair {i}: query", required=True))
            texts.append(check_text(pair[1], f"pair {i}: text", required=True))
        if not queries:
            return np.empty(0, dtype=np.float32)
        return self._scorer.score(queries, texts)[0]

    def rank(
        self,
        query: str,
        products: Sequence[Any],
        top_k: int | None = None,
        explain: bool = False,
        blend: Blend | Mapping[str, Any] | str | os.PathLike | None = None,
    ) -> RankResult:
        """Products sorted best first (ties keep input order). ``top_k`` keeps the best k;
        ``explain`` adds per-word occlusion weights to the returned items (costs words x top_k pairs);
        ``blend`` mixes shop signals into the order (see ``edgerank.runtime.blend``)."""
        query = check_text(query, "query", required=True)
        if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
            raise RankerInputError(f"top_k must be a positive integer or None, got {top_k!r}")
        if not isinstance(explain, bool):
            raise RankerInputError(f"explain must be true or false, got {explain!r}")
        blend = Blend.coerce(blend) if blend is not None else None
        candidates = read_candidates(products)
        texts = [c.text for c in candidates]
        cached = None
        if isinstance(self._scorer, TowerScorer):
            logits, truncated, cached = self._scorer.score_candidates(query, candidates, self.index)
        else:
            logits, truncated = self._scorer.score([query] * len(texts), texts)
        probability = relevance_probability(logits, self._probability)
        outcome = None
        if blend is not None:
            outcome = blend.apply(probability, [products[c.index] for c in candidates], [c.id for c in candidates])
        key = outcome.final if outcome is not None else logits
        order = np.argsort(-np.asarray(key, dtype=np.float64), kind="stable")[:top_k]
        explanations = None
        if explain:
            explanations = occlusion(
                lambda q, t: self._scorer.score(q, t)[0], query, [texts[i] for i in order], logits[order]
            )
        items = tuple(
            RankedItem(
                id=candidates[i].id,
                rank=r + 1,
                score=float(key[i]),
                relevance=float(logits[i]),
                probability=float(probability[i]),
                truncated=bool(truncated[i]),
                product=products[candidates[i].index],
                signals=outcome.contributions[i] if outcome is not None else None,
                explanation=tuple(explanations[r]) if explanations is not None else None,
            )
            for r, i in enumerate(order)
        )
        return RankResult(
            items=items,
            candidates=len(candidates),
            truncated=int(truncated.sum()),
            blended=outcome is not None,
            missing_signals=outcome.missing if outcome else {},
            cached=cached,
        )

    def search(self, query: str, top_k: int = 10, depth: int | None = DEFAULT_DEPTH) -> RankResult:
        """The ``top_k`` best products of the whole catalog index, best first (no candidate list needed).
        Items carry the product id; ``product`` is None (the index holds vectors, not products).
        ``depth`` applies to late interaction: products reranked by exact MaxSim after the centroid
        stages (None: exact over the whole catalog); see ``edgerank.runtime.catalog``."""
        query = check_text(query, "query", required=True)
        if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
            raise RankerInputError(f"top_k must be a positive integer, got {top_k!r}")
        if depth is not None and (isinstance(depth, bool) or not isinstance(depth, int) or depth < top_k):
            raise RankerInputError(f"depth must be an integer of at least top_k ({top_k}) or None, got {depth!r}")
        if self.index is None:
            raise RankerInputError(
                "search needs a catalog index: Ranker.load(artifact, index=PATH) "
                "with an index built by `edgerank index`"
            )
        query_vectors, query_cut = self._scorer.query(query)
        rows, logits = self.index.search(self._scorer, query_vectors, top_k, depth)
        probability = relevance_probability(logits, self._probability)
        items = tuple(
            RankedItem(
                id=self.index.ids[r],
                rank=i + 1,
                score=float(logits[i]),
                relevance=float(logits[i]),
                probability=float(probability[i]),
                truncated=bool(self.index.truncated[r] or query_cut),
                product=None,
            )
            for i, r in enumerate(rows)
        )
        return RankResult(
            items=items, candidates=len(self.index), truncated=int(self.index.truncated.sum()), cached=len(self.index)
        )
