"""Tower models of catalog students: a product tower run once per product, a query tower run per
query, and a cheap interaction between them, so the catalog side of ranking is paid for when the
catalog is indexed. Defined here, beside the cross-encoders, because training builds them and
export converts them; how they are distilled is ``edgerank.train.towers``.

Two interactions:

- ``late-interaction`` (ColBERT, Khattab & Zaharia 2020): every token keeps an L2-normalised vector
  of ``dim`` dimensions; a pair scores the mean over query tokens of the best cosine against any
  product token (MaxSim). The mean rather than ColBERT's sum keeps one score scale across query
  lengths, which the margin and MSE losses against teacher logits need.
- ``bi-encoder``: one mean-pooled, L2-normalised vector per text; a pair scores their dot product.

Cosines live in [-1, 1] while teacher logits span several units, so the score is
``scale * interaction + bias`` with both learnable.

Whole-catalog search with late interaction cannot afford exact MaxSim over every token of a large
catalog on a small CPU, so it ranks products first by their pooled vector (the normalised sum of
their token vectors) against the query's, then reranks the best by MaxSim (runtime/catalog.py).
``forward(..., first_stage=True)`` also returns that pooled score, with its own scale and bias, so
distillation can train the first stage with the same losses.

The towers share one encoder by default (as ColBERT does); the product tower reads its text as
segment B (token type 1), where the teacher saw products, and the query tower as segment A.

A saved tower student is a folder: ``towers.safetensors``, ``encoder/config.json`` (to rebuild the
encoder without the teacher), the tokenizer and ``edgerank_towers.json`` (the spec, scale and bias).
"""

from __future__ import annotations

import copy
import inspect
import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import ModelError

TOWER_KINDS = ("late-interaction", "bi-encoder")
INTERACTIONS = {"late-interaction": "maxsim", "bi-encoder": "dot"}
TOWERS_FILE = "edgerank_towers.json"
WEIGHTS_FILE = "towers.safetensors"
ENCODER_DIR = "encoder"  # config.json of the encoder, to rebuild it without the teacher
QUERY_SEGMENT, PRODUCT_SEGMENT = 0, 1
DEFAULT_QUERY_MAX_LENGTH = 32


@dataclass
class TowerSpec:
    """What the towers are; saved as ``edgerank_towers.json`` and copied into the artifact manifest."""

    kind: str
    dim: int
    query_max_length: int = DEFAULT_QUERY_MAX_LENGTH
    product_max_length: int = 128
    shared: bool = True
    layers: list[int] | None = None

    @property
    def interaction(self) -> str:
        return INTERACTIONS[self.kind]

    def check(self) -> None:
        if self.kind not in TOWER_KINDS:
            raise ModelError(f"unknown tower kind {self.kind!r} (choose from {', '.join(TOWER_KINDS)})")
        if self.dim < 2:
            raise ModelError(f"--dim {self.dim} is too small for a tower vector (min 2)")
        if self.query_max_length < 4 or self.product_max_length < 4:
            raise ModelError("query and product max lengths must be at least 4 tokens")


class TowerStudent(nn.Module):
    """Query and product towers over BERT-like encoder(s), a projection to ``dim`` and a learnable score map."""

    def __init__(self, encoder: nn.Module, spec: TowerSpec, product_encoder: nn.Module | None = None):
        super().__init__()
        spec.check()
        self.spec = spec
        if getattr(encoder, "pooler", None) is not None:
            encoder.pooler = None  # unused by the towers; DDP refuses parameters that get no gradient
        self.query_encoder = encoder
        self.product_encoder = product_encoder if not spec.shared else None
        if not spec.shared and product_encoder is None:
            self.product_encoder = copy.deepcopy(encoder)
        self.projection = nn.Linear(encoder.config.hidden_size, spec.dim)
        self.scale = nn.Parameter(torch.tensor(20.0))
        self.bias = nn.Parameter(torch.tensor(0.0))
        if spec.kind == "late-interaction":  # the pooled first stage of search (module docstring)
            self.pooled_scale = nn.Parameter(torch.tensor(20.0))
            self.pooled_bias = nn.Parameter(torch.tensor(0.0))
        accepts_types = "token_type_ids" in inspect.signature(encoder.forward).parameters
        self.uses_segments = accepts_types and getattr(encoder.config, "type_vocab_size", 0) >= 2

    @property
    def config(self):
        """The encoder's config (for FLOPs and size reports shared with the cross-encoder students)."""
        return self.query_encoder.config

    def encode(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        product: bool,
        token_type_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Late interaction: (batch, tokens, dim) unit vectors, zero at padding. Bi-encoder: (batch, dim).
        ``token_type_ids`` overrides the tower's segment (the exported shared graph takes it as an input)."""
        encoder = self.product_encoder if product and self.product_encoder is not None else self.query_encoder
        kwargs = {}
        if self.uses_segments:
            kwargs["token_type_ids"] = (
                token_type_ids
                if token_type_ids is not None
                else torch.full_like(input_ids, PRODUCT_SEGMENT if product else QUERY_SEGMENT)
            )
        hidden = encoder(input_ids=input_ids, attention_mask=attention_mask, **kwargs).last_hidden_state
        vectors = self.projection(hidden)
        mask = attention_mask.unsqueeze(-1).to(vectors.dtype)
        if self.spec.kind == "bi-encoder":
            pooled = (vectors * mask).sum(1) / mask.sum(1).clamp(min=1.0)
            return F.normalize(pooled, dim=-1)
        return F.normalize(vectors, dim=-1) * mask

    def interact(self, q: torch.Tensor, q_mask: torch.Tensor, p: torch.Tensor, p_mask: torch.Tensor) -> torch.Tensor:
        """Unscaled similarity of aligned (query, product) rows."""
        if self.spec.kind == "bi-encoder":
            return (q * p).sum(-1)
        sim = q @ p.transpose(1, 2)  # (batch, query tokens, product tokens)
        sim = sim.masked_fill(p_mask[:, None, :] == 0, -2.0)  # below any cosine: padding never wins
        best = sim.max(-1).values * q_mask
        return best.sum(-1) / q_mask.sum(-1).clamp(min=1)

    def forward(
        self,
        query_ids: torch.Tensor,
        query_mask: torch.Tensor,
        product_ids: torch.Tensor,
        product_mask: torch.Tensor,
        query_index: torch.Tensor,
        first_stage: bool = False,
    ):
        """Scores of each product row against query row ``query_index[i]``; each query is encoded once.
        With ``first_stage`` (late interaction) also the pooled-vector scores search ranks by first."""
        q = self.encode(query_ids, query_mask, product=False)[query_index]
        p = self.encode(product_ids, product_mask, product=True)
        scores = self.scale * self.interact(q, query_mask[query_index], p, product_mask) + self.bias
        if not first_stage:
            return scores
        pooled = (F.normalize(q.sum(1), dim=-1) * F.normalize(p.sum(1), dim=-1)).sum(-1)
        return scores, self.pooled_scale * pooled + self.pooled_bias


def tokenize_texts(tokenizer, texts: Sequence[str], max_length: int) -> dict[str, torch.Tensor]:
    """``[CLS] text [SEP]`` per text, cut to ``max_length``, padded to the batch's longest."""
    enc = tokenizer(list(texts), padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}


def tower_inputs(tokenizer, queries: Sequence[str], texts: Sequence[str], spec: TowerSpec, device) -> dict:
    """Model inputs for aligned (query, text) lists: unique queries once, products all, and the map."""
    unique = list(dict.fromkeys(queries))
    position = {q: i for i, q in enumerate(unique)}
    q = tokenize_texts(tokenizer, unique, spec.query_max_length)
    p = tokenize_texts(tokenizer, texts, spec.product_max_length)
    return {
        "query_ids": q["input_ids"].to(device),
        "query_mask": q["attention_mask"].to(device),
        "product_ids": p["input_ids"].to(device),
        "product_mask": p["attention_mask"].to(device),
        "query_index": torch.tensor([position[x] for x in queries], device=device),
    }


def score_tower_pairs(
    model: TowerStudent,
    tokenizer,
    queries: Sequence[str],
    texts: Sequence[str],
    *,
    batch_size: int = 64,
    progress: bool = False,
) -> np.ndarray:
    """Scores for aligned query/text lists in input order (the towers' ``modeling.score_pairs``)."""
    from tqdm.auto import tqdm

    device = next(model.parameters()).device
    out = np.empty(len(queries), dtype=np.float32)
    model.eval()
    with torch.inference_mode():
        for start in tqdm(
            range(0, len(queries), batch_size), desc="scoring", unit="batch", disable=not progress, leave=False
        ):
            end = start + batch_size
            scores = model(**tower_inputs(tokenizer, queries[start:end], texts[start:end], model.spec, device))
            out[start:end] = scores.float().cpu().numpy()
    return out


def score_tower_groups(model: TowerStudent, tokenizer, groups, **kwargs) -> list[np.ndarray]:
    """Scores for each query group's candidates, one array per group."""
    from ..data import score_by_group

    return score_by_group(groups, lambda queries, texts: score_tower_pairs(model, tokenizer, queries, texts, **kwargs))


def save_towers(model: TowerStudent, tokenizer, folder: Path, extra: dict | None = None) -> None:
    """``towers.safetensors`` + ``encoder/config.json`` + tokenizer + ``edgerank_towers.json``."""
    from safetensors.torch import save_file

    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    save_file(state, str(folder / WEIGHTS_FILE))
    model.query_encoder.config.save_pretrained(folder / ENCODER_DIR)
    tokenizer.save_pretrained(folder)
    (folder / TOWERS_FILE).write_text(
        json.dumps(
            {
                **asdict(model.spec),
                "interaction": model.spec.interaction,
                "scale": model.scale.item(),
                "bias": model.bias.item(),
                **(extra or {}),
            },
            indent=2,
        )
    )


def is_tower_folder(path: str | os.PathLike) -> bool:
    return (Path(path) / TOWERS_FILE).exists()


def load_towers(path: str | os.PathLike) -> TowerStudent:
    """A saved tower student, in float32, in eval mode."""
    from safetensors.torch import load_file
    from transformers import AutoConfig, AutoModel

    from . import offline

    offline()
    path = Path(path)
    if not is_tower_folder(path):
        raise ModelError(f"{path}: not a tower student folder (no {TOWERS_FILE})")
    meta = json.loads((path / TOWERS_FILE).read_text())
    spec = TowerSpec(**{k: meta[k] for k in TowerSpec.__dataclass_fields__ if k in meta})
    config = AutoConfig.from_pretrained(str(path / ENCODER_DIR))
    model = TowerStudent(AutoModel.from_config(config, dtype=torch.float32), spec)
    try:
        model.load_state_dict(load_file(str(path / WEIGHTS_FILE)))
    except RuntimeError as e:
        raise ModelError(f"{path}: {WEIGHTS_FILE} does not match the towers ({str(e).splitlines()[0]})") from None
    return model.eval()
