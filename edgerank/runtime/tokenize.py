"""Batch encoding of (query, product text) pairs with ``tokenizers``, and length-bucketed batches.

The tokenizer is configured once, at load: truncation to the artifact's max length, no padding.
It is never reconfigured per call, because ``enable_truncation``/``enable_padding`` mutate shared
state and a Ranker is called from several threads at once. Padding is done per batch in numpy, after
candidates are sorted by length, so a batch of short titles is not padded to one long description.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from tokenizers import Tokenizer

from ..artifact import MAX_SEQUENCE_LENGTH, MIN_SEQUENCE_LENGTH, TRUNCATION, Artifact, ArtifactError

CHARS_PER_TOKEN = 32


@dataclass(frozen=True)
class EncodedPairs:
    """Token ids per pair (unpadded) and which pairs lost tokens to truncation."""

    ids: list[list[int]]
    type_ids: list[list[int]]
    lengths: np.ndarray
    truncated: np.ndarray


class PairEncoder:
    """``[CLS] query [SEP] product [SEP]`` exactly as the exported model was trained to read it."""

    def __init__(
        self,
        tokenizer_file: str | os.PathLike,
        max_length: int,
        truncation: str = "longest_first",
        pad_id: int | None = None,
    ):
        if truncation not in TRUNCATION:
            raise ArtifactError(f"tokenizer truncation {truncation!r} is not one of {', '.join(TRUNCATION)}")
        if (
            isinstance(max_length, bool)
            or not isinstance(max_length, int)
            or not MIN_SEQUENCE_LENGTH <= max_length <= MAX_SEQUENCE_LENGTH
        ):
            raise ArtifactError(
                f"tokenizer max_length {max_length!r} is not a usable length "
                f"(an integer from {MIN_SEQUENCE_LENGTH} to {MAX_SEQUENCE_LENGTH})"
            )
        try:
            tok = Tokenizer.from_file(str(tokenizer_file))
        except Exception as e:  # tokenizers raises a bare Exception for a broken file
            raise ArtifactError(f"{tokenizer_file}: not a readable tokenizer.json ({e})") from None
        self.pad_id = pad_id if isinstance(pad_id, int) else _pad_id(tok)
        tok.no_padding()
        tok.enable_truncation(max_length, strategy=truncation)
        self._tok = tok
        self.max_length = max_length

    @classmethod
    def from_artifact(cls, artifact: Artifact) -> PairEncoder:
        spec = artifact.manifest.get("tokenizer") or {}
        if "max_length" not in spec:
            raise ArtifactError(f"{artifact.path}: manifest has no tokenizer.max_length")
        return cls(
            artifact.file(spec.get("file", "tokenizer.json")),
            spec["max_length"],
            spec.get("truncation", "longest_first"),
            spec.get("pad_id"),
        )

    @property
    def max_chars(self) -> int:
        """Characters of one text worth tokenizing: 32 per token of max length, far more than any
        real text needs to fill it (wordpieces average 4-6 characters)."""
        return CHARS_PER_TOKEN * self.max_length

    def encode(self, queries: Sequence[str], texts: Sequence[str]) -> EncodedPairs:
        """Encode aligned pairs; a pair is marked truncated when the tokenizer left overflow tokens
        or a text had to be clipped first (see ``clip``)."""
        q = [clip(s, self.max_chars) for s in queries]
        t = [clip(s, self.max_chars) for s in texts]
        encodings = self._tok.encode_batch([(a, b) for (a, _), (b, _) in zip(q, t)])
        return EncodedPairs(
            ids=[e.ids for e in encodings],
            type_ids=[e.type_ids for e in encodings],
            lengths=np.fromiter((len(e.ids) for e in encodings), dtype=np.int64, count=len(encodings)),
            truncated=np.fromiter(
                (bool(e.overflowing) or qc or tc for e, (_, qc), (_, tc) in zip(encodings, q, t)),
                dtype=bool,
                count=len(encodings),
            ),
        )

    def pad(self, enc: EncodedPairs, rows: np.ndarray) -> dict[str, np.ndarray]:
        """int64 ``input_ids``/``attention_mask``/``token_type_ids`` for ``rows``, padded to their longest."""
        width = int(enc.lengths[rows].max())
        ids = np.full((len(rows), width), self.pad_id, dtype=np.int64)
        types = np.zeros((len(rows), width), dtype=np.int64)
        mask = np.zeros((len(rows), width), dtype=np.int64)
        for j, r in enumerate(rows):
            n = enc.lengths[r]
            ids[j, :n] = enc.ids[r]
            types[j, :n] = enc.type_ids[r]
            mask[j, :n] = 1
        return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}


def clip(text: str, max_chars: int) -> tuple[str, bool]:
    """Cut an over-long text at a whitespace before ``max_chars`` (and say whether it was cut).

    Tokenizing costs time in proportion to the whole text (a 1 MB description took 6-15 s on a 2-core AMD EPYC)
    though only the first few hundred tokens are kept. Cutting at whitespace keeps every remaining
    word whole, so the tokens are a prefix of the full text's and the truncated pair is the same
    one the model would have seen.
    """
    if len(text) <= max_chars:
        return text, False
    cut = max(text.rfind(c, 0, max_chars) for c in " \t\n")
    return text[: cut if cut > max_chars // 2 else max_chars], True


def _pad_id(tok: Tokenizer) -> int:
    """The padding token's id when the manifest does not record it. Masked positions do not change a BERT score; using the model's own pad
    id keeps the inputs identical to what transformers builds, which the parity tests compare."""
    if tok.padding:
        return int(tok.padding["pad_id"])
    for token in ("[PAD]", "<pad>"):
        tid = tok.token_to_id(token)
        if tid is not None:
            return tid
    return 0
