"""Catalog students at run time: tower scoring, the catalog index (build, load, stale, tampered,
incremental and interrupted updates), ranking with cached states, whole-catalog search, the CLI."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from catalog_fixtures import *  # noqa: F401,F403
from click.testing import CliRunner
from runtime_fixtures import *  # noqa: F401,F403

from edgerank.artifact import load_artifact
from edgerank.cli import main
from edgerank.runtime import Ranker, RankerInputError
from edgerank.runtime.catalog import CatalogIndexError, build_index, load_index, update_index
from edgerank.runtime.towers import TowerScorer

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
    from edgerank.modeling.towers import load_towers, score_tower_pairs

    queries = ["red cordless drill", "red cordless drill", "garden hose with a brass nozzle for the yard", "x"]
    texts = ["Red 18V Cordless Drill Kit", "Stainless Door Hinge Set", "Blue Garden Hose 50 ft. with nozzle", "Y"]
    expected = score_tower_pairs(
        load_towers(tower_students[kind]), load_tokenizer(tower_students[kind]), queries, texts
    )
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


#: largest score change allowed per dtype, in units of the artifact's scale: a cosine of unit vectors
#: moves by ~5e-4 (float16), ~2e-3 (int8: components off by up to 0.004), more with residuals of 2 or 1 bits
TOLERANCE = {"float16": 2e-3, "int8": 1e-2, "residual-2bit": 0.1, "residual-1bit": 0.2}


@pytest.mark.parametrize("dtype", list(TOLERANCE))
def test_compact_indexes_stay_close(dtype, tower_artifacts, tmp_path):
    path = index_for(tower_artifacts["late-interaction"], catalog(30), tmp_path / dtype, dtype)
    index = load_index(path, load_artifact(tower_artifacts["late-interaction"]))
    stored = np.uint8 if dtype.startswith("residual") else np.dtype(dtype)
    assert index.vectors.dtype == stored and isinstance(index.vectors, np.memmap)
    assert isinstance(index.codes, np.memmap) and index.codes.dtype == np.uint16
    products = catalog(30)
    a = Ranker.load(tower_artifacts["late-interaction"], threads=1, index=path).rank("blue hose", products)
    b = Ranker.load(tower_artifacts["late-interaction"], threads=1).rank("blue hose", products)
    assert a.cached == len(products)
    by_id = {i.id: i.score for i in b}
    scale = load_artifact(tower_artifacts["late-interaction"]).manifest["towers"]["scale"]
    assert max(abs(i.score - by_id[i.id]) for i in a) < abs(scale) * TOLERANCE[dtype] + 1e-5


@pytest.mark.parametrize("nbits", [1, 2])
def test_residual_codec_packs_each_dimensions_bucket(nbits):
    """decode(encode(x)) is the unit vector of centroid + each dimension's bucket value, bit for bit."""
    from edgerank.runtime.codec import Codec

    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 16)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    codec = Codec.train(x, 16, nbits)
    codes = codec.assign(x)
    cell = np.argmax(x @ codec.coarse.T, axis=1)  # two levels: the nearest centroid of the nearest cell
    k = codec.per_cell
    within = np.array([np.argmax(codec.centroids[c * k : (c + 1) * k] @ v) for c, v in zip(cell, x)])
    np.testing.assert_array_equal(codes, cell * k + within)
    packed = codec.encode(x, codes)
    assert packed.shape == (500, 16 * nbits // 8) and packed.dtype == np.uint8
    residual = x - codec.centroids[codes]
    buckets = (residual[:, None, :] > codec.cutoffs[None]).sum(axis=1)
    expected = codec.centroids[codes] + np.take_along_axis(codec.weights, buckets, axis=0)
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    np.testing.assert_allclose(codec.decode(codes, packed), expected, atol=1e-6)
    # closer to the original than its centroid alone
    assert (codec.decode(codes, packed) * x).sum(1).mean() > (x * codec.centroids[codes]).sum(1).mean()


def test_staged_search_finds_the_exhaustive_best(tower_artifacts, tmp_path):
    """Probing every centroid and reranking a few more than asked finds what exhaustive MaxSim finds;
    the inverted lists name exactly the (centroid, product) pairs of the codes."""
    art = load_artifact(tower_artifacts["late-interaction"])
    index = load_index(index_for(art.path, catalog(30), tmp_path / "i", "residual-2bit"), art)
    starts, products, _ = index.inverted_lists()
    pairs = {(int(c), int(p)) for p in range(len(index)) for c in index.codes[index.offsets[p] : index.offsets[p + 1]]}
    assert {(c, int(p)) for c in range(len(starts) - 1) for p in products[starts[c] : starts[c + 1]]} == pairs
    assert all(np.all(np.diff(products[starts[c] : starts[c + 1]]) > 0) for c in range(len(starts) - 1))
    scorer = TowerScorer(art, 16, threads=1)
    for query in ("red cordless drill", "brass hinge", "blue garden hose"):
        q, _ = scorer.query(query)
        exact, exact_logits = index.search(scorer, q, 3, None)
        staged, staged_logits = index.search(scorer, q, 3, 12, nprobe=len(index.codec.centroids))
        assert list(staged) == list(exact)
        np.testing.assert_allclose(staged_logits, exact_logits, atol=1e-5)


def test_compressed_index_updates_without_requantizing(tower_artifacts, tmp_path):
    art = load_artifact(tower_artifacts["late-interaction"])
    path = index_for(art.path, catalog(30), tmp_path / "idx", "residual-2bit")
    before = load_index(path, art)
    kept = {
        pid: (
            np.array(before.vectors[before.offsets[i] : before.offsets[i + 1]]),
            np.array(before.codes[before.offsets[i] : before.offsets[i + 1]]),
        )
        for i, pid in enumerate(before.ids)
    }
    centroids = before.codec.centroids.copy()
    changed = [dict(catalog(30)[0], title="Brass Garden Hose Nozzle"), {"id": "p-new", "title": "Steel Door Hinge"}]
    _, counts = update_index(art, TowerScorer(art, 16, threads=1), path, changed)
    assert counts == {"added": 1, "replaced": 1, "unchanged": 0}
    after = load_index(path, art)
    assert len(after) == 31 and after.meta["dtype"] == "residual-2bit"
    np.testing.assert_array_equal(after.codec.centroids, centroids)
    for i, pid in enumerate(after.ids):
        if pid in kept and pid != "p0":  # copied as stored, never decoded and encoded again
            np.testing.assert_array_equal(after.vectors[after.offsets[i] : after.offsets[i + 1]], kept[pid][0])
            np.testing.assert_array_equal(after.codes[after.offsets[i] : after.offsets[i + 1]], kept[pid][1])
    ranker = Ranker.load(art.path, threads=1, index=path)
    result = ranker.rank("garden hose", changed + catalog(30)[1:5])
    assert result.cached == 6
    fresh = Ranker.load(art.path, threads=1).rank("garden hose", changed + catalog(30)[1:5])
    scale = art.manifest["towers"]["scale"]
    by_id = {i.id: i.score for i in fresh}
    # new products were encoded by centroids trained without them: their residuals are larger
    assert max(abs(i.score - by_id[i.id]) for i in result) < abs(scale) * 2 * TOLERANCE["residual-2bit"]


def test_compressed_index_refusals(tower_artifacts, tmp_path):
    art = load_artifact(tower_artifacts["late-interaction"])
    with pytest.raises(CatalogIndexError, match="late-interaction indexes only"):
        index_for(tower_artifacts["bi-encoder"], catalog(5), tmp_path / "bi", "residual-2bit")
    path = index_for(art.path, catalog(12), tmp_path / "idx", "residual-1bit")
    data = bytearray((path / "residuals.npy").read_bytes())
    data[-1] ^= 0x01
    (path / "residuals.npy").write_bytes(bytes(data))
    with pytest.raises(CatalogIndexError, match="checksum mismatch for residuals.npy"):
        load_index(path, art)
    meta = json.loads((path / "index.json").read_text())
    meta["files"] = {k: v for k, v in meta["files"].items() if k != "bucket_weights.npy"}
    (path / "index.json").write_text(json.dumps(meta))
    with pytest.raises(CatalogIndexError, match="does not list bucket_weights.npy"):
        load_index(path, art)


@pytest.mark.parametrize("kind", KINDS)
def test_search_ranks_the_whole_catalog(kind, tower_artifacts, indexes):
    ranker = Ranker.load(tower_artifacts[kind], threads=1, index=indexes[kind])
    found = ranker.search("red cordless drill", top_k=5, depth=None)
    full = ranker.rank("red cordless drill", catalog(30))
    assert found.ids == full.ids[:5] and found.candidates == 30 and len(found) == 5
    np.testing.assert_allclose([i.score for i in found], [i.score for i in full][:5], atol=1e-5)
    scores = [i.score for i in found]
    assert scores == sorted(scores, reverse=True) and [i.rank for i in found] == [1, 2, 3, 4, 5]
    # staged search (centroid stages, exact rerank) returns exact scores for what it keeps
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
    changed = [
        dict(catalog(30)[0], title="Brass Garden Hose Nozzle"),
        {"id": "p-new", "title": "Steel Door Hinge"},
        catalog(30)[1],
    ]
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
    feed.write_text(
        "".join(json.dumps({k: r[k] for k in ("id", "title", "description")}) + "\n" for r in rows + rows[:2])
    )
    out = tmp_path / "idx"
    runner = CliRunner()
    result = runner.invoke(
        main,
        [
            "index",
            "--artifact",
            str(tower_artifacts["late-interaction"]),
            "--products",
            str(feed),
            "--out",
            str(out),
            "--threads",
            "1",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "8 products" in result.output and "skipped 2 row(s) repeating a product id" in result.output
    more = tmp_path / "more.jsonl"
    more.write_text(json.dumps({"id": "p99", "title": "Red Hose"}) + "\n")
    result = runner.invoke(
        main,
        [
            "index",
            "--artifact",
            str(tower_artifacts["late-interaction"]),
            "--products",
            str(more),
            "--out",
            str(out),
            "--update",
        ],
    )
    assert result.exit_code == 0 and "1 added, 0 replaced, 0 unchanged" in result.output
    art = str(tower_artifacts["late-interaction"])
    ranked = runner.invoke(
        main,
        [
            "rank",
            "--artifact",
            art,
            "--index",
            str(out),
            "--query",
            "red hose",
            "--products",
            str(more),
            "--threads",
            "1",
            "--json",
        ],
    )
    assert ranked.exit_code == 0 and json.loads(ranked.stdout)["cached"] == 1
    found = runner.invoke(
        main,
        [
            "search",
            "--artifact",
            art,
            "--index",
            str(out),
            "--query",
            "red hose",
            "--top-k",
            "3",
            "--threads",
            "1",
            "--json",
        ],
    )
    assert found.exit_code == 0, found.output
    assert len(json.loads(found.stdout)["items"]) == 3 and json.loads(found.stdout)["candidates"] == 9
    small = tmp_path / "small"
    built = runner.invoke(
        main,
        [
            "index",
            "--artifact",
            art,
            "--products",
            str(feed),
            "--out",
            str(small),
            "--dtype",
            "residual-2bit",
            "--threads",
            "1",
        ],
    )
    assert built.exit_code == 0, built.output
    assert json.loads((small / "index.json").read_text())["dtype"] == "residual-2bit"
    found = runner.invoke(
        main,
        [
            "search",
            "--artifact",
            art,
            "--index",
            str(small),
            "--query",
            "red hose",
            "--top-k",
            "3",
            "--depth",
            "4",
            "--threads",
            "1",
            "--json",
        ],
    )
    assert found.exit_code == 0 and len(json.loads(found.stdout)["items"]) == 3
    bad = runner.invoke(
        main, ["index", "--artifact", str(rt_artifact), "--products", str(feed), "--out", str(tmp_path / "x")]
    )
    assert bad.exit_code == 2 and "late-interaction or bi-encoder" in bad.output
    stale = runner.invoke(
        main,
        [
            "index",
            "--artifact",
            str(tower_artifacts["bi-encoder"]),
            "--products",
            str(more),
            "--out",
            str(out),
            "--update",
        ],
    )
    assert stale.exit_code == 2 and "stale index" in stale.output


def test_catalog_runtime_imports_no_training_stack(tower_artifacts, indexes):
    code = (
        "import sys, edgerank.runtime as r; k = r.Ranker.load(sys.argv[1], index=sys.argv[2]); "
        "k.rank('q', [{'id': 'p1', 'title': 't'}]); k.search('q', 3); "
        "bad = sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'transformers', 'pandas', 'click'} "
        "| {m for m in sys.modules if m.startswith(('edgerank.train', 'edgerank.export', 'edgerank.data'))}); "
        "print(','.join(bad))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(tower_artifacts["late-interaction"]), str(indexes["late-interaction"])],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == ""


def test_format_1_index_still_searches_by_pooled_vectors(tower_artifacts, indexes, tmp_path):
    """An index written before centroids (format 1: vectors and pooled vectors) loads, ranks and
    searches through its pooled first stage."""
    import hashlib

    source, path = indexes["late-interaction"], tmp_path / "v1"
    path.mkdir()
    for name in ("ids.json", "offsets.npy", "vectors.npy"):
        shutil.copy(source / name, path / name)
    vectors, offsets = np.load(path / "vectors.npy"), np.load(path / "offsets.npy")
    sums = np.add.reduceat(vectors, offsets[:-1], axis=0)
    np.save(path / "pooled.npy", (sums / np.linalg.norm(sums, axis=1, keepdims=True)).astype(np.float16))
    meta = json.loads((source / "index.json").read_text())
    meta.pop("codec")
    meta.update(format=1, files={p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(path.iterdir())})
    (path / "index.json").write_text(json.dumps(meta))
    old = Ranker.load(tower_artifacts["late-interaction"], threads=1, index=path)
    new = Ranker.load(tower_artifacts["late-interaction"], threads=1, index=source)
    assert old.index.codec is None and old.index.pooled is not None
    assert old.search("red cordless drill", 5, depth=None).ids == new.search("red cordless drill", 5, depth=None).ids
    found = old.search("red cordless drill", top_k=3, depth=10)
    exact = {i.id: i.score for i in new.rank("red cordless drill", catalog(30))}
    assert len(found) == 3 and all(abs(i.score - exact[i.id]) < 1e-5 for i in found)
    art = load_artifact(tower_artifacts["late-interaction"])  # an update writes the current format
    update_index(art, TowerScorer(art, 16, threads=1), path, [{"id": "p-new", "title": "Steel Door Hinge"}])
    upgraded = load_index(path, art)
    assert upgraded.meta["format"] == 2 and upgraded.codec is not None and len(upgraded) == 31


def test_bench_ranks_catalog_students_from_a_warm_index(tower_artifacts, tiny_cross_encoder, tiny_judged_csv):
    """Catalog students share the bench table with cross-encoders: the bench indexes the data's whole
    catalog first (timed, sized per 10k), ranks from that index, and gives them no peers."""
    import pandas as pd

    from edgerank.bench.runner import BenchConfig, run_bench

    art = str(tower_artifacts["late-interaction"])
    results = run_bench(
        BenchConfig(
            data=str(tiny_judged_csv),
            artifacts=[art],
            teacher=str(tiny_cross_encoder),
            candidates=[4],
            queries=3,
            warmup=0,
            repeat=1,
            threads=1,
            peers=["ort"],
            memory=False,
            gpu=False,
            max_length=64,
        )
    )
    tower = next(s for s in results["subjects"] if s["path"] == art)
    products = pd.read_csv(tiny_judged_csv)["product_title"].nunique()
    assert tower["kind"] == "late-interaction" and tower["index"]["products"] == products
    assert tower["index"]["build_s"] > 0 and tower["index"]["bytes"] > 0
    assert tower["index"]["mb_per_10k"] == pytest.approx(tower["index"]["bytes"] / 2**20 * 10_000 / products)
    assert tower["latency"]["4"]["p50_ms"] > 0 and "gain_kept" in tower["quality"]
    assert [s["role"] for s in results["subjects"]] == ["teacher", "edgerank"]  # no peer of the towers
