"""Business-value blending: relevance first, then shop signals (stock, margin, promotion, price band).

Formula (off unless a blend is given)::

    final = p + sum_k w_k * s_k(product)        p = relevance probability in [0, 1]

``p`` is the artifact's documented map from the raw logit to [0, 1] (``relevance_probability``:
``sigmoid(logit / temperature + bias)``, the temperature and bias fitted at export), so weights
mean the same thing for every artifact of a shop: a weight of 0.05 lets a signal reorder products
whose relevance differs by less than 5 points. Each ``s_k`` is in [0, 1]: a boolean field (in
stock, promotion) is 0 or 1, a fraction field (margin) is used as is, and a *band* signal is 1 when
a numeric field (price) lies inside ``[low, high]``. A product without the field gets 0 for that
signal and is counted, never silently. The raw logit and ``p`` stay visible in every result item.

Per-shop weights come from a dict, a JSON file or a TOML file::

    {"signals": {"in_stock": 0.10, "margin": 0.05, "promotion": {"weight": 0.03},
                 "price_band": {"field": "price", "band": [10, 50], "weight": 0.02}}}
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..artifact import ArtifactError
from .errors import RankerInputError
from .products import get_field

#: p is in [0, 1]: a weight far beyond 1 only drowns relevance, and an absurd one would overflow the sum
MAX_WEIGHT = 1000.0
PROBABILITY_METHODS = ("sigmoid", "fitted")  # both: p = 1 / (1 + exp(-(logit / temperature + bias)))
_TRUE = {"true", "yes", "y", "1"}
_FALSE = {"false", "no", "n", "0"}


def relevance_probability(logits: np.ndarray, spec: Mapping[str, Any] | None) -> np.ndarray:
    """The artifact's map from raw logit to [0, 1] (manifest ``score.probability``)."""
    spec = spec or {}
    method = spec.get("method", "sigmoid")
    if method not in PROBABILITY_METHODS:  # "fitted": temperature and bias fitted on judged data at export
        raise ArtifactError(f"score.probability.method {method!r} is not supported ({', '.join(PROBABILITY_METHODS)})")
    t, b = float(spec.get("temperature", 1.0)), float(spec.get("bias", 0.0))
    if not t > 0:
        raise ArtifactError(f"score.probability.temperature must be > 0, got {t}")
    return 1.0 / (1.0 + np.exp(-(np.asarray(logits, dtype=np.float64) / t + b)))


@dataclass(frozen=True)
class Signal:
    name: str
    field: str
    weight: float
    band: tuple[float, float] | None = None

    def value(self, product: Any, where: str) -> float | None:
        """s_k in [0, 1] for one product, or None when the product does not carry the field."""
        raw = get_field(product, self.field)
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            return None
        x = _number(raw, f"{where}: field '{self.field}'")
        if self.band is not None:
            return 1.0 if self.band[0] <= x <= self.band[1] else 0.0
        if not 0.0 <= x <= 1.0:
            raise RankerInputError(
                f"{where}: field '{self.field}': {raw!r} is outside 0..1 (give a band for numeric fields such as price)"
            )
        return x


@dataclass(frozen=True)
class BlendOutcome:
    final: np.ndarray
    contributions: list[dict[str, float]]  # w_k * s_k per product, signals present only
    missing: dict[str, int]  # signal name -> products without it


@dataclass(frozen=True)
class Blend:
    signals: tuple[Signal, ...]

    @classmethod
    def from_dict(cls, config: Mapping[str, Any]) -> Blend:
        if not isinstance(config, Mapping) or not isinstance(config.get("signals"), Mapping) or not config["signals"]:
            raise RankerInputError("blend: expected {'signals': {name: weight or {weight, field, band}}}")
        unknown = set(config) - {"signals"}
        if unknown:
            raise RankerInputError(f"blend: unknown key(s) {', '.join(sorted(map(str, unknown)))}")
        return cls(tuple(_signal(str(name), spec) for name, spec in config["signals"].items()))

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> Blend:
        path = Path(path)
        try:
            raw = path.read_bytes()
        except OSError as e:
            raise RankerInputError(f"{path}: cannot read blend weights ({e.strerror})") from None
        try:
            if path.suffix.lower() == ".toml":
                import tomllib  # Python >= 3.11

                config = tomllib.loads(raw.decode("utf-8"))
            else:
                config = json.loads(raw)
        except ImportError:
            raise RankerInputError(f"{path}: TOML needs Python 3.11+; use a .json file") from None
        except (ValueError, UnicodeDecodeError) as e:  # JSONDecodeError and TOMLDecodeError are ValueErrors
            raise RankerInputError(f"{path}: not valid {path.suffix.lstrip('.').upper() or 'JSON'} ({e})") from None
        try:
            return cls.from_dict(config)
        except RankerInputError as e:
            raise RankerInputError(f"{path}: {e}") from None

    @classmethod
    def coerce(cls, blend: Blend | Mapping[str, Any] | str | os.PathLike) -> Blend:
        """A Blend from any of the forms callers hold: a Blend, a dict, or a file path."""
        if isinstance(blend, Blend):
            return blend
        if isinstance(blend, Mapping):
            return cls.from_dict(blend)
        if isinstance(blend, (str, os.PathLike)):
            return cls.from_file(blend)
        raise RankerInputError(f"blend: expected a Blend, dict or file path, got {type(blend).__name__}")

    def apply(self, probability: np.ndarray, products: Sequence[Any], ids: Sequence[Any]) -> BlendOutcome:
        final = np.asarray(probability, dtype=np.float64).copy()
        contributions: list[dict[str, float]] = []
        missing = {s.name: 0 for s in self.signals}
        for i, (product, pid) in enumerate(zip(products, ids)):
            parts = {}
            for s in self.signals:
                v = s.value(product, f"product {pid!r}")
                if v is None:
                    missing[s.name] += 1
                else:
                    parts[s.name] = s.weight * v
            final[i] += sum(parts.values())
            contributions.append(parts)
        return BlendOutcome(final=final, contributions=contributions, missing={k: v for k, v in missing.items() if v})

    def to_dict(self) -> dict[str, Any]:
        return {
            "signals": {
                s.name: {"field": s.field, "weight": s.weight, **({"band": list(s.band)} if s.band else {})}
                for s in self.signals
            }
        }


def _signal(name: str, spec: Any) -> Signal:
    where = f"blend: signal '{name}'"
    if not isinstance(spec, Mapping):
        spec = {"weight": spec}
    unknown = set(spec) - {"weight", "field", "band"}
    if unknown:
        raise RankerInputError(f"{where}: unknown key(s) {', '.join(sorted(map(str, unknown)))}")
    weight = _finite(spec.get("weight"))
    if weight is None or abs(weight) > MAX_WEIGHT:
        raise RankerInputError(
            f"{where}: weight must be a number between -{MAX_WEIGHT} and {MAX_WEIGHT}, got {spec.get('weight')!r}"
        )
    field = spec.get("field", name)
    if not isinstance(field, str) or not field:
        raise RankerInputError(f"{where}: field must be a non-empty string")
    band = spec.get("band")
    if band is not None:
        bounds = [_finite(b) for b in band] if isinstance(band, (list, tuple)) and len(band) == 2 else [None]
        if None in bounds or bounds[0] > bounds[1]:
            raise RankerInputError(f"{where}: band must be [low, high] numbers with low <= high, got {band!r}")
        band = (bounds[0], bounds[1])
    return Signal(name=name, field=field, weight=weight, band=band)


def _finite(x: Any) -> float | None:
    """``x`` as a finite float, or None for booleans, non-numbers, inf/nan and ints too big for a float."""
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return None
    try:
        f = float(x)
    except OverflowError:
        return None
    return f if math.isfinite(f) else None


def _number(raw: Any, where: str) -> float:
    """Booleans, numbers, and the strings a CSV holds ("true", "0.3", "yes")."""
    if isinstance(raw, (bool, int, float)):
        x = _finite(float(raw) if isinstance(raw, bool) else raw)
    elif isinstance(raw, str):
        s = raw.strip().lower()
        if s in _TRUE:
            return 1.0
        if s in _FALSE:
            return 0.0
        try:
            x = _finite(float(s))
        except ValueError:
            raise RankerInputError(f"{where}: {raw!r} is not a number or true/false") from None
    else:
        raise RankerInputError(f"{where}: expected a number or boolean, got {type(raw).__name__}")
    if x is None:
        raise RankerInputError(f"{where}: {raw!r} is not a finite number")
    return x
