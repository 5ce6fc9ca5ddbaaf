"""Vocabulary pruning at export: the shop's own text scores exactly as before through the runtime,
unseen words fall back to smaller pieces (never [UNK]), the table shrinks, the gate judges against
the unpruned source, and what cannot be pruned is refused."""

from __future__ import annotations

import json

import numpy as np
import pytest
from catalog_fixtures import *  # noqa: F401,F403
from click.testing import CliRunner
from conftest import tiny_judged_rows, write_csv

from edgerank.artifact import load_artifact
from edgerank.cli import main
from edgerank.export import ExportError, export_artifact
from edgerank.export.vocab import kept_ids, prune_vocabulary, vocabulary_texts
from edgerank.runtime import Ranker


def _source_scores(model_dir, queries, texts, max_length=32) -> np.ndarray:
    from edgerank.modeling import load_cross_encoder, load_tokenizer, score_pairs

    return score_pairs(load_cross_encoder(model_dir), load_tokenizer(model_dir), queries, texts, max_length=max_length)


def test_pruned_artifact_scores_the_shops_text_exactly_and_is_smaller(tiny_cross_encoder, tiny_judged_csv, tmp_path):
    full = export_artifact(
        tiny_cross_encoder,
        tmp_path / "full",
        "fp32",
        max_length=32,
        require_head=False,
        calibration=str(tiny_judged_csv),
    )
    pruned = export_artifact(
        tiny_cross_encoder,
        tmp_path / "pruned",
        "fp32",
        max_length=32,
        require_head=False,
        calibration=str(tiny_judged_csv),
        prune_vocab=(str(tiny_judged_csv),),
    )
    vocab = load_artifact(pruned).manifest["tokenizer"]["vocabulary"]
    assert vocab["of"] == 30522 and vocab["used_by_texts"] < 60 and vocab["kept"] < 2100
    assert vocab["unchanged_parity_pairs"] == 1.0  # parity pairs come from the same table
    assert vocab["embedding_parameters_removed"] == (vocab["of"] - vocab["kept"]) * 32
    assert (pruned / "model.onnx").stat().st_size < 0.2 * (full / "model.onnx").stat().st_size
    # the HF config the artifact carries (for optimum-based peers) describes the pruned graph, not the source
    assert json.loads((pruned / "config.json").read_text())["vocab_size"] == vocab["kept"]

    rows = tiny_judged_rows()
    queries, titles = [r["query"] for r in rows], [r["product_title"] for r in rows]
    ranker = Ranker.load(pruned, threads=1)
    got = ranker.score(list(zip(queries, titles)))
    np.testing.assert_allclose(got, _source_scores(tiny_cross_encoder, queries, titles), atol=1e-4)


def test_unseen_words_are_spelled_from_kept_pieces_not_unk(tiny_cross_encoder, tiny_judged_csv, tmp_path):
    from tokenizers import Tokenizer

    out = export_artifact(
        tiny_cross_encoder,
        tmp_path / "pruned",
        "fp32",
        max_length=32,
        require_head=False,
        prune_vocab=(str(tiny_judged_csv),),
    )
    tok = Tokenizer.from_file(str(out / "tokenizer.json"))
    tok.no_padding()  # the packaged file pads to 128, like the unpruned one; the runtime turns it off
    pieces = tok.encode("quixotic wrench", add_special_tokens=False).tokens
    assert "[UNK]" not in pieces and "".join(p.removeprefix("##") for p in pieces) == "quixoticwrench"
    original = Tokenizer.from_file(str(tiny_cross_encoder / "tokenizer.json"))
    original.no_padding()
    assert tok.encode("red cordless drill").tokens == original.encode("red cordless drill").tokens


def test_gate_compares_the_pruned_export_with_the_unpruned_source(tiny_cross_encoder, tiny_judged_csv, tmp_path):
    """Dev text the vocabulary never saw is tokenized differently; the gate measures that against
    the source model (its fp32 column is the unpruned model's nDCG)."""
    from edgerank.evaluate import evaluate_model
    from edgerank.modeling import load_cross_encoder, load_tokenizer

    catalog = write_csv(tmp_path / "catalog.csv", [{"product_id": "p1", "product_title": "Red Cordless Drill"}])
    out = export_artifact(
        tiny_cross_encoder,
        tmp_path / "art",
        "int8-dynamic",
        max_length=32,
        require_head=False,
        eval_data=str(tiny_judged_csv),
        max_quality_drop=10.0,
        min_agreement=0.0,
        prune_vocab=(str(catalog),),
    )
    m = load_artifact(out).manifest
    source = evaluate_model(
        load_cross_encoder(tiny_cross_encoder), load_tokenizer(tiny_cross_encoder), str(tiny_judged_csv), max_length=32
    )
    assert m["quality"]["fp32"]["ndcg@10"] == pytest.approx(source["model"]["ndcg@10"], abs=1e-6)
    assert m["tokenizer"]["vocabulary"]["unchanged_parity_pairs"] < 1.0
    assert m["parity"]["fp32"]["max_abs_diff"] < 1e-4  # the export itself is exact on the pruned model


def test_catalog_reads_as_vocabulary_source_and_kept_ids_hold_the_fallback(tiny_cross_encoder, tmp_path):
    from edgerank.modeling import load_tokenizer

    catalog = write_csv(
        tmp_path / "catalog.csv",
        [{"product_id": "p1", "product_title": "Garden Hose"}, {"product_id": "p2", "product_title": "Door Hinge"}],
    )
    assert vocabulary_texts([catalog]) == ["Garden Hose", "Door Hinge"]
    tokenizer = load_tokenizer(tiny_cross_encoder)
    spec = json.loads(tokenizer.backend_tokenizer.to_str())
    keep = kept_ids(spec, tokenizer("garden hose", add_special_tokens=False)["input_ids"])
    vocab = spec["model"]["vocab"]
    assert {vocab[p] for p in ("garden", "hose", "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "q", "##q")} <= set(keep)
    assert vocab["door"] not in set(keep) and list(keep) == sorted(keep)


def test_non_wordpiece_tokenizer_and_empty_text_are_refused(tiny_cross_encoder):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    from edgerank.modeling import load_cross_encoder, load_tokenizer

    model = load_cross_encoder(tiny_cross_encoder)
    bpe = Tokenizer(models.BPE(vocab={"a": 0, "b": 1, "[UNK]": 2}, merges=[], unk_token="[UNK]"))
    bpe.pre_tokenizer = pre_tokenizers.Whitespace()
    with pytest.raises(ExportError, match="supports WordPiece tokenizers .* BPE"):
        prune_vocabulary(model, PreTrainedTokenizerFast(tokenizer_object=bpe, unk_token="[UNK]"), ["a b"])
    with pytest.raises(ExportError, match="no text"):
        prune_vocabulary(model, load_tokenizer(tiny_cross_encoder), [])


def test_catalog_students_refuse_pruning(tower_students, tmp_path, tiny_judged_csv):
    with pytest.raises(ExportError, match="cross-encoders only"):
        export_artifact(
            tower_students["late-interaction"],
            tmp_path / "t",
            "fp32",
            max_length=32,
            prune_vocab=(str(tiny_judged_csv),),
        )
    assert not (tmp_path / "t").exists()


def test_cli_prune_vocab_reports_what_was_kept(tiny_cross_encoder, tiny_judged_csv, tmp_path):
    result = CliRunner().invoke(
        main,
        [
            "export",
            "--model",
            str(tiny_cross_encoder),
            "--out",
            str(tmp_path / "a"),
            "--allow-untrained-head",
            "--max-length",
            "32",
            "--prune-vocab",
            str(tiny_judged_csv),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "vocabulary pruned to" in result.output and "of 30,522 wordpieces" in result.output
