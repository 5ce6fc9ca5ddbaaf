"""The one artifact format: a folder with ONNX graph(s), ``tokenizer.json`` and ``manifest.json``.

Written by ``edgerank export``, read by the runtime, bench and tests through ``load_artifact`` —
which verifies every file's sha256 and refuses a newer schema — so a corrupt, tampered or
too-new artifact fails at load with a clear message, never at the first query.

This module imports only the standard library: the runtime depends on it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1
MANIFEST = "manifest.json"
KINDS = ("cross-encoder", "late-interaction", "bi-encoder")


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
    ``model`` for a cross-encoder; ``query`` / ``product`` for the two towers of catalog students),
    ``tokenizer`` {file, max_length, truncation}, ``score`` {raw, probability: {method, temperature,
    bias}}, ``calibration``, ``parity``, ``quality``, ``files`` {name: sha256}; a cross-encoder's
    ``hf`` {config, tokenizer_config} names the Hugging Face files that make the folder loadable by
    optimum on its own (older artifacts lack it; the runtime never reads them).
    """

    path: Path
    manifest: dict[str, Any]

    @property
    def kind(self) -> str:
        return self.manifest["kind"]

    def file(self, name: str) -> Path:
        return self.path / name

    def graph(self, role: str = "model") -> dict[str, Any]:
        try:
            return self.manifest["graphs"][role]
        except KeyError:
            raise ArtifactError(f"{self.path}: no '{role}' graph in this {self.kind} artifact") from None

    @property
    def sha256(self) -> str:
        """Identity of the artifact: the hash of its manifest (which pins every file's hash)."""
        return sha256_file(self.path / MANIFEST)


def write_manifest_and_checksums(folder: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    """Record the sha256 of every file in ``folder`` (except the manifest) and write the manifest."""
    files = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file() and p.name != MANIFEST:
            files[p.relative_to(folder).as_posix()] = sha256_file(p)
    manifest = {"schema_version": SCHEMA_VERSION, **manifest, "files": files}
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2, default=str) + "\n")
    return manifest


def load_artifact(path: str | os.PathLike, *, verify: bool = True) -> Artifact:
    """Open an artifact folder (or a ``.zip`` of one) and check it before anything runs it."""
    path = Path(path)
    if path.is_file() and zipfile.is_zipfile(path):
        path = _unpack(path)
    manifest_path = path / MANIFEST
    if not manifest_path.exists():
        raise ArtifactError(f"{path}: not an edgerank artifact (no {MANIFEST})")
    try:
        manifest = json.loads(manifest_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ArtifactError(f"{manifest_path}: corrupt manifest ({e})") from None
    version = manifest.get("schema_version")
    if not isinstance(version, int):
        raise ArtifactError(f"{manifest_path}: no schema_version")
    if version > SCHEMA_VERSION:
        raise ArtifactError(f"{path}: artifact schema {version} is newer than this edgerank supports "
                            f"({SCHEMA_VERSION}); upgrade edgerank to load it")
    if manifest.get("kind") not in KINDS:
        raise ArtifactError(f"{manifest_path}: unknown kind {manifest.get('kind')!r}")
    if verify:
        for name, expected in manifest.get("files", {}).items():
            f = path / name
            if not f.exists():
                raise ArtifactError(f"{path}: file {name} listed in the manifest is missing")
            if sha256_file(f) != expected:
                raise ArtifactError(f"{path}: checksum mismatch for {name}: the file is corrupt or was modified")
    return Artifact(path=path, manifest=manifest)


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
