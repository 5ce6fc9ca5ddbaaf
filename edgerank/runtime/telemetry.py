"""Counters and histograms for the server's ``GET /metrics``, in the Prometheus text format (0.0.4).

The server is standard-library only, so the few metric types it needs are kept here rather than
pulling in a client library: monotonic counters with labels, and cumulative histograms with fixed
buckets. Every update takes one lock; a scrape renders a consistent snapshot.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable, Sequence

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
CANDIDATE_BUCKETS = (1, 5, 10, 25, 50, 100, 200, 500, 1000)
PROBABILITY_BUCKETS = tuple(round(0.1 * i, 1) for i in range(1, 10)) + (1.0,)


class Histogram:
    """Cumulative buckets, a sum and a count, as Prometheus expects them."""

    def __init__(self, name: str, help_text: str, buckets: Sequence[float]):
        self.name, self.help, self.buckets = name, help_text, tuple(buckets)
        self.counts = [0] * (len(self.buckets) + 1)  # the last one is +Inf
        self.sum, self.count = 0.0, 0

    def observe(self, value: float) -> None:
        i = next((k for k, bound in enumerate(self.buckets) if value <= bound), len(self.buckets))
        self.counts[i] += 1
        self.sum += value
        self.count += 1

    def render(self) -> Iterable[str]:
        yield f"# HELP {self.name} {self.help}"
        yield f"# TYPE {self.name} histogram"
        running = 0
        for bound, n in zip((*self.buckets, math.inf), self.counts):
            running += n
            le = "+Inf" if bound == math.inf else _number(bound)
            yield f'{self.name}_bucket{{le="{le}"}} {running}'
        yield f"{self.name}_sum {_number(self.sum)}"
        yield f"{self.name}_count {self.count}"


class ServerMetrics:
    """What a shop watches on a kiosk: traffic and errors by status, latency, list sizes, truncation,
    and the distribution of relevance probabilities (drift from the export's calibration shows there)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: dict[tuple[str, str, int], int] = {}
        self.refused = 0
        self.truncated = 0
        self.latency = Histogram(
            "edgerank_request_duration_seconds", "Time from request read to reply, POST /rank.", LATENCY_BUCKETS
        )
        self.candidates = Histogram("edgerank_candidates", "Candidates per ranked request.", CANDIDATE_BUCKETS)
        self.probability = Histogram(
            "edgerank_relevance_probability",
            "Relevance probability of every returned item (calibrated at export).",
            PROBABILITY_BUCKETS,
        )

    def request(self, method: str, path: str, status: int) -> None:
        key = (method, path if path in ("/rank", "/health", "/metrics") else "other", int(status))
        with self._lock:
            self.requests[key] = self.requests.get(key, 0) + 1

    def refused_connection(self) -> None:
        with self._lock:
            self.refused += 1

    def ranked(self, seconds: float, candidates: int, truncated: int, probabilities: Iterable[float]) -> None:
        with self._lock:
            self.latency.observe(seconds)
            self.candidates.observe(candidates)
            self.truncated += truncated
            for p in probabilities:
                self.probability.observe(p)

    def render(self, connections: int, in_flight: int) -> str:
        with self._lock:
            lines = [
                "# HELP edgerank_requests_total Requests answered, by method, path and status code.",
                "# TYPE edgerank_requests_total counter",
            ]
            lines += [
                f'edgerank_requests_total{{method="{m}",path="{p}",code="{c}"}} {n}'
                for (m, p, c), n in sorted(self.requests.items())
            ]
            lines += _single(
                "edgerank_connections_refused_total",
                "counter",
                "Connections answered 503 because every connection slot was taken.",
                self.refused,
            )
            lines += _single(
                "edgerank_truncated_pairs_total",
                "counter",
                "Candidate texts cut to the artifact's max length.",
                self.truncated,
            )
            lines += _single("edgerank_open_connections", "gauge", "Client connections being served.", connections)
            lines += _single("edgerank_requests_in_flight", "gauge", "Requests being scored now.", in_flight)
            for h in (self.latency, self.candidates, self.probability):
                lines += h.render()
        return "\n".join(lines) + "\n"


def _single(name: str, kind: str, help_text: str, value: float) -> list[str]:
    return [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}", f"{name} {_number(value)}"]


def _number(x: float) -> str:
    return repr(int(x)) if float(x).is_integer() else repr(float(x))
