"""Ranker: canonical scores against torch, ordering, no mutation, bad input, tampered artifacts, batching."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest
from runtime_fixtures import MAX_LENGTH, artifact_copy, catalog, rt_artifact, rt_ranker  # noqa: F401

from edgerank.runtime import ArtifactError, BackendError, Ranker, RankerInputError, product_text

QUERIES = ["cordless drill", "red garden hose 50 ft", "brass door hinge"]


def test_scores_match_torch_model(rt_ranker, tiny_cross_encoder):
    """The runtime is the exported model: same tokens, same logits (fp32) as transformers + torch,
    including pairs long enough to be truncated, and texts so long the runtime clips them before
    tokenizing (torch reads them whole)."""
    from edgerank.modeling import load_cross_encoder, load_tokenizer, score_pairs

    texts = [p["title"] + " " + p["description"] for p in catalog(12)] + [
        "steel kit " * 80,
        "x",
        "brass  hinge\n" * 2000,
    ]
    queries = [QUERIES[i % 3] for i in range(len(texts))]
    expected = score_pairs(
        load_cross_encoder(tiny_cross_encoder),
        load_tokenizer(tiny_cross_encoder),
        queries,
        texts,
        max_length=MAX_LENGTH,
    )
    got = rt_ranker.score(list(zip(queries, texts)))
    assert got.dtype == np.float32 and got.shape == expected.shape
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)
    assert np.std(got) > 1e-3  # the tiny model's scores differ, so the comparison means something


def test_product_text_matches_training_rule():
    from edgerank.data import product_text as training_text

    for title, desc in [("Drill", ""), ("Drill", "18V kit"), ("Drill ", " kit "), ("Hose", "  ")]:
        assert product_text(title, desc) == training_text(title, desc)


def test_rank_sorted_top_k_and_counters(rt_ranker):
    products = catalog(12) + [{"id": "long", "title": "drill " * 200}]
    result = rt_ranker.rank("cordless drill", products)
    scores = [item.score for item in result]
    assert scores == sorted(scores, reverse=True)
    assert [item.rank for item in result] == list(range(1, 14))
    assert sorted(result.ids) == sorted(p["id"] for p in products)
    assert result.candidates == 13 and result.truncated == 1
    assert [i.id for i in result if i.truncated] == ["long"]
    # rank() and score() agree on every product
    direct = rt_ranker.score([("cordless drill", product_text(p["title"], p.get("description", ""))) for p in products])
    by_id = {item.id: item.relevance for item in result}
    np.testing.assert_allclose([by_id[p["id"]] for p in products], direct, atol=1e-6)
    top = rt_ranker.rank("cordless drill", products, top_k=3)
    assert top.ids == result.ids[:3] and top.candidates == 13
    assert len(rt_ranker.rank("cordless drill", products, top_k=100)) == 13


def test_probability_is_the_manifest_map(rt_ranker):
    spec = rt_ranker.artifact.manifest["score"]["probability"]
    item = rt_ranker.rank("drill", catalog(3))[0]
    expected = 1 / (1 + np.exp(-(item.relevance / spec.get("temperature", 1.0) + spec.get("bias", 0.0))))
    assert item.probability == pytest.approx(expected, abs=1e-9)
    assert item.score == item.relevance  # no blend: sorted by relevance


def test_no_mutation_and_products_returned_as_given(rt_ranker):
    products = catalog(8)
    before = copy.deepcopy(products)
    result = rt_ranker.rank("red drill", products, top_k=5, explain=True, blend={"signals": {"in_stock": 0.1}})
    assert products == before
    by_id = {p["id"]: p for p in products}
    assert all(item.product is by_id[item.id] for item in result)


def test_objects_and_dicts_rank_the_same(rt_ranker):
    dicts = catalog(6)
    objects = [SimpleNamespace(**d) for d in dicts]
    a, b = rt_ranker.rank("paint roller", dicts), rt_ranker.rank("paint roller", objects)
    assert a.ids == b.ids and [i.score for i in a] == [i.score for i in b]
    assert isinstance(b[0].product, SimpleNamespace)


def test_deterministic_across_calls_and_processes(rt_ranker, rt_artifact):
    products = catalog(20)
    first = rt_ranker.rank("blue hose kit", products).to_dict()
    assert all(rt_ranker.rank("blue hose kit", products).to_dict() == first for _ in range(3))
    code = (
        "import json,sys; from edgerank.runtime import Ranker; "
        "r = Ranker.load(sys.argv[1], threads=1); print(json.dumps(r.rank('blue hose kit', json.loads(sys.argv[2])).to_dict()))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(rt_artifact), json.dumps(products)], capture_output=True, text=True, check=True
    ).stdout
    assert json.loads(out) == json.loads(json.dumps(first))


def test_ties_keep_input_order(rt_ranker):
    products = [{"id": i, "title": "same title"} for i in range(5)]
    assert rt_ranker.rank("drill", products).ids == [0, 1, 2, 3, 4]


def test_batches_are_capped_and_length_bucketed(rt_artifact):
    """300 candidates x max length never go through one forward pass (a known OOM elsewhere)."""
    ranker = Ranker.load(rt_artifact, threads=1, max_batch_size=16)
    shapes = []
    backend = ranker._scorer.backend
    real_run = backend.run
    backend.run = lambda feeds: shapes.append(feeds["input_ids"].shape) or real_run(feeds)
    products = [{"id": i, "title": "long title " * (1 + i % 60)} for i in range(300)]
    result = ranker.rank("drill", products)
    assert result.candidates == 300 and result.truncated > 0
    assert sum(s[0] for s in shapes) == 300 and max(s[0] for s in shapes) <= 16
    assert max(s[1] for s in shapes) == MAX_LENGTH
    assert min(s[1] for s in shapes) <= 12  # the shortest batch is padded to its own longest, not to 64
    assert len(shapes) == 300 // 16 + 1
    # batching does not change scores
    unbatched = Ranker.load(rt_artifact, threads=1, max_batch_size=300).rank("drill", products)
    by_id = {i.id: i.relevance for i in unbatched}
    np.testing.assert_allclose([i.relevance for i in result], [by_id[i.id] for i in result], atol=1e-5)


@pytest.mark.parametrize(
    "query, products, kwargs, message",
    [
        ("", [{"id": 1, "title": "t"}], {}, "query: empty"),
        ("   ", [{"id": 1, "title": "t"}], {}, "query: empty"),
        (None, [{"id": 1, "title": "t"}], {}, "query: missing"),
        (b"drill", [{"id": 1, "title": "t"}], {}, "query: expected a string"),
        ("drill", [], {}, "empty list"),
        ("drill", "not a list", {}, "expected a list"),
        ("drill", {"id": 1, "title": "t"}, {}, "expected a list"),
        ("drill", [{"title": "t"}], {}, "product 0: no 'id'"),
        ("drill", [{"id": 1.5, "title": "t"}], {}, "expected a string or integer"),
        ("drill", [{"id": True, "title": "t"}], {}, "expected a string or integer"),
        ("drill", [{"id": 1}], {}, "field 'title': missing"),
        ("drill", [{"id": 1, "title": " "}], {}, "field 'title': empty"),
        ("drill", [{"id": 1, "title": 3}], {}, "field 'title': expected a string, got int"),
        ("drill", [{"id": 1, "title": "t", "description": ["x"]}], {}, "field 'description': expected a string"),
        ("drill", [{"id": 1, "title": "t"}, {"id": "1", "title": "u"}], {}, "duplicate id (also product 0)"),
        ("drill", [{"id": 1, "title": "bad \ud800 text"}], {}, "lone surrogate"),
        ("drill", [{"id": 1, "title": "t"}], {"top_k": 0}, "top_k must be a positive integer"),
        ("drill", [{"id": 1, "title": "t"}], {"top_k": "3"}, "top_k must be a positive integer"),
        ("drill", [{"id": 1, "title": "t"}], {"explain": "yes"}, "explain must be true or false"),
        ("drill", [{"id": 1, "title": "t"}], {"blend": {"signals": {"x": "heavy"}}}, "weight must be a number between"),
        ("drill", [{"id": 1, "title": "t"}], {"blend": 3}, "expected a Blend, dict or file path"),
    ],
)
def test_bad_input_names_the_problem(rt_ranker, query, products, kwargs, message):
    with pytest.raises(RankerInputError) as e:
        rt_ranker.rank(query, products, **kwargs)
    assert message in str(e.value)


def test_score_validates_pairs(rt_ranker):
    assert rt_ranker.score([]).shape == (0,)
    for bad, message in [
        ("drill", "expected a list"),
        ([("drill",)], "pair 0"),
        ([("q", 3)], "pair 0: text"),
        ([("", "t")], "pair 0: query: empty"),
    ]:
        with pytest.raises(RankerInputError) as e:
            rt_ranker.score(bad)
        assert message in str(e.value)


def test_tampered_corrupt_and_newer_artifacts_are_refused(artifact_copy):
    manifest = json.loads((artifact_copy / "manifest.json").read_text())
    graph = artifact_copy / manifest["graphs"]["model"]["file"]
    data = bytearray(graph.read_bytes())
    data[len(data) // 2] ^= 0xFF
    graph.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="checksum mismatch"):
        Ranker.load(artifact_copy)
    (artifact_copy / "manifest.json").write_text(json.dumps({**manifest, "schema_version": 99}))
    with pytest.raises(ArtifactError, match="newer than this edgerank supports"):
        Ranker.load(artifact_copy)
    (artifact_copy / "manifest.json").write_text("{not json")
    with pytest.raises(ArtifactError, match="corrupt manifest"):
        Ranker.load(artifact_copy)


def test_corrupt_graph_without_checksum_is_an_artifact_error(artifact_copy):
    """Even an artifact whose checksums were rewritten over a broken graph fails with a clear error."""
    from edgerank.artifact import write_manifest_and_checksums

    manifest = json.loads((artifact_copy / "manifest.json").read_text())
    (artifact_copy / manifest["graphs"]["model"]["file"]).write_bytes(b"not an onnx graph")
    manifest.pop("files")
    write_manifest_and_checksums(artifact_copy, manifest)
    with pytest.raises(ArtifactError, match="onnxruntime cannot load this graph"):
        Ranker.load(artifact_copy)


def test_providers_and_backends_fail_clearly(rt_artifact):
    import onnxruntime as ort

    with pytest.raises(BackendError) as e:
        Ranker.load(rt_artifact, providers=["NoSuchExecutionProvider"])
    assert all(p in str(e.value) for p in ort.get_available_providers())
    assert Ranker.load(rt_artifact, providers="cpu", threads=1).describe()["providers"] == ["CPUExecutionProvider"]
    with pytest.raises(BackendError, match="unknown backend"):
        Ranker.load(rt_artifact, backend="magic")
    with pytest.raises(BackendError, match="does not take providers"):
        Ranker.load(rt_artifact, backend="tensorrt", providers=["cpu"])
    with pytest.raises(RankerInputError, match="max_batch_size"):
        Ranker.load(rt_artifact, max_batch_size=0)
    with pytest.raises(BackendError, match="threads"):
        Ranker.load(rt_artifact, threads=0)


def test_tensorrt_backend_without_tensorrt_names_the_extra(rt_artifact, tmp_path):
    pytest.importorskip("onnxruntime")
    try:
        import tensorrt  # noqa: F401

        pytest.skip("tensorrt is installed here; this test covers its absence")
    except ImportError:
        pass
    engine = tmp_path / "model.plan"
    engine.write_bytes(b"\0")
    with pytest.raises(BackendError, match=r"pip install 'edgerank\[runtime-tensorrt\]'"):
        Ranker.load(rt_artifact, backend="tensorrt", engine=str(engine))


def test_runtime_imports_no_training_stack(rt_artifact):
    code = (
        "import sys, edgerank.runtime as r; r.Ranker.load(sys.argv[1]).rank('q', [{'id': 1, 'title': 't'}]); "
        "bad = sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'transformers', 'pandas', 'click'} "
        "| {m for m in sys.modules if m.startswith(('edgerank.train', 'edgerank.export', 'edgerank.data'))}); "
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code, str(rt_artifact)], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_fitted_probability_map_is_applied(artifact_copy):
    """Export fits temperature and bias on judged data (method "fitted"); the runtime applies them."""
    from edgerank.artifact import write_manifest_and_checksums

    manifest = json.loads((artifact_copy / "manifest.json").read_text())
    manifest.pop("files")
    manifest["score"]["probability"] = {"method": "fitted", "temperature": 0.5, "bias": -1.0}
    write_manifest_and_checksums(artifact_copy, manifest)
    item = Ranker.load(artifact_copy, threads=1).rank("drill", catalog(3))[0]
    assert item.probability == pytest.approx(1 / (1 + np.exp(-(item.relevance / 0.5 - 1.0))), abs=1e-9)
    manifest["score"]["probability"] = {"method": "isotonic"}
    write_manifest_and_checksums(artifact_copy, manifest)
    with pytest.raises(ArtifactError, match="isotonic"):
        Ranker.load(artifact_copy)
