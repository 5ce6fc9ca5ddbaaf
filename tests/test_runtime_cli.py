"""``edgerank rank`` / ``edgerank serve`` over real artifacts and product files, bad input included."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from runtime_fixtures import catalog, rt_artifact, rt_ranker  # noqa: F401

from edgerank.cli import main
from edgerank.runtime.products import read_products_file


def write_csv(path, rows):
    import csv

    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_rank_json_matches_library_for_csv_and_jsonl(rt_artifact, rt_ranker, tmp_path):
    rows = [{k: str(v) for k, v in p.items()} for p in catalog(7)]
    csv_path = write_csv(tmp_path / "p.csv", rows)
    jsonl = tmp_path / "p.jsonl"
    jsonl.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    expected = rt_ranker.rank("red drill", rows, top_k=4).to_dict()
    for path in (csv_path, jsonl):
        res = CliRunner().invoke(
            main,
            [
                "rank",
                "--artifact",
                str(rt_artifact),
                "--query",
                "red drill",
                "--products",
                str(path),
                "--top-k",
                "4",
                "--json",
                "--threads",
                "1",
            ],
        )
        assert res.exit_code == 0, res.output
        got = json.loads(res.stdout)
        assert [i["id"] for i in got["items"]] == [i["id"] for i in expected["items"]]
        assert got["candidates"] == 7


def test_rank_table_blend_and_explain(rt_artifact, tmp_path):
    path = write_csv(
        tmp_path / "p.csv",
        [
            {"product_id": "a", "product_title": "Red Drill", "in_stock": "true"},
            {"product_id": "b", "product_title": "Hose " * 100, "in_stock": ""},
        ],
    )
    weights = tmp_path / "shop.json"
    weights.write_text(json.dumps({"signals": {"in_stock": 0.2}}))
    res = CliRunner().invoke(
        main,
        [
            "rank",
            "--artifact",
            str(rt_artifact),
            "--query",
            "red drill",
            "--products",
            str(path),
            "--blend",
            str(weights),
            "--explain",
        ],
    )
    assert res.exit_code == 0, res.output
    assert "Red Drill" in res.stdout and "[truncated]" in res.stdout and "red:" in res.stdout
    assert "2 candidates, 1 cut to 64 tokens; missing blend signals: in_stock x1" in res.stderr


@pytest.mark.parametrize(
    "content, suffix, message",
    [
        ("id,title\n1,a\n1,b\n", ".csv", "duplicate id"),
        ("id,title\n1,\n", ".csv", "field 'title': empty"),
        ("id,title\n1,a,extra\n", ".csv", "line 2: wrong number of fields"),
        ("id,name\n", ".csv", "no products"),
        ('{"id": 1, "title": "a"}\nnot json\n', ".jsonl", "line 2: not valid JSON"),
        ("[1, 2]\n", ".jsonl", "line 1: expected a JSON object"),
        ("id,title\n1,a\n", ".xlsx", "unknown format"),
    ],
)
def test_rank_bad_product_files_exit_2_with_one_line(rt_artifact, tmp_path, content, suffix, message):
    path = tmp_path / f"p{suffix}"
    path.write_text(content)
    res = CliRunner().invoke(
        main, ["rank", "--artifact", str(rt_artifact), "--query", "drill", "--products", str(path)]
    )
    assert res.exit_code == 2 and message in res.stderr and len(res.stderr.strip().splitlines()) == 1, res.output


def test_rank_bad_artifact_and_provider(rt_artifact, tmp_path):
    path = write_csv(tmp_path / "p.csv", [{"id": "1", "title": "drill"}])
    res = CliRunner().invoke(main, ["rank", "--artifact", str(tmp_path), "--query", "drill", "--products", str(path)])
    assert res.exit_code == 2 and "not an edgerank artifact" in res.stderr
    res = CliRunner().invoke(
        main,
        ["rank", "--artifact", str(rt_artifact), "--query", "drill", "--products", str(path), "--providers", "cuda"],
    )
    assert res.exit_code == 2 and "available: " in res.stderr


def test_read_products_file_maps_columns_and_undecodable_bytes(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("product_uid,product_title,product_description,price\n7,Drill,18V,9.5\n")
    assert read_products_file(path) == [{"id": "7", "title": "Drill", "description": "18V", "price": "9.5"}]
    path.write_bytes(b"id,title\n1,ok\n2,\xff\n")
    with pytest.raises(ValueError, match="line 3: not UTF-8"):
        read_products_file(path)


def test_serve_help_lists_limits():
    res = CliRunner().invoke(main, ["serve", "--help"])
    assert res.exit_code == 0 and "--max-candidates" in res.stdout and "127.0.0.1" in res.stdout


@pytest.mark.parametrize("stop", ["SIGINT", "SIGTERM"])
def test_serve_command_answers_then_stops_on_signal(rt_artifact, stop):
    """Ctrl-C and SIGTERM (docker, systemd, kill) both end the server cleanly with exit 0."""
    import re
    import signal
    import subprocess
    import sys
    import urllib.request

    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from edgerank.cli import main; main()",
            "serve",
            "--artifact",
            str(rt_artifact),
            "--port",
            "0",
            "--threads",
            "1",
            "--quiet",
        ],
        stderr=subprocess.PIPE,
        text=True,
        # as from a terminal: a job started in the background (nohup ... &) inherits
        # SIGINT ignored, and Python then never raises KeyboardInterrupt
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        lines = []
        while not (found := re.search(r"on (http://\S+) ", lines[-1] if lines else "")):
            lines.append(proc.stderr.readline())  # warnings may come before the address line
            assert lines[-1] or proc.poll() is None, "".join(lines)
        url = found.group(1)
        with urllib.request.urlopen(url + "/health", timeout=30) as resp:
            assert json.loads(resp.read())["status"] == "ok"
        req = urllib.request.Request(
            url + "/rank",
            data=json.dumps({"query": "drill", "products": [{"id": 1, "title": "drill"}]}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=30) as resp:
            assert json.loads(resp.read())["items"][0]["id"] == 1
        proc.send_signal(getattr(signal, stop))
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
