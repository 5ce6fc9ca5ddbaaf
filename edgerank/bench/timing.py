"""Latency sampling: warm up, time each call, summarise as percentiles and throughput.

Standard library and numpy only, because the optimum peer runs this same loop inside its own
virtual environment (transformers < 4.58) where the rest of edgerank cannot be imported.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Latency:
    """Summary of timed calls that each ranked ``pairs`` (query, product) pairs."""

    p50_ms: float
    p95_ms: float
    p99_ms: float
    mean_ms: float
    samples: int
    pairs_per_s: float
    min_ms: float = float("nan")  # the fastest call: what the CI gate compares (see check.py)

    @classmethod
    def from_seconds(cls, seconds: Sequence[float], pairs: int) -> Latency:
        ms = np.asarray(seconds, dtype=np.float64) * 1e3
        if ms.size == 0:
            raise ValueError("no timed calls to summarise")
        p50, p95, p99 = np.percentile(ms, [50, 95, 99])
        return cls(
            p50_ms=float(p50),
            p95_ms=float(p95),
            p99_ms=float(p99),
            mean_ms=float(ms.mean()),
            samples=int(ms.size),
            pairs_per_s=float(pairs / (ms.mean() / 1e3)),
            min_ms=float(ms.min()),
        )


def time_calls(
    calls: Sequence[Callable[[], object]], *, warmup: int = 1, repeat: int = 3
) -> tuple[list[float], list[object]]:
    """Run ``warmup`` untimed calls (cycling over ``calls``), then each call ``repeat`` times.

    Returns the seconds of every timed call and the last result of each call (so the caller can
    score quality on exactly what was timed). Calls are interleaved round by round rather than
    repeated back to back, so a burst of machine noise spreads over all of them.
    """
    if not calls:
        raise ValueError("nothing to time")
    for i in range(warmup):
        calls[i % len(calls)]()
    seconds: list[float] = []
    results: list[object] = [None] * len(calls)
    for _ in range(repeat):
        for i, call in enumerate(calls):
            t0 = time.perf_counter()
            results[i] = call()
            seconds.append(time.perf_counter() - t0)
    return seconds, results
