"""Target profiles: what a device needs from an export, kept as TOML files in ``profiles/`` beside
this module (package data, so an installed edgerank finds them too; ``EDGERANK_PROFILES`` names
another folder).

A profile fixes the target, the precision, the min/opt/max batch x sequence shapes a TensorRT engine
is built for (and that a runtime should cap its batches at), and the builder's workspace. Keeping
them as files lets a new device be added without touching Python.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .config import PRECISIONS, TARGETS, ExportError

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib

PROFILE_DIR = Path(os.environ.get("EDGERANK_PROFILES", Path(__file__).resolve().parent / "profiles"))


@dataclass(frozen=True)
class Shape:
    min: int
    opt: int
    max: int


@dataclass(frozen=True)
class TargetProfile:
    name: str
    description: str
    target: str
    precision: str
    batch: Shape
    sequence: Shape
    workspace_mb: int | None  # TensorRT builder memory; required for tensorrt targets only
    reduce_range: bool | None  # overrides the target's preset when set
    path: str

    def input_shapes(self, which: str) -> tuple[int, int]:
        """(batch, sequence) for ``which`` in min/opt/max."""
        return getattr(self.batch, which), getattr(self.sequence, which)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def available_profiles() -> list[str]:
    return sorted(p.stem for p in PROFILE_DIR.glob("*.toml"))


def load_profile(name_or_path: str | os.PathLike) -> TargetProfile:
    """A profile by name (a file in PROFILE_DIR) or by path, validated field by field."""
    path = Path(name_or_path)
    if not path.suffix:
        path = PROFILE_DIR / f"{name_or_path}.toml"
    if not path.exists():
        names = ", ".join(available_profiles()) or f"none in {PROFILE_DIR}"
        raise ExportError(f"--profile {name_or_path}: no such profile (available: {names})")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ExportError(f"{path}: not valid TOML ({e})") from None
    target = _choice(path, raw, "target", TARGETS)
    workspace = raw.get("workspace_mb")
    return TargetProfile(
        name=path.stem,
        description=str(raw.get("description", "")),
        target=target,
        precision=_choice(path, raw, "precision", PRECISIONS),
        batch=_shape(path, raw, "batch"),
        sequence=_shape(path, raw, "sequence"),
        workspace_mb=_positive(path, workspace, "workspace_mb")
        if workspace is not None or target == "tensorrt"
        else None,
        reduce_range=_optional_bool(path, raw, "reduce_range"),
        path=str(path),
    )


def _choice(path: Path, raw: dict, key: str, allowed: tuple[str, ...]) -> str:
    value = raw.get(key)
    if value not in allowed:
        raise ExportError(f"{path}: field '{key}': {value!r} is not one of {', '.join(allowed)}")
    return value


def _positive(path: Path, value: Any, field: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ExportError(f"{path}: field '{field}': expected a positive integer, got {value!r}")
    return value


def _shape(path: Path, raw: dict, dim: str) -> Shape:
    table = raw.get("shapes", {}).get(dim)
    if not isinstance(table, dict):
        raise ExportError(f"{path}: missing table [shapes.{dim}] with min, opt, max")
    shape = Shape(*(_positive(path, table.get(k), f"shapes.{dim}.{k}") for k in ("min", "opt", "max")))
    if not shape.min <= shape.opt <= shape.max:
        raise ExportError(
            f"{path}: field 'shapes.{dim}': need min <= opt <= max, got {shape.min} / {shape.opt} / {shape.max}"
        )
    return shape


def _optional_bool(path: Path, raw: dict, key: str) -> bool | None:
    value = raw.get(key)
    if value is not None and not isinstance(value, bool):
        raise ExportError(f"{path}: field '{key}': expected true or false, got {value!r}")
    return value
