"""edgerank bench: candidate lists, timing, the reference workload, a full run on a tiny artifact with
peers, the report, the Pareto PNG, suites and the machine description.

Everything runs for real on the tiny cross-encoder of conftest.py and an artifact exported from it:
real ONNX Runtime sessions, real subprocesses for memory, real sentence-transformers. Timings are
kept small (a dozen queries, repeat 3); the tests check structure and exact relations (same weights
must score the same), never that one tiny model is faster than another.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from edgerank.bench import BenchError
from edgerank.bench.candidates import build_candidates, product_records, sample_queries
from edgerank.bench.reference import ReferenceWorkload
from edgerank.bench.timing import Latency, time_calls
from edgerank.data import group_queries, read_table

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def tiny_artifact(tiny_cross_encoder, tmp_path_factory) -> Path:
    from edgerank.export import export_artifact

    return export_artifact(
        tiny_cross_encoder, tmp_path_factory.mktemp("bench") / "tiny-fp32", precision="fp32", max_length=64
    )


@pytest.fixture(scope="module")
def run_results(tiny_artifact, tiny_cross_encoder, tiny_judged_csv):
    """One real run: the teacher (torch), its fp32 artifact, and the st and ort peers on its weights."""
    from edgerank.bench.runner import BenchConfig, run_bench

    config = BenchConfig(
        data=str(tiny_judged_csv),
        artifacts=[str(tiny_artifact)],
        teacher=str(tiny_cross_encoder),
        candidates=[4, 10],
        queries=None,
        warmup=1,
        repeat=3,
        threads=1,
        max_length=64,
        peers=["st", "ort"],
        gpu=False,
        settle_s=0.005,
    )
    return run_bench(config)


# --- candidate lists ---------------------------------------------------------------------------


def _frame_groups(path):
    df, _ = read_table(path)
    return df, sample_queries(group_queries(df), None)


def test_candidates_are_judged_first_then_seeded_unjudged_fill_ins(tiny_judged_csv):
    df, groups = _frame_groups(tiny_judged_csv)
    lists = build_candidates(df, groups, [2, 10, 20], seed=0)
    for g, short, mid, long in zip(groups, lists[2], lists[10], lists[20]):
        assert len(short.texts) == 2 and len(mid.texts) == 10 and len(long.texts) == 20
        assert long.product_ids[: len(g.product_ids)] == g.product_ids  # judged products first, in order
        fill = long.product_ids[len(g.product_ids) :]
        assert not set(fill) & set(g.product_ids) and len(set(fill)) == len(fill)
        assert np.all(long.labels[len(g.product_ids) :] == 0)  # unjudged fill-ins count as gain 0
        assert mid.product_ids == long.product_ids[:10] and short.product_ids == g.product_ids[:2]
        records = product_records(df, long)
        assert [r["id"] for r in records] == list(long.product_ids)
        assert [r["title"] for r in records][: len(g.texts)] == list(g.texts)  # no descriptions in this table
    again = build_candidates(df, groups, [20], seed=0)[20]
    other = build_candidates(df, groups, [20], seed=1)[20]
    assert [g.product_ids for g in again] == [g.product_ids for g in lists[20]]
    assert [g.product_ids for g in other] != [g.product_ids for g in lists[20]]


def test_candidates_refuse_more_than_the_catalog(tiny_judged_csv):
    df, groups = _frame_groups(tiny_judged_csv)
    with pytest.raises(ValueError, match="distinct products"):
        build_candidates(df, groups, [10_000])


def test_query_sample_is_seeded_and_evaluable(tiny_judged_csv):
    df, _ = read_table(tiny_judged_csv)
    groups = group_queries(df)
    a, b = sample_queries(groups, 5, seed=3), sample_queries(groups, 5, seed=3)
    assert [g.query_id for g in a] == [g.query_id for g in b] and len(a) == 5
    assert all(len(np.unique(g.labels)) >= 2 for g in a)


def test_candidates_on_home_depot_dev(shared_data):
    df, _ = read_table(shared_data / "homedepot" / "dev.csv")
    groups = sample_queries(group_queries(df), 20, seed=0)
    lists = build_candidates(df, groups, [10, 100])
    assert all(len(g.texts) == 100 for g in lists[100])
    assert all(np.all(g.labels[len(q.rows) :] == 0) for g, q in zip(lists[100], groups))


# --- timing and the reference workload ---------------------------------------------------------


def test_latency_percentiles_and_throughput():
    lat = Latency.from_seconds([0.001 * i for i in range(1, 101)], pairs=10)
    assert lat.p50_ms == pytest.approx(50.5) and lat.p99_ms == pytest.approx(99.01)
    assert lat.samples == 100 and lat.pairs_per_s == pytest.approx(10 / 0.0505)


def test_time_calls_warms_up_and_repeats():
    calls = []

    def work(i):
        def call():
            calls.append(i)
            time.sleep(0.004)
            return i

        return call

    seconds, results = time_calls([work(0), work(1)], warmup=3, repeat=2)
    assert calls[:3] == [0, 1, 0] and calls[3:] == [0, 1, 0, 1] and results == [0, 1]
    assert len(seconds) == 4 and min(seconds) >= 0.004


class _Sleeper:
    """A subject whose calls sleep ``ms`` times the machine's current slowness, logging each call."""

    def __init__(self, name, ms, log, machine):
        self.name, self.ms, self.log, self.machine = name, ms, log, machine

    def measure(self, lists, *, warmup, repeat):
        def call(q):
            return lambda: (self.log.append((self.name, q)), time.sleep(self.ms * self.machine[0] / 1e3))

        return time_calls([call(q) for q, _ in lists], warmup=warmup, repeat=repeat)


def test_interleaved_peer_ratio_cancels_a_machine_that_slows_down_midway():
    """A peer twice as slow as edgerank on a machine that halves its speed between the two separate
    timing passes reads 1x timed apart; interleaved, it reads 2x, and the interval says so."""
    from edgerank.bench.paired import interleave, paired_ratio

    log, machine = [], [1.0]
    edgerank, peer = _Sleeper("e", 3, log, machine), _Sleeper("p", 6, log, machine)
    lists = [(f"q{i}", []) for i in range(8)]
    apart_e, _ = edgerank.measure(lists, warmup=0, repeat=1)
    machine[0] = 0.5
    apart_p, _ = peer.measure(lists, warmup=0, repeat=1)
    assert np.median(apart_p) / np.median(apart_e) == pytest.approx(1.0, rel=0.25)

    log.clear()
    machine[0] = 1.0
    e, p = interleave(edgerank, peer, lists, warmup=1, repeat=2, settle=0.0)
    assert e.shape == p.shape == (2, 8)
    # warm-ups first (discarded), then each list on both sides back to back, the order alternating
    assert log[:2] == [("e", "q0"), ("p", "q0")]
    assert log[2:8] == [("e", "q0"), ("p", "q0"), ("p", "q1"), ("e", "q1"), ("e", "q2"), ("p", "q2")]
    ratio = paired_ratio(e, p)
    assert ratio["ratio"] == pytest.approx(2.0, rel=0.25) and ratio["samples"] == 16
    assert ratio["ci95"][0] <= ratio["ratio"] <= ratio["ci95"][1] and ratio["ci95"][0] > 1.4
    assert ratio["peer_p50_ms"] > ratio["edgerank_p50_ms"] >= 3.0
    assert ratio["ratio_edgerank_first"] == pytest.approx(2.0, rel=0.25)
    assert ratio["ratio_peer_first"] == pytest.approx(2.0, rel=0.25)


def test_paired_ratio_is_exact_on_proportional_times_and_refuses_mismatched_shapes():
    from edgerank.bench.paired import paired_ratio

    drift = np.linspace(1.0, 3.0, 20).reshape(2, 10)  # the machine slows threefold over the run
    out = paired_ratio(0.01 * drift, 0.013 * drift)
    assert out["ratio"] == pytest.approx(1.3) and out["ci95"] == [pytest.approx(1.3), pytest.approx(1.3)]
    assert out["p50_ratio"] == pytest.approx(1.3) and np.shape(out["peer_ms"]) == (2, 10)
    # a peer 1.5x slower on three short lists and 1.1x on two long ones: the typical list reads 1.5x,
    # and the interval over lists spans both
    e = np.array([[1.0, 1.0, 1.0, 10.0, 10.0]])
    mixed = paired_ratio(e, e * np.array([1.5, 1.5, 1.5, 1.1, 1.1]))
    assert mixed["ratio"] == pytest.approx(1.5) and mixed["p50_ratio"] == pytest.approx(1.5)
    assert mixed["ci95"][0] == pytest.approx(1.1) and mixed["ci95"][1] == pytest.approx(1.5)
    with pytest.raises(ValueError, match="same non-empty shape"):
        paired_ratio(np.ones((2, 3)), np.ones((2, 4)))


def test_reference_workload_reports_its_shape():
    ref = ReferenceWorkload(tokens=64, hidden=32, inner=64).run(threads=1, repeat=3)
    assert ref["ms"] > 0 and ref["shape"] == {"tokens": 64, "hidden": 32, "inner": 64} and ref["gflops"] > 0


# --- a whole run ------------------------------------------------------------------------------


def test_run_measures_every_subject(run_results):
    names = [s["name"] for s in run_results["subjects"]]
    assert names == ["teacher tiny-ce0 (torch)", "tiny-fp32", "st · tiny-fp32", "ort · tiny-fp32"]
    for s in run_results["subjects"]:
        assert set(s["latency"]) == {"4", "10"}
        for lat in s["latency"].values():
            assert lat["samples"] == 12 * 3 and 0 < lat["p50_ms"] <= lat["p95_ms"] <= lat["p99_ms"]
            assert lat["ratio_to_reference"] == pytest.approx(lat["p50_ms"] / lat["reference_ms"])
            assert "ndcg@10" in lat and "speedup_vs_teacher" in lat
        assert s["size_mb"] > 0 and s["load_ms"] > 0
    peers = [s for s in run_results["subjects"] if s["role"] == "peer"]
    assert all(s["peer_of"] == "tiny-fp32" and s["latency"]["10"]["vs_edgerank"] > 0 for s in peers)
    for s in peers:  # timed again, interleaved with their artifact, on every list of every N
        for lat in s["latency"].values():
            paired = lat["paired"]
            assert paired["samples"] == 12 * 3 and paired["ratio"] > 0
            assert paired["ci95"][0] <= paired["ratio"] <= paired["ci95"][1]
    assert all(
        "paired" not in lat for s in run_results["subjects"] if s["role"] != "peer" for lat in s["latency"].values()
    )
    assert run_results["workload"]["queries"] == 12 and run_results["workload"]["headline_n"] == 10
    assert run_results["workload"]["settle_s"] == 0.005
    assert run_results["machine"]["logical_cores"] >= 1 and "numpy" in run_results["machine"]["libraries"]
    assert run_results["skipped"] == []  # --no-gpu: no GPU note either


def test_same_weights_rank_the_same(run_results):
    """The artifact, plain ORT on its graph and sentence-transformers on its source folder all run the
    teacher's weights: each keeps all of the teacher's gain and its exact order."""
    for s in run_results["subjects"]:
        q = s["quality"]
        assert q["ndcg@10"] == pytest.approx(run_results["subjects"][0]["quality"]["ndcg@10"], abs=1e-6), s["name"]
        assert q["kendall_tau"] > 0.99 and q["top10_overlap"] == 1.0, s["name"]
    teacher = run_results["subjects"][0]
    assert teacher["quality"]["gain_kept"] == pytest.approx(1.0)
    assert teacher["quality"]["gain_kept_ci95"] == [pytest.approx(1.0), pytest.approx(1.0)]
    assert run_results["bm25"]["judged"]["queries"] == 12


def test_memory_is_measured_in_a_fresh_process(run_results):
    by_name = {s["name"]: s for s in run_results["subjects"]}
    for s in by_name.values():
        mem = s["memory"]
        assert 0 < mem["rss_before_load_mb"] <= mem["rss_after_load_mb"] <= mem["peak_rss_mb"], s["name"]
    # the artifact's probe imports no torch; the teacher's does, so its process is far larger
    teacher_peak = by_name["teacher tiny-ce0 (torch)"]["memory"]["peak_rss_mb"]
    assert by_name["tiny-fp32"]["memory"]["peak_rss_mb"] < 0.6 * teacher_peak


def test_markdown_json_and_plot(run_results, tmp_path):
    from edgerank.bench.plot import frontier, plot_pareto
    from edgerank.bench.report import to_markdown, write_results

    text = to_markdown(run_results)
    for s in run_results["subjects"]:
        assert f"| {s['name']} |" in text
    assert "| BM25 |" in text and "Machine:" in text and "p50 ms" in text
    assert "peer / edgerank per list, interleaved (95% CI)" in text
    assert "### Quality on serving lists" in text and "| random | BM25 |" in text and "| bm25 | BM25 |" in text
    ort = run_results["subjects"][3]["latency"]["10"]["paired"]
    assert f"{ort['ratio']:.2f}× ({ort['ci95'][0]:.2f} to {ort['ci95'][1]:.2f})" in text
    skewed = json.loads(json.dumps(run_results))
    skewed["subjects"][3]["latency"]["10"]["paired"].update(ratio_edgerank_first=1.9, ratio_peer_first=0.9)
    assert (
        "**order effect** ort · tiny-fp32, N=10: 1.90× with edgerank first, 0.90× with the peer first"
        in to_markdown(skewed)
    )
    write_results(run_results, json_path=tmp_path / "r.json", markdown_path=tmp_path / "r.md")
    assert json.loads((tmp_path / "r.json").read_text())["subjects"][1]["name"] == "tiny-fp32"
    png = plot_pareto(run_results, tmp_path / "pareto.png")
    assert png.read_bytes()[:8] == PNG_MAGIC and png.stat().st_size > 10_000
    points = [("a", "x", 1.0, 0.5), ("b", "x", 2.0, 0.9), ("c", "x", 3.0, 0.7), ("d", "x", 0.5, 0.1)]
    assert [p[0] for p in frontier(points)] == ["d", "a", "b"]


def test_only_benches_the_named_subjects(tiny_artifact, tiny_cross_encoder, tiny_judged_csv):
    """What a --check retry runs: the regressed subjects alone, not the teacher or the other peers."""
    from edgerank.bench.runner import BenchConfig, run_bench

    results = run_bench(
        BenchConfig(
            data=str(tiny_judged_csv),
            artifacts=[str(tiny_artifact)],
            teacher=str(tiny_cross_encoder),
            candidates=[4],
            queries=2,
            warmup=0,
            repeat=1,
            threads=1,
            peers=["ort"],
            memory=False,
            gpu=False,
            only=["tiny-fp32"],
        )
    )
    assert [s["name"] for s in results["subjects"]] == ["tiny-fp32"]
    assert results["subjects"][0]["latency"]["4"]["samples"] == 2


# --- subjects that cannot run here --------------------------------------------------------------


def test_optimum_peer_without_its_venv_is_skipped_with_the_fix(
    tiny_artifact, tiny_cross_encoder, tiny_judged_csv, monkeypatch, tmp_path
):
    from edgerank.bench import peers
    from edgerank.bench.runner import BenchConfig, run_bench

    monkeypatch.setattr(peers, "OPTIMUM_VENV", tmp_path / "no-venv")
    results = run_bench(
        BenchConfig(
            data=str(tiny_judged_csv),
            artifacts=[str(tiny_artifact)],
            candidates=[4],
            queries=2,
            warmup=0,
            repeat=1,
            threads=1,
            peers=["optimum"],
            memory=False,
            gpu=False,
        )
    )
    assert [s["name"] for s in results["subjects"]] == ["tiny-fp32"]
    (skip,) = [s for s in results["skipped"] if s["name"] == "optimum · tiny-fp32"]
    assert "setup_optimum_venv.sh" in skip["reason"]
    # two timed queries, but quality on every judged list (the default), and on a seeded 5 when asked
    assert results["workload"]["queries"] == 2 and results["workload"]["quality_queries"] == 12
    assert results["subjects"][0]["quality"]["queries"] == results["bm25"]["judged"]["queries"] == 12
    fewer = run_bench(
        BenchConfig(
            data=str(tiny_judged_csv),
            artifacts=[str(tiny_artifact)],
            candidates=[4],
            queries=2,
            quality_queries=5,
            warmup=0,
            repeat=1,
            threads=1,
            memory=False,
            gpu=False,
        )
    )
    assert fewer["workload"]["quality_queries"] == fewer["subjects"][0]["quality"]["queries"] == 5


@pytest.fixture
def moved_artifact(tiny_artifact, tmp_path) -> Path:
    """The tiny artifact copied where its torch source folder is not (as on a device)."""
    import shutil

    copy = tmp_path / "moved"
    shutil.copytree(tiny_artifact, copy)
    from edgerank.artifact import write_manifest_and_checksums

    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["source"]["model"] = str(tmp_path / "gone")
    write_manifest_and_checksums(copy, {k: v for k, v in manifest.items() if k != "files"})
    return copy


def test_graph_peers_need_only_the_artifact_torch_peer_needs_the_source(moved_artifact):
    from edgerank.bench.peers import make_peers
    from edgerank.bench.subjects import ArtifactSubject

    subjects, skipped = make_peers(
        ["st", "st-onnx", "optimum", "ort"],
        ArtifactSubject(name="moved", path=str(moved_artifact)),
        threads=1,
        max_length=64,
    )
    assert [s["name"] for s in skipped] == ["st · moved"] and "source model folder" in skipped[0]["reason"]
    assert sorted(s.name for s in subjects) == ["optimum · moved", "ort · moved", "st-onnx · moved"]
    assert all(s.model_dir is None for s in subjects if s.type == "venv-peer")  # the artifact's own HF files
    config = json.loads((moved_artifact / "config.json").read_text())
    assert config["num_hidden_layers"] == 2 and (moved_artifact / "tokenizer_config.json").is_file()


@pytest.mark.skipif(
    not __import__("edgerank.bench.peers", fromlist=["x"]).OPTIMUM_VENV.exists(),
    reason=".venv-optimum absent (scripts/setup_optimum_venv.sh creates it)",
)
@pytest.mark.slow
def test_optimum_and_st_onnx_peers_run_the_artifact_graph(
    run_results, moved_artifact, tiny_cross_encoder, tiny_judged_csv
):
    """From the artifact folder alone: its source folder is gone, its own HF config files suffice."""
    from edgerank.bench.runner import BenchConfig, run_bench

    results = run_bench(
        BenchConfig(
            data=str(tiny_judged_csv),
            artifacts=[str(moved_artifact)],
            teacher=str(tiny_cross_encoder),
            candidates=[4],
            queries=None,
            warmup=1,
            repeat=2,
            threads=1,
            max_length=64,
            peers=["optimum", "st-onnx"],
            memory=False,
            gpu=False,
            settle_s=0.005,
        )
    )
    by_name = {s["name"]: s for s in results["subjects"]}
    for name in ("optimum · moved", "st-onnx · moved"):
        s = by_name[name]
        assert s["quality"]["kendall_tau"] > 0.99 and s["memory"]["peak_rss_mb"] > 0 and s["load_ms"] > 0
        assert s["versions"]["transformers"].startswith("4.")
        assert s["latency"]["4"]["paired"]["samples"] == 12 * 2  # one list per request to the peer's process


def test_gpu_subjects_skip_cleanly_without_cuda():
    from edgerank.bench.gpu import cuda_device, gpu_subjects

    if cuda_device() is not None:
        pytest.skip("a CUDA device is present")
    subjects, notes = gpu_subjects([("t", "unused")], [], max_length=64)
    assert subjects == [] and "no CUDA device" in notes[0]["reason"]


# --- suites -----------------------------------------------------------------------------------


def test_suite_paths_are_relative_to_the_suite_file(tmp_path):
    from edgerank.bench.suite import load_suite

    (tmp_path / "suites").mkdir()
    suite = tmp_path / "suites" / "s.toml"
    suite.write_text(
        'data = "../data.csv"\nartifacts = ["../a", "/abs/b"]\ncandidates = [10, 100]\nreference = { tokens = 64 }\n'
    )
    loaded = load_suite(suite)
    assert Path(loaded["data"]) == tmp_path / "suites" / ".." / "data.csv"
    assert loaded["artifacts"][1] == "/abs/b" and loaded["candidates"] == [10, 100]
    suite.write_text('data = "x.csv"\ncandidate = [10]\n')
    with pytest.raises(BenchError, match="unknown key.*candidate"):
        load_suite(suite)
    suite.write_text('data = "x.csv\n')
    with pytest.raises(BenchError, match="not a valid TOML"):
        load_suite(suite)


def test_every_committed_suite_loads():
    from edgerank.bench.suite import load_suite

    suites = sorted((Path(__file__).parents[1] / "bench" / "suites").glob("*.toml"))
    assert suites
    for path in suites:
        assert "data" in load_suite(path), path
