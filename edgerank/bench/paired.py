"""Peer ratios from interleaved timing: edgerank and one peer take turns on every candidate list.

Each subject is otherwise timed in its own stretch of the run, minutes apart, and a shared CPU does
not hold its speed that long: on a shared 2-core AMD EPYC (AVX-512 VNNI) the
same INT8 graph on the same lists took 48, 65 and 87 ms (p50) in three passes a few minutes apart, and the
ratio of separately timed p50s (st-onnx over edgerank) read 1.25x in one suite run and 1.34x in
another. Timing the two back to back on each list puts both under the same machine state, so the
drift cancels in the ratio; the order within a pair alternates from list to list, so neither side
always runs on the caches the other just warmed. The ratio is taken list by list (``paired_ratio``)
and its interval resamples whole lists, like the quality intervals resample whole queries.

Back to back must not mean without a pause: an ONNX Runtime (or torch) thread pool keeps its
threads spinning for a while after a call returns, and on 2 cores they take the CPU from whichever
side runs next. Without a pause the second call of every pair ran 30-40% slower, whichever side it
was (on Home Depot, st-onnx over edgerank read 1.91x when edgerank went first and 0.89x when the
peer did); with 50 ms between calls the two orders agreed (1.43x and 1.39x). ``SETTLE_S`` is twice that.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from .subjects import CandidateList, Subject

#: Seconds of idle before every timed call, so the other side's spinning threads have parked.
SETTLE_S = 0.1


def interleave(
    edgerank: Subject,
    peer: Subject,
    lists: Sequence[CandidateList],
    *,
    warmup: int,
    repeat: int,
    settle: float = SETTLE_S,
) -> tuple[np.ndarray, np.ndarray]:
    """Seconds of each side's calls, shape (repeat, lists): list i of round r ran on both sides back to
    back, edgerank first on even lists and the peer first on odd ones, after at least one untimed
    warm-up call each, with ``settle`` seconds of idle before every call. Both subjects must be loaded."""
    for subject in (edgerank, peer):  # max(warmup, 1) calls each on the first list, discarded
        subject.measure(lists[:1], warmup=max(warmup - 1, 0), repeat=1)
    seconds = np.empty((2, repeat, len(lists)))
    sides = ((0, edgerank), (1, peer))
    for r in range(repeat):
        for i, candidate_list in enumerate(lists):
            for side, subject in sides if i % 2 == 0 else sides[::-1]:
                time.sleep(settle)
                (seconds[side, r, i],), _ = subject.measure([candidate_list], warmup=0, repeat=1)
    return seconds[0], seconds[1]


def paired_ratio(
    edgerank: np.ndarray, peer: np.ndarray, *, confidence: float = 0.95, resamples: int = 2000, seed: int = 0
) -> dict[str, Any]:
    """How many times as long the peer takes as edgerank on the same list (>1: edgerank is faster).

    ``ratio`` is the median over lists (and rounds) of each list's peer/edgerank time: a paired
    statistic, so lists of different lengths and moments of different machine speed each compare
    like with like; its interval is a percentile bootstrap over lists. ``p50_ratio`` (the ratio of
    the two sides' p50s on the same interleaved calls), the ratio by which side ran first, and the
    per-call times are kept beside it. Inputs are ``interleave``'s (repeat, lists) arrays of seconds.
    """
    edgerank, peer = np.asarray(edgerank, dtype=np.float64), np.asarray(peer, dtype=np.float64)
    if edgerank.shape != peer.shape or edgerank.ndim != 2 or edgerank.size == 0:
        raise ValueError("paired_ratio needs two (repeat, lists) arrays of the same non-empty shape")
    per_call = peer / edgerank
    idx = np.random.default_rng(seed).integers(0, per_call.shape[1], size=(resamples, per_call.shape[1]))
    tail = (1.0 - confidence) / 2.0 * 100.0
    low, high = np.percentile(np.median(per_call[:, idx], axis=(0, 2)), [tail, 100.0 - tail])
    return {
        "ratio": float(np.median(per_call)),
        "ci95": [float(low), float(high)],
        "p50_ratio": float(np.median(peer) / np.median(edgerank)),
        # the same median on the lists where edgerank ran first and where the peer did: far apart,
        # the first call slowed the second (see SETTLE_S)
        "ratio_edgerank_first": float(np.median(per_call[:, ::2])),
        "ratio_peer_first": float(np.median(per_call[:, 1::2])) if per_call.shape[1] > 1 else None,
        "edgerank_p50_ms": float(np.median(edgerank) * 1e3),
        "peer_p50_ms": float(np.median(peer) * 1e3),
        "samples": int(edgerank.size),
        "edgerank_ms": np.round(edgerank * 1e3, 3).tolist(),
        "peer_ms": np.round(peer * 1e3, 3).tolist(),
    }
