"""The data layer on real files: formats, column mapping, ESCI, splits, grouping, and every bad input
through the real command line (one line on stderr naming file, row and field; exit 2)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from edgerank.cli import main
from edgerank.data import CANONICAL, ESCI_GAINS, DataError, evaluable, group_queries, read_table, split_by_query

HEADER = "query,product_title,relevance\n"
GOOD = "red drill,Red Cordless Drill,3\nred drill,Blue Hose,1\nblue hose,Blue Garden Hose,3\n"


def _write(path: Path, text: str | bytes) -> Path:
    path.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
    return path


# ---------------------------------------------------------------- formats and column mapping


def test_csv_reads_into_canonical_columns_with_source_rows(tmp_path):
    df, report = read_table(_write(tmp_path / "t.csv", HEADER + GOOD))
    assert list(df.columns) == ["row", *CANONICAL]
    assert df["row"].tolist() == [1, 2, 3]
    assert df["relevance"].tolist() == [3.0, 1.0, 3.0]
    assert df["product_description"].tolist() == ["", "", ""]
    # ids derived from text are stable: the same query gets the same id, on every run
    assert df["query_id"].iat[0] == df["query_id"].iat[1] != df["query_id"].iat[2]
    assert report.skipped == {}


def test_jsonl_and_parquet_read_the_same_rows_as_csv(tmp_path):
    rows = [
        {"qid": "q1", "query": "red drill", "title": "Red Cordless Drill", "label": 3},
        {"qid": "q1", "query": "red drill", "title": "Blue Hose", "label": 1},
    ]
    jsonl = _write(tmp_path / "t.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    parquet = tmp_path / "t.parquet"
    pd.DataFrame(rows).to_parquet(parquet)
    a, _ = read_table(jsonl)
    b, _ = read_table(parquet)
    pd.testing.assert_frame_equal(a, b)
    assert a["query_id"].tolist() == ["q1", "q1"]  # qid -> query_id, title -> product_title, label -> relevance
    assert a["product_title"].tolist() == ["Red Cordless Drill", "Blue Hose"]
    assert a["relevance"].tolist() == [3.0, 1.0]


def test_home_depot_kaggle_names_map_by_alias_and_by_option(tmp_path):
    kaggle = (
        "id,product_uid,product_title,search_term,relevance\n2,100001,Simpson Angle,angle bracket,3\n"
        "3,100002,Behr Paint,angle bracket,1.33\n"
    )
    df, _ = read_table(_write(tmp_path / "hd.csv", kaggle))
    assert df["query"].tolist() == ["angle bracket"] * 2
    assert df["product_id"].tolist() == ["100001", "100002"]
    renamed = _write(tmp_path / "hd2.csv", kaggle.replace("search_term", "st").replace("product_uid", "sku"))
    with pytest.raises(DataError, match="missing column 'query'"):
        read_table(renamed)
    df2, _ = read_table(renamed, columns={"query": "st", "product_id": "sku"})
    pd.testing.assert_frame_equal(df, df2)


def test_column_option_through_the_cli(tmp_path, tiny_cross_encoder):
    data = _write(tmp_path / "hd.csv", "search_phrase,name,score\n" + GOOD)
    result = CliRunner().invoke(
        main,
        [
            "eval",
            "--model",
            str(tiny_cross_encoder),
            "--data",
            str(data),
            "--column",
            "query=search_phrase",
            "--column",
            "product_title=name",
            "--column",
            "relevance=score",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "1 queries, 2 pairs" in result.stdout  # "blue hose" has one label: not evaluable


# ---------------------------------------------------------------- ESCI


def test_esci_sample_joins_product_titles_and_maps_labels_to_amazon_gains(shared_data):
    table = shared_data / "esci-sample" / "test-sample.parquet"
    products = shared_data / "esci-sample" / "sample-products.jsonl.zstd"
    raw = pd.read_parquet(table)
    df, report = read_table(table, products=products)
    assert len(df) == len(raw) == 16 and report.skipped == {}
    assert (df["product_title"] != "").all()
    assert df["product_title"].iat[0].startswith("Apple Carplay Double Din Car Stereo")
    expected = raw["esci_label"].map(ESCI_GAINS).to_numpy()
    np.testing.assert_array_equal(df["relevance"].to_numpy(), expected)
    assert ESCI_GAINS == {"E": 1.0, "S": 0.1, "C": 0.01, "I": 0.0}
    assert sorted(set(df["relevance"])) == [0.0, 0.1, 1.0]  # the sample holds E, S and I

    custom, _ = read_table(table, products=products, label_map={"E": 3, "S": 2, "C": 1, "I": 0})
    np.testing.assert_array_equal(
        custom["relevance"].to_numpy(), raw["esci_label"].map({"E": 3, "S": 2, "C": 1, "I": 0}).to_numpy()
    )


def test_esci_label_map_missing_a_label_names_row_and_field(shared_data):
    table = shared_data / "esci-sample" / "test-sample.parquet"
    products = shared_data / "esci-sample" / "sample-products.jsonl.zstd"
    first_i = int(np.flatnonzero(pd.read_parquet(table)["esci_label"].to_numpy() == "I")[0]) + 1
    with pytest.raises(DataError, match=rf"row {first_i}: field 'relevance': not a number: 'I'"):
        read_table(table, products=products, label_map={"E": 1, "S": 0.5})


def test_esci_product_missing_from_catalog_names_the_row(tmp_path, shared_data):
    raw = pd.read_parquet(shared_data / "esci-sample" / "test-sample.parquet").iloc[:3].copy()
    raw["product_id"] = [raw["product_id"].iat[0], "NOPE", raw["product_id"].iat[2]]
    raw.to_parquet(tmp_path / "esci.parquet")
    with pytest.raises(DataError, match=r"esci.parquet: row 2: field 'product_id': 'NOPE' not found"):
        read_table(tmp_path / "esci.parquet", products=shared_data / "esci-sample" / "sample-products.jsonl.zstd")


# ---------------------------------------------------------------- splits and groups


def test_split_by_query_is_disjoint_complete_and_stable(tmp_path):
    rows = [
        {"query": f"query {q}", "product_title": f"product {q}-{p}", "relevance": p % 3 + 1}
        for q in range(200)
        for p in range(3)
    ]
    df, _ = read_table(_write(tmp_path / "t.csv", pd.DataFrame(rows).to_csv(index=False)))
    train, dev = split_by_query(df, dev_fraction=0.2, seed=0)
    assert not set(train["query_id"]) & set(dev["query_id"])
    assert len(train) + len(dev) == len(df)
    assert 0.1 < dev["query_id"].nunique() / 200 < 0.3
    # same split again, and whatever the row order (it hashes the id, not the position)
    train2, dev2 = split_by_query(df.sample(frac=1.0, random_state=1), dev_fraction=0.2, seed=0)
    assert set(dev2["query_id"]) == set(dev["query_id"])
    assert set(split_by_query(df, 0.2, seed=1)[1]["query_id"]) != set(dev["query_id"])
    with pytest.raises(ValueError):
        split_by_query(df, dev_fraction=1.0)


def test_group_queries_keeps_table_order_and_offsets_gains(tmp_path):
    text = HEADER + "red drill,Red Drill,3\nblue hose,Blue Hose,2.5\nred drill,Blue Hose,1\nsolo,Solo Item,2\n"
    df, _ = read_table(_write(tmp_path / "t.csv", text))
    groups = group_queries(df)
    assert [g.query for g in groups] == ["red drill", "blue hose", "solo"]
    red = groups[0]
    assert red.texts == ("Red Drill", "Blue Hose") and red.rows.tolist() == [0, 2]
    np.testing.assert_array_equal(red.labels, [2.0, 0.0])  # auto offset = the smallest label, 1
    np.testing.assert_array_equal(group_queries(df, offset=0)[0].labels, [3.0, 1.0])
    assert [g.query for g in evaluable(groups)] == ["red drill"]  # single-label queries rank nothing
    unlabeled, _ = read_table(_write(tmp_path / "u.csv", "query,product_title\na,b\n"), require_relevance=False)
    assert group_queries(unlabeled)[0].labels is None


def test_description_is_appended_to_the_title(tmp_path):
    df, _ = read_table(
        _write(
            tmp_path / "t.csv",
            "query,product_title,product_description,relevance\na,Drill,18V with battery,3\na,Hose,,1\n",
        )
    )
    assert group_queries(df)[0].texts == ("Drill 18V with battery", "Hose")


# ---------------------------------------------------------------- bad input through the CLI


def _teacher(tmp_path: Path, data: Path, backbone: Path):
    out = tmp_path / "teacher-out"
    result = CliRunner().invoke(main, ["teacher", "--train", str(data), "--out", str(out), "--backbone", str(backbone)])
    return result, out


BAD_INPUTS = {
    # name: (file name, content, expected fragments of the one error line)
    "missing column": ("nocol.csv", "query,title_text,relevance\na,b,1\n", ["missing column 'product_title'"]),
    "empty file": ("empty.csv", "", ["empty file"]),
    "header only": ("header.csv", HEADER, ["no rows"]),
    "empty label": ("emptylabel.csv", HEADER + "a,b,1\nc,d,2\ne,f,\n", ["row 3", "field 'relevance'", "empty"]),
    "NaN label": ("nan.csv", HEADER + "a,b,1\nc,d,2\ne,f,nan\n", ["row 3", "field 'relevance'", "not finite"]),
    "non-numeric label": ("word.csv", HEADER + "a,b,1\nc,d,high\n", ["row 2", "field 'relevance'", "'high'"]),
    "ragged row": ("ragged.csv", HEADER + "a,b,1\nc,d,2\ne,f,3,4\n", ["row 3", "expected 3 fields, saw 4"]),
    "undecodable CSV": (
        "latin1.csv",
        (HEADER + "a,b,1\nc,d,2\ne,caf\xe9,3\n").encode("latin-1"),
        ["row 3", "undecodable bytes"],
    ),
    "undecodable JSONL": (
        "latin1.jsonl",
        b'{"query":"a","title":"b","relevance":1}\n{"query":"c","title":"caf\xe9","relevance":2}\n',
        ["row 2", "undecodable bytes"],
    ),
    "JSONL null label": (
        "null.jsonl",
        '{"query":"a","title":"b","relevance":1}\n{"query":"c","title":"d","relevance":null}\n',
        ["row 2", "field 'relevance'"],
    ),
    "broken JSON": (
        "broken.jsonl",
        '{"query":"a","title":"b","relevance":1}\n{"query": "c",\n',
        ["row 2", "not valid JSON"],
    ),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_stops_with_one_line_naming_file_row_and_field(case, tmp_path, tiny_cross_encoder):
    name, content, fragments = BAD_INPUTS[case]
    data = _write(tmp_path / name, content)
    result, out = _teacher(tmp_path, data, tiny_cross_encoder)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: ") and name in lines[0]
    for fragment in fragments:
        assert fragment in lines[0]
    assert not out.exists() and not out.with_name(out.name + ".partial").exists()


def test_bad_parquet_label_row_is_right(tmp_path, tiny_cross_encoder):
    data = tmp_path / "t.parquet"
    pd.DataFrame(
        {"query": ["a", "b", "c"], "product_title": ["x", "y", "z"], "relevance": [1.0, 2.0, float("nan")]}
    ).to_parquet(data)
    result, _ = _teacher(tmp_path, data, tiny_cross_encoder)
    assert result.exit_code == 2
    assert "t.parquet: row 3: field 'relevance'" in result.stderr


def test_bad_dev_table_fails_before_training(tmp_path, tiny_cross_encoder, tiny_judged_csv):
    dev = _write(tmp_path / "dev.csv", HEADER + "a,b,1\nc,d,x\n")
    out = tmp_path / "t"
    result = CliRunner().invoke(
        main,
        [
            "teacher",
            "--train",
            str(tiny_judged_csv),
            "--dev",
            str(dev),
            "--out",
            str(out),
            "--backbone",
            str(tiny_cross_encoder),
        ],
    )
    assert result.exit_code == 2
    assert "dev.csv: row 2: field 'relevance'" in result.stderr
    assert not out.exists() and not out.with_name("t.partial").exists()


def test_empty_text_and_repeated_pairs_are_skipped_with_counted_warnings(tmp_path, tiny_cross_encoder):
    text = HEADER + (
        "red drill,Red Drill,3\n"
        ",Blue Hose,2\n"  # empty query
        "red drill,,2\n"  # empty title
        "red drill,Blue Hose,1\n"
        "red drill,Red Drill,1\n"  # repeat of row 1: row 1's label is kept
        "blue hose,Blue Hose,3\n"
    )
    data = _write(tmp_path / "t.csv", text)
    df, report = read_table(data)
    assert df["row"].tolist() == [1, 4, 6]
    assert df["relevance"].tolist() == [3.0, 1.0, 3.0]
    assert report.skipped == {"empty query or product title": 2, "repeated (query_id, product_id) pair; first kept": 1}

    result = CliRunner().invoke(main, ["eval", "--model", str(tiny_cross_encoder), "--data", str(data)])
    assert result.exit_code == 0, result.output
    assert f"warning: {data}: skipped 2 row(s): empty query or product title" in result.stdout
    assert f"warning: {data}: skipped 1 row(s): repeated (query_id, product_id) pair; first kept" in result.stdout


def test_a_table_with_nothing_usable_is_an_error(tmp_path):
    with pytest.raises(DataError, match="no usable rows"):
        read_table(_write(tmp_path / "t.csv", HEADER + ",a,1\nb,,2\n"))


def test_a_folder_given_as_data_is_one_clear_error(tmp_path):
    res = CliRunner().invoke(main, ["teacher", "--train", str(tmp_path), "--out", str(tmp_path / "t")])
    assert res.exit_code != 0 and "not a file" in res.output and "Traceback" not in res.output
