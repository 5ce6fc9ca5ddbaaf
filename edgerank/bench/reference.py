"""A fixed reference workload, timed in every run, so latency can be compared across runs as a ratio.

Shared CI machines differ in speed from run to run (other jobs, frequency scaling, a different host).
A float32 GEMM shaped like a transformer feed-forward layer slows down with the machine in the same
way a ranker does, so ``p50 / reference`` stays put where raw milliseconds drift. The default shape
is the feed-forward layer of the MiniLM-family models edgerank distils (hidden 384, inner 1536) over
1024 tokens (32 candidates of 32 tokens: tens of milliseconds on one core); a suite may set another.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class ReferenceWorkload:
    tokens: int = 1024
    hidden: int = 384
    inner: int = 1536

    def run(self, threads: int | None = None, repeat: int = 31) -> dict:
        """Median milliseconds of ``repeat`` GEMMs (after one warm-up), with BLAS limited to ``threads``
        like the rankers it stands in for. ~0.3 s of samples: with 7 (~60 ms) one burst of another
        process's work moved a run's reference by 2x on a shared 2-core machine."""
        rng = np.random.default_rng(0)
        x = rng.standard_normal((self.tokens, self.hidden), dtype=np.float32)
        w = rng.standard_normal((self.hidden, self.inner), dtype=np.float32)
        times = []
        with _blas_threads(threads):
            x @ w
            for _ in range(repeat):
                t0 = time.perf_counter()
                x @ w
                times.append(time.perf_counter() - t0)
        return {
            "ms": float(np.median(times) * 1e3),
            "samples_ms": [t * 1e3 for t in times],
            "samples": repeat,
            "threads": threads,
            "shape": asdict(self),
            "gflops": 2 * self.tokens * self.hidden * self.inner / (np.median(times) * 1e9),
        }


def _blas_threads(threads: int | None):
    if not threads:
        return contextlib.nullcontext()
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # without it BLAS keeps its own default; the ratio is still self-consistent
        return contextlib.nullcontext()
    return threadpool_limits(limits=threads, user_api="blas")
