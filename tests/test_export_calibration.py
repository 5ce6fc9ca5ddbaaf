"""Calibration sets (stratified by token length and label), the calibration reader, the probability
map fit — the parts of export that decide numbers rather than plumbing."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from edgerank.export.calibration import build_calibration_set, pair_reader
from edgerank.export.probability import fit_probability
from edgerank.export.scoring import pair_tokenizer


@pytest.fixture(scope="module")
def tokenizer(tiny_cross_encoder):
    return pair_tokenizer(tiny_cross_encoder / "tokenizer.json", 64, 0, "[PAD]")


@pytest.fixture()
def varied_csv(tmp_path):
    """200 pairs: titles of 1 to 40 words, labels 1..3, skewed towards short irrelevant pairs."""
    rng = np.random.default_rng(0)
    path = tmp_path / "pairs.csv"
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["query", "product_title", "relevance"])
        for i in range(200):
            words = 1 + int(rng.integers(0, 40)) if i % 4 == 0 else 2
            label = 3 if i % 10 == 0 else (2 if i % 10 < 3 else 1)
            w.writerow([f"query {i % 17}", " ".join(["drill"] * words) + f" {i}", label])
    return path


def test_calibration_set_covers_every_length_and_label_stratum(varied_csv, tokenizer):
    calib = build_calibration_set(varied_csv, tokenizer, n=40, seed=0)
    s = calib.summary
    assert s["n"] == len(calib.queries) == len(calib.texts) == 40 and s["source_rows"] == 200
    assert len(s["source_sha256"]) == 64 and sum(s["strata"].values()) == 40
    assert all(c >= 1 for c in s["strata"].values())
    assert {k.split(" | ")[1] for k in s["strata"]} == {"label low", "label mid", "label high"}
    assert len({k.split(" | ")[0] for k in s["strata"]}) >= 2
    # A random 40 of this file would hold ~4 high-label pairs; stratification keeps them in proportion
    # with at least one per stratum, and the same seed gives the same set.
    assert build_calibration_set(varied_csv, tokenizer, n=40, seed=0).texts == calib.texts
    assert build_calibration_set(varied_csv, tokenizer, n=40, seed=1).texts != calib.texts


def test_calibration_set_is_capped_by_the_file_and_works_without_labels(tiny_judged_csv, tmp_path, tokenizer):
    assert build_calibration_set(tiny_judged_csv, tokenizer, n=1000).summary["n"] == 48
    unlabelled = tmp_path / "u.csv"
    unlabelled.write_text("query,product_title\ndrill,Cordless Drill\nhose,Garden Hose 50 ft\n")
    calib = build_calibration_set(unlabelled, tokenizer, n=5)
    assert calib.summary["n"] == 2 and all("unlabelled" in k for k in calib.summary["strata"])


def test_reader_yields_padded_batches_with_the_graph_inputs(tokenizer):
    queries, texts = ["a"] * 5, ["short", "a much longer product title here", "x", "y", "z"]
    reader = pair_reader(tokenizer, queries, texts, ["input_ids", "attention_mask"], batch_size=2)
    batches = list(iter(reader.get_next, None))
    assert [b["input_ids"].shape[0] for b in batches] == [2, 2, 1]
    assert all(set(b) == {"input_ids", "attention_mask"} and b["input_ids"].dtype == np.int64 for b in batches)
    assert batches[0]["attention_mask"][0].sum() < batches[0]["attention_mask"][1].sum()  # padded, masked
    reader.rewind()
    assert reader.get_next()["input_ids"].shape == batches[0]["input_ids"].shape


def test_uniform_reader_gives_every_batch_one_shape(tokenizer):
    """What the histogram calibrators (entropy, percentile) need: same batch size and width throughout."""
    queries, texts = ["a"] * 5, ["short", "a much longer product title here", "x", "y", "z"]
    reader = pair_reader(
        tokenizer, queries, texts, ["input_ids", "attention_mask", "token_type_ids"], batch_size=2, uniform=True
    )
    batches = list(iter(reader.get_next, None))
    assert len(batches) == 3 and len({b["input_ids"].shape for b in batches}) == 1
    assert all(b["input_ids"].shape == b["attention_mask"].shape == b["token_type_ids"].shape for b in batches)
    assert batches[2]["attention_mask"][1].tolist() == batches[0]["attention_mask"][0].tolist()  # wrapped round
    assert (batches[0]["input_ids"][batches[0]["attention_mask"] == 0] == tokenizer.padding["pad_id"]).all()


def test_probability_fit_recovers_a_known_temperature_and_bias():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, 4000)
    gains = rng.binomial(1, 1 / (1 + np.exp(-(logits / 2.5 - 0.5)))) * 2.0  # 0/2 gains, T=2.5, b=-0.5
    fit = fit_probability(logits, gains)
    assert fit["method"] == "fitted"
    assert fit["temperature"] == pytest.approx(2.5, rel=0.1) and fit["bias"] == pytest.approx(-0.5, abs=0.15)


def test_probability_fit_falls_back_to_sigmoid_when_it_cannot_fit():
    logits = np.linspace(-2, 2, 50)
    assert fit_probability(logits, -logits)["method"] == "sigmoid"  # relevance falls as logits rise
    assert fit_probability(logits, np.ones(50))["method"] == "sigmoid"
