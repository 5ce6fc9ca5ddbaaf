"""Artifact integrity on a real exported artifact: the manifest is covered by its digest and checked
field by field, every file the runtime opens is listed, confined and regular, tampered copies are
refused, and writers killed inside ``atomic_dir`` (or during ``edgerank export``) leave a loadable
artifact that the next run or load repairs. Also: a resumed training refuses a checkpoint made with
other arguments, and an integer product id too long to print is a clean input error."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
from runtime_fixtures import *  # noqa: F401,F403  (rt_artifact, rt_ranker, artifact_copy)

from edgerank.artifact import MANIFEST, MANIFEST_DIGEST, ArtifactError, load_artifact, write_manifest_and_checksums
from edgerank.io import atomic_dir
from edgerank.runtime import Ranker, RankerInputError

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from bench.reliability import tamper  # noqa: E402


def rehash(folder: Path, manifest) -> None:
    """Rewrite the manifest and a matching digest, as a tamperer who rewrites both would."""
    data = (json.dumps(manifest) + "\n").encode()
    (folder / MANIFEST).write_bytes(data)
    (folder / MANIFEST_DIGEST).write_text(f"{hashlib.sha256(data).hexdigest()}  {MANIFEST}\n")


def manifest_of(folder: Path) -> dict:
    return json.loads((folder / MANIFEST).read_text())


def dead_pid() -> int:
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(proc.stdout)


def within(seconds: float, fn):
    """Run ``fn`` in a thread and fail (instead of hanging the suite) if it has not returned in time."""
    out: dict = {}
    thread = threading.Thread(target=lambda: out.update(value=_outcome(fn)), daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still running after {seconds} s"
    return out["value"]


def _outcome(fn):
    try:
        return fn()
    except Exception as e:
        return e


# -- the manifest digest ----------------------------------------------------------------------------


def test_manifest_digest_is_written_in_sha256sum_form(rt_artifact):
    data = (rt_artifact / MANIFEST).read_bytes()
    assert (rt_artifact / MANIFEST_DIGEST).read_text() == f"{hashlib.sha256(data).hexdigest()}  {MANIFEST}\n"
    assert MANIFEST_DIGEST not in manifest_of(rt_artifact)["files"]
    assert load_artifact(rt_artifact).sha256 == hashlib.sha256(data).hexdigest()


def test_changed_manifest_and_missing_digest_are_refused(artifact_copy):
    manifest = manifest_of(artifact_copy)
    manifest["precision"] = "int8-dynamic"  # valid, but not what was written
    (artifact_copy / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="manifest.json does not match manifest.sha256"):
        Ranker.load(artifact_copy)
    (artifact_copy / MANIFEST_DIGEST).unlink()
    with pytest.raises(ArtifactError, match="no manifest.sha256.*export it again"):
        load_artifact(artifact_copy)
    assert load_artifact(artifact_copy, verify=False).manifest["precision"] == "int8-dynamic"


# -- the manifest schema ----------------------------------------------------------------------------

BAD_FIELDS = [
    ("tokenizer.max_length", 1e9),
    ("tokenizer.max_length", 10**9),
    ("tokenizer.max_length", "64"),
    ("tokenizer.max_length", 2),
    ("tokenizer.max_length", True),
    ("tokenizer.truncation", "middle"),
    ("tokenizer.pad_id", -1),
    ("tokenizer.file", None),
    ("tokenizer", "tokenizer.json"),
    ("kind", "ranker"),
    ("graphs", []),
    ("graphs.model", None),
    ("graphs.model.file", 3),
    ("graphs.model.inputs", "input_ids"),
    ("graphs.model.outputs", []),
    ("score", None),
    ("score.probability", None),
    ("score.probability.method", None),
    ("score.probability.temperature", 0),
    ("score.probability.temperature", "1"),
    ("score.probability.bias", None),
    ("files", []),
    ("files.model.onnx", "00"),
    ("files", {}),
    ("schema_version", "1"),
    ("schema_version", 0),
]


def set_field(manifest: dict, field: str, value) -> dict:
    """Set a dotted ``field``; under ``files`` the rest is one key (file names hold dots)."""
    keys = field.split(".")
    if keys[0] == "files" and len(keys) > 1:
        keys = ["files", ".".join(keys[1:])]
    obj = manifest
    for key in keys[:-1]:
        obj = obj[key]
    obj[keys[-1]] = value
    return manifest


@pytest.mark.parametrize("field,value", BAD_FIELDS, ids=[f"{f}={v!r}" for f, v in BAD_FIELDS])
def test_malformed_manifest_field_is_an_artifact_error_naming_it(artifact_copy, field, value):
    rehash(artifact_copy, set_field(manifest_of(artifact_copy), field, value))
    with pytest.raises(ArtifactError) as e:
        Ranker.load(artifact_copy)
    assert field in str(e.value) and "\n" not in str(e.value)


def test_any_value_in_any_field_the_runtime_reads_loads_or_is_an_artifact_error(artifact_copy):
    """Never AttributeError, KeyError, TypeError or ValueError from deep inside the runtime."""
    fields = [
        "kind",
        "graphs",
        "graphs.model",
        "graphs.model.file",
        "graphs.model.inputs",
        "graphs.model.outputs",
        "tokenizer",
        "tokenizer.file",
        "tokenizer.max_length",
        "tokenizer.truncation",
        "tokenizer.pad_id",
        "score",
        "score.probability",
        "score.probability.method",
        "score.probability.temperature",
        "score.probability.bias",
        "files",
        "schema_version",
    ]
    original = manifest_of(artifact_copy)
    for field in fields:
        for value in (None, "x", -1, 1e300, float("nan"), [], {}, [1], {"a": 1}, True):
            rehash(artifact_copy, set_field(json.loads(json.dumps(original)), field, value))
            try:
                Ranker.load(artifact_copy, threads=1)
            except ArtifactError as e:
                assert "\n" not in str(e)


def test_max_length_beyond_a_recorded_position_limit_is_refused(artifact_copy):
    manifest = manifest_of(artifact_copy)
    manifest["graphs"]["model"]["max_positions"] = 32  # the artifact's max_length is 64
    rehash(artifact_copy, manifest)
    with pytest.raises(ArtifactError, match=r"'tokenizer.max_length' must be an integer from 4 to 32, got 64"):
        load_artifact(artifact_copy)


# -- files: listed, confined, regular ---------------------------------------------------------------


def test_artifact_file_returns_only_listed_confined_files(rt_artifact):
    art = load_artifact(rt_artifact)
    assert art.file("model.onnx") == rt_artifact / "model.onnx"
    for name, message in [
        ("manifest.json", "not listed"),
        ("../model.onnx", r"'\.\.'"),
        (str(rt_artifact / "model.onnx"), "absolute path"),
    ]:
        with pytest.raises(ArtifactError, match=message):
            art.file(name)
    assert art.file("model.plan", listed=False) == rt_artifact / "model.plan"  # built on the device: may be absent


def test_fifo_in_place_of_the_graph_is_refused_without_blocking(artifact_copy):
    (artifact_copy / "model.onnx").unlink()
    os.mkfifo(artifact_copy / "model.onnx")
    error = within(10, lambda: Ranker.load(artifact_copy))
    assert isinstance(error, ArtifactError) and "model.onnx is not a regular file (a FIFO)" in str(error)


def test_symlink_inside_the_folder_is_allowed(artifact_copy):
    (artifact_copy / "blobs").mkdir()
    (artifact_copy / "model.onnx").rename(artifact_copy / "blobs" / "model.onnx")
    (artifact_copy / "model.onnx").symlink_to(Path("blobs") / "model.onnx")
    manifest = manifest_of(artifact_copy)
    write_manifest_and_checksums(artifact_copy, {k: v for k, v in manifest.items() if k != "files"})
    assert Ranker.load(artifact_copy, threads=1).rank("drill", catalog(2)).candidates == 2


def test_tampered_copies_are_all_refused(rt_artifact, tmp_path):
    """A sample of bench/reliability/tamper.py: a few flips in every file, and every path variant."""
    files = [p for p in rt_artifact.iterdir() if p.is_file()]
    rows = tamper.run(rt_artifact, tmp_path / "work", flips=2 * len(files), seed=1)
    assert len(rows) == 2 * len(files) + len(tamper.VARIANTS)
    flipped = {r["check"].rsplit(" in ", 1)[1] for r in rows if r["check"].startswith("flip")}
    assert flipped == {p.name for p in files} >= {MANIFEST, MANIFEST_DIGEST}
    assert tamper.summary(rows)["failed"] == [], [r for r in rows if not r["passed"]]
    assert load_artifact(rt_artifact)  # the original, whose files the copies hard-link, is untouched


def test_catalog_index_files_are_listed_confined_and_regular(tmp_path):
    import numpy as np

    from edgerank.artifact import Artifact
    from edgerank.runtime.catalog import CatalogIndexError, load_index

    art = Artifact(tmp_path / "art", {"kind": "bi-encoder"}, manifest_sha256="a" * 64)
    index = tmp_path / "index"
    index.mkdir()
    np.save(index / "offsets.npy", np.arange(2, dtype=np.int64))
    np.save(index / "vectors.npy", np.ones((1, 4), np.float16))
    (index / "ids.json").write_text(json.dumps({"ids": ["p1"], "keys": ["k"], "truncated": [False]}))
    files = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in index.iterdir()}
    meta = {"format": 1, "artifact_sha256": "a" * 64, "dim": 4, "dtype": "float16", "files": files}
    (index / "index.json").write_text(json.dumps(meta))
    assert len(load_index(index, art)) == 1
    (index / "vectors.npy").unlink()
    os.mkfifo(index / "vectors.npy")
    error = within(10, lambda: load_index(index, art))
    assert isinstance(error, CatalogIndexError) and "vectors.npy is not a regular file" in str(error)
    (index / "index.json").write_text(json.dumps(meta | {"files": {k: v for k, v in files.items() if k != "ids.json"}}))
    with pytest.raises(CatalogIndexError, match="does not list ids.json"):
        load_index(index, art)


# -- atomic_dir: crash states on disk, and real kill -9 -----------------------------------------------


def fill(folder: Path, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "f.txt").write_text(text)
    return folder


def test_swap_cut_between_renames_is_finished_by_the_next_atomic_dir(tmp_path):
    pid = dead_pid()
    fill(tmp_path / f".out.old-{pid}-abc", "previous")
    fill(tmp_path / f".out.tmp-{pid}-abc", "complete new")
    with atomic_dir(tmp_path / "other"):  # another target's leftovers are not touched
        pass
    assert not (tmp_path / "out").exists()
    with pytest.raises(RuntimeError):
        with atomic_dir(tmp_path / "out"):
            raise RuntimeError("a later write that fails")
    assert (tmp_path / "out" / "f.txt").read_text() == "complete new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other", "out"]


def test_swap_cut_without_a_new_folder_restores_the_old_one(tmp_path):
    """The plain ``.NAME.old-PID`` form with no temporary folder beside it: the previous folder returns."""
    pid = dead_pid()
    fill(tmp_path / f".out.old-{pid}", "previous")
    with atomic_dir(tmp_path / "out") as tmp:
        assert (tmp_path / "out" / "f.txt").read_text() == "previous"
        fill(tmp, "new")
    assert (tmp_path / "out" / "f.txt").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_stale_temporary_folders_of_dead_writers_only_are_cleaned(tmp_path):
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        fill(tmp_path / f".out.tmp-{dead_pid()}-aaa", "half written")
        fill(tmp_path / f".out.tmp-{live.pid}-bbb", "being written")
        fill(tmp_path / f".out.old-{dead_pid()}-ccc", "left after the swap")
        fill(tmp_path / "out", "current")
        with atomic_dir(tmp_path / "out") as tmp:
            fill(tmp, "new")
        assert sorted(p.name for p in tmp_path.iterdir()) == [f".out.tmp-{live.pid}-bbb", "out"]
    finally:
        live.kill()
        live.wait()


def test_load_artifact_finishes_a_swap_cut_between_renames(rt_artifact, tmp_path):
    pid = dead_pid()
    shutil.copytree(rt_artifact, tmp_path / f".art.old-{pid}-xyz")
    new = shutil.copytree(rt_artifact, tmp_path / f".art.tmp-{pid}-xyz")
    manifest = manifest_of(new)
    write_manifest_and_checksums(new, {k: v for k, v in manifest.items() if k != "files"} | {"generation": 2})
    assert load_artifact(tmp_path / "art").manifest["generation"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["art"]


CHILD = textwrap.dedent("""
    import os, shutil, signal, sys, time
    from pathlib import Path
    from edgerank.artifact import write_manifest_and_checksums
    from edgerank.io import atomic_dir
    import json

    source, target, mode = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
    real_replace, calls = os.replace, []

    def replace(src, dst):
        calls.append(dst)
        if len(calls) == 2:  # the old folder is aside, the new one not yet in place
            os.kill(os.getpid(), signal.SIGKILL)
        real_replace(src, dst)

    if mode == "between-renames":
        os.replace = replace
    with atomic_dir(target) as tmp:
        shutil.copytree(source, tmp, dirs_exist_ok=True)
        manifest = json.loads((tmp / "manifest.json").read_text())
        manifest.pop("files")
        write_manifest_and_checksums(tmp, manifest | {"generation": 2})
        if mode == "while-writing":
            print("ready", flush=True)
            time.sleep(60)
""")


def run_child(source: Path, target: Path, mode: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, str(source), str(target), mode], stdout=subprocess.PIPE, text=True
    )


def test_kill_9_while_writing_keeps_the_artifact_and_the_next_write_cleans_up(rt_artifact, tmp_path):
    target = shutil.copytree(rt_artifact, tmp_path / "art")
    child = run_child(rt_artifact, target, "while-writing")
    assert child.stdout.readline().strip() == "ready"
    child.kill()
    child.wait()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".art.tmp-")]
    assert "generation" not in load_artifact(target).manifest
    with atomic_dir(target) as tmp:
        shutil.copytree(rt_artifact, tmp, dirs_exist_ok=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["art"]


def test_kill_9_between_the_renames_is_finished_at_load(rt_artifact, tmp_path):
    target = shutil.copytree(rt_artifact, tmp_path / "art")
    child = run_child(rt_artifact, target, "between-renames")
    assert child.wait() == -9
    assert not target.exists()
    assert {p.name.split("-")[0] for p in tmp_path.iterdir()} == {".art.old", ".art.tmp"}
    assert load_artifact(target).manifest["generation"] == 2
    assert Ranker.load(target, threads=1).rank("drill", catalog(2)).candidates == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["art"]


def test_kill_9_during_edgerank_export_leaves_a_loadable_artifact(tiny_cross_encoder, rt_artifact, tmp_path):
    """A sample of ``tamper.kill_run``: one kill at a random point, then a full export must clean up."""
    out = shutil.copytree(rt_artifact, tmp_path / "art")
    rows = tamper.kill_run(tiny_cross_encoder, out, kills=1, seed=3, duration=8.0)
    assert [r["passed"] for r in rows] == [True, True], rows


# -- resume and product ids -------------------------------------------------------------------------


def test_resume_refuses_a_checkpoint_made_with_other_arguments(tmp_path):
    from edgerank.train.loop import RUN_CONFIG, LoopConfig, ResumeError, check_resume, resume_key
    from edgerank.train.teacher import TeacherConfig

    ckpt = tmp_path / "teacher.partial" / "checkpoint"
    ckpt.mkdir(parents=True)
    made = TeacherConfig(train="t.csv", out="teacher", loop=LoopConfig(lr=5e-5, checkpoint_every=2))
    (ckpt / RUN_CONFIG).write_text(json.dumps(resume_key(made, ignore=("dev",))))
    same = TeacherConfig(train="t.csv", out="teacher", dev="dev.csv", loop=LoopConfig(lr=5e-5, checkpoint_every=9))
    check_resume(ckpt, resume_key(same, ignore=("dev",)), ckpt.parent)  # dev and checkpoint interval do not count
    other = TeacherConfig(train="t.csv", out="teacher", loss="listwise", loop=LoopConfig(lr=1e-3))
    with pytest.raises(
        ResumeError,
        match=r"other arguments \(loop.lr was 5e-05, now 0.001; loss was 'pointwise', "
        r"now 'listwise'\).*delete .*teacher.partial",
    ):
        check_resume(ckpt, resume_key(other, ignore=("dev",)), ckpt.parent)
    (ckpt / RUN_CONFIG).unlink()
    with pytest.raises(ResumeError, match="does not record the arguments"):
        check_resume(ckpt, resume_key(same, ignore=("dev",)), ckpt.parent)


def test_integer_id_too_long_to_print_is_an_input_error(rt_ranker, tmp_path):
    with pytest.raises(RankerInputError, match="integer ids must fit in 64 bits"):
        rt_ranker.rank("drill", [{"id": 10**5000, "title": "Drill"}])
    largest = [{"id": 2**64 - 1, "title": "Drill"}, {"id": -(2**63), "title": "Hose"}]
    assert rt_ranker.rank("drill", largest).candidates == 2
