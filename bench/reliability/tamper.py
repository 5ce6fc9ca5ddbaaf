"""Tamper and crash checks: every corrupted artifact is refused at load, every killed export leaves
a loadable one.

``run`` makes tampered copies of a real exported artifact (single-bit flips at random offsets,
spread over every file, manifest and its digest included; paths leading out of the folder; a FIFO
in place of the graph; a file unlisted or missing) and checks that ``Ranker.load`` refuses each with
an ``ArtifactError``. ``kill_run`` kills ``edgerank export`` with ``kill -9`` at random points while
it writes over an existing artifact and checks that the artifact at ``--out`` loads after each kill.
Both return rows ``{"check", "result", "passed", "command"}``; ``summary`` counts them.

    python -m bench.reliability.tamper ARTIFACT --work DIR [--flips 200] [--model MODEL --kills 10]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgerank.artifact import MANIFEST, MANIFEST_DIGEST, ArtifactError

LOAD_TIMEOUT_S = 20.0  # a load that takes longer is blocked (a FIFO opened for reading), not slow


def run(artifact: Path, work: Path, flips: int = 200, seed: int = 0) -> list[dict[str, Any]]:
    """``flips`` single-bit flips (every file gets its share) plus the path and file-type variants,
    each on its own copy under ``work``; a row per copy says whether ``Ranker.load`` refused it."""
    artifact, work = Path(artifact), Path(work)
    work.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    files = sorted(
        p.relative_to(artifact).as_posix() for p in artifact.rglob("*") if p.is_file() and not p.is_symlink()
    )
    rows = []
    for i in range(flips):
        name = files[i % len(files)]
        size = (artifact / name).stat().st_size
        offset, bit = rng.randrange(size), rng.randrange(8)
        rows.append(
            _check(
                artifact,
                work / f"flip-{i:04d}",
                f"flip bit {bit} of byte {offset} in {name}",
                lambda d, n=name, o=offset, b=bit: _flip(d / n, o, b),
            )
        )
    for label, tamper in VARIANTS.items():
        slug = "".join(c if c.isalnum() else "-" for c in label.lower())
        rows.append(_check(artifact, work / f"variant-{slug}", label, lambda d, t=tamper: t(d, work)))
    return rows


def kill_run(
    model: Path,
    out: Path,
    kills: int = 10,
    seed: int = 0,
    max_length: int = 32,
    extra_args: tuple[str, ...] = (),
    duration: float | None = None,
) -> list[dict[str, Any]]:
    """Export ``model`` to ``out`` once, then ``kills`` exports over it, each killed with SIGKILL at a
    random point of a full export's duration; after each, the artifact at ``out`` must load (the
    previous one or the new one). A last full export must leave no temporary folder behind.
    ``duration`` (seconds of one export) skips the first export when ``out`` already holds an artifact."""
    model, out = Path(model), Path(out)
    args = [
        "export",
        "--model",
        str(model),
        "--out",
        str(out),
        "--precision",
        "fp32",
        "--max-length",
        str(max_length),
        *extra_args,
    ]
    command = [sys.executable, "-c", "from edgerank.cli import main; main()", *args]
    shown = "edgerank " + " ".join(args)
    if duration is None or not out.exists():
        started = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        duration = time.perf_counter() - started
    rng, rows = random.Random(seed), []
    for i in range(kills):
        before = _manifest_sha(out)
        delay = rng.uniform(0.0, duration)
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        finished = proc.poll() is not None
        if not finished:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        passed, result = _loads(out)
        which = "" if not passed else " (new)" if _manifest_sha(out) != before else " (previous)"
        rows.append(
            {
                "check": f"kill -9 {i + 1}/{kills} at {delay:.2f} s of a {duration:.2f} s export"
                + (" (it had finished)" if finished else ""),
                "result": result + which,
                "passed": passed,
                "command": f"{shown}  # killed after {delay:.2f} s",
            }
        )
    subprocess.run(command, check=True, capture_output=True)
    leftovers = sorted(
        p.name for p in out.parent.iterdir() if p.name.startswith((f".{out.name}.tmp-", f".{out.name}.old-"))
    )
    rows.append(
        {
            "check": "a full export after the kills leaves no temporary folder",
            "result": "clean" if not leftovers else "left " + ", ".join(leftovers),
            "passed": not leftovers and _loads(out)[0],
            "command": shown,
        }
    )
    return rows


def kill_index_run(
    artifact: Path, products: Path, more_products: Path, out: Path, kills: int = 10, seed: int = 0
) -> list[dict[str, Any]]:
    """Index ``products`` once, then ``kills`` runs of ``edgerank index --update`` adding
    ``more_products``, each killed with SIGKILL at a random point of a full update's duration; after
    each, the index at ``out`` must load with ``artifact`` (the previous index or the updated one)."""
    base = [
        sys.executable,
        "-c",
        "from edgerank.cli import main; main()",
        "index",
        "--artifact",
        str(artifact),
        "--out",
        str(out),
        "--threads",
        "1",
    ]
    build = [*base, "--products", str(products)]
    update = [*base, "--products", str(products), "--products", str(more_products), "--update"]
    shown = "edgerank " + " ".join(update[3:])
    rng, rows = random.Random(seed), []
    subprocess.run(build, check=True, capture_output=True)
    started = time.perf_counter()
    subprocess.run(update, check=True, capture_output=True)
    duration = time.perf_counter() - started
    for i in range(kills):
        subprocess.run(build, check=True, capture_output=True)  # back to the small index, so each update has work
        before = _index_size(artifact, out)
        delay = rng.uniform(0.0, duration)
        proc = subprocess.Popen(update, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        finished = proc.poll() is not None
        if not finished:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        after = _index_size(artifact, out)
        passed = isinstance(after, int)
        which = "" if not passed else " (updated)" if after != before else " (previous)"
        rows.append(
            {
                "check": f"kill -9 {i + 1}/{kills} of an index update at {delay:.2f} s of {duration:.2f} s"
                + (" (it had finished)" if finished else ""),
                "result": ("loads" if passed else str(after)) + which,
                "passed": passed,
                "command": f"{shown}  # killed after {delay:.2f} s",
            }
        )
    return rows


def _index_size(artifact: Path, index: Path) -> int | str:
    """Products in the index at ``index`` as the runtime loads it, or why it does not load."""
    from edgerank.artifact import load_artifact
    from edgerank.runtime.catalog import load_index

    try:
        return len(load_index(index, load_artifact(artifact)))
    except Exception as e:
        return f"{type(e).__name__}: {e}"


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Passed / total, and the checks that failed (for a tamper check: the copies that loaded)."""
    return {
        "passed": sum(r["passed"] for r in rows),
        "total": len(rows),
        "failed": [r["check"] for r in rows if not r["passed"]],
    }


# -- tampering --------------------------------------------------------------------------------------


def _flip(path: Path, offset: int, bit: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 1 << bit
    _replace(path, bytes(data))


def _replace(path: Path, data: bytes) -> None:
    """New bytes under a new inode: the copy's files are hard links to the original artifact's."""
    path.unlink(missing_ok=True)
    path.write_bytes(data)


def _manifest(folder: Path) -> dict[str, Any]:
    return json.loads((folder / MANIFEST).read_text())


def _rehash(folder: Path, manifest: dict[str, Any]) -> None:
    """Write ``manifest`` with a matching digest: what a tamperer who rewrites both would leave, so
    only the schema and path checks stand between it and the runtime."""
    data = (json.dumps(manifest, indent=2) + "\n").encode()
    _replace(folder / MANIFEST, data)
    _replace(folder / MANIFEST_DIGEST, f"{hashlib.sha256(data).hexdigest()}  {MANIFEST}\n".encode())


def _outside(folder: Path, work: Path, name: str) -> Path:
    """A copy of ``folder/name`` outside the artifact, with the same bytes (so the same sha256)."""
    target = work / "outside" / folder.name / name
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(folder / name, target)
    return target


def _retarget(folder: Path, new_name: str) -> None:
    """Point the graph at ``new_name`` and list it in ``files`` under the graph's sha256."""
    m = _manifest(folder)
    role = next(iter(m["graphs"]))
    m["files"][new_name] = m["files"].pop(m["graphs"][role]["file"])
    m["graphs"][role]["file"] = new_name
    _rehash(folder, m)


def _graph_name(folder: Path) -> str:
    return next(iter(_manifest(folder)["graphs"].values()))["file"]


def _absolute(folder: Path, work: Path) -> None:
    _retarget(folder, str(_outside(folder, work, _graph_name(folder)).resolve()))


def _dotdot(folder: Path, work: Path) -> None:
    outside = _outside(folder, work, _graph_name(folder))
    _retarget(folder, os.path.relpath(outside, folder))


def _symlink_file(folder: Path, work: Path) -> None:
    name = _graph_name(folder)
    outside = _outside(folder, work, name)
    (folder / name).unlink()
    (folder / name).symlink_to(outside.resolve())


def _symlink_parent(folder: Path, work: Path) -> None:
    name = _graph_name(folder)
    outside = _outside(folder, work, name)
    (folder / "graphs").symlink_to(outside.parent.resolve(), target_is_directory=True)
    _retarget(folder, f"graphs/{name}")


def _fifo(folder: Path, work: Path, name: str | None = None) -> None:
    name = name or _graph_name(folder)
    (folder / name).unlink()
    os.mkfifo(folder / name)


def _unlisted(folder: Path, work: Path) -> None:
    m = _manifest(folder)
    m["files"].pop(m["tokenizer"]["file"])
    _rehash(folder, m)


def _missing(folder: Path, work: Path) -> None:
    (folder / _manifest(folder)["tokenizer"]["file"]).unlink()


def _no_digest(folder: Path, work: Path) -> None:
    (folder / MANIFEST_DIGEST).unlink()


def _huge_max_length(folder: Path, work: Path) -> None:
    m = _manifest(folder)
    m["tokenizer"]["max_length"] = 1e9
    _rehash(folder, m)


def _manifest_not_object(folder: Path, work: Path) -> None:
    _rehash(folder, [_manifest(folder)])  # type: ignore[arg-type]


VARIANTS: dict[str, Callable[[Path, Path], None]] = {
    "absolute graph path in the manifest": _absolute,
    "graph path climbing out with ..": _dotdot,
    "graph replaced by a symlink leading out": _symlink_file,
    "graph under a symlinked folder leading out": _symlink_parent,
    "FIFO in place of the graph": _fifo,
    "FIFO in place of manifest.json": lambda d, w: _fifo(d, w, MANIFEST),
    "tokenizer deleted from files": _unlisted,
    "tokenizer file missing": _missing,
    "manifest.sha256 missing": _no_digest,
    "tokenizer.max_length 1e9": _huge_max_length,
    "manifest a JSON list": _manifest_not_object,
}


# -- checking ---------------------------------------------------------------------------------------


def _check(artifact: Path, copy: Path, label: str, tamper: Callable[[Path], None]) -> dict[str, Any]:
    """Tamper with a fresh copy of ``artifact`` and expect ``Ranker.load`` to refuse it; the copy is
    kept only when it loaded (to look at), so a run over a large artifact does not fill the disk."""
    _copy(artifact, copy)
    tamper(copy)
    refused, result = _refused(copy)
    if refused:
        shutil.rmtree(copy, ignore_errors=True)
    command = f"python -c \"from edgerank.runtime import Ranker; Ranker.load('{copy}')\""
    return {"check": label, "result": result, "passed": refused, "command": command}


def _copy(src: Path, dst: Path) -> None:
    """Hard links where possible: only the tampered file needs its own bytes (``_flip`` and the
    variants replace files rather than write into them)."""
    if dst.exists():
        shutil.rmtree(dst)

    def link(s: str, d: str) -> None:
        try:
            os.link(s, d)
        except OSError:
            shutil.copy2(s, d)

    shutil.copytree(src, dst, copy_function=link)


def _refused(folder: Path) -> tuple[bool, str]:
    """Whether loading ``folder`` raises ArtifactError, within LOAD_TIMEOUT_S (a blocked open fails)."""
    outcome: dict[str, Any] = {}

    def load() -> None:
        from edgerank.runtime import Ranker

        try:
            Ranker.load(folder, threads=1)
            outcome["result"] = (False, "LOADED")
        except ArtifactError as e:
            outcome["result"] = (True, f"refused: {e}")
        except Exception as e:  # anything else is a failure of the check, named
            outcome["result"] = (False, f"{type(e).__name__}: {e}")

    thread = threading.Thread(target=load, daemon=True)
    thread.start()
    thread.join(LOAD_TIMEOUT_S)
    if thread.is_alive():
        _unblock(folder)
        return False, f"blocked for more than {LOAD_TIMEOUT_S:.0f} s"
    return outcome["result"]


def _unblock(folder: Path) -> None:
    """Open every FIFO in ``folder`` for writing, so a reader stuck on one returns."""
    for p in folder.rglob("*"):
        if p.is_fifo():
            try:
                os.close(os.open(p, os.O_WRONLY | os.O_NONBLOCK))
            except OSError:
                pass


def _loads(folder: Path) -> tuple[bool, str]:
    from edgerank.runtime import Ranker

    try:
        Ranker.load(folder, threads=1)
        return True, "loads"
    except Exception as e:
        return False, f"{type(e).__name__}: {e}"


def _manifest_sha(folder: Path) -> str | None:
    try:
        return hashlib.sha256((folder / MANIFEST).read_bytes()).hexdigest()
    except OSError:
        return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("artifact", type=Path, help="an exported artifact folder (left untouched)")
    parser.add_argument("--work", type=Path, required=True, help="folder for the tampered copies")
    parser.add_argument("--flips", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model", type=Path, help="a small model folder: also run the kill -9 checks of export")
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--json", type=Path, help="write every row here")
    args = parser.parse_args(argv)
    rows = run(args.artifact, args.work, args.flips, args.seed)
    if args.model:
        rows += kill_run(args.model, args.work / "killed-export", args.kills, args.seed)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    result = summary(rows)
    print(f"{result['passed']}/{result['total']} checks passed")
    for check in result["failed"]:
        print(f"FAILED: {check}")
    return 0 if not result["failed"] else 1


if __name__ == "__main__":
    sys.exit(main())
