"""Score (query, product text) pairs with a cross-encoder artifact: tokenize, bucket, batch, run.

This is the one place the pieces meet; the ``Ranker`` facade adds validation, ordering, blending
and explanations on top. Catalog students (late interaction, bi-encoder) will get a sibling module
with the same ``score`` signature.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..artifact import Artifact, ArtifactError
from ..batching import length_batches
from .backends import Backend
from .tokenize import PairEncoder

_FEEDS = ("input_ids", "attention_mask", "token_type_ids")


class CrossEncoderScorer:
    def __init__(self, artifact: Artifact, encoder: PairEncoder, backend: Backend, max_batch_size: int):
        unknown = [n for n in backend.input_names if n not in _FEEDS]
        if unknown:
            raise ArtifactError(
                f"{artifact.path}: graph inputs {unknown} are not ones edgerank feeds ({', '.join(_FEEDS)})"
            )
        backend_max_length = getattr(backend, "max_length", None)
        if backend_max_length is not None and backend_max_length < encoder.max_length:
            raise ArtifactError(
                f"{artifact.path}: the {backend.name} backend accepts {backend_max_length} "
                f"tokens, the artifact's tokenizer produces up to {encoder.max_length}"
            )
        self.encoder, self.backend = encoder, backend
        self.max_batch_size = min(max_batch_size, backend.max_batch_size or max_batch_size)

    def score(self, queries: Sequence[str], texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Raw logits in input order, and which pairs were cut to the max length."""
        enc = self.encoder.encode(queries, texts)
        scores = np.empty(len(queries), dtype=np.float32)
        for rows in length_batches(enc.lengths, self.max_batch_size):
            feeds = self.encoder.pad(enc, rows)
            scores[rows] = self.backend.run({n: feeds[n] for n in self.backend.input_names})
        return scores, enc.truncated
