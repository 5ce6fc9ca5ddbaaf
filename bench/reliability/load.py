"""Load and hostility against a real ``edgerank serve`` process on loopback.

``clients`` keep-alive clients send well-formed ``POST /rank`` requests for ``seconds``; beside them,
hostile clients send about one request in ten: a path as ``blend``, a non-JSON content type, broken
JSON, an oversized body, headers dripped a byte at a time, a body that stalls. The well-formed
traffic must see no reset and no 5xx; the hostile traffic must get a 4xx or a clean close; the
server's memory and thread count must stay flat (sampled once a second with psutil).
"""

from __future__ import annotations

import http.client
import json
import random
import re
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import psutil

_GOOD_ERRORS = (ConnectionError, http.client.HTTPException, OSError)


def start_server(artifact: Path, *extra: str) -> tuple[subprocess.Popen, str, int]:
    """``edgerank serve`` on a free loopback port; returns the process, host and port."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from edgerank.cli import main; main()",
            "serve",
            "--artifact",
            str(artifact),
            "--port",
            "0",
            "--quiet",
            *extra,
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    line = ""
    while not (found := re.search(r"on http://([\d.]+):(\d+) ", line)):
        line = proc.stderr.readline()
        if not line and proc.poll() is not None:
            raise RuntimeError(f"edgerank serve exited with {proc.returncode}")
    threading.Thread(target=proc.stderr.read, daemon=True).start()  # keep its stderr pipe drained
    return proc, found.group(1), int(found.group(2))


class Tally:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.good: Counter[str] = Counter()
        self.hostile: Counter[str] = Counter()
        self.latencies: list[float] = []

    def add(self, counter: str, key: str, latency: float | None = None) -> None:
        with self.lock:
            getattr(self, counter)[key] += 1
            if latency is not None:
                self.latencies.append(latency)


def good_client(host: str, port: int, products: list[dict], stop: threading.Event, tally: Tally, seed: int) -> None:
    rng = random.Random(seed)
    conn = http.client.HTTPConnection(host, port, timeout=60)
    while not stop.is_set():
        chosen = rng.sample(products, rng.randint(20, 100))
        query = " ".join(rng.choice(chosen)["title"].split()[:3])
        body = json.dumps({"query": query, "products": chosen, "top_k": 10}).encode()
        started = time.perf_counter()
        try:
            conn.request("POST", "/rank", body=body, headers={"Content-Type": "application/json"})
            resp = conn.getresponse()
            resp.read()
        except _GOOD_ERRORS as e:
            tally.add("good", f"reset ({type(e).__name__})")
            conn.close()
            conn = http.client.HTTPConnection(host, port, timeout=60)
            continue
        tally.add("good", str(resp.status), time.perf_counter() - started)
    conn.close()


def _exchange(host: str, port: int, raw: bytes, drip: float = 0.0) -> str:
    """Send ``raw`` (a byte at a time every ``drip`` seconds if set); the reply's status or how it ended."""
    started = time.monotonic()
    with socket.create_connection((host, port), timeout=60) as s:
        try:
            if drip:
                for i in range(len(raw)):
                    s.sendall(raw[i : i + 1])
                    time.sleep(drip)
            else:
                s.sendall(raw)
            reply = s.recv(64)
        except OSError as e:
            if drip:  # the server ended the drip: say when
                return f"cut after {round(time.monotonic() - started)} s"
            return "reset" if isinstance(e, ConnectionResetError) else f"closed ({type(e).__name__})"
    return reply[9:12].decode() if reply.startswith(b"HTTP/1.1 ") else "closed"


def _request(body: bytes, content_type: str = "application/json", length: int | None = None) -> bytes:
    head = (
        f"POST /rank HTTP/1.1\r\nHost: kiosk\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body) if length is None else length}\r\n\r\n"
    )
    return head.encode() + body


def hostile_request(kind: str, host: str, port: int, max_body: int) -> str:
    ok = json.dumps({"query": "drill", "products": [{"id": 1, "title": "drill"}]})
    if kind == "path blend":
        return _exchange(host, port, _request(json.dumps({**json.loads(ok), "blend": "/dev/zero"}).encode()))
    if kind == "not json type":
        return _exchange(host, port, _request(ok.encode(), "text/plain"))
    if kind == "broken json":
        return _exchange(host, port, _request(b'{"query": "drill", "products": [{'))
    if kind == "oversized body":
        return _exchange(host, port, _request(b" " * (max_body + 1)))
    if kind == "slow drip":
        return _exchange(host, port, b"POST /rank HTTP/1.1\r\nHost: kiosk\r\n" + b"X" * 400, drip=0.25)
    if kind == "stalled body":
        return _exchange(host, port, _request(ok.encode()[:10], length=len(ok)))
    raise ValueError(kind)


HOSTILE_KINDS = ("path blend", "not json type", "broken json", "oversized body", "slow drip", "stalled body")


def hostile_client(
    host: str,
    port: int,
    max_body: int,
    stop: threading.Event,
    tally: Tally,
    seed: int,
    kinds: tuple[str, ...] = HOSTILE_KINDS,
) -> None:
    rng = random.Random(seed)
    while not stop.is_set():
        kind = rng.choice(kinds)
        tally.add("hostile", f"{kind}: {hostile_request(kind, host, port, max_body)}")


def sample(proc: psutil.Process, stop: threading.Event, out: list[tuple[float, int, int]]) -> None:
    t0 = time.monotonic()
    while not stop.wait(1.0):
        out.append((time.monotonic() - t0, proc.memory_info().rss, proc.num_threads()))


def run(
    artifact: Path,
    products: list[dict],
    clients: int = 50,
    seconds: float = 60.0,
    hostile_share: float = 0.1,
    serve_args: tuple[str, ...] = (),
) -> dict[str, Any]:
    """Drive the server; the hostile clients are paced so that they send about ``hostile_share``
    of all requests (their slow kinds take seconds each)."""
    max_body = 2 * 1024 * 1024
    proc, host, port = start_server(artifact, *serve_args)
    try:
        stop, tally, samples = threading.Event(), Tally(), []
        threads = [
            threading.Thread(target=good_client, args=(host, port, products, stop, tally, i)) for i in range(clients)
        ]
        threads.append(threading.Thread(target=sample, args=(psutil.Process(proc.pid), stop, samples)))
        for t in threads:
            t.start()
        hostile = _pace_hostile(host, port, max_body, stop, tally, hostile_share, seconds)
        stop.set()
        for t in threads + hostile:
            t.join()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    return _summary(tally, samples, clients, seconds)


def _pace_hostile(host, port, max_body, stop, tally, share, seconds) -> list[threading.Thread]:
    """Start hostile clients one by one while their share of requests is below ``share``."""
    started, hostile = time.monotonic(), []
    while time.monotonic() - started < seconds:
        time.sleep(0.5)
        with tally.lock:
            total_good, total_hostile = sum(tally.good.values()), sum(tally.hostile.values())
        if total_hostile < share / (1 - share) * total_good and len(hostile) < 40:
            t = threading.Thread(target=hostile_client, args=(host, port, max_body, stop, tally, 1000 + len(hostile)))
            t.start()
            hostile.append(t)
    return hostile


def _summary(tally: Tally, samples: list[tuple[float, int, int]], clients: int, seconds: float) -> dict[str, Any]:
    lat = np.asarray(tally.latencies) * 1000
    steady = samples[len(samples) // 6 :] or samples  # after warm-up
    good_total, hostile_total = sum(tally.good.values()), sum(tally.hostile.values())
    return {
        "clients": clients,
        "seconds": seconds,
        "good_requests": good_total,
        "hostile_requests": hostile_total,
        "hostile_share": round(hostile_total / max(1, good_total + hostile_total), 3),
        "good_outcomes": dict(tally.good),
        "hostile_outcomes": dict(sorted(tally.hostile.items())),
        "resets": sum(v for k, v in tally.good.items() if k.startswith("reset")),
        "server_errors": sum(v for k, v in tally.good.items() if k.startswith("5")),
        "p50_ms": round(float(np.percentile(lat, 50)), 1) if len(lat) else None,
        "p99_ms": round(float(np.percentile(lat, 99)), 1) if len(lat) else None,
        "rss_mb": [round(s[1] / 2**20, 1) for s in (steady[0], steady[-1])] if steady else None,
        "rss_max_mb": round(max(s[1] for s in samples) / 2**20, 1) if samples else None,
        "threads": [steady[0][2], steady[-1][2]] if steady else None,
        "threads_max": max(s[2] for s in samples) if samples else None,
    }
