"""One Ranker, many threads: the same answers as one thread, and input fuzzing that only ever
raises RankerInputError."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from runtime_fixtures import catalog, rt_artifact, rt_ranker  # noqa: F401

from edgerank.runtime import RankerInputError

QUERIES = ["red drill", "garden hose", "brass door hinge kit", "paint", "steel"]


def test_sixteen_threads_get_single_threaded_results(rt_ranker):
    products = catalog(9) + [{"id": "long", "title": "drill " * 100}]
    jobs = [(QUERIES[i % len(QUERIES)], 3 + i % 7, i % 8 == 0) for i in range(16 * 20)]
    expected = {job: rt_ranker.rank(job[0], products, top_k=job[1], explain=job[2]).to_dict() for job in set(jobs)}

    def call(job):
        return job, rt_ranker.rank(job[0], products, top_k=job[1], explain=job[2]).to_dict()

    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(call, jobs))
    assert len(results) == 320
    for job, got in results:
        assert got == expected[job], job


_text = st.one_of(
    st.text(),
    st.text(alphabet=st.characters(codec=None), max_size=50),
    st.sampled_from(["", " ", "\ud800", "x" * 200_000, "word " * 50_000, "🙂" * 5000, "\u0301" * 1000]),
)
_value = st.one_of(
    _text,
    st.none(),
    st.integers(),
    st.floats(),
    st.booleans(),
    st.binary(max_size=8),
    st.lists(st.integers(), max_size=2),
)
_product = st.one_of(
    st.fixed_dictionaries(
        {"id": st.one_of(st.integers(0, 5), _text), "title": _text},
        optional={"description": _value, "in_stock": _value, "price": _value},
    ),
    st.dictionaries(st.sampled_from(["id", "title", "description", "x"]), _value, max_size=4),
    _value,
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(
    query=st.one_of(_text, _value),
    products=st.one_of(st.lists(_product, max_size=6), _value),
    top_k=st.one_of(st.none(), st.integers(-2, 8), st.floats(), _text),
    explain=st.one_of(st.booleans(), _value),
    blend=st.one_of(
        st.none(),
        st.just({"signals": {"in_stock": 0.1, "cheap": {"field": "price", "band": [0, 9]}}}),
        st.dictionaries(_text, _value, max_size=2),
    ),
)
def test_fuzzed_input_never_crashes(rt_ranker, query, products, top_k, explain, blend):
    try:
        result = rt_ranker.rank(query, products, top_k=top_k, explain=explain, blend=blend)
    except RankerInputError:
        return
    assert 1 <= len(result) <= result.candidates == len(products)
    assert [i.score for i in result] == sorted((i.score for i in result), reverse=True)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pairs=st.one_of(st.lists(st.tuples(_text, _text), max_size=4), st.lists(_value, max_size=3), _value))
def test_fuzzed_pairs_never_crash(rt_ranker, pairs):
    try:
        scores = rt_ranker.score(pairs)
    except RankerInputError:
        return
    assert scores.shape == (len(pairs),)


@pytest.mark.parametrize("title", ["x" * 1_000_000, "a b " * 300_000])
def test_huge_texts_are_clipped_fast_and_counted(rt_ranker, title):
    import time

    start = time.perf_counter()
    result = rt_ranker.rank("drill", [{"id": 1, "title": title}, {"id": 2, "title": "drill"}])
    assert time.perf_counter() - start < 2.0  # tokenizing 1 MB whole took 2-15 s
    assert result.truncated == 1 and [i.id for i in result if i.truncated] == [1]
