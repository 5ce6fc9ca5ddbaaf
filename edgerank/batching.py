"""How pairs are grouped into forward passes: shared by the runtime and by export's quality gate.

Dynamic INT8 graphs pick each activation's quantization scale from the whole batch, so the same pair
scores slightly differently in different company (0.001 nDCG@10 on Home Depot dev, the size of a
student's whole gap to its bar). The gate therefore batches exactly as the runtime ranks: one query's
candidates at a time, sorted by token length, at most ``DEFAULT_MAX_BATCH_SIZE`` per pass.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

DEFAULT_MAX_BATCH_SIZE = 16  # as fast as 32 on a 2-core CPU, less peak memory (bench/results/runtime.md)


def length_batches(lengths: np.ndarray, max_batch_size: int) -> Iterator[np.ndarray]:
    """Row indices in batches of at most ``max_batch_size``, grouped by length (stable, so deterministic).

    The cap bounds memory however many candidates arrive (one forward pass over 300 candidates x 512
    tokens is a known out-of-memory failure of other rankers); sorting makes each batch's padding small.
    """
    order = np.argsort(lengths, kind="stable")
    for start in range(0, len(order), max_batch_size):
        yield order[start : start + max_batch_size]
