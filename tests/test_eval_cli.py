"""``edgerank eval`` on tiny models: serving lists and judged lists in one report, the teacher
comparison, the JSON file, and the two ways a model folder can be unfit to rank (no trained head,
constant scores)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from edgerank.cli import main
from edgerank.core.serving import serving_lists
from edgerank.data import evaluable, group_queries, read_table, table_catalog
from edgerank.metrics import BM25Baseline, evaluate
from edgerank.modeling import load_cross_encoder, load_tokenizer, score_groups


def _eval(*args: str):
    return CliRunner().invoke(main, ["eval", *map(str, args)])


def test_eval_reports_the_model_next_to_bm25(tiny_cross_encoder, tiny_judged_csv, tmp_path):
    result = _eval(
        "--model", tiny_cross_encoder, "--data", tiny_judged_csv, "--list-size", "20", "--json", tmp_path / "r.json"
    )
    assert result.exit_code == 0, result.output
    assert "| model |" in result.stdout and "| BM25 |" in result.stdout and "| teacher |" not in result.stdout
    for title in ("serving, bm25 fill (20)", "serving, random fill (20)", "judged"):
        assert f"| {title} | model |" in result.stdout
    assert "12 queries, 48 pairs in the judged lists" in result.stdout
    report = json.loads((tmp_path / "r.json").read_text())
    assert list(report["comparison"]) == ["bm25", "random", "judged"]
    assert report["lists"]["random"] == {"queries": 12, "pairs": 240, "size": {"min": 20, "median": 20.0, "max": 20}}

    # the numbers are those of the library calls the command wraps
    df = read_table(tiny_judged_csv)[0]
    groups = evaluable(group_queries(df))
    catalog = table_catalog(df)
    model, tokenizer = load_cross_encoder(tiny_cross_encoder), load_tokenizer(tiny_cross_encoder)
    for name, lists in (
        ("judged", groups),
        ("random", serving_lists(groups, catalog, "random", 20)),
        ("bm25", serving_lists(groups, catalog, "bm25", 20)),
    ):
        expected = evaluate(lists, score_groups(model, tokenizer, lists))
        bm25 = evaluate(lists, BM25Baseline().score(lists, corpus=catalog.texts))
        for key in ("ndcg@10", "ndcg@5", "mrr@10"):
            assert report["comparison"][name]["model"][key] == pytest.approx(expected[key], abs=1e-6), name
            assert report["comparison"][name]["bm25"][key] == pytest.approx(bm25[key], abs=1e-12), name
    assert report["model"] == report["comparison"]["judged"]["model"]  # the judged row, also at the top
    scores = score_groups(model, tokenizer, groups)
    assert report["score_std"] == pytest.approx(float(np.concatenate(scores).std()), rel=1e-4)
    assert report["score_std"] > 1e-2 and report["warnings"] == []
    assert f"{report['model']['ndcg@10']:.4f}" in result.stdout
    assert "gain_kept" not in report


def test_teacher_adds_gain_kept_and_fidelity(tiny_cross_encoder, tiny_model_factory, tiny_judged_csv, tmp_path):
    teacher = tiny_model_factory(seed=1)
    out = tmp_path / "sub" / "report.json"
    result = _eval(
        "--model",
        tiny_cross_encoder,
        "--data",
        tiny_judged_csv,
        "--teacher",
        teacher,
        "--json",
        out,
        "--list-size",
        "16",
        "--fill",
        "random",
    )
    assert result.exit_code == 0, result.output
    assert "| teacher |" in result.stdout and "teacher's gain kept" in result.stdout
    report = json.loads(out.read_text())
    assert list(report["comparison"]) == ["random", "judged"]
    for name, rows in report["comparison"].items():
        m, t, b = (rows[k]["ndcg@10"] for k in ("model", "teacher", "bm25"))
        assert rows["model"]["gain_kept"] == pytest.approx((m - b) / (t - b)), name
        assert len(rows["model"]["gain_kept_ci95"]) == 2
        assert -1.0 <= rows["model"]["kendall_tau"] <= 1.0 and 0.0 <= rows["model"]["top10_overlap"] <= 1.0
        assert rows["teacher"]["top10_overlap"] == 1.0 and rows["teacher"]["kendall_tau"] == pytest.approx(1.0)
    assert "95% CI over queries" in result.stdout
    assert report["gain_kept"] == report["comparison"]["judged"]["model"]["gain_kept"]
    assert report["agreement"]["kendall_tau"] == report["comparison"]["judged"]["model"]["kendall_tau"]

    # a model judged against itself keeps all of its gain and agrees perfectly
    same = _eval(
        "--model", teacher, "--data", tiny_judged_csv, "--teacher", teacher, "--json", out, "--list-size", "16"
    )
    assert same.exit_code == 0, same.output
    report = json.loads(out.read_text())
    for rows in report["comparison"].values():
        assert rows["model"]["gain_kept"] == pytest.approx(1.0)
        assert rows["model"]["gain_kept_ci95"] == [pytest.approx(1.0), pytest.approx(1.0)]  # paired resamples
        assert rows["model"]["kendall_tau"] == pytest.approx(1.0) and rows["model"]["top10_overlap"] == 1.0


def test_serving_lists_can_be_turned_off_and_options_are_checked(tiny_cross_encoder, tiny_judged_csv, tmp_path):
    for off in (("--list-size", "0"), ("--fill", "none")):
        result = _eval("--model", tiny_cross_encoder, "--data", tiny_judged_csv, "--json", tmp_path / "r.json", *off)
        assert result.exit_code == 0, result.output
        assert list(json.loads((tmp_path / "r.json").read_text())["comparison"]) == ["judged"]
        assert "serving," not in result.stdout
    sample = _eval(
        "--model",
        tiny_cross_encoder,
        "--data",
        tiny_judged_csv,
        "--json",
        tmp_path / "s.json",
        "--queries",
        "5",
        "--list-size",
        "10",
    )
    assert sample.exit_code == 0, sample.output
    assert {v["queries"] for v in json.loads((tmp_path / "s.json").read_text())["lists"].values()} == {5}
    bad = _eval("--model", tiny_cross_encoder, "--data", tiny_judged_csv, "--fill", "bm25,tfidf")
    assert bad.exit_code == 2 and "--fill: unknown fill tfidf" in bad.stderr


def test_constant_scores_are_flagged(tiny_model_factory, tiny_judged_csv, tmp_path):
    collapsed = tiny_model_factory(seed=2, zero_head=True)
    result = _eval("--model", collapsed, "--data", tiny_judged_csv, "--json", tmp_path / "r.json", "--list-size", "20")
    assert result.exit_code == 0, result.output
    assert "warning: the model gives every pair the same score" in result.stdout
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["score_std"] == pytest.approx(0.0, abs=1e-6)
    assert any("same score" in w for w in report["warnings"])
    for rows in report["comparison"].values():  # ties averaged: no lucky table order
        assert rows["model"]["ndcg@10"] < rows["bm25"]["ndcg@10"]


def test_a_folder_without_a_trained_head_is_refused(tiny_cross_encoder, tiny_judged_csv, tmp_path):
    bare = tmp_path / "backbone-only"
    load_cross_encoder(tiny_cross_encoder).bert.save_pretrained(bare)  # a BertModel: no classifier weights
    load_tokenizer(tiny_cross_encoder).save_pretrained(bare)
    result = _eval("--model", bare, "--data", tiny_judged_csv, "--json", tmp_path / "r.json")
    assert result.exit_code == 2
    # transformers draws its "Loading weights" bar on stderr before the check; the error is one line after it
    errors = [line for line in result.stderr.replace("\r", "\n").splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and result.stderr.rstrip().endswith(errors[0])
    assert f"{bare}: has no trained classification head" in errors[0]
    assert not (tmp_path / "r.json").exists()


def test_missing_model_folder_is_one_line(tiny_judged_csv, tmp_path):
    result = _eval("--model", tmp_path / "nothing", "--data", tiny_judged_csv)
    assert result.exit_code == 2
    assert result.stderr.strip() == f"error: {tmp_path / 'nothing'}: not a Hugging Face model folder (no config.json)"
