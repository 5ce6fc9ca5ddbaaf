"""The real HTTP server on loopback: good requests, bad ones, limits, concurrency, and it keeps serving."""

from __future__ import annotations

import http.client
import json
import socket
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from runtime_fixtures import catalog, rt_artifact, rt_ranker  # noqa: F401

from edgerank.runtime.blend import Blend
from edgerank.runtime.serve import make_server


@pytest.fixture(scope="module")
def server(rt_ranker):
    srv = make_server(
        rt_ranker,
        "127.0.0.1",
        0,
        max_body_bytes=64 * 1024,
        max_candidates=20,
        quiet=True,
        blend=Blend.from_dict({"signals": {"in_stock": 0.5}}),
    )
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def call(server, method, path, body=None, headers=None):
    host, port = server.server_address[:2]
    conn = http.client.HTTPConnection(host, port, timeout=30)
    try:
        data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
        conn.request(method, path, body=data, headers={"Content-Type": "application/json", **(headers or {})})
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read())
    finally:
        conn.close()


def test_rank_matches_the_library(server, rt_ranker):
    products = catalog(8)
    status, body = call(
        server, "POST", "/rank", {"query": "red drill", "products": products, "top_k": 3, "blend": False}
    )
    assert status == 200
    expected = rt_ranker.rank("red drill", products, top_k=3).to_dict()
    assert [i["id"] for i in body["items"]] == [i["id"] for i in expected["items"]]
    assert [i["score"] for i in body["items"]] == pytest.approx([i["score"] for i in expected["items"]], abs=1e-9)
    assert body["candidates"] == 8 and body["truncated"] == 0 and body["took_ms"] > 0


def test_server_blend_and_explain(server, rt_ranker):
    products = catalog(6)
    status, body = call(server, "POST", "/rank", {"query": "red drill", "products": products, "explain": True})
    assert status == 200 and body["blended"]
    expected = rt_ranker.rank("red drill", products, explain=True, blend={"signals": {"in_stock": 0.5}}).to_dict()
    assert [i["id"] for i in body["items"]] == [i["id"] for i in expected["items"]]
    assert [e["word"] for e in body["items"][0]["explanation"]] == ["red", "drill"]
    status, body = call(
        server, "POST", "/rank", {"query": "red drill", "products": products, "blend": {"signals": {"margin": 1.0}}}
    )
    assert status == 200 and set(body["items"][0]["signals"]) <= {"margin"}


def test_health(server, rt_ranker):
    status, body = call(server, "GET", "/health")
    assert status == 200 and body["status"] == "ok"
    assert body["sha256"] == rt_ranker.artifact.sha256 and body["providers"] == ["CPUExecutionProvider"]


@pytest.mark.parametrize(
    "body, status, message",
    [
        (b"{not json", 400, "not valid JSON"),
        (b"\xff\xfe", 400, "not valid JSON"),
        (b"[" * 100_000, 413, "over the limit"),
        (b"[" * 50_000, 400, "not valid JSON"),
        ([1, 2], 422, "expected a JSON object"),
        ({"products": [{"id": 1, "title": "t"}]}, 422, "missing field 'query'"),
        ({"query": "drill"}, 422, "missing field 'products'"),
        ({"query": "drill", "products": [], "topk": 3}, 422, "unknown field(s) topk"),
        ({"query": "", "products": [{"id": 1, "title": "t"}]}, 422, "query: empty"),
        ({"query": "drill", "products": []}, 422, "empty list"),
        ({"query": "drill", "products": [{"id": 1}]}, 422, "field 'title': missing"),
        ({"query": "drill", "products": [{"id": 1, "title": "a"}, {"id": 1, "title": "b"}]}, 422, "duplicate id"),
        ({"query": "drill", "products": [{"id": 1, "title": 7}]}, 422, "expected a string"),
        ({"query": "drill", "products": [{"id": i, "title": "t"} for i in range(21)]}, 422, "over the limit of 20"),
        ({"query": "drill", "products": [{"id": 1, "title": "t"}], "top_k": -1}, 422, "top_k"),
        ({"query": "drill", "products": [{"id": 1, "title": "t", "in_stock": "maybe"}]}, 422, "field 'in_stock'"),
        ({"query": "drill", "products": [{"id": 1, "title": "t"}], "blend": {"signals": 3}}, 422, "blend"),
    ],
)
def test_bad_requests_get_json_errors_and_the_server_keeps_serving(server, body, status, message):
    got, payload = call(server, "POST", "/rank", body)
    assert got == status and message in payload["error"], payload
    assert call(server, "GET", "/health")[0] == 200


def test_limits_and_wrong_routes(server):
    host, port = server.server_address[:2]
    conn = http.client.HTTPConnection(host, port, timeout=30)
    conn.putrequest("POST", "/rank")
    conn.putheader("Content-Length", str(10**9))  # announced, never sent: refused on the header alone
    conn.endheaders()
    resp = conn.getresponse()
    assert resp.status == 413 and "over the limit" in json.loads(resp.read())["error"]
    conn.close()
    with socket.create_connection((host, port), timeout=30) as s:  # no Content-Length at all
        s.sendall(b"POST /rank HTTP/1.1\r\nHost: x\r\n\r\n")
        assert s.recv(4096).startswith(b"HTTP/1.1 411")
    assert call(server, "GET", "/nope")[0] == 404
    assert call(server, "POST", "/nope", {"query": "x"})[0] == 404
    assert call(server, "GET", "/rank")[0] == 405
    assert call(server, "GET", "/health")[0] == 200


def test_keep_alive_connection_serves_several_requests(server):
    host, port = server.server_address[:2]
    conn = http.client.HTTPConnection(host, port, timeout=30)
    for query in ["drill", "", "hose"]:
        conn.request(
            "POST",
            "/rank",
            body=json.dumps({"query": query, "products": catalog(3)}).encode(),
            headers={"Content-Type": "application/json"},
        )
        resp = conn.getresponse()
        assert resp.status == (422 if not query else 200)
        json.loads(resp.read())
    conn.close()


def test_concurrent_requests(server, rt_ranker):
    products = catalog(10)
    queries = ["red drill", "garden hose", "brass hinge", "paint roller"] * 6
    expected = {q: rt_ranker.rank(q, products).ids for q in set(queries)}
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(
            pool.map(
                lambda q: (q, call(server, "POST", "/rank", {"query": q, "products": products, "blend": False})),
                queries,
            )
        )
    for q, (status, body) in results:
        assert status == 200 and [i["id"] for i in body["items"]] == expected[q]
