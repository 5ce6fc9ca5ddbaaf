"""The runtime-only install: ``pip install edgerank`` without extras, in a clean virtual environment,
ranks with an artifact and has no torch or transformers. Its size is printed (recorded in
bench/results/runtime.md). Needs PyPI (or a wheel cache) for numpy, onnxruntime and tokenizers."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from runtime_fixtures import rt_artifact  # noqa: F401

REPO = Path(__file__).resolve().parents[1]

RANK = """
import importlib.util, json, sys
from edgerank.runtime import Ranker
result = Ranker.load(sys.argv[1], threads=1).rank("red drill", [{"id": 1, "title": "Red Drill"}, {"id": 2, "title": "Hose"}])
heavy = [m for m in ("torch", "transformers", "pandas", "accelerate", "scipy") if importlib.util.find_spec(m)]
print(json.dumps({"ids": result.ids, "heavy": heavy}))
"""


def du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


@pytest.mark.slow
def test_runtime_only_install_in_a_clean_venv(rt_artifact, tmp_path):
    src = tmp_path / "src"  # build from a copy: an in-tree build would leave build/ in the checkout
    shutil.copytree(REPO / "edgerank", src / "edgerank", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", src)
    readme = REPO / "README.md"
    (src / "README.md").write_text(readme.read_text() if readme.exists() else "edgerank\n")
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run(pip + ["wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp_path / "dist"), str(src)],
                   check=True, capture_output=True, text=True)
    wheel = next((tmp_path / "dist").glob("edgerank-*.whl"))

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    install = subprocess.run(pip + ["--python", str(python), "install", str(wheel)], capture_output=True, text=True)
    if install.returncode != 0 and "No matching distribution" in install.stderr + install.stdout:
        pytest.skip(f"package index unreachable: {install.stderr.strip().splitlines()[-1]}")
    assert install.returncode == 0, install.stderr

    size = du(venv)
    packages = subprocess.run(pip + ["--python", str(python), "list", "--format=freeze"], capture_output=True,
                              text=True).stdout.split()
    print(f"\nruntime-only venv: {size / 2**20:.1f} MiB; {' '.join(packages)}")
    out = subprocess.run([str(python), "-c", RANK, str(rt_artifact)], capture_output=True, text=True, check=True)
    got = json.loads(out.stdout)
    assert got["heavy"] == [] and sorted(got["ids"]) == [1, 2]
    assert size < 250 * 2**20  # the training stack is ~1.7 GB; the aim is <= 150 MB (see bench/results/runtime.md)
