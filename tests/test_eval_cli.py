"""``edgerank eval`` on tiny models: the report, the teacher comparison, the JSON file, and the two
ways a model folder can be unfit to rank (no trained head, constant scores)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from edgerank.cli import main
from edgerank.data import evaluable, group_queries, read_table
from edgerank.metrics import BM25Baseline, evaluate
from edgerank.modeling import load_cross_encoder, load_tokenizer, score_groups


def _eval(*args: str):
    return CliRunner().invoke(main, ["eval", *map(str, args)])


def test_eval_reports_the_model_next_to_bm25(tiny_cross_encoder, tiny_judged_csv, tmp_path):
    result = _eval("--model", tiny_cross_encoder, "--data", tiny_judged_csv, "--json", tmp_path / "r.json")
    assert result.exit_code == 0, result.output
    assert "| model |" in result.stdout and "| BM25 |" in result.stdout and "| teacher |" not in result.stdout
    assert "12 queries, 48 pairs" in result.stdout
    report = json.loads((tmp_path / "r.json").read_text())

    # the numbers are those of the library calls the command wraps
    groups = evaluable(group_queries(read_table(tiny_judged_csv)[0]))
    scores = score_groups(load_cross_encoder(tiny_cross_encoder), load_tokenizer(tiny_cross_encoder), groups)
    expected = evaluate(groups, scores)
    for key in ("ndcg@10", "ndcg@5", "mrr@10"):
        assert report["model"][key] == pytest.approx(expected[key], abs=1e-6)
    assert report["bm25"] == pytest.approx(evaluate(groups, BM25Baseline().score(groups)))
    assert report["score_std"] == pytest.approx(float(np.concatenate(scores).std()), rel=1e-4)
    assert report["score_std"] > 1e-2 and report["warnings"] == []
    assert f"{report['model']['ndcg@10']:.4f}" in result.stdout
    assert "gain_kept" not in report


def test_teacher_adds_gain_kept_and_agreement(tiny_cross_encoder, tiny_model_factory, tiny_judged_csv, tmp_path):
    teacher = tiny_model_factory(seed=1)
    out = tmp_path / "sub" / "report.json"
    result = _eval("--model", tiny_cross_encoder, "--data", tiny_judged_csv, "--teacher", teacher, "--json", out)
    assert result.exit_code == 0, result.output
    assert "| teacher |" in result.stdout and "teacher's gain kept" in result.stdout
    report = json.loads(out.read_text())
    m, t, b = (report[k]["ndcg@10"] for k in ("model", "teacher", "bm25"))
    assert report["gain_kept"] == pytest.approx((m - b) / (t - b))
    assert "95% CI over queries" in result.stdout and len(report["gain_kept_ci95"]) == 2
    assert -1.0 <= report["agreement"]["kendall_tau"] <= 1.0
    assert 0.0 <= report["agreement"]["top5_overlap"] <= 1.0

    # a model judged against itself keeps all of its gain and agrees perfectly
    same = _eval("--model", teacher, "--data", tiny_judged_csv, "--teacher", teacher, "--json", out)
    assert same.exit_code == 0, same.output
    report = json.loads(out.read_text())
    assert report["gain_kept"] == pytest.approx(1.0)
    assert report["gain_kept_ci95"] == [pytest.approx(1.0), pytest.approx(1.0)]  # paired: no resample differs
    assert report["agreement"]["kendall_tau"] == pytest.approx(1.0)


def test_constant_scores_are_flagged(tiny_model_factory, tiny_judged_csv, tmp_path):
    collapsed = tiny_model_factory(seed=2, zero_head=True)
    result = _eval("--model", collapsed, "--data", tiny_judged_csv, "--json", tmp_path / "r.json")
    assert result.exit_code == 0, result.output
    assert "warning: the model gives every pair the same score" in result.stdout
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["score_std"] == pytest.approx(0.0, abs=1e-6)
    assert any("same score" in w for w in report["warnings"])
    assert report["model"]["ndcg@10"] < report["bm25"]["ndcg@10"]  # ties averaged: no lucky table order


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
