"""Vocabulary pruning: keep only the wordpieces a shop's catalog and queries use.

Why: in a small student the word-embedding table is most of the model (11.7M of the 2-layer,
hidden-384 student's 15.6M parameters), while one shop's catalog and queries use a fraction of
BERT's 30,522 wordpieces. Kept pieces keep their order, so new ids are their ranks among the kept.

Why it is safe: WordPiece splits a word greedily, longest known piece first. When every piece of a
word's original split is kept, each greedy step still finds the same longest piece, so text made of
the shop's own words tokenizes exactly as before and scores exactly as before. Every single
character and its ``##`` continuation are kept as well, so a word the shop never used is spelled out
of smaller pieces instead of collapsing to ``[UNK]``; the quality gate measures what that costs.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .config import ExportError


@dataclass
class PrunedVocabulary:
    """The pruned model and tokenizer, and a summary of what was kept (for the manifest)."""

    model: Any
    tokenizer: Any
    tokenizer_json: str
    summary: dict[str, Any]


def vocabulary_texts(paths: Sequence[str | Path], columns: dict[str, str] | None = None) -> list[str]:
    """Every distinct query and product text in ``paths``: judged tables (queries and products) or
    product catalogs (products only)."""
    from ..data import DataError, product_texts, read_catalog, read_table

    texts: list[str] = []
    for path in paths:
        try:
            df, _ = read_table(path, columns=columns, require_relevance=False)
            texts += list(df["query"].unique())
        except DataError:  # no query column: a catalog
            df, _ = read_catalog(path, columns=columns)
        texts += product_texts(df.drop_duplicates("product_id"))
    return list(dict.fromkeys(texts))


def _wordpiece_spec(tokenizer) -> dict[str, Any]:
    spec = json.loads(tokenizer.backend_tokenizer.to_str())
    kind = spec.get("model", {}).get("type")
    if kind != "WordPiece":
        raise ExportError(
            f"--prune-vocab supports WordPiece tokenizers (the BERT family); this model's "
            f"tokenizer is {kind or 'unknown'}"
        )
    return spec


def kept_ids(spec: dict[str, Any], used: Iterable[int]) -> np.ndarray:
    """Old ids to keep: the used ones, the special tokens, every single character and its ``##``
    continuation (the fallback that spells unseen words)."""
    vocab: dict[str, int] = spec["model"]["vocab"]
    prefix = spec["model"].get("continuing_subword_prefix", "##")
    keep = set(used) | {t["id"] for t in spec.get("added_tokens", [])} | {vocab[spec["model"]["unk_token"]]}
    keep |= {
        i
        for piece, i in vocab.items()
        if len(piece) == 1 or (piece.startswith(prefix) and len(piece) == len(prefix) + 1)
    }
    return np.array(sorted(keep), dtype=np.int64)


def _remapped_spec(spec: dict[str, Any], keep: np.ndarray) -> dict[str, Any]:
    """The tokenizer description with the kept pieces renumbered, special-token ids included."""
    new_id = {int(old): new for new, old in enumerate(keep)}
    out = copy.deepcopy(spec)
    out["model"]["vocab"] = {piece: new_id[i] for piece, i in spec["model"]["vocab"].items() if i in new_id}
    for token in out.get("added_tokens", []):
        token["id"] = new_id[token["id"]]
    for special in (out.get("post_processor") or {}).get("special_tokens", {}).values():
        special["ids"] = [new_id[i] for i in special["ids"]]
    if out.get("padding"):
        out["padding"]["pad_id"] = new_id[out["padding"]["pad_id"]]
    return out


def prune_vocabulary(model, tokenizer, texts: Sequence[str]) -> PrunedVocabulary:
    """A copy of ``model`` whose embedding table holds only the rows ``texts`` need (plus the
    fallback pieces), and the matching tokenizer. The original model is left untouched."""
    import torch
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    if not texts:
        raise ExportError("--prune-vocab: the given tables hold no text to keep wordpieces for")
    spec = _wordpiece_spec(tokenizer)
    counter = Tokenizer.from_str(json.dumps(spec))
    counter.no_truncation()
    counter.no_padding()
    used = {i for enc in counter.encode_batch(list(texts), add_special_tokens=False) for i in enc.ids}
    keep = kept_ids(spec, used)
    pruned_json = json.dumps(_remapped_spec(spec, keep), ensure_ascii=False)

    pruned = copy.deepcopy(model)
    old = pruned.get_input_embeddings()
    table = torch.nn.Embedding(len(keep), old.embedding_dim)
    with torch.no_grad():
        table.weight.copy_(old.weight[torch.from_numpy(keep)])
    pruned.set_input_embeddings(table)
    pruned.config.vocab_size = len(keep)
    if getattr(pruned.config, "pad_token_id", None) is not None:
        pruned.config.pad_token_id = int(np.searchsorted(keep, pruned.config.pad_token_id))

    pruned_tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer.from_str(pruned_json),
        model_max_length=tokenizer.model_max_length,
        model_input_names=list(tokenizer.model_input_names),
        **{k: v for k, v in tokenizer.special_tokens_map.items() if isinstance(v, str)},
    )
    full = len(spec["model"]["vocab"])
    summary = {
        "kept": int(len(keep)),
        "of": full,
        "used_by_texts": len(used),
        "texts": len(texts),
        "embedding_parameters_removed": int((full - len(keep)) * old.embedding_dim),
    }
    return PrunedVocabulary(pruned, pruned_tokenizer, pruned_json, summary)


def unchanged_share(original, pruned, queries: Sequence[str], texts: Sequence[str]) -> float:
    """Share of (query, text) pairs that the pruned tokenizer splits exactly as the original did:
    1.0 on the shop's own text, lower on words it never used."""
    if not queries:
        return 1.0
    a = original(list(queries), list(texts), add_special_tokens=False)["input_ids"]
    b = pruned(list(queries), list(texts), add_special_tokens=False)["input_ids"]
    same = [original.convert_ids_to_tokens(x) == pruned.convert_ids_to_tokens(y) for x, y in zip(a, b)]
    return float(np.mean(same))
