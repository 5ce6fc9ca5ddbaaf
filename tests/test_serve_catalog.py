"""Serving a catalog student: POST /search over the index, /rank from cached states, and an index
replaced by `edgerank index --update` swapped in while requests keep flowing."""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections import Counter

import pytest
from catalog_fixtures import tower_artifacts, tower_students  # noqa: F401
from runtime_fixtures import catalog

from edgerank.artifact import load_artifact
from edgerank.runtime import Ranker
from edgerank.runtime.catalog import build_index, update_index
from edgerank.runtime.serve import make_server
from edgerank.runtime.towers import TowerScorer


def post(srv, path, body):
    conn = http.client.HTTPConnection(*srv.server_address[:2], timeout=30)
    try:
        conn.request("POST", path, body=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read())
    finally:
        conn.close()


@pytest.fixture()
def served(tower_artifacts, tmp_path):
    art = load_artifact(tower_artifacts["late-interaction"])
    index = build_index(art, TowerScorer(art, 16, threads=1), catalog(12), tmp_path / "index")
    srv = make_server(Ranker.load(art.path, threads=1, index=index), "127.0.0.1", 0, quiet=True, watch_index=0.1)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv, art, index
    srv.shutdown()
    srv.server_close()


def test_search_and_cached_rank(served):
    srv, _, _ = served
    status, body = post(srv, "/search", {"query": "red drill", "top_k": 3})
    assert status == 200 and len(body["items"]) == 3 and body["candidates"] == 12
    status, body = post(srv, "/rank", {"query": "red drill", "products": catalog(4)})
    assert status == 200 and body["cached"] == 4
    assert post(srv, "/search", {"query": "red drill", "products": []})[0] == 422
    assert post(srv, "/search", {"query": "red drill", "top_k": 0})[0] == 422


def test_index_update_is_swapped_in_under_load(served):
    srv, art, index = served
    stop, statuses = threading.Event(), Counter()

    def client():
        while not stop.is_set():
            statuses[post(srv, "/search", {"query": "garden hose", "top_k": 5})[0]] += 1
            statuses[post(srv, "/rank", {"query": "garden hose", "products": catalog(6)})[0]] += 1

    threads = [threading.Thread(target=client) for _ in range(3)]
    for t in threads:
        t.start()
    time.sleep(0.3)
    update_index(art, TowerScorer(art, 16, threads=1), index, catalog(20))
    deadline = time.monotonic() + 10
    while srv.index_reloads == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    stop.set()
    for t in threads:
        t.join()
    assert srv.index_reloads == 1
    assert set(statuses) == {200} and sum(statuses.values()) > 10, statuses
    assert post(srv, "/search", {"query": "red drill"})[1]["candidates"] == 20


def test_search_without_an_index_is_404(rt_artifact_free_server):
    assert post(rt_artifact_free_server, "/search", {"query": "drill"})[0] == 404


@pytest.fixture()
def rt_artifact_free_server(tower_artifacts):
    srv = make_server(Ranker.load(tower_artifacts["bi-encoder"], threads=1), "127.0.0.1", 0, quiet=True)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv
    srv.shutdown()
    srv.server_close()
