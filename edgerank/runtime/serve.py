"""A small local HTTP JSON endpoint, so kiosk apps written in any language can rank.

``POST /rank`` takes ``{"query": str, "products": [{"id", "title", "description"?, ...}],
"top_k": int?, "explain": bool?, "blend": false | true | "NAME" | {...}?}`` and answers the ranked
ids with their scores. With a catalog index (catalog students), ``POST /search`` takes ``{"query": str, "top_k": int?,
"depth": int?}`` and ranks the whole catalog, and ``/rank`` reads cached product states; when
``edgerank index --update`` replaces the index, the server swaps the new one in whole, and a request
in flight finishes on the old one. ``GET /health`` answers what is loaded; ``GET /metrics`` is the Prometheus
text format (see ``telemetry``). Standard library only.

Nothing in a request is trusted. A request never names a file: ``blend`` is an inline mapping or
the name of a blend configured at start (``--blend NAME=FILE``). Every client is bounded in what it
can hold: a connection cap (beyond it, 503 and close), a deadline for headers (``idle_timeout``)
and another for the body (``body_timeout``) enforced by a watchdog that ends the read however
slowly the bytes drip in, a bounded number of requests scored at once (a request that cannot start
within ``request_timeout`` gets 503 with ``Retry-After``), a cap on candidates and on the pairs an
explanation costs. A JSON content type is required, and a request carrying an ``Origin`` header
(a browser page) is refused unless that origin was allowed at start: a web page in the kiosk's
own browser cannot drive the ranker. Bodies over the limit are drained (up to a bound) before the
413 so the client reads the answer instead of a reset, and every close is a lingering one.

Errors are JSON ``{"error": ...}`` with a 4xx status (400 unreadable, 403 origin, 404/405 wrong
path or method, 408 too slow, 411 no length, 413 too large, 415 not JSON, 422 refused by the
ranker) or 503 (busy). It binds to 127.0.0.1 by default and has no authentication.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import socket
import sys
import threading
import time
import traceback
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from .blend import Blend
from .catalog import INDEX_FILE, load_index
from .errors import RankerInputError
from .explain import query_words
from .ranker import Ranker
from .telemetry import ServerMetrics

_FIELDS = {"query", "products", "top_k", "explain", "blend"}
_SEARCH_FIELDS = {"query", "top_k", "depth"}
_JSON_TYPES = ("application/json",)
_DRAIN_CHUNK = 1 << 16
_LINGER_SECONDS = 1.0


@dataclass(frozen=True)
class ServeLimits:
    """What one client may cost the kiosk. Defaults suit a 2-core device ranking ~100 candidates."""

    max_body_bytes: int = 2 * 1024 * 1024
    max_candidates: int = 1000
    max_connections: int = 256  # threads; one more connection gets 503 and is closed
    concurrency: int = 1  # requests scored at once; each ONNX Runtime run already uses every core
    request_timeout: float = 30.0  # seconds a read request may wait for a scoring slot
    idle_timeout: float = 30.0  # seconds to send the request line and headers (keep-alive idle too)
    body_timeout: float = 10.0  # seconds to send the body once the headers are in
    max_explain_pairs: int = 2000  # query words x explained items; 0 turns explanations off
    drain_bytes: int = 16 * 1024 * 1024  # an oversized body up to this size is read and dropped before the 413
    allow_origins: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        for name in ("max_body_bytes", "max_candidates", "max_connections", "concurrency"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        for name in ("request_timeout", "idle_timeout", "body_timeout"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")


class RequestError(Exception):
    def __init__(
        self, status: HTTPStatus, message: str, *, close: bool = False, headers: Mapping[str, str] | None = None
    ):
        super().__init__(message)
        self.status, self.close, self.headers = status, close, dict(headers or {})


class RankServer(ThreadingHTTPServer):
    daemon_threads = True  # a stuck client never blocks shutdown
    request_queue_size = 512  # listen backlog: bursts of new connections wait in the kernel, not reset

    def __init__(
        self,
        address: tuple[str, int],
        ranker: Ranker,
        *,
        blends: Mapping[str, Blend] | None = None,
        blend: Blend | None = None,
        limits: ServeLimits | None = None,
        quiet: bool = False,
        watch_index: float | None = 1.0,
        **limit_options: Any,
    ):
        self.ranker, self.quiet = ranker, quiet
        self.limits = limits or ServeLimits(**limit_options)
        self.blends = dict(blends or {})
        if blend is not None:
            self.blends.setdefault("default", blend)
        self.default_blend = self.blends.get("default")
        self.metrics = ServerMetrics()
        self._slots = threading.BoundedSemaphore(self.limits.max_connections)
        self._scoring = threading.BoundedSemaphore(self.limits.concurrency)
        self._open = 0
        self._in_flight = 0
        self._lock = threading.Lock()
        self._deadlines: dict[socket.socket, float] = {}
        super().__init__(address, _Handler)
        self._watchdog_stop = threading.Event()
        threading.Thread(target=self._watchdog, name="edgerank-watchdog", daemon=True).start()
        self.index_reloads = 0
        if ranker.index is not None and watch_index:
            threading.Thread(target=self._watch_index, args=(watch_index,), name="edgerank-index", daemon=True).start()

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    # -- connections: a bounded pool, with deadlines a watchdog enforces --------------------------------

    def process_request(self, request: socket.socket, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            self.metrics.refused_connection()
            _refuse_busy(request)
            return
        with self._lock:
            self._open += 1
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._release()
            raise

    def process_request_thread(self, request: socket.socket, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.unwatch(request)
            self._release()

    def _release(self) -> None:
        with self._lock:
            self._open -= 1
        self._slots.release()

    def watch(self, conn: socket.socket, seconds: float) -> None:
        """From now, ``conn`` has ``seconds`` to deliver what is being read; then its reads end."""
        with self._lock:
            self._deadlines[conn] = time.monotonic() + seconds

    def unwatch(self, conn: socket.socket) -> None:
        with self._lock:
            self._deadlines.pop(conn, None)

    def _watchdog(self) -> None:
        """Shut the read side of a connection past its deadline: the blocked read returns at once
        (however slowly bytes trickle in), and the handler can still write its 408 and close."""
        while not self._watchdog_stop.wait(0.25):
            now = time.monotonic()
            with self._lock:
                late = [c for c, t in self._deadlines.items() if t < now]
                for c in late:
                    del self._deadlines[c]
            for c in late:
                try:
                    c.shutdown(socket.SHUT_RD)
                except OSError:
                    pass

    def shutdown_request(self, request: socket.socket) -> None:
        """Lingering close: stop writing, then drop what the client still sends for a moment, so
        unread bytes never turn our close into a reset that hides the reply from the client."""
        try:
            request.shutdown(socket.SHUT_WR)
            request.settimeout(0.1)
            end = time.monotonic() + _LINGER_SECONDS
            while time.monotonic() < end and request.recv(_DRAIN_CHUNK):
                pass
        except OSError:
            pass
        self.close_request(request)

    # -- the catalog index: swapped in whole when `edgerank index --update` replaces it ------------------

    def _watch_index(self, every: float) -> None:
        """Poll the index folder; when ``edgerank index`` has renamed a new one into place, load and
        verify it, then swap it in with one assignment. A request holds the Ranker it started with, so
        it finishes on the old index (its memory maps stay valid after the old files are removed)."""
        path = self.ranker.index.path
        seen = _identity(path)
        while not self._watchdog_stop.wait(every):
            now = _identity(path)
            if now is None or now == seen:
                continue
            try:
                index = load_index(path, self.ranker.artifact)
            except (ValueError, OSError) as e:  # keep serving the old index; a later change may fix it
                print(f"edgerank: index at {path} not swapped in: {e}", file=sys.stderr)
            else:
                self.ranker = self.ranker.with_index(index)
                self.index_reloads += 1
                print(f"edgerank: swapped in the index at {path} ({len(index)} products)", file=sys.stderr)
            seen = now

    def server_close(self) -> None:
        self._watchdog_stop.set()
        super().server_close()

    # -- scoring: a bounded number at once -----------------------------------------------------------

    def rank(self, request: Mapping[str, Any]) -> dict[str, Any]:
        ranker = self.ranker
        with self._scoring_slot():
            return ranker.rank(
                request["query"],
                request["products"],
                top_k=request.get("top_k"),
                explain=request.get("explain", False),
                blend=request["blend"],
            ).to_dict()

    def search(self, request: Mapping[str, Any]) -> dict[str, Any]:
        ranker = self.ranker
        if ranker.index is None:
            raise RequestError(HTTPStatus.NOT_FOUND, "this server has no catalog index (start it with --index)")
        options = {k: request[k] for k in ("top_k", "depth") if k in request}
        with self._scoring_slot():
            return ranker.search(request["query"], **options).to_dict()

    @contextlib.contextmanager
    def _scoring_slot(self) -> Iterator[None]:
        if not self._scoring.acquire(timeout=self.limits.request_timeout):
            raise RequestError(
                HTTPStatus.SERVICE_UNAVAILABLE, "the ranker is busy; retry shortly", headers={"Retry-After": "1"}
            )
        with self._lock:
            self._in_flight += 1
        try:
            yield
        finally:
            with self._lock:
                self._in_flight -= 1
            self._scoring.release()

    def render_metrics(self) -> str:
        with self._lock:
            connections, in_flight = self._open, self._in_flight
        return self.metrics.render(connections, in_flight)


class _Handler(BaseHTTPRequestHandler):
    server: RankServer
    protocol_version = "HTTP/1.1"
    timeout = 60  # per read; the watchdog's deadlines are the real bound
    server_version = "edgerank"

    def handle_one_request(self) -> None:
        self.server.watch(self.connection, self.server.limits.idle_timeout)
        super().handle_one_request()

    def do_GET(self) -> None:
        self.server.unwatch(self.connection)
        if self.path == "/health":
            self._reply(
                HTTPStatus.OK,
                {
                    "status": "ok",
                    **self.server.ranker.describe(),
                    "blends": sorted(self.server.blends),
                    "index_reloads": self.server.index_reloads,
                },
            )
        elif self.path == "/metrics":
            self._send(HTTPStatus.OK, self.server.render_metrics().encode(), "text/plain; version=0.0.4; charset=utf-8")
        elif self.path in ("/rank", "/search"):
            self._reply(HTTPStatus.METHOD_NOT_ALLOWED, {"error": f"use POST {self.path}"})
        else:
            self._reply(
                HTTPStatus.NOT_FOUND,
                {"error": f"no such endpoint {self.path[:100]}; try POST /rank, GET /health or GET /metrics"},
            )

    def do_POST(self) -> None:
        started = time.perf_counter()
        try:
            body = self._read_body()
            if self.path not in ("/rank", "/search"):
                raise RequestError(
                    HTTPStatus.NOT_FOUND, f"no such endpoint {self.path[:100]}; try POST /rank or POST /search"
                )
            self._check_origin_and_type()
            request = self._parse(body, _FIELDS if self.path == "/rank" else _SEARCH_FIELDS)
            if self.path == "/rank":
                answer = self.server.rank(self._checked_rank(request))
            else:
                answer = self.server.search(request)
        except RequestError as e:
            self.close_connection = self.close_connection or e.close
            self._reply(e.status, {"error": str(e)}, e.headers)
        except RankerInputError as e:
            self._reply(HTTPStatus.UNPROCESSABLE_ENTITY, {"error": str(e)})
        except Exception as e:  # a bug must cost one request, not the server
            traceback.print_exc(file=sys.stderr)
            self._reply(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": f"internal error: {type(e).__name__}"})
        else:
            seconds = time.perf_counter() - started
            answer["took_ms"] = round(seconds * 1000, 3)
            if self.path == "/rank":
                self.server.metrics.ranked(
                    seconds,
                    answer["candidates"],
                    answer["truncated"],
                    (item["probability"] for item in answer["items"]),
                )
            self._reply(HTTPStatus.OK, answer)

    def do_PUT(self) -> None:
        self._not_allowed()

    do_DELETE = do_PATCH = do_PUT

    def _not_allowed(self) -> None:
        self.close_connection = True  # an unread body must not be parsed as the next request
        self._reply(HTTPStatus.METHOD_NOT_ALLOWED, {"error": f"method {self.command} not allowed; use POST /rank"})

    # -- reading ---------------------------------------------------------------------------------------

    def _read_body(self) -> bytes:
        """The announced body, read within the body deadline; oversized bodies are drained, not parsed."""
        n = self._content_length()
        limit = self.server.limits.max_body_bytes
        self.server.watch(self.connection, self.server.limits.body_timeout)
        try:
            if n > limit:
                drained = n <= self.server.limits.drain_bytes and self._discard(n)
                raise RequestError(
                    HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                    f"body of {n} bytes is over the limit of {limit}",
                    close=not drained,
                )
            body = self._read_exactly(n)
        finally:
            self.server.unwatch(self.connection)
        if len(body) < n:
            raise RequestError(
                HTTPStatus.REQUEST_TIMEOUT,
                f"body not received in time ({len(body)} of {n} announced bytes)",
                close=True,
            )
        return body

    def _content_length(self) -> int:
        if self.headers.get("Transfer-Encoding"):
            raise RequestError(
                HTTPStatus.LENGTH_REQUIRED, "chunked bodies are not accepted; send Content-Length", close=True
            )
        values = self.headers.get_all("Content-Length") or []
        if not values:
            raise RequestError(HTTPStatus.LENGTH_REQUIRED, "Content-Length header required", close=True)
        length = values[0].strip()
        if len(values) > 1 or not (length.isascii() and length.isdigit()) or len(length) > 18:
            raise RequestError(HTTPStatus.BAD_REQUEST, f"bad Content-Length {', '.join(values)[:40]!r}", close=True)
        return int(length)

    def _read_exactly(self, n: int) -> bytes:
        chunks, got = [], 0
        try:
            while got < n:
                chunk = self.rfile.read1(min(_DRAIN_CHUNK, n - got))
                if not chunk:
                    break
                chunks.append(chunk)
                got += len(chunk)
        except OSError:
            pass
        return b"".join(chunks)

    def _discard(self, n: int) -> bool:
        """Read and drop ``n`` bytes so the connection stays in step; False if the client stopped early."""
        try:
            while n > 0:
                chunk = self.rfile.read1(min(_DRAIN_CHUNK, n))
                if not chunk:
                    return False
                n -= len(chunk)
        except OSError:
            return False
        return True

    def _check_origin_and_type(self) -> None:
        origin = self.headers.get("Origin")
        if origin is not None and origin not in self.server.limits.allow_origins:
            raise RequestError(HTTPStatus.FORBIDDEN, "requests from web pages are refused (origin not allowed)")
        content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if content_type not in _JSON_TYPES:
            raise RequestError(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "Content-Type must be application/json")

    def _parse(self, body: bytes, fields: set[str]) -> dict[str, Any]:
        try:
            request = json.loads(body)
        except (ValueError, RecursionError) as e:  # JSONDecodeError, UnicodeDecodeError, absurd nesting
            raise RequestError(HTTPStatus.BAD_REQUEST, f"body is not valid JSON ({type(e).__name__})") from None
        if not isinstance(request, Mapping):
            raise RankerInputError("request: expected a JSON object")
        unknown = set(request) - fields
        if unknown:
            raise RankerInputError(
                f"request: unknown field(s) {', '.join(sorted(map(str, unknown)))[:200]} "
                f"(allowed: {', '.join(sorted(fields))})"
            )
        for name in ("query", "products") if "products" in fields else ("query",):
            if name not in request:
                raise RankerInputError(f"request: missing field '{name}'")
        return dict(request)

    def _checked_rank(self, request: dict[str, Any]) -> dict[str, Any]:
        products = request["products"]
        if isinstance(products, list) and len(products) > self.server.limits.max_candidates:
            raise RankerInputError(
                f"products: {len(products)} candidates, over the limit of {self.server.limits.max_candidates}"
            )
        self._check_explain(request)
        return {**request, "blend": self._blend(request.get("blend", True))}

    def _check_explain(self, request: Mapping[str, Any]) -> None:
        if request.get("explain") is not True:
            return
        cap = self.server.limits.max_explain_pairs
        query, products, top_k = request["query"], request["products"], request.get("top_k")
        items = len(products) if isinstance(products, list) else 0
        if isinstance(top_k, int) and not isinstance(top_k, bool) and top_k > 0:
            items = min(items, top_k)
        pairs = len(query_words(query)) * items if isinstance(query, str) else 0
        if cap == 0:
            raise RankerInputError("explain: explanations are turned off on this server")
        if pairs > cap:
            raise RankerInputError(
                f"explain: {pairs} extra pairs (query words x explained items) is over "
                f"the limit of {cap}; ask for a smaller top_k"
            )

    def _blend(self, spec: Any) -> Blend | None:
        """A request's blend: off, the server's default, a named blend, or inline weights. Never a path."""
        if spec is False or spec is None:
            return None
        if spec is True:
            return self.server.default_blend
        if isinstance(spec, str):
            if spec not in self.server.blends:
                names = ", ".join(sorted(self.server.blends)) or "none"
                raise RankerInputError(f"blend: no blend of that name is configured (configured: {names})")
            return self.server.blends[spec]
        if isinstance(spec, Mapping):
            return Blend.from_dict(spec)
        raise RankerInputError("blend: expected false, true, a configured blend's name or {'signals': {...}}")

    # -- writing ---------------------------------------------------------------------------------------

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Protocol errors found by the standard library (bad request line, huge headers) as JSON too."""
        self.close_connection = True
        self._reply(HTTPStatus(code), {"error": message or HTTPStatus(code).phrase})

    def _reply(self, status: HTTPStatus, payload: Mapping[str, Any], headers: Mapping[str, str] | None = None) -> None:
        try:
            body = json.dumps(payload, ensure_ascii=False, allow_nan=False).encode("utf-8")
        except ValueError:  # a non-finite number must cost a 500, never a dropped connection
            status, body = HTTPStatus.INTERNAL_SERVER_ERROR, b'{"error": "internal error: non-finite score"}'
        self._send(status, body, "application/json; charset=utf-8", headers)

    def _send(
        self, status: HTTPStatus, body: bytes, content_type: str, headers: Mapping[str, str] | None = None
    ) -> None:
        self.server.metrics.request(self.command or "?", self.path if hasattr(self, "path") else "?", status)
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)
        except OSError:  # the client went away; nothing left to tell it
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        if not self.server.quiet:
            super().log_message(format, *args)


def _identity(path: Path) -> tuple[int, int] | None:
    """What changes when a new index folder is renamed into place (None while there is none)."""
    try:
        folder, meta = os.stat(path), os.stat(path / INDEX_FILE)
    except OSError:
        return None
    return folder.st_ino, meta.st_mtime_ns


def _refuse_busy(conn: socket.socket) -> None:
    """Answer a connection beyond the cap without a thread: a short 503 and a close."""
    body = b'{"error": "too many connections; retry shortly"}'
    head = (
        f"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        "Retry-After: 1\r\nConnection: close\r\n\r\n"
    ).encode()
    try:
        conn.setblocking(False)
        conn.send(head + body)
        conn.shutdown(socket.SHUT_WR)
    except OSError:
        pass
    conn.close()


def make_server(ranker: Ranker, host: str = "127.0.0.1", port: int = 8000, **options: Any) -> RankServer:
    """A bound, not yet serving server (port 0 picks a free port; see ``server.url``)."""
    return RankServer((host, port), ranker, **options)


def serve(ranker: Ranker, host: str = "127.0.0.1", port: int = 8000, **options: Any) -> None:
    """Serve until interrupted (Ctrl-C / SIGINT, or SIGTERM: what docker, systemd and kill send to a
    service), then close the socket and return normally."""
    server = make_server(ranker, host, port, **options)
    print(
        f"edgerank: serving {ranker.artifact.path} on {server.url} (POST /rank, GET /health, GET /metrics)",
        file=sys.stderr,
    )
    on_main_thread = threading.current_thread() is threading.main_thread()  # signal handlers live there only
    previous = signal.signal(signal.SIGTERM, _interrupt) if on_main_thread else None
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        if on_main_thread:
            signal.signal(signal.SIGTERM, previous)


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt
