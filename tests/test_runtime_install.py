"""The base install: ``pip install edgerank`` without extras runs ``rank``, ``serve``, ``index`` and
``search`` with nothing but numpy, onnxruntime, tokenizers and click (and what they require).

The wheel is built from a copy of the source. The offline tests put it into a fresh virtual
environment that sees only the base dependencies' distributions, linked from the environment running
the tests, so they need no network and prove that torch, transformers and pandas are absent. One
test installs from the package index instead, to measure the venv's size (recorded in the runtime
results); it skips when the index is unreachable.
"""

from __future__ import annotations

import importlib.metadata as md
import json
import os
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from catalog_fixtures import tower_artifacts, tower_students  # noqa: F401
from packaging.requirements import Requirement
from runtime_fixtures import rt_artifact  # noqa: F401

REPO = Path(__file__).resolve().parents[1]
PIP = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
HEAVY = ("torch", "transformers", "pandas", "accelerate", "scipy")
#: Loaded by no runtime command: the data, training and export layers.
TRAINING_LAYERS = ("edgerank.data", "edgerank.train", "edgerank.export", "edgerank.modeling", "edgerank.evaluate")

RANK_AND_REPORT = f"""
import json, sys
from edgerank.cli import main
try:
    main(sys.argv[1:], standalone_mode=False)
finally:
    loaded = sorted(m for m in sys.modules if m.split(".")[0] in {set(HEAVY)} or m.startswith({TRAINING_LAYERS}))
    print(json.dumps(loaded), file=sys.stderr)
"""


LIST_DISTRIBUTIONS = (
    "import importlib.metadata as md; print(*sorted(f'{d.name}=={d.version}' for d in md.distributions()))"
)


def du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def products_csv(path: Path) -> Path:
    path.write_text("id,title\n1,Red Cordless Drill Kit\n2,Garden Hose\n3,Blue Drill\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The project's wheel, built without its dependencies from a copy (an in-tree build leaves build/)."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    shutil.copytree(REPO / "edgerank", src / "edgerank", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", src)
    readme = REPO / "README.md"
    (src / "README.md").write_text(readme.read_text() if readme.exists() else "edgerank\n")
    subprocess.run(
        PIP + ["wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp / "dist"), str(src)],
        check=True,
        capture_output=True,
        text=True,
    )
    return next((tmp / "dist").glob("edgerank-*.whl"))


def base_requirements() -> list[str]:
    """The project's dependencies without extras, as pyproject.toml declares them."""
    import tomllib

    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]


def closure(requirements: list[str]) -> dict[str, md.Distribution]:
    """Each requirement's installed distribution and, recursively, those it requires (no extras)."""
    found: dict[str, md.Distribution] = {}
    todo = [Requirement(r) for r in requirements]
    while todo:
        req = todo.pop()
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        name = req.name.lower().replace("_", "-")
        if name not in found:
            found[name] = md.distribution(req.name)
            todo += [Requirement(r) for r in found[name].requires or []]
    return found


def link_distributions(dists: dict[str, md.Distribution], folder: Path) -> Path:
    """A folder holding links to exactly these distributions' top-level files (packages, modules,
    metadata), for a venv to see through a .pth file."""
    folder.mkdir()
    for dist in dists.values():
        tops = {Path(str(f)).parts[0] for f in dist.files or [] if not str(f).startswith("..")}
        for top in tops:
            target = Path(dist.locate_file(top))
            if target.exists() and not (folder / top).exists():
                (folder / top).symlink_to(target)
    return folder


@pytest.fixture(scope="module")
def base_venv(wheel, tmp_path_factory) -> Path:
    """A fresh venv with the wheel installed and only the base dependencies' closure visible."""
    tmp = tmp_path_factory.mktemp("base-venv")
    deps = link_distributions(closure(base_requirements()), tmp / "deps")
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    (Path(purelib) / "edgerank-base-deps.pth").write_text(f"{deps}\n")
    subprocess.run(
        PIP + ["--python", str(python), "install", "--no-deps", "--no-index", str(wheel)],
        check=True,
        capture_output=True,
        text=True,
    )
    return venv


def run(venv: Path, *args: str, **kwargs) -> subprocess.CompletedProcess:
    """``venv/bin/ARGS[0] ARGS[1:]`` outside the checkout, whose edgerank/ would shadow the installed one."""
    return subprocess.run(
        [str(venv / "bin" / args[0]), *args[1:]],
        capture_output=True,
        text=True,
        env=clean_env(),
        cwd=venv.parent,
        timeout=120,
        **kwargs,
    )


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "VIRTUAL_ENV"}}


def test_runtime_commands_load_no_training_layers(rt_artifact, tmp_path):
    """``edgerank rank`` loads the runtime only, even where torch and pandas are installed."""
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            RANK_AND_REPORT,
            "rank",
            "--artifact",
            str(rt_artifact),
            "--query",
            "red drill",
            "--products",
            str(products_csv(tmp_path / "p.csv")),
            "--json",
            "--threads",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert sorted(item["id"] for item in json.loads(out.stdout)["items"]) == ["1", "2", "3"]
    assert json.loads(out.stderr.strip().splitlines()[-1]) == []


@pytest.mark.slow
def test_base_install_is_complete_without_the_training_stack(base_venv):
    check = subprocess.run(
        PIP + ["--python", str(base_venv / "bin" / "python"), "check"], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr  # every declared requirement is there
    for module in HEAVY:
        assert run(base_venv, "python", "-c", f"import {module}").returncode != 0, f"{module} is importable"
    assert run(base_venv, "edgerank", "--help").returncode == 0


@pytest.mark.slow
def test_base_install_ranks_from_the_cli(base_venv, rt_artifact, tmp_path):
    out = run(
        base_venv,
        "edgerank",
        "rank",
        "--artifact",
        str(rt_artifact),
        "--query",
        "red drill",
        "--products",
        str(products_csv(tmp_path / "p.csv")),
        "--json",
        "--threads",
        "1",
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert sorted(item["id"] for item in result["items"]) == ["1", "2", "3"]
    assert result["items"][0]["score"] >= result["items"][-1]["score"]


@pytest.mark.slow
def test_base_install_indexes_and_searches_a_catalog(base_venv, tower_artifacts, tmp_path):
    artifact = str(tower_artifacts["bi-encoder"])
    built = run(
        base_venv,
        "edgerank",
        "index",
        "--artifact",
        artifact,
        "--products",
        str(products_csv(tmp_path / "p.csv")),
        "--out",
        str(tmp_path / "index"),
        "--threads",
        "1",
    )
    assert built.returncode == 0, built.stderr
    found = run(
        base_venv,
        "edgerank",
        "search",
        "--artifact",
        artifact,
        "--index",
        str(tmp_path / "index"),
        "--query",
        "red drill",
        "--json",
        "--threads",
        "1",
    )
    assert found.returncode == 0, found.stderr
    assert sorted(item["id"] for item in json.loads(found.stdout)["items"]) == ["1", "2", "3"]


@pytest.mark.slow
def test_base_install_serves(base_venv, rt_artifact):
    server = subprocess.Popen(
        [
            str(base_venv / "bin" / "edgerank"),
            "serve",
            "--artifact",
            str(rt_artifact),
            "--port",
            "0",
            "--threads",
            "1",
            "--quiet",
        ],
        stderr=subprocess.PIPE,
        text=True,
        env=clean_env(),
        cwd=base_venv.parent,
    )
    try:
        line = server.stderr.readline()
        assert " on http://" in line, line
        url = line.split(" on ", 1)[1].split()[0]
        with urllib.request.urlopen(f"{url}/health", timeout=30) as response:
            assert response.status == 200
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.mark.slow
def test_installed_package_ships_profiles_and_the_optimum_peer(base_venv):
    """Export profiles and the optimum peer script are read from the installed package, not a checkout."""
    where = run(base_venv, "python", "-c", "import edgerank, pathlib; print(pathlib.Path(edgerank.__file__).parent)")
    package = Path(where.stdout.strip())
    assert package.is_relative_to(base_venv)
    profiles = {p.name for p in (package / "export" / "profiles").iterdir()}
    assert {"cpu-avx2-int8.toml", "arm64-int8.toml", "README.md"} <= profiles
    peer = package / "bench" / "optimum_peer" / "peer.py"
    assert (peer.parent / "requirements.txt").is_file()
    # The peer runs in an environment without edgerank: started bare, it loads and answers.
    answer = subprocess.run(
        [str(base_venv / "bin" / "python"), "-I", str(peer)],
        input='{"op": "measure"}\n',
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert json.loads(answer.stdout) == {"error": "measure before load"}


@pytest.mark.slow
def test_runtime_only_install_from_the_index(wheel, rt_artifact, tmp_path):
    """The same install resolved from the package index: its size is printed for the runtime results."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    install = subprocess.run(PIP + ["--python", str(python), "install", str(wheel)], capture_output=True, text=True)
    if install.returncode != 0 and "No matching distribution" in install.stderr + install.stdout:
        pytest.skip(f"package index unreachable: {install.stderr.strip().splitlines()[-1]}")
    assert install.returncode == 0, install.stderr

    size = du(venv)
    packages = run(venv, "python", "-c", LIST_DISTRIBUTIONS).stdout.split()
    print(f"\nruntime-only venv: {size / 2**20:.1f} MiB; {' '.join(packages)}")
    out = run(
        venv,
        "edgerank",
        "rank",
        "--artifact",
        str(rt_artifact),
        "--query",
        "red drill",
        "--products",
        str(products_csv(tmp_path / "p.csv")),
        "--json",
        "--threads",
        "1",
    )
    assert out.returncode == 0, out.stderr
    assert sorted(item["id"] for item in json.loads(out.stdout)["items"]) == ["1", "2", "3"]
    assert any(p.startswith("edgerank==") for p in packages)
    assert not [p for p in packages if p.split("==")[0].lower() in HEAVY]
    assert size < 250 * 2**20  # the training stack is ~1.7 GB; the aim is <= 150 MB (see bench/results/runtime.md)
