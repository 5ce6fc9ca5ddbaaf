"""Fixtures for the runtime tests: real artifacts exported from the tiny cross-encoder of conftest.py.

Imported by the ``test_runtime*.py`` and ``test_serve.py`` modules (``from runtime_fixtures import *``).
Artifacts are session-scoped and read-only; tests that tamper with one copy it first.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

MAX_LENGTH = 64


def export_tiny(model_dir: Path, out: Path, max_length: int = MAX_LENGTH) -> Path:
    from edgerank.export import export_artifact

    export_artifact(model_dir, out, precision="fp32", max_length=max_length)
    return out


@pytest.fixture(scope="session")
def rt_artifact(tiny_cross_encoder, tmp_path_factory) -> Path:
    """fp32 artifact of the tiny cross-encoder, max length 64."""
    return export_tiny(tiny_cross_encoder, tmp_path_factory.mktemp("rt") / "tiny-fp32")


@pytest.fixture(scope="session")
def rt_ranker(rt_artifact):
    from edgerank.runtime import Ranker

    return Ranker.load(rt_artifact, threads=1)


@pytest.fixture()
def artifact_copy(rt_artifact, tmp_path) -> Path:
    """A private copy to corrupt."""
    return Path(shutil.copytree(rt_artifact, tmp_path / "copy"))


def catalog(n: int = 12) -> list[dict]:
    """Products with varied title and description lengths and some shop signals."""
    words = "red blue cordless drill garden hose paint roller door hinge kit steel brass".split()
    out = []
    for i in range(n):
        title = " ".join(words[(i + j) % len(words)] for j in range(2 + i % 5))
        out.append(
            {
                "id": f"p{i}",
                "title": title.title(),
                "description": ("heavy duty " * (i % 4)).strip(),
                "in_stock": i % 3 != 0,
                "margin": round((i % 10) / 10, 1),
                "price": 5.0 * i,
            }
        )
    return out
