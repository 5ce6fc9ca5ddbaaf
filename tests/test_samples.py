"""The built-in sample shop: readable by the canonical reader, split by query, graded 0..3, and
exactly what its seeded generator writes (so the committed CSVs never drift from their rules)."""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from edgerank.data import evaluable, group_queries, read_catalog, read_table
from edgerank.metrics import BM25Baseline, evaluate
from edgerank.samples import SAMPLES_DIR, SHOP_DEV, SHOP_PRODUCTS, SHOP_TRAIN

GENERATOR = Path(__file__).parents[1] / "scripts" / "make_sample_shop.py"


def _read(path: Path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning while reading fails the test
        df, report = read_table(path)
    assert report.warnings() == [], report.warnings()
    return df


@pytest.fixture(scope="module")
def shop():
    return {"train": _read(SHOP_TRAIN), "dev": _read(SHOP_DEV)}


def test_tables_read_cleanly_with_enough_queries(shop):
    queries = {split: set(df["query_id"]) for split, df in shop.items()}
    assert len(queries["train"]) + len(queries["dev"]) >= 60
    assert len(queries["dev"]) >= 20


def test_no_query_in_both_splits(shop):
    assert not set(shop["train"]["query_id"]) & set(shop["dev"]["query_id"])
    assert not set(shop["train"]["query"]) & set(shop["dev"]["query"])


def test_labels_are_grades_0_to_3_and_every_query_can_rank(shop):
    for split, df in shop.items():
        assert set(df["relevance"].unique()) == {0.0, 1.0, 2.0, 3.0}, split
        groups = group_queries(df, offset=0)
        assert all(8 <= len(g.texts) <= 20 for g in groups), split
        assert all(len(np.unique(g.labels)) >= 2 for g in groups), split
        assert len(evaluable(groups)) == len(groups)


def test_catalog_matches_the_judged_products(shop):
    catalog, report = read_catalog(SHOP_PRODUCTS)
    assert report.warnings() == [] and len(catalog) >= 200
    titles = dict(zip(catalog["product_id"], catalog["product_title"]))
    for df in shop.values():
        assert all(titles[p] == t for p, t in zip(df["product_id"], df["product_title"]))


def test_bm25_is_good_but_not_perfect(shop):
    """The shop is built so word overlap misleads sometimes: BM25 must leave room to improve."""
    groups = evaluable(group_queries(shop["dev"], offset=0))
    ndcg = evaluate(groups, BM25Baseline().score(groups))["ndcg@10"]
    assert 0.75 < ndcg < 0.95


def test_sample_is_small():
    assert sum(p.stat().st_size for p in SAMPLES_DIR.iterdir()) < 240_000


def test_generator_rebuilds_the_committed_files(tmp_path):
    subprocess.run([sys.executable, str(GENERATOR), "--out", str(tmp_path)], check=True, capture_output=True)
    for path in (SHOP_PRODUCTS, SHOP_TRAIN, SHOP_DEV):
        assert (tmp_path / path.name).read_bytes() == path.read_bytes(), (
            f"{path.name} differs from what scripts/make_sample_shop.py writes: regenerate and commit it"
        )
