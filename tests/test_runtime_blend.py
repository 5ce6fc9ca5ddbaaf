"""Business-value blending (formula, config files, missing signals) and occlusion explanations."""

from __future__ import annotations

import json

import numpy as np
import pytest
from runtime_fixtures import catalog, rt_artifact, rt_ranker  # noqa: F401

from edgerank.runtime import Blend, RankerInputError
from edgerank.runtime.blend import relevance_probability

WEIGHTS = {"signals": {"in_stock": 0.10, "margin": 0.05, "cheap": {"field": "price", "band": [0, 20], "weight": 0.02}}}


def test_blend_formula_on_every_item(rt_ranker):
    products = catalog(10)
    products[4].pop("margin")
    result = rt_ranker.rank("red drill", products, blend=WEIGHTS)
    assert result.blended and result.missing_signals == {"margin": 1}
    by_id = {p["id"]: p for p in products}
    for item in result:
        p = by_id[item.id]
        expected = {"in_stock": 0.10 * p["in_stock"], "cheap": 0.02 * (0 <= p["price"] <= 20)}
        if "margin" in p:
            expected["margin"] = 0.05 * p["margin"]
        assert item.signals == pytest.approx(expected)
        assert item.score == pytest.approx(item.probability + sum(expected.values()), abs=1e-12)
        assert item.probability == pytest.approx(float(relevance_probability(np.array([item.relevance]), None)[0]))
    assert [i.score for i in result] == sorted((i.score for i in result), reverse=True)


def test_a_strong_signal_reorders_and_relevance_stays_visible(rt_ranker):
    products = catalog(8)
    plain = rt_ranker.rank("red drill", products)
    last = plain.items[-1].id
    for p in products:
        p["boost"] = p["id"] == last
    boosted = rt_ranker.rank("red drill", products, blend={"signals": {"boost": 5.0}})
    assert boosted.items[0].id == last
    relevance = {i.id: i.relevance for i in plain}
    assert all(i.relevance == relevance[i.id] for i in boosted)
    assert not rt_ranker.rank("red drill", products).blended  # off by default


def test_blend_reads_csv_style_strings(rt_ranker):
    products = [
        {"id": "a", "title": "drill", "in_stock": "true", "margin": "0.3"},
        {"id": "b", "title": "drill kit", "in_stock": "no", "margin": ""},
    ]
    result = rt_ranker.rank("drill", products, blend={"signals": {"in_stock": 1.0, "margin": 1.0}})
    got = {i.id: i.signals for i in result}
    assert got == {"a": {"in_stock": 1.0, "margin": 0.3}, "b": {"in_stock": 0.0}}
    assert result.missing_signals == {"margin": 1}


def test_blend_from_json_and_toml_files(tmp_path):
    j = tmp_path / "shop.json"
    j.write_text(json.dumps(WEIGHTS))
    t = tmp_path / "shop.toml"
    t.write_text(
        '[signals]\nin_stock = 0.10\nmargin = 0.05\n[signals.cheap]\nfield = "price"\nband = [0, 20]\nweight = 0.02\n'
    )
    assert Blend.from_file(j) == Blend.from_file(t) == Blend.from_dict(WEIGHTS)
    assert Blend.from_dict(Blend.from_dict(WEIGHTS).to_dict()) == Blend.from_dict(WEIGHTS)


@pytest.mark.parametrize(
    "config, message",
    [
        ({}, "expected {'signals'"),
        ({"signals": {}}, "expected {'signals'"),
        ({"signals": {"x": 1}, "temperature": 2}, "unknown key(s) temperature"),
        ({"signals": {"x": float("nan")}}, "weight must be a number between"),
        ({"signals": {"x": 10**400}}, "weight must be a number between"),
        ({"signals": {"x": {"weight": 1, "band": [5, 1]}}}, "band must be [low, high]"),
        ({"signals": {"x": {"weight": 1, "colour": "red"}}}, "unknown key(s) colour"),
        ({"signals": {"x": {"weight": 1, "field": ""}}}, "field must be a non-empty string"),
    ],
)
def test_bad_blend_configs(config, message):
    with pytest.raises(RankerInputError) as e:
        Blend.from_dict(config)
    assert message in str(e.value)


def test_bad_blend_files(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{nope")
    with pytest.raises(RankerInputError, match="bad.json: not valid JSON"):
        Blend.from_file(bad)
    with pytest.raises(RankerInputError, match="cannot read blend weights"):
        Blend.from_file(tmp_path / "missing.json")


@pytest.mark.parametrize(
    "value, message",
    [
        ("lots", "not a number or true/false"),
        (1.5, "outside 0..1"),
        ([1], "expected a number or boolean"),
        ("inf", "not a finite number"),
    ],
)
def test_bad_signal_values_name_product_and_field(rt_ranker, value, message):
    products = [{"id": "a", "title": "drill", "margin": value}]
    with pytest.raises(RankerInputError) as e:
        rt_ranker.rank("drill", products, blend={"signals": {"margin": 0.1}})
    assert "product 'a': field 'margin'" in str(e.value) and message in str(e.value)


def test_explanations_are_score_drops_without_each_word(rt_ranker):
    products = catalog(6)
    result = rt_ranker.rank("red cordless drill", products, top_k=3, explain=True)
    for item in result:
        words = [w for w, _ in item.explanation]
        assert words == ["red", "cordless", "drill"]
        text = item.product["title"] + (" " + item.product["description"] if item.product["description"] else "")
        for i, (_word, drop) in enumerate(item.explanation):
            occluded = " ".join(w for j, w in enumerate(words) if j != i)
            assert drop == pytest.approx(item.relevance - float(rt_ranker.score([(occluded, text)])[0]), abs=1e-5)
    assert all(i.explanation is None for i in rt_ranker.rank("red cordless drill", products))


def test_explanation_word_limit(rt_ranker):
    with pytest.raises(RankerInputError, match="explanations support up to 32"):
        rt_ranker.rank(" ".join(["drill"] * 33), catalog(2), explain=True)
