"""Fuzz the runtime's public entry point: ``Ranker.rank`` on random, malformed and adversarial input.

Every call must either rank (finite scores, one item per kept candidate, best first) or raise
``RankerInputError``; anything else, a non-finite score or a call slower than ``hang_seconds`` is a
failure. Inputs mix well-formed requests (so the scoring path runs) with every malformation a kiosk
app or a network client can produce: wrong types, control and zero-width characters, lone
surrogates, huge integers and texts, duplicate ids, bad blends, bad ``top_k``.
"""

from __future__ import annotations

import math
import random
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgerank.runtime import Ranker, RankerInputError

_WORDS = (
    "drill",
    "cordless",
    "hose",
    "garden",
    "paint",
    "roller",
    "hinge",
    "brass",
    "18v",
    "kit",
    "white",
    "led",
    "bulb",
    "ceiling",
    "fan",
    "vanity",
    "faucet",
    "tile",
    "grout",
    "mower",
)
_ODD = (
    "",
    " ",
    "\x00",
    "\u200b",
    "\ufeff",
    "\ud800",
    "é",
    "🔧",
    "\n\t",
    "<script>",
    "' OR 1=1 --",
    "%s%n",
    "../../etc/passwd",
    "\u202e",
    "ﬀ",
    "Ⅻ",
    "\x7f",
    "\r\n\r\n",
)


def _text(rng: random.Random, bad: float) -> Any:
    roll = rng.random()
    if roll >= bad * 2 or roll < 0.6:
        return " ".join(rng.choice(_WORDS) for _ in range(rng.randint(1, 8)))
    if roll < 0.8:
        return "".join(rng.choice(_ODD + _WORDS) for _ in range(rng.randint(0, 6)))
    if roll < 0.85:
        return rng.choice(_WORDS) * rng.randint(1000, 20000)  # huge, no whitespace
    if roll < 0.9:
        return "".join(chr(rng.randint(0, 0x10FFFF)) for _ in range(rng.randint(1, 30)))
    return rng.choice([None, 0, 1.5, True, [], {}, b"bytes", math.nan, ["drill"]])


def _id(rng: random.Random, i: int, bad: float) -> Any:
    if rng.random() >= bad:
        return f"p{i}" if rng.random() < 0.5 else i
    return rng.choice([None, True, 1.0, -i, 10 ** rng.randint(18, 5000), "", "\x00", "p0", [i], {"id": i}, "\ud800"])


def _product(rng: random.Random, i: int, bad: float) -> Any:
    if rng.random() < bad / 10:
        return rng.choice([None, "title", 3, [], ("id", "title")])
    product: dict[str, Any] = {}
    if rng.random() >= bad / 10:
        product["id"] = _id(rng, i, bad)
    if rng.random() >= bad / 10:
        product["title"] = _text(rng, bad)
    if rng.random() < 0.4:
        product["description"] = _text(rng, bad)
    if rng.random() < 0.3:
        product["in_stock"] = rng.choice(
            [True, False, "yes", 1, 0.5, None] if rng.random() >= bad else ["maybe", math.inf, 10**400, [1]]
        )
    if rng.random() < 0.3:
        product["price"] = rng.choice([9.99, -1, "12", 1e308, None] if rng.random() >= bad else ["free", math.nan])
    return product


def _blend(rng: random.Random) -> Any:
    roll = rng.random()
    if roll < 0.8:
        return None
    weight = rng.choice([0.1, -0.5, 1e300, math.inf, math.nan, "0.2", True, None, 10**400, 999.0])
    return rng.choice(
        [
            {"signals": {"in_stock": weight}},
            {
                "signals": {
                    "price_band": {
                        "field": "price",
                        "band": rng.choice([[10, 50], [50, 10], [math.nan, 1], "x"]),
                        "weight": weight,
                    }
                }
            },
            {"signals": {}},
            {"weights": {}},
            [],
            {"signals": {"x": {"weight": 0.1, "extra": 1}}},
        ]
    )


def random_call(rng: random.Random) -> dict[str, Any]:
    """One ``rank`` call's keyword arguments: half of the calls are clean (they reach the model), the
    other half carry malformations at a rate of their own."""
    bad = 0.0 if rng.random() < 0.5 else rng.choice([0.02, 0.1, 0.3])
    n = rng.choice([0, 1, 2, 3, 5, 8, 13]) if rng.random() < 0.97 else rng.randint(50, 300)
    products: Any = [_product(rng, i, bad) for i in range(n)]
    if rng.random() < 0.03:
        products = rng.choice(["not a list", {"id": 1}, None, 5, b"x"])
    top_k = None if rng.random() < 0.7 else rng.choice([1, 3, 0, -1, 2.5, True, "3", 10**30])
    explain = rng.random() < 0.01
    return {
        "query": _text(rng, bad),
        "products": products,
        "top_k": top_k,
        "explain": explain if rng.random() < 0.98 else "yes",
        "blend": _blend(rng),
    }


def _check(result: Any, call: dict[str, Any]) -> str | None:
    """What is wrong with a successful result, or None."""
    scores = [item.score for item in result.items] + [item.relevance for item in result.items]
    if not all(math.isfinite(s) for s in scores):
        return "non-finite score"
    if any(a.score < b.score for a, b in zip(result.items, result.items[1:])):
        return "not sorted best first"
    expected = len(call["products"]) if call["top_k"] is None else min(call["top_k"], len(call["products"]))
    return None if len(result.items) == expected else "wrong number of items"


def run(
    ranker: Ranker,
    calls: int = 100_000,
    seed: int = 0,
    hang_seconds: float = 10.0,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Fuzz ``ranker`` with ``calls`` random calls; returns counts and the first failures."""
    rng = random.Random(seed)
    outcomes: Counter[str] = Counter()
    failures: list[str] = []
    slowest = 0.0
    for i in range(calls):
        call = random_call(rng)
        started = time.perf_counter()
        try:
            problem = _check(ranker.rank(**call), call)
            outcomes["ranked" if problem is None else problem] += 1
        except RankerInputError:
            outcomes["RankerInputError"] += 1
            problem = None
        except Exception as e:  # the failure being counted
            problem = f"{type(e).__name__}: {e}"[:200]
            outcomes[type(e).__name__] += 1
        took = time.perf_counter() - started
        slowest = max(slowest, took)
        if took > hang_seconds:
            outcomes["hang"] += 1
            problem = problem or f"call took {took:.1f} s"
        if problem and len(failures) < 20:
            failures.append(f"call {i}: {problem}")
        if progress and i % 1000 == 0:
            progress(i)
    bad = calls - outcomes["ranked"] - outcomes["RankerInputError"] + outcomes["hang"]
    return {
        "calls": calls,
        "seed": seed,
        "outcomes": dict(outcomes),
        "failures": failures,
        "bad": bad,
        "slowest_s": round(slowest, 3),
    }


def main(artifact: Path, calls: int, seed: int) -> dict[str, Any]:
    return run(Ranker.load(artifact, threads=1), calls, seed)
