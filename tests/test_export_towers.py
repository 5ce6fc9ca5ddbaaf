"""Export of catalog students: two tower graphs in one verified artifact, parity with torch, INT8, refusals."""

from __future__ import annotations

import dataclasses

import numpy as np
import onnx
import pytest
import torch
from catalog_fixtures import *  # noqa: F401,F403
from click.testing import CliRunner

from edgerank.artifact import load_artifact
from edgerank.cli import main
from edgerank.export import ExportError, export_artifact
from edgerank.export.scoring import ort_session

IDS = np.array([[101, 2417, 6153, 102, 0], [101, 2417, 102, 0, 0]], dtype=np.int64)


def tower_vectors(art, role: str) -> np.ndarray:
    """A role's vectors for IDS, fed exactly as the manifest says (inputs, segment)."""
    graph = art.graph(role)
    feeds = {"input_ids": IDS, "attention_mask": (IDS != 0).astype(np.int64)}
    if "segment" in graph:
        feeds["token_type_ids"] = np.full_like(IDS, graph["segment"])
    session = ort_session(art.file(graph["file"]), threads=1)
    assert [i.name for i in session.get_inputs()] == graph["inputs"]
    return session.run(None, feeds)[0]


@pytest.mark.parametrize("kind", ["late-interaction", "bi-encoder"])
def test_tower_artifact_has_two_graphs_and_the_interaction(kind, tower_artifacts):
    art = load_artifact(tower_artifacts[kind])
    m = art.manifest
    assert art.kind == kind and set(m["graphs"]) == {"query", "product"}
    towers = m["towers"]
    assert towers["dim"] == 16 and towers["interaction"] == {"late-interaction": "maxsim", "bi-encoder": "dot"}[kind]
    assert (towers["query_max_length"], towers["product_max_length"]) == (8, 24)
    assert towers["store_dtype"] == "float16" and np.isfinite(towers["scale"]) and np.isfinite(towers["bias"])
    assert m["parity"]["fp32"]["max_abs_diff"] < 1e-4 and m["parity"]["fp32"]["spearman"] > 0.999
    # shared encoder: one graph for both roles, told its segment through token_type_ids
    assert m["graphs"]["query"]["file"] == m["graphs"]["product"]["file"] == "tower.onnx"
    assert (m["graphs"]["query"]["segment"], m["graphs"]["product"]["segment"]) == (0, 1)
    assert m["graphs"]["query"]["max_positions"] == m["graphs"]["product"]["max_positions"] == 512
    assert sorted(m["files"]) == ["tokenizer.json", "tower.onnx"]
    outs = {r: tower_vectors(art, r) for r in ("query", "product")}
    mask = (IDS != 0).astype(np.int64)
    if kind == "late-interaction":
        assert outs["query"].shape == (2, 5, 16)
        np.testing.assert_allclose(np.linalg.norm(outs["query"], axis=-1), mask, atol=1e-5)  # unit, zero at padding
    else:
        assert outs["query"].shape == (2, 16)
        np.testing.assert_allclose(np.linalg.norm(outs["query"], axis=-1), 1.0, atol=1e-5)
    assert not np.allclose(outs["query"], outs["product"])  # segment A vs segment B


def test_int8_towers_keep_the_order_and_are_quantized(tower_students, tower_artifacts, tmp_path):
    out = export_artifact(tower_students["late-interaction"], tmp_path / "int8", "int8-dynamic", reduce_range=True)
    m = load_artifact(out).manifest
    assert m["precision"] == "int8-dynamic" and m["export"]["quantization"]["per_channel"] is True
    assert m["parity"]["int8-dynamic"]["spearman"] > 0.9
    assert "MatMulInteger" in {n.op_type for n in onnx.load(str(out / "tower.onnx")).graph.node}
    fp32 = tower_artifacts["late-interaction"] / "tower.onnx"
    assert (out / "tower.onnx").stat().st_size < 0.5 * fp32.stat().st_size


def test_tower_export_refuses_what_does_not_apply_and_writes_nothing(tower_students, tmp_path):
    with pytest.raises(ExportError, match="int8-dynamic"):
        export_artifact(tower_students["bi-encoder"], tmp_path / "a", "fp16")
    with pytest.raises(ExportError, match="optimize"):
        export_artifact(tower_students["bi-encoder"], tmp_path / "b", "fp32", optimize=True)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_export_cli_picks_the_towers_by_the_folder(tower_students, tiny_judged_csv, tmp_path):
    result = CliRunner().invoke(
        main,
        [
            "export",
            "--model",
            str(tower_students["bi-encoder"]),
            "--out",
            str(tmp_path / "art"),
            "--eval-data",
            str(tiny_judged_csv),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "parity fp32 vs torch" in result.output and "quality on 12 queries" in result.output
    assert load_artifact(tmp_path / "art").manifest["quality"]["passed"] is True


def test_separate_towers_ship_two_graphs_with_the_segment_baked_in(tower_students, tmp_path):
    """A product tower with its own encoder: query.onnx and product.onnx, two inputs each, and the
    runtime scores them as the torch towers do."""
    from edgerank.modeling import load_tokenizer
    from edgerank.modeling.towers import TowerStudent, load_towers, save_towers, score_tower_pairs
    from edgerank.runtime import Ranker

    shared = load_towers(tower_students["bi-encoder"])
    torch.manual_seed(1)
    spec = dataclasses.replace(shared.spec, shared=False)
    model = TowerStudent(shared.query_encoder, spec)
    with torch.no_grad():  # make the product tower differ from the query tower
        for p in model.product_encoder.parameters():
            p.add_(0.05 * torch.randn_like(p))
    folder = tmp_path / "separate"
    folder.mkdir()
    tok = load_tokenizer(tower_students["bi-encoder"])
    save_towers(model, tok, folder)
    art = load_artifact(export_artifact(folder, tmp_path / "art", "fp32"))
    assert [art.graph(r)["file"] for r in ("query", "product")] == ["query.onnx", "product.onnx"]
    assert all(art.graph(r)["inputs"] == ["input_ids", "attention_mask"] for r in ("query", "product"))
    pairs = [("red cordless drill", "Red 18V Cordless Drill Kit"), ("garden hose", "Stainless Door Hinge Set")]
    expected = score_tower_pairs(load_towers(folder), tok, [q for q, _ in pairs], [t for _, t in pairs])
    np.testing.assert_allclose(Ranker.load(art.path, threads=1).score(pairs), expected, atol=1e-4)


def test_tower_lengths_past_the_encoder_positions_are_refused(tower_students, tmp_path):
    from edgerank.modeling import load_tokenizer
    from edgerank.modeling.towers import load_towers, save_towers

    model = load_towers(tower_students["bi-encoder"])
    model.spec = dataclasses.replace(model.spec, product_max_length=600)
    folder = tmp_path / "long"
    folder.mkdir()
    save_towers(model, load_tokenizer(tower_students["bi-encoder"]), folder)
    with pytest.raises(ExportError, match="product_max_length 600 is more than the 512 token positions of BertModel"):
        export_artifact(folder, tmp_path / "art", "fp32")
    assert not (tmp_path / "art").exists()
