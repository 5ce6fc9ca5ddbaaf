"""Catalog students at run time: tower scoring, the catalog index (build, load, stale, tampered,
incremental and interrupted updates), ranking with cached states, whole-catalog search, the CLI."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from edgerank.artifact import load_artifact
from edgerank.cli import main
from edgerank.runtime import Ranker, RankerInputError
from edgerank.runtime.catalog import CatalogIndexError, build_index, load_index, update_index
from edgerank.runtime.towers import TowerScorer

from catalog_fixtures import *  # noqa: F401,F403
from runtime_fixtures import *  # noqa: F401,F403

KINDS = ["late-interaction", "bi-encoder"]


def index_for(artifact_path, products, out, dtype=None):
    art = load_artifact(artifact_path)
    return build_index(art, TowerScorer(art, 16, threads=1), products, out, dtype=dtype)


@pytest.fixture(scope="session")
def indexes(tower_artifacts, tmp_path_factory):
    """float32 indexes of a 30-product catalog, one per kind."""
    base = tmp_path_factory.mktemp("indexes")
    return {k: index_for(a, catalog(30), base / k, "float32") for k, a in tower_artifacts.items()}


@pytest.mark.parametrize("kind", KINDS)
def test_runtime_towers_score_like_the_torch_towers(kind, tower_students, tower_artifacts):
    """Same tokens (the artifact's tokenizer.json), same vectors, same interaction as the trained towers."""
    from edgerank.modeling import load_tokenizer
    from edgerank.train.towers import load_towers, score_tower_pairs

    queries = ["red cordless drill", "red cordless drill", "garden hose with a brass nozzle for the yard", "x"]
    texts = ["Red 18V Cordless Drill Kit", "Stainless Door Hinge Set", "Blue Garden Hose 50 ft. with nozzle", "Y"]
    expected = score_tower_pairs(load_towers(tower_students[kind]), load_tokenizer(tower_students[kind]), queries, texts)
    got = Ranker.load(tower_artifacts[kind], threads=1).score(list(zip(queries, texts)))
    np.testing.assert_allclose(got, expected, atol=1e-4)


@pytest.mark.parametrize("kind", KINDS)
def test_rank_with_index_equals_rank_without(kind, tower_artifacts, indexes):
    products = catalog(30)[::3]
    plain = Ranker.load(tower_artifacts[kind], threads=1).rank("red cordless drill", products)
    ranker = Ranker.load(tower_artifacts[kind], threads=1, index=indexes[kind])
    with_index = ranker.rank("red cordless drill", products)
    assert with_index.ids == plain.ids and with_index.cached == len(products) and plain.cached == 0
    np.testing.assert_allclose([i.score for i in with_index], [i.score for i in plain], atol=1e-4)
    assert with_index.to_dict()["computed"] == 0
    # unknown ids and changed texts are computed on the fly, and counted
    mixed = products[:3] + [{"id": "new-1", "title": "Red Cordless Drill"}, dict(products[3], title="Renamed Kit")]
    result = ranker.rank("red cordless drill", mixed)
    assert (result.cached, result.to_dict()["computed"]) == (3, 2)
    fresh = Ranker.load(tower_artifacts[kind], threads=1).rank("red cordless drill", mixed)
    assert result.ids == fresh.ids


@pytest.mark.parametrize("dtype", ["float16", "int8"])
def test_compact_indexes_stay_close(dtype, tower_artifacts, tmp_path):
    path = index_for(tower_artifacts["late-interaction"], catalog(30), tmp_path / dtype, dtype)
    index = load_index(path, load_artifact(tower_artifacts["late-interaction"]))
    assert index.vectors.dtype == np.dtype(dtype) and isinstance(index.vectors, np.memmap)
    products = catalog(30)
    a = Ranker.load(tower_artifacts["late-interaction"], threads=1, index=path).rank("blue hose", products)
    b = Ranker.load(tower_artifacts["late-interaction"], threads=1).rank("blue hose", products)
    by_id = {i.id: i.score for i in b}
    scale = load_artifact(tower_artifacts["late-interaction"]).manifest["towers"]["scale"]
    # a cosine of unit vectors moves by ~5e-4 (float16) or ~2e-3 (int8: components off by up to 0.004)
    assert max(abs(i.score - by_id[i.id]) for i in a) < abs(scale) * (2e-3 if dtype == "float16" else 1e-2) + 1e-5


@pytest.mark.parametrize("kind", KINDS)
def test_search_ranks_the_whole_catalog(kind, tower_artifacts, indexes):
    ranker = Ranker.load(tower_artifacts[kind], threads=1, index=indexes[kind])
    found = ranker.search("red cordless drill", top_k=5, depth=None)
    full = ranker.rank("red cordless drill", catalog(30))
    assert found.ids == full.ids[:5] and found.candidates == 30 and len(found) == 5
    np.testing.assert_allclose([i.score for i in found], [i.score for i in full][:5], atol=1e-5)
    scores = [i.score for i in found]
    assert scores == sorted(scores, reverse=True) and [i.rank for i in found] == [1, 2, 3, 4, 5]
    # two-stage search (pooled first stage, exact rerank) returns exact scores for what it keeps
    two_stage = ranker.search("red cordless drill", top_k=3, depth=10)
    exact = {i.id: i.score for i in full}
    assert all(abs(i.score - exact[i.id]) < 1e-5 for i in two_stage)
    with pytest.raises(RankerInputError, match="depth"):
        ranker.search("drill", top_k=5, depth=2)


def test_search_and_index_refusals(tower_artifacts, indexes, rt_artifact):
    with pytest.raises(RankerInputError, match="catalog index"):
        Ranker.load(tower_artifacts["bi-encoder"], threads=1).search("drill")
    with pytest.raises(CatalogIndexError, match="late-interaction or bi-encoder"):
        Ranker.load(rt_artifact, index=indexes["bi-encoder"])


def test_stale_index_is_refused(tower_artifacts, indexes):
    with pytest.raises(CatalogIndexError, match="stale index"):
        Ranker.load(tower_artifacts["bi-encoder"], index=indexes["late-interaction"])


@pytest.mark.parametrize("damage", ["modify", "remove"])
def test_tampered_index_is_refused(damage, tower_artifacts, indexes, tmp_path):
    copy = shutil.copytree(indexes["late-interaction"], tmp_path / "idx")
    if damage == "modify":
        data = bytearray((copy / "vectors.npy").read_bytes())
        data[-1] ^= 0x01
        (copy / "vectors.npy").write_bytes(bytes(data))
        match = "checksum mismatch for vectors.npy"
    else:
        (copy / "offsets.npy").unlink()
        match = "offsets.npy .* is missing"
    with pytest.raises(CatalogIndexError, match=match):
        Ranker.load(tower_artifacts["late-interaction"], index=copy)


def test_update_adds_and_replaces_products(tower_artifacts, indexes, tmp_path):
    art = load_artifact(tower_artifacts["late-interaction"])
    path = shutil.copytree(indexes["late-interaction"], tmp_path / "idx")
    changed = [dict(catalog(30)[0], title="Brass Garden Hose Nozzle"), {"id": "p-new", "title": "Steel Door Hinge"},
               catalog(30)[1]]
    _, counts = update_index(art, TowerScorer(art, 16, threads=1), path, changed)
    assert counts == {"added": 1, "replaced": 1, "unchanged": 1}
    index = load_index(path, art)
    assert len(index) == 31 and index.meta["dtype"] == "float32"
    ranker = Ranker.load(art.path, threads=1, index=path)
    products = catalog(30)[1:6] + changed[:2]
    result = ranker.rank("garden hose", products)
    assert result.cached == len(products)
    fresh = Ranker.load(art.path, threads=1).rank("garden hose", products)
    np.testing.assert_allclose([i.score for i in result], [i.score for i in fresh], atol=1e-4)


def test_interrupted_update_keeps_the_old_index(tower_artifacts, indexes, tmp_path, monkeypatch):
    import edgerank.runtime.catalog as catalog_module

    art = load_artifact(tower_artifacts["bi-encoder"])
    path = shutil.copytree(indexes["bi-encoder"], tmp_path / "idx")
    before = {p.name: p.read_bytes() for p in path.iterdir()}

    def crash(_):  # after the new vectors are written, before the new index is complete
        raise KeyboardInterrupt("power cut")

    monkeypatch.setattr(catalog_module, "sha256_file", crash)
    with pytest.raises(KeyboardInterrupt):
        update_index(art, TowerScorer(art, 16, threads=1), path, [{"id": "p-new", "title": "Steel Door Hinge"}])
    monkeypatch.undo()
    assert {p.name: p.read_bytes() for p in path.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["idx"]  # no half-written folder left beside it
    assert len(load_index(path, art)) == 30


def test_index_cli_builds_updates_and_refuses(tower_artifacts, rt_artifact, tmp_path):
    rows = catalog(8)
    feed = tmp_path / "products.jsonl"
    feed.write_text("".join(json.dumps({k: r[k] for k in ("id", "title", "description")}) + "\n" for r in rows + rows[:2]))
    out = tmp_path / "idx"
    runner = CliRunner()
    result = runner.invoke(main, ["index", "--artifact", str(tower_artifacts["late-interaction"]), "--products",
                                  str(feed), "--out", str(out), "--threads", "1"])
    assert result.exit_code == 0, result.output
    assert "8 products" in result.output and "skipped 2 row(s) repeating a product id" in result.output
    more = tmp_path / "more.jsonl"
    more.write_text(json.dumps({"id": "p99", "title": "Red Hose"}) + "\n")
    result = runner.invoke(main, ["index", "--artifact", str(tower_artifacts["late-interaction"]), "--products",
                                  str(more), "--out", str(out), "--update"])
    assert result.exit_code == 0 and "1 added, 0 replaced, 0 unchanged" in result.output
    art = str(tower_artifacts["late-interaction"])
    ranked = runner.invoke(main, ["rank", "--artifact", art, "--index", str(out), "--query", "red hose", "--products",
                                  str(more), "--threads", "1", "--json"])
    assert ranked.exit_code == 0 and json.loads(ranked.stdout)["cached"] == 1
    found = runner.invoke(main, ["search", "--artifact", art, "--index", str(out), "--query", "red hose", "--top-k", "3",
                                 "--threads", "1", "--json"])
    assert found.exit_code == 0, found.output
    assert len(json.loads(found.stdout)["items"]) == 3 and json.loads(found.stdout)["candidates"] == 9
    bad = runner.invoke(main, ["index", "--artifact", str(rt_artifact), "--products", str(feed), "--out",
                               str(tmp_path / "x")])
    assert bad.exit_code == 2 and "late-interaction or bi-encoder" in bad.output
    stale = runner.invoke(main, ["index", "--artifact", str(tower_artifacts["bi-encoder"]), "--products", str(more),
                                 "--out", str(out), "--update"])
    assert stale.exit_code == 2 and "stale index" in stale.output


def test_catalog_runtime_imports_no_training_stack(tower_artifacts, indexes):
    code = ("import sys, edgerank.runtime as r; k = r.Ranker.load(sys.argv[1], index=sys.argv[2]); "
            "k.rank('q', [{'id': 'p1', 'title': 't'}]); k.search('q', 3); "
            "bad = sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'transformers', 'pandas', 'click'} "
            "| {m for m in sys.modules if m.startswith(('edgerank.train', 'edgerank.export', 'edgerank.data'))}); "
            "print(','.join(bad))")
    out = subprocess.run([sys.executable, "-c", code, str(tower_artifacts["late-interaction"]),
                          str(indexes["late-interaction"])], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_search_first_stage_is_the_pooled_score_distillation_trains(tower_students, tower_artifacts, indexes):
    """The runtime's first stage (index pooled vectors x the query's mean vector) is, up to a positive
    factor per query, the pooled cosine that ``TowerStudent.forward(first_stage=True)`` trains."""
    import torch

    from edgerank.modeling import load_tokenizer
    from edgerank.train.towers import load_towers, tower_inputs

    model, tok = load_towers(tower_students["late-interaction"]), load_tokenizer(tower_students["late-interaction"])
    products = catalog(30)
    texts = [p["title"] + (" " + p["description"] if p["description"] else "") for p in products]
    with torch.no_grad():
        _, first = model(**tower_inputs(tok, ["red cordless drill"] * len(texts), texts, model.spec, "cpu"),
                         first_stage=True)
    trained = ((first - model.pooled_bias) / model.pooled_scale).detach().numpy()
    ranker = Ranker.load(tower_artifacts["late-interaction"], threads=1, index=indexes["late-interaction"])
    q, _ = ranker._scorer.query("red cordless drill")
    mean = q.mean(axis=0)
    runtime = ranker.index.pooled @ (mean / np.linalg.norm(mean))
    np.testing.assert_allclose(runtime, trained, atol=2e-3)  # pooled vectors are stored as float16


def test_bench_ranks_catalog_students_from_a_warm_index(tower_artifacts, tiny_cross_encoder, tiny_judged_csv):
    """Catalog students share the bench table with cross-encoders: the bench indexes the data's whole
    catalog first (timed, sized per 10k), ranks from that index, and gives them no peers."""
    import pandas as pd

    from edgerank.bench.runner import BenchConfig, run_bench

    art = str(tower_artifacts["late-interaction"])
    results = run_bench(BenchConfig(data=str(tiny_judged_csv), artifacts=[art], teacher=str(tiny_cross_encoder),
                                    candidates=[4], queries=3, warmup=0, repeat=1, threads=1, peers=["ort"],
                                    memory=False, gpu=False, max_length=64))
    tower = next(s for s in results["subjects"] if s["path"] == art)
    products = pd.read_csv(tiny_judged_csv)["product_title"].nunique()
    assert tower["kind"] == "late-interaction" and tower["index"]["products"] == products
    assert tower["index"]["build_s"] > 0 and tower["index"]["bytes"] > 0
    assert tower["index"]["mb_per_10k"] == pytest.approx(tower["index"]["bytes"] / 2**20 * 10_000 / products)
    assert tower["latency"]["4"]["p50_ms"] > 0 and "gain_kept" in tower["quality"]
    assert [s["role"] for s in results["subjects"]] == ["teacher", "edgerank"]  # no peer of the towers
