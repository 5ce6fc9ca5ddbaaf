"""Fast samples of the reliability suite (``python -m bench.reliability`` runs it whole)."""

from __future__ import annotations

import pytest
from runtime_fixtures import catalog, rt_artifact, rt_ranker  # noqa: F401

from bench.reliability import fuzz, load


def test_fuzzed_calls_rank_or_refuse(rt_ranker):
    report = fuzz.run(rt_ranker, calls=3000, seed=7)
    assert report["bad"] == 0, report["failures"]
    assert report["outcomes"]["ranked"] > 600 and report["outcomes"]["RankerInputError"] > 600


def test_fuzz_catches_a_bug(rt_ranker, monkeypatch):
    """The harness itself can fail: a ranker that leaks a foreign exception is counted."""
    original = rt_ranker.rank

    def leaky(query, products, **kwargs):
        if isinstance(query, str) and "drill" in query:
            raise KeyError("leak")
        return original(query, products, **kwargs)

    monkeypatch.setattr(rt_ranker, "rank", leaky)
    assert fuzz.run(rt_ranker, calls=300, seed=1)["outcomes"].get("KeyError", 0) > 0


@pytest.mark.slow
def test_served_load_with_hostile_clients(rt_artifact):
    products = catalog(120)
    report = load.run(
        rt_artifact,
        products,
        clients=8,
        seconds=6,
        serve_args=("--threads", "1", "--idle-timeout", "2", "--body-timeout", "2"),
    )
    assert report["good_requests"] > 20 and report["hostile_requests"] > 0
    assert report["resets"] == 0 and report["server_errors"] == 0, report["good_outcomes"]
    assert all(k.split(": ")[1][:1] in "4c" for k in report["hostile_outcomes"]), report["hostile_outcomes"]
