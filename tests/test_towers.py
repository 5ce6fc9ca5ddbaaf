"""Catalog students (late interaction, bi-encoder): the interaction, distillation into towers, the saved folder."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from edgerank.cli import main
from edgerank.modeling import load_tokenizer
from edgerank.modeling.towers import TOWERS_FILE, TowerSpec, TowerStudent, load_towers, score_tower_pairs


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A private teacher-score cache."""
    import edgerank.train.scores as scores

    monkeypatch.setenv("EDGERANK_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(scores, "SCORES_HOME", tmp_path / "home" / "scores")


def distill_towers(teacher, judged, out, kind: str, *extra: str):
    return CliRunner().invoke(
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
            str(out),
            "--student-kind",
            kind,
            "--dim",
            "16",
            "--batch-size",
            "8",
            "--max-length",
            "24",
            "--query-max-length",
            "8",
            *extra,
        ],
    )


def _towers(kind: str) -> TowerStudent:
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    encoder = BertModel(
        BertConfig(num_hidden_layers=1, hidden_size=16, num_attention_heads=2, intermediate_size=32, vocab_size=50)
    )
    return TowerStudent(encoder, TowerSpec(kind=kind, dim=4)).eval()  # no dropout


def test_maxsim_is_the_mean_over_query_tokens_of_the_best_product_token():
    model = _towers("late-interaction")
    q = torch.tensor([[[1.0, 0, 0, 0], [0, 1.0, 0, 0], [0, 0, 0, 0]]])  # two tokens and one pad
    p = torch.tensor([[[0.6, 0.8, 0, 0], [1.0, 0, 0, 0], [0, 0.0, 1.0, 0], [0, 1.0, 0, 0]]])
    q_mask = torch.tensor([[1, 1, 0]])
    p_mask = torch.tensor([[1, 1, 1, 0]])  # the exact match for query token 2 is padding: it must not count
    assert model.interact(q, q_mask, p, p_mask).item() == pytest.approx((1.0 + 0.8) / 2)


def test_bi_encoder_scores_are_scaled_dot_products_and_ignore_padding():
    model = _towers("bi-encoder")
    ids, mask = torch.tensor([[5, 6, 7, 0]]), torch.tensor([[1, 1, 1, 0]])
    pooled = model.encode(ids, mask, product=True)
    assert pooled.shape == (1, 4) and pooled.norm().item() == pytest.approx(1.0, abs=1e-6)
    padded = model.encode(torch.tensor([[5, 6, 7, 9, 9]]), torch.tensor([[1, 1, 1, 0, 0]]), product=True)
    assert torch.allclose(pooled, padded, atol=1e-6)
    with torch.no_grad():
        model.scale.fill_(3.0)
        model.bias.fill_(-1.0)
    query = model.encode(ids, mask, product=False)
    # the query tower reads segment A, the product tower segment B: same tokens, different vectors
    assert not torch.allclose(query, pooled)
    score = model(ids, mask, ids, mask, torch.tensor([0]))
    assert score.item() == pytest.approx(3.0 * (query * pooled).sum().item() - 1.0, abs=1e-5)


@pytest.mark.parametrize("kind", ["late-interaction", "bi-encoder"])
def test_distill_trains_towers_and_writes_the_folder(kind, tiny_cross_encoder, tiny_judged_csv, tmp_path, home):
    out = tmp_path / kind
    result = distill_towers(tiny_cross_encoder, tiny_judged_csv, out, kind)
    assert result.exit_code == 0, result.output
    assert "| teacher |" in result.output and "query tower costs" in result.output
    meta = json.loads((out / TOWERS_FILE).read_text())
    assert meta["kind"] == kind and meta["dim"] == 16 and meta["layers"] == [0, 1]
    assert (meta["query_max_length"], meta["product_max_length"]) == (8, 24)
    assert meta["interaction"] == {"late-interaction": "maxsim", "bi-encoder": "dot"}[kind]
    report = json.loads((out / "report.json").read_text())
    assert {"model", "teacher", "bm25", "gain_kept", "agreement", "flops_per_query"} <= set(report["dev"])
    assert report["dev"]["score_std"] > 1e-3
    recipe = json.loads((out / "edgerank_distill.json").read_text())
    assert recipe["config"]["student_kind"] == kind

    model = load_towers(out)
    assert model.scale.item() == pytest.approx(meta["scale"]) and model.spec.kind == kind
    # the reloaded towers rank dev exactly as the report says they did
    from edgerank.data import evaluable, group_queries, read_table
    from edgerank.metrics import evaluate
    from edgerank.modeling.towers import score_tower_groups

    groups = evaluable(group_queries(read_table(tiny_judged_csv)[0]))
    ndcg = evaluate(groups, score_tower_groups(model, load_tokenizer(out), groups))["ndcg@10"]
    assert ndcg == pytest.approx(report["dev"]["model"]["ndcg@10"], abs=1e-9)


def test_tower_scores_do_not_depend_on_batching(tiny_cross_encoder, tiny_judged_csv, tmp_path, home):
    out = tmp_path / "li"
    assert (
        distill_towers(tiny_cross_encoder, tiny_judged_csv, out, "late-interaction", "--epochs", "0.5").exit_code == 0
    )
    model, tok = load_towers(out), load_tokenizer(out)
    queries = ["red cordless drill", "garden hose", "red cordless drill"]
    texts = ["Red 18V Cordless Drill Kit", "Stainless Door Hinge Set", "Blue Garden Hose"]
    together = score_tower_pairs(model, tok, queries, texts)
    alone = np.concatenate([score_tower_pairs(model, tok, [q], [t]) for q, t in zip(queries, texts)])
    np.testing.assert_allclose(together, alone, atol=1e-5)


def test_tower_students_refuse_hidden_state_transfer_and_unknown_kinds(
    tiny_cross_encoder, tiny_judged_csv, tmp_path, home
):
    result = distill_towers(tiny_cross_encoder, tiny_judged_csv, tmp_path / "x", "bi-encoder", "--hidden-weight", "1")
    assert result.exit_code == 2 and "--hidden-weight 0" in result.output
    result = distill_towers(tiny_cross_encoder, tiny_judged_csv, tmp_path / "y", "colbert")
    assert result.exit_code == 2 and "late-interaction" in result.output
    assert not (tmp_path / "x").exists()
