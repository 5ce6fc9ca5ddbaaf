"""The one artifact format: a folder with ONNX graph(s), ``tokenizer.json``, ``manifest.json`` and
``manifest.sha256``.

Written by ``edgerank export``, read by the runtime, bench and tests through ``load_artifact``, so
a corrupt, tampered, malformed or too-new artifact fails at load with one clear line, never at the
first query. Two checks, because they catch different faults:

- A digest catches any change at all. ``manifest.sha256`` holds the sha256 of the exact bytes of
  ``manifest.json`` (in ``sha256sum`` format: ``sha256sum -c manifest.sha256`` checks it by hand),
  and the manifest pins the sha256 of every other file; so one flipped bit anywhere in the folder,
  the manifest included, is refused. A schema check alone would pass a flipped digit in a number.
- The schema is validated as well: a digest proves only that the manifest is the one that was
  written, not that it makes sense (an exporter bug, a hand-edited manifest hashed again). Every
  field the runtime reads is checked for type and range, and every file it names must be listed
  (so verified), lie inside the folder (no absolute path, no ``..``, no symbolic link leading out)
  and be a regular file (checked with ``lstat`` before anything opens it: a FIFO would block a
  reader forever).

Neither is a signature: whoever can write the folder can rewrite both; signing belongs to the
deployment. Artifacts written before ``manifest.sha256`` existed are refused with a hint to export
them again. An export killed between the two renames that swap a new artifact in is finished by
the next load (``edgerank.io.recover``). This module imports only the standard library (and
``edgerank.io``, which does too): the runtime depends on it.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
import stat
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, NoReturn

from .io import recover

SCHEMA_VERSION = 1
MANIFEST = "manifest.json"
MANIFEST_DIGEST = "manifest.sha256"
KINDS = ("cross-encoder", "late-interaction", "bi-encoder")
TRUNCATION = ("longest_first", "only_first", "only_second")
PROBABILITY_METHODS = ("sigmoid", "fitted")
#: token lengths a graph may be fed: 4 fits [CLS] q [SEP] t [SEP]; beyond 8192 no BERT-style encoder
#: has position embeddings, and a larger number would only size buffers from a corrupt value
MIN_SEQUENCE_LENGTH, MAX_SEQUENCE_LENGTH = 4, 8192
ROLES = {"cross-encoder": ("model",), "late-interaction": ("query", "product"), "bi-encoder": ("query", "product")}
INTERACTIONS = {"late-interaction": "maxsim", "bi-encoder": "dot"}
STORE_DTYPES = ("float16", "float32", "int8")
_MAX_MANIFEST_BYTES = 16 << 20
_SHA256 = re.compile(r"[0-9a-f]{64}")


class ArtifactError(ValueError):
    """An artifact that cannot be used: missing, corrupt, tampered or from a newer edgerank."""


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


@dataclass(frozen=True)
class Artifact:
    """A verified artifact folder and its manifest.

    Manifest fields (schema 1): ``schema_version``, ``edgerank_version``, ``kind`` (one of KINDS),
    ``source`` {model, sha256}, ``precision``, ``graphs`` {role: {file, inputs, outputs}} (role
    ``model`` for a cross-encoder; ``query`` / ``product`` for the two towers of catalog students;
    optional ``segment``, ``engine``, ``max_positions``), ``tokenizer`` {file, max_length,
    truncation, pad_id}, ``score`` {raw, probability: {method, temperature, bias}}, ``towers``
    (catalog students), ``calibration``, ``parity``, ``quality``, ``files`` {name: sha256}; a
    cross-encoder's ``hf`` {config, tokenizer_config} names the Hugging Face files that make the
    folder loadable by optimum on its own (the runtime never reads them).
    """

    path: Path
    manifest: dict[str, Any]
    #: sha256 of manifest.json's bytes as loaded (None for an Artifact built by hand)
    manifest_sha256: str | None = None

    @property
    def kind(self) -> str:
        return self.manifest["kind"]

    def file(self, name: str, *, listed: bool = True) -> Path:
        """The path of ``name`` inside the folder, refused unless it stays inside and is a regular file.

        The one way the runtime opens artifact files. ``listed`` files must be in ``files`` (their
        sha256 was checked by ``load_artifact``); ``listed=False`` is for a file made on the device after export
        (a TensorRT engine), which no checksum covers and which may be absent.
        """
        problem = _name_problem(name)
        if problem:
            raise ArtifactError(f"{self.path}: file name {problem}")
        if listed and name not in (self.manifest.get("files") or {}):
            raise ArtifactError(f"{self.path}: {name} is not listed in the manifest's files, so it is not verified")
        if confined_path(self.path, name) is None and listed:
            raise ArtifactError(f"{self.path}: file {name} listed in the manifest is missing")
        return self.path / name

    def graph(self, role: str = "model") -> dict[str, Any]:
        try:
            return self.manifest["graphs"][role]
        except KeyError:
            raise ArtifactError(f"{self.path}: no '{role}' graph in this {self.kind} artifact") from None

    @property
    def sha256(self) -> str:
        """Identity of the artifact: the hash of its manifest (which pins every file's hash)."""
        return self.manifest_sha256 or sha256_file(self.path / MANIFEST)


def write_manifest_and_checksums(folder: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    """Record the sha256 of every file in ``folder``, write the manifest, then its digest. A link
    leading out of the folder or anything but a regular file (a FIFO) is refused: no loader would take it."""
    folder = Path(folder)
    files = {}
    for p in sorted(folder.rglob("*")):
        name = p.relative_to(folder).as_posix()
        if name not in (MANIFEST, MANIFEST_DIGEST) and not p.is_dir():
            files[name] = sha256_file(confined_path(folder, name))
    manifest = {"schema_version": SCHEMA_VERSION, **manifest, "files": files}
    data = (json.dumps(manifest, indent=2, default=str) + "\n").encode()
    (folder / MANIFEST).write_bytes(data)
    (folder / MANIFEST_DIGEST).write_bytes(_digest_line(hashlib.sha256(data).hexdigest()))
    return manifest


def load_artifact(path: str | os.PathLike, *, verify: bool = True) -> Artifact:
    """Open an artifact folder (or a ``.zip`` of one) and check it before anything runs it.

    ``verify=False`` skips the hashing (manifest digest and files), for tools that only read the
    manifest of an artifact they just wrote; the schema and path checks always run.
    """
    path = Path(path)
    if path.is_file() and zipfile.is_zipfile(path):
        path = _unpack(path)
    if not path.exists():
        recover(path, clean=False)  # an export killed between its two renames
    manifest_file = confined_path(path, MANIFEST) if path.is_dir() else None
    if manifest_file is None:
        raise ArtifactError(f"{path}: not an edgerank artifact (no {MANIFEST})")
    data = _read_regular(manifest_file, _MAX_MANIFEST_BYTES)
    manifest = _parse_manifest(path, data)
    digest = hashlib.sha256(data).hexdigest()
    if verify:
        _check_manifest_digest(path, digest)
    validate_manifest(manifest, path)
    if verify:
        for name, expected in manifest["files"].items():
            real = confined_path(path, name)
            if real is None:
                raise ArtifactError(f"{path}: file {name} listed in the manifest is missing")
            if _sha256_regular(real) != expected:
                raise ArtifactError(f"{path}: checksum mismatch for {name}: the file is corrupt or was modified")
    return Artifact(path=path, manifest=manifest, manifest_sha256=digest)


def _parse_manifest(path: Path, data: bytes) -> dict[str, Any]:
    """The manifest as a dict, refusing undecodable JSON and a schema newer than this edgerank."""
    try:
        manifest = json.loads(data.decode("utf-8"))
    except (ValueError, RecursionError) as e:  # JSONDecodeError, UnicodeDecodeError, over-long integers
        raise ArtifactError(f"{path / MANIFEST}: corrupt manifest ({_first_line(e)})") from None
    if not isinstance(manifest, dict):
        raise ArtifactError(f"{path / MANIFEST}: corrupt manifest (not a JSON object)")
    version = manifest.get("schema_version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ArtifactError(f"{path / MANIFEST}: no valid schema_version (got {_show(version)})")
    if version > SCHEMA_VERSION:
        raise ArtifactError(
            f"{path}: artifact schema {version} is newer than this edgerank supports "
            f"({SCHEMA_VERSION}); upgrade edgerank to load it"
        )
    return manifest


def _check_manifest_digest(path: Path, digest: str) -> None:
    """``manifest.sha256`` must be exactly what ``write_manifest_and_checksums`` (or ``sha256sum``)
    writes for these manifest bytes: compared whole, so a flipped bit anywhere in it is refused too."""
    real = confined_path(path, MANIFEST_DIGEST)
    if real is None:
        raise ArtifactError(
            f"{path}: no {MANIFEST_DIGEST}, so the manifest itself is unverified (an artifact "
            "from an older edgerank); export it again"
        )
    text = _read_regular(real, 4096)
    if text == _digest_line(digest):
        return
    if _SHA256.fullmatch(text[:64].decode("ascii", errors="replace")) and text[64:] == _digest_line(digest)[64:]:
        raise ArtifactError(
            f"{path}: {MANIFEST} does not match {MANIFEST_DIGEST}: the manifest is corrupt or was modified"
        )
    raise ArtifactError(f"{path}: {MANIFEST_DIGEST} is corrupt (expected one line '<sha256>  {MANIFEST}')")


def _digest_line(digest: str) -> bytes:
    return f"{digest}  {MANIFEST}\n".encode()


def validate_manifest(manifest: Any, path: str | os.PathLike | None = None) -> None:
    """Check every field the runtime reads, for type and range; the first bad one raises an
    ``ArtifactError`` naming it (and ``path``, the artifact folder, when given)."""
    _Fields(path).check(manifest)


class _Fields:
    """Typed reads of manifest fields; every failure is one ArtifactError naming the dotted field."""

    def __init__(self, path: str | os.PathLike | None):
        self.where = f"{path}: manifest" if path is not None else "manifest"

    def fail(self, field: str, problem: str) -> NoReturn:
        raise ArtifactError(f"{self.where} field '{field}' {problem}")

    def check(self, m: Any) -> None:
        if not isinstance(m, dict):
            self.fail("(top level)", "must be a JSON object")
        kind = m.get("kind")
        if kind not in KINDS:
            self.fail("kind", f"must be one of {', '.join(KINDS)}, got {_show(kind)}")
        files = self.files(m)
        graphs = self.section(m, "graphs", "graphs")
        limit = MAX_SEQUENCE_LENGTH
        for role in ROLES[kind]:
            if role not in graphs:
                self.fail(f"graphs.{role}", f"is missing: a {kind} artifact has a '{role}' graph")
        for role in graphs:
            limit = min(limit, self.graph(graphs, role, files))
        tok = self.section(m, "tokenizer", "tokenizer")
        self.listed(tok, "file", "tokenizer", files)
        self.integer(tok, "max_length", "tokenizer", MIN_SEQUENCE_LENGTH, limit)
        self.choice(tok, "truncation", "tokenizer", TRUNCATION)
        if tok.get("pad_id") is not None:
            self.integer(tok, "pad_id", "tokenizer", 0, 2**31 - 1)
        prob = self.section(self.section(m, "score", "score"), "probability", "score.probability")
        self.choice(prob, "method", "score.probability", PROBABILITY_METHODS)
        self.number(prob, "temperature", "score.probability", positive=True)
        self.number(prob, "bias", "score.probability")
        if kind in INTERACTIONS:
            self.towers(self.section(m, "towers", "towers"), kind, limit)

    def files(self, m: dict) -> dict[str, str]:
        files = self.section(m, "files", "files")
        if not files:
            self.fail("files", "is empty: it must pin every file of the artifact")
        for name, digest in files.items():
            problem = _name_problem(name) or ("is the manifest itself" if name in (MANIFEST, MANIFEST_DIGEST) else None)
            if problem:
                self.fail(f"files.{name}", problem)
            if not isinstance(digest, str) or not _SHA256.fullmatch(digest):
                self.fail(f"files.{name}", f"must be a sha256 (64 lowercase hex digits), got {_show(digest)}")
        return files

    def graph(self, graphs: dict, role: str, files: dict) -> int:
        """Check one graph entry; returns its position limit (MAX_SEQUENCE_LENGTH when unrecorded)."""
        field = f"graphs.{role}"
        graph = self.section(graphs, role, field)
        self.listed(graph, "file", field, files)
        for key in ("inputs", "outputs"):
            names = graph.get(key)
            if not isinstance(names, list) or not names or not all(isinstance(n, str) and n for n in names):
                self.fail(f"{field}.{key}", f"must be a non-empty list of names, got {_show(names)}")
        if "segment" in graph:
            self.integer(graph, "segment", field, 0, 1)
        if graph.get("engine") is not None and _name_problem(graph["engine"]):
            self.fail(f"{field}.engine", _name_problem(graph["engine"]))
        if graph.get("max_positions") is None:
            return MAX_SEQUENCE_LENGTH
        return self.integer(graph, "max_positions", field, MIN_SEQUENCE_LENGTH, 1 << 20)

    def towers(self, t: dict, kind: str, limit: int) -> None:
        self.integer(t, "dim", "towers", 1, 1 << 16)
        if t.get("interaction") != INTERACTIONS[kind]:
            self.fail(
                "towers.interaction",
                f"must be {INTERACTIONS[kind]!r} for a {kind} artifact, got {_show(t.get('interaction'))}",
            )
        self.number(t, "scale", "towers")
        self.number(t, "bias", "towers")
        for key in ("query_max_length", "product_max_length"):
            self.integer(t, key, "towers", MIN_SEQUENCE_LENGTH, limit)
        if "store_dtype" in t:
            self.choice(t, "store_dtype", "towers", STORE_DTYPES)

    def section(self, obj: dict, key: str, field: str) -> dict:
        value = obj.get(key)
        if not isinstance(value, dict):
            self.fail(field, f"must be a JSON object, got {_show(value)}")
        return value

    def listed(self, obj: dict, key: str, field: str, files: dict) -> str:
        name = obj.get(key)
        problem = _name_problem(name)
        if problem:
            self.fail(f"{field}.{key}", problem)
        if name not in files:
            self.fail(f"{field}.{key}", f"names {name!r}, which 'files' does not list (so it would go unverified)")
        return name

    def integer(self, obj: dict, key: str, field: str, low: int, high: int) -> int:
        value = obj.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            self.fail(f"{field}.{key}", f"must be an integer from {low} to {high}, got {_show(value)}")
        return value

    def number(self, obj: dict, key: str, field: str, positive: bool = False) -> float:
        value = obj.get(key)
        ok = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
        if not ok or (positive and not value > 0):
            self.fail(f"{field}.{key}", f"must be a finite{' positive' if positive else ''} number, got {_show(value)}")
        return float(value)

    def choice(self, obj: dict, key: str, field: str, options: tuple[str, ...]) -> str:
        value = obj.get(key)
        if value not in options:
            self.fail(f"{field}.{key}", f"must be one of {', '.join(options)}, got {_show(value)}")
        return value


def _name_problem(name: Any) -> str | None:
    """Why ``name`` is not a relative path inside the artifact folder, or None."""
    if not isinstance(name, str) or not name.strip():
        return f"must be a file name inside the artifact folder, got {_show(name)}"
    if "\0" in name or "\\" in name:
        return f"must be a plain relative path, got {_show(name)}"
    parts = PurePosixPath(name).parts
    if PurePosixPath(name).is_absolute():
        return f"is an absolute path ({_show(name)}): files must lie inside the artifact folder"
    if ".." in parts:
        return f"climbs out of the artifact folder with '..' ({_show(name)})"
    return None


def confined_path(root: str | os.PathLike, name: str) -> Path | None:
    """The real path of ``root / name`` if it exists (None if not); refused when ``name`` is absolute
    or climbs with ``..``, when it (or a folder on the way) is a link leading out of ``root``, or when
    it is not a regular file. Never opens it: a FIFO is refused without blocking."""
    problem = _name_problem(name)
    if problem:
        raise ArtifactError(f"{root}: file name {problem}")
    real_root = os.path.realpath(root)
    real = os.path.realpath(os.path.join(root, name))
    if real == real_root:
        raise ArtifactError(f"{root}: {name} is the artifact folder itself, not a file in it")
    if os.path.commonpath([real_root, real]) != real_root:
        raise ArtifactError(f"{root}: {name} leads outside the artifact folder (a symbolic link); refused")
    try:
        mode = os.lstat(real).st_mode
    except FileNotFoundError:
        return None
    except OSError as e:
        raise ArtifactError(f"{root}: {name} cannot be read ({e.strerror})") from None
    if not stat.S_ISREG(mode):
        raise ArtifactError(f"{root}: {name} is not a regular file ({_file_type(mode)}); refused")
    return Path(real)


def _open_regular(path: Path) -> int:
    """A read descriptor for a regular file: opened without blocking and without following a final
    link, then checked again, so a file swapped for a FIFO or a link after ``_confined`` still fails."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOFOLLOW", 0))
    except OSError as e:
        raise ArtifactError(f"{path}: cannot be read ({e.strerror})") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise ArtifactError(f"{path}: not a regular file; refused")
    return fd


def _read_regular(path: Path, limit: int) -> bytes:
    with os.fdopen(_open_regular(path), "rb") as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise ArtifactError(f"{path}: larger than {limit} bytes; not a manifest this edgerank wrote")
    return data


def _sha256_regular(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with os.fdopen(_open_regular(path), "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _file_type(mode: int) -> str:
    for test, name in (
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISLNK, "a symbolic link"),
    ):
        if test(mode):
            return name
    return "not a file"


def _show(value: Any, width: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= width else text[: width - 3] + "..."


def _first_line(error: BaseException) -> str:
    return (str(error).splitlines() or [type(error).__name__])[0]


def pack(folder: str | os.PathLike, archive: str | os.PathLike) -> Path:
    """One-file form of an artifact (a zip), written atomically."""
    folder, archive = Path(folder), Path(archive)
    fd, tmp = tempfile.mkstemp(prefix=f".{archive.name}.tmp-", dir=archive.parent)
    os.close(fd)
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as z:
            for p in sorted(folder.rglob("*")):
                if p.is_file():
                    z.write(p, p.relative_to(folder).as_posix())
        os.replace(tmp, archive)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return archive


def _unpack(archive: Path) -> Path:
    """Unpack to a cache folder keyed by the archive's hash, so a second load costs nothing."""
    cache = Path(os.environ.get("EDGERANK_HOME", Path.home() / ".cache" / "edgerank")) / "artifacts"
    target = cache / sha256_file(archive)[:16]
    if (target / MANIFEST).exists():
        return target
    cache.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=cache))
    try:
        with zipfile.ZipFile(archive) as z:
            for name in z.namelist():
                if name.startswith("/") or ".." in Path(name).parts:
                    raise ArtifactError(f"{archive}: unsafe path in archive: {name}")
            z.extractall(tmp)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target
