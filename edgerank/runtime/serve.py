"""A small local HTTP JSON endpoint, so kiosk apps written in any language can rank.

``POST /rank`` takes ``{"query": str, "products": [{"id", "title", "description"?, ...}],
"top_k": int?, "explain": bool?, "blend": false | {...}?}`` and answers the ranked ids with their
scores; ``GET /health`` answers what is loaded. Standard library only (``ThreadingHTTPServer``):
one thread per connection, all sharing one thread-safe Ranker.

Every bad request gets a JSON ``{"error": ...}`` with a 4xx status and the server keeps serving:
400 unreadable JSON, 404/405 wrong path or method, 411 no Content-Length, 413 body over the
size limit, 422 a well-formed request the ranker refuses (empty query, duplicate ids, too many
candidates ...). It binds to 127.0.0.1 by default and has no authentication: expose it beyond
the device only behind something that has.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
import time
import traceback
from collections.abc import Mapping
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .blend import Blend
from .errors import RankerInputError
from .ranker import Ranker

MAX_BODY_BYTES = 2 * 1024 * 1024
MAX_CANDIDATES = 1000
_FIELDS = {"query", "products", "top_k", "explain", "blend"}


class RequestError(Exception):
    def __init__(self, status: HTTPStatus, message: str):
        super().__init__(message)
        self.status = status


class RankServer(ThreadingHTTPServer):
    daemon_threads = True  # a stuck client never blocks shutdown

    def __init__(self, address: tuple[str, int], ranker: Ranker, *, blend: Blend | None = None,
                 max_body_bytes: int = MAX_BODY_BYTES, max_candidates: int = MAX_CANDIDATES, quiet: bool = False):
        super().__init__(address, _Handler)
        self.ranker, self.blend, self.quiet = ranker, blend, quiet
        self.max_body_bytes, self.max_candidates = max_body_bytes, max_candidates

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"


class _Handler(BaseHTTPRequestHandler):
    server: RankServer
    protocol_version = "HTTP/1.1"
    timeout = 30  # seconds a client may stall mid-request before its thread is freed
    server_version = "edgerank"

    def do_GET(self) -> None:
        if self.path == "/health":
            self._reply(HTTPStatus.OK, {"status": "ok", **self.server.ranker.describe()})
        elif self.path == "/rank":
            self._reply(HTTPStatus.METHOD_NOT_ALLOWED, {"error": "use POST /rank"})
        else:
            self._reply(HTTPStatus.NOT_FOUND, {"error": f"no such endpoint {self.path}; try POST /rank or GET /health"})

    def do_POST(self) -> None:
        if self.path != "/rank":
            self._drain_or_close()
            self._reply(HTTPStatus.NOT_FOUND, {"error": f"no such endpoint {self.path}; try POST /rank"})
            return
        started = time.perf_counter()
        try:
            request = self._read_json()
            answer = self._rank(request)
        except RequestError as e:
            self._reply(e.status, {"error": str(e)})
        except RankerInputError as e:
            self._reply(HTTPStatus.UNPROCESSABLE_ENTITY, {"error": str(e)})
        except Exception as e:  # a bug must cost one request, not the server
            traceback.print_exc(file=sys.stderr)
            self._reply(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": f"internal error: {type(e).__name__}"})
        else:
            answer["took_ms"] = round((time.perf_counter() - started) * 1000, 3)
            self._reply(HTTPStatus.OK, answer)

    def _read_json(self) -> Any:
        length = self.headers.get("Content-Length")
        if length is None:
            self.close_connection = True
            raise RequestError(HTTPStatus.LENGTH_REQUIRED, "Content-Length header required")
        try:
            n = int(length)
            if n < 0:
                raise ValueError
        except ValueError:
            self.close_connection = True
            raise RequestError(HTTPStatus.BAD_REQUEST, f"bad Content-Length {length!r}") from None
        if n > self.server.max_body_bytes:
            self.close_connection = True  # the unread body must not be parsed as the next request
            raise RequestError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                               f"body of {n} bytes is over the limit of {self.server.max_body_bytes}")
        try:
            body = self.rfile.read(n)
        except OSError:  # includes the socket timeout of a client that sent less than it announced
            self.close_connection = True
            raise RequestError(HTTPStatus.REQUEST_TIMEOUT, f"body not received ({n} bytes announced)") from None
        if len(body) < n:
            self.close_connection = True
            raise RequestError(HTTPStatus.BAD_REQUEST, f"body ended after {len(body)} of {n} announced bytes")
        try:
            return json.loads(body)
        except (ValueError, RecursionError) as e:  # JSONDecodeError, UnicodeDecodeError, absurd nesting
            raise RequestError(HTTPStatus.BAD_REQUEST, f"body is not valid JSON ({type(e).__name__}: {e})"[:300]) from None

    def _rank(self, request: Any) -> dict[str, Any]:
        if not isinstance(request, Mapping):
            raise RankerInputError("request: expected a JSON object with 'query' and 'products'")
        unknown = set(request) - _FIELDS
        if unknown:
            raise RankerInputError(f"request: unknown field(s) {', '.join(sorted(unknown))} "
                                   f"(allowed: {', '.join(sorted(_FIELDS))})")
        for name in ("query", "products"):
            if name not in request:
                raise RankerInputError(f"request: missing field '{name}'")
        products = request["products"]
        if isinstance(products, list) and len(products) > self.server.max_candidates:
            raise RankerInputError(f"products: {len(products)} candidates, over the limit of {self.server.max_candidates}")
        blend = request.get("blend", self.server.blend)
        if blend is False:
            blend = None
        elif blend is True:
            blend = self.server.blend
        result = self.server.ranker.rank(request["query"], products, top_k=request.get("top_k"),
                                         explain=request.get("explain", False), blend=blend)
        return result.to_dict()

    def _drain_or_close(self) -> None:
        """Read a small unwanted body so keep-alive stays in sync; close the connection otherwise."""
        try:
            n = int(self.headers.get("Content-Length", 0))
        except ValueError:
            n = -1
        if 0 <= n <= self.server.max_body_bytes:
            self.rfile.read(n)
        else:
            self.close_connection = True

    def _reply(self, status: HTTPStatus, payload: Mapping[str, Any]) -> None:
        body = json.dumps(payload, ensure_ascii=False, allow_nan=False).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        if not self.server.quiet:
            super().log_message(format, *args)


def make_server(ranker: Ranker, host: str = "127.0.0.1", port: int = 8000, **options: Any) -> RankServer:
    """A bound, not yet serving server (port 0 picks a free port; see ``server.url``)."""
    return RankServer((host, port), ranker, **options)


def serve(ranker: Ranker, host: str = "127.0.0.1", port: int = 8000, **options: Any) -> None:
    """Serve until interrupted (Ctrl-C / SIGINT, or SIGTERM: what docker, systemd and kill send to a
    service), then close the socket and return normally."""
    server = make_server(ranker, host, port, **options)
    print(f"edgerank: serving {ranker.artifact.path} on {server.url} (POST /rank, GET /health)", file=sys.stderr)
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
