"""The server against hostile clients: no file is ever named by a request, slow or oversized clients
are bounded, saturation is answered with 503, and every refusal is a readable JSON reply."""

from __future__ import annotations

import http.client
import json
import os
import socket
import threading
import time

import pytest
from runtime_fixtures import catalog, rt_artifact, rt_ranker  # noqa: F401

from edgerank.runtime.blend import Blend
from edgerank.runtime.serve import ServeLimits, make_server


def start(ranker, **options):
    srv = make_server(ranker, "127.0.0.1", 0, quiet=True, **options)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


@pytest.fixture()
def server(rt_ranker):
    srv = start(
        rt_ranker,
        blends={"shop": Blend.from_dict({"signals": {"in_stock": 0.5}})},
        limits=ServeLimits(
            max_body_bytes=64 * 1024,
            idle_timeout=1.0,
            body_timeout=1.0,
            max_explain_pairs=20,
            max_connections=8,
            request_timeout=0.3,
        ),
    )
    yield srv
    srv.shutdown()
    srv.server_close()


def post(srv, body, headers=None, path="/rank", conn=None):
    own = conn is None
    conn = conn or http.client.HTTPConnection(*srv.server_address[:2], timeout=30)
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    conn.request("POST", path, body=data, headers={"Content-Type": "application/json", **(headers or {})})
    resp = conn.getresponse()
    out = resp.status, json.loads(resp.read())
    if own:
        conn.close()
    return out


def request(products=3, **fields):
    return {"query": "red drill", "products": catalog(products), **fields}


def test_blend_never_names_a_file(server, tmp_path):
    secret = tmp_path / "secrets.json"
    secret.write_text(json.dumps({"api_key": "x", "db_password": "y"}))
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for spec in (str(secret), str(fifo), "/dev/zero", "/etc/passwd"):
        status, body = post(server, request(blend=spec))
        assert status == 422 and "no blend of that name" in body["error"]
        assert "api_key" not in body["error"] and spec not in body["error"]
    status, body = post(server, request(blend="shop"))
    assert status == 200 and body["blended"]
    status, body = post(server, request(blend={"signals": {"margin": 1e300}}))
    assert status == 422 and "between" in body["error"]


def test_content_type_origin_and_length_are_checked(server):
    assert post(server, request(), headers={"Content-Type": "text/plain"})[0] == 415
    assert post(server, request(), headers={"Origin": "http://evil.example"})[0] == 403
    host, port = server.server_address[:2]
    with socket.create_connection((host, port), timeout=10) as s:
        s.sendall(b"POST /rank HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1_3\r\n\r\n")
        assert s.recv(4096).startswith(b"HTTP/1.1 400")


def test_allowed_origin_is_served(rt_ranker):
    srv = start(rt_ranker, allow_origins=("http://kiosk.local",))
    try:
        assert post(srv, request(), headers={"Origin": "http://kiosk.local"})[0] == 200
    finally:
        srv.shutdown()
        srv.server_close()


def test_oversized_body_is_drained_and_the_connection_kept(server):
    conn = http.client.HTTPConnection(*server.server_address[:2], timeout=30)
    status, body = post(server, b"x" * (200 * 1024), conn=conn)
    assert status == 413 and "over the limit" in body["error"]
    assert post(server, request(), conn=conn)[0] == 200  # same connection, still in step
    conn.close()


def test_slow_clients_are_cut_at_their_deadline(server):
    host, port = server.server_address[:2]
    started = time.monotonic()
    with socket.create_connection((host, port), timeout=10) as s:  # headers dripped a byte at a time
        s.sendall(b"POST /rank HTTP/1.1\r\n")
        for _ in range(20):
            try:
                s.sendall(b"X")
            except OSError:
                break
            time.sleep(0.2)
            if time.monotonic() - started > 3:
                break
        s.settimeout(5)
        reply = s.recv(4096)
    assert time.monotonic() - started < 3.5 and (reply == b"" or reply.startswith(b"HTTP/1.1 4"))
    with socket.create_connection((host, port), timeout=10) as s:  # body announced, never finished
        s.sendall(b"POST /rank HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{")
        s.settimeout(5)
        assert s.recv(4096).startswith(b"HTTP/1.1 408")


def test_explain_is_capped(server):
    status, body = post(server, request(products=12, explain=True))
    assert status == 422 and "over the limit of 20" in body["error"]
    status, body = post(server, request(products=12, explain=True, top_k=5))
    assert status == 200 and len(body["items"][0]["explanation"]) == 2


def test_saturation_is_a_clean_503(server):
    server._scoring.acquire()  # every scoring slot taken
    try:
        status, body = post(server, request())
        assert status == 503 and "busy" in body["error"]
    finally:
        server._scoring.release()
    assert post(server, request())[0] == 200


def test_connections_beyond_the_cap_get_503(rt_ranker):
    srv = start(rt_ranker, max_connections=2, idle_timeout=5.0)
    host, port = srv.server_address[:2]
    held = [socket.create_connection((host, port), timeout=10) for _ in range(2)]
    try:
        time.sleep(0.3)
        with socket.create_connection((host, port), timeout=10) as s:
            assert s.recv(4096).startswith(b"HTTP/1.1 503")
    finally:
        for s in held:
            s.close()
        srv.shutdown()
        srv.server_close()


def test_invisible_queries_are_empty(server):
    for query in ("\x00\x00", "\u200b\u200b", "\ufeff \u200d"):
        status, body = post(server, {"query": query, "products": catalog(2)})
        assert status == 422 and "query: empty" in body["error"]


def test_metrics_in_prometheus_format(server):
    assert post(server, request())[0] == 200
    assert post(server, {"query": "", "products": catalog(2)})[0] == 422
    conn = http.client.HTTPConnection(*server.server_address[:2], timeout=30)
    conn.request("GET", "/metrics")
    resp = conn.getresponse()
    text = resp.read().decode()
    assert resp.status == 200 and resp.getheader("Content-Type").startswith("text/plain")
    assert 'edgerank_requests_total{method="POST",path="/rank",code="200"} 1' in text
    assert 'edgerank_requests_total{method="POST",path="/rank",code="422"} 1' in text
    assert "edgerank_request_duration_seconds_count 1" in text
    assert 'edgerank_candidates_bucket{le="5"} 1' in text
    assert 'edgerank_relevance_probability_bucket{le="+Inf"} 3' in text
