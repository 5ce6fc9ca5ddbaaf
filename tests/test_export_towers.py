"""Export of catalog students: two tower graphs in one verified artifact, parity with torch, INT8, refusals."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from click.testing import CliRunner

from edgerank.artifact import load_artifact
from edgerank.cli import main
from edgerank.export import ExportError, export_artifact
from edgerank.export.scoring import ort_session

from catalog_fixtures import *  # noqa: F401,F403


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
    ids = np.array([[101, 2417, 6153, 102, 0], [101, 2417, 102, 0, 0]], dtype=np.int64)
    mask = (ids != 0).astype(np.int64)
    outs = {r: ort_session(art.file(art.graph(r)["file"]), threads=1).run(None, {"input_ids": ids, "attention_mask": mask})[0]
            for r in ("query", "product")}
    if kind == "late-interaction":
        assert outs["query"].shape == (2, 5, 16)
        np.testing.assert_allclose(np.linalg.norm(outs["query"], axis=-1), mask, atol=1e-5)  # unit, zero at padding
    else:
        assert outs["query"].shape == (2, 16)
        np.testing.assert_allclose(np.linalg.norm(outs["query"], axis=-1), 1.0, atol=1e-5)
    assert not np.allclose(outs["query"], outs["product"])  # segment A vs segment B


def test_int8_towers_keep_the_order_and_are_quantized(tower_students, tmp_path):
    out = export_artifact(tower_students["late-interaction"], tmp_path / "int8", "int8-dynamic", reduce_range=True)
    m = load_artifact(out).manifest
    assert m["precision"] == "int8-dynamic" and m["export"]["quantization"]["per_channel"] is True
    assert m["parity"]["int8-dynamic"]["spearman"] > 0.9
    for role in ("query", "product"):
        assert "MatMulInteger" in {n.op_type for n in onnx.load(str(out / f"{role}.onnx")).graph.node}


def test_tower_export_refuses_what_does_not_apply_and_writes_nothing(tower_students, tmp_path):
    with pytest.raises(ExportError, match="int8-dynamic"):
        export_artifact(tower_students["bi-encoder"], tmp_path / "a", "fp16")
    with pytest.raises(ExportError, match="optimize"):
        export_artifact(tower_students["bi-encoder"], tmp_path / "b", "fp32", optimize=True)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_export_cli_picks_the_towers_by_the_folder(tower_students, tiny_judged_csv, tmp_path):
    result = CliRunner().invoke(main, ["export", "--model", str(tower_students["bi-encoder"]), "--out",
                                       str(tmp_path / "art"), "--eval-data", str(tiny_judged_csv)])
    assert result.exit_code == 0, result.output
    assert "parity fp32 vs torch" in result.output and "quality on 12 queries" in result.output
    assert load_artifact(tmp_path / "art").manifest["quality"]["passed"] is True
