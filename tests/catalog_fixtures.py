"""Fixtures for the catalog-student tests: tower students distilled from the tiny cross-encoder of
conftest.py, and their exported artifacts. Session-scoped and read-only; copy one before changing it.

Imported by ``test_catalog*.py`` (``from catalog_fixtures import *``).
"""

from __future__ import annotations

from pathlib import Path

import pytest

KINDS = ("late-interaction", "bi-encoder")


def train_towers(teacher: Path, judged: Path, out: Path, kind: str, home: Path) -> Path:
    """A few steps of distillation into towers of dim 16 (product max length 24, query 8)."""
    import edgerank.train.scores as scores
    from edgerank.train.distill import DistillConfig, distill
    from edgerank.train.loop import LoopConfig

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(scores, "SCORES_HOME", home / "scores")
        distill(
            DistillConfig(
                teacher=str(teacher),
                train=str(judged),
                out=str(out),
                student_kind=kind,
                dim=16,
                max_length=24,
                query_max_length=8,
                loop=LoopConfig(batch_size=8, lr=1e-3),
            ),
            log=lambda _: None,
        )
    return out


@pytest.fixture(scope="session")
def tower_students(tiny_cross_encoder, tiny_judged_csv, tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("towers")
    return {k: train_towers(tiny_cross_encoder, tiny_judged_csv, base / k, k, base / "home") for k in KINDS}


@pytest.fixture(scope="session")
def tower_artifacts(tower_students, tmp_path_factory) -> dict[str, Path]:
    """fp32 artifacts of both tower students."""
    from edgerank.export import export_artifact

    base = tmp_path_factory.mktemp("tower-artifacts")
    return {k: export_artifact(p, base / k, "fp32") for k, p in tower_students.items()}
