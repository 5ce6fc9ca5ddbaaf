"""The artifact format as export writes it: verified at load, so a corrupt, tampered or too-new
artifact is refused with a clear message; the one-file (zip) form round-trips."""

from __future__ import annotations

import json
import shutil

import pytest

from edgerank.artifact import ArtifactError, load_artifact, pack
from edgerank.export import export_artifact


@pytest.fixture(scope="module")
def exported(tiny_cross_encoder, tmp_path_factory):
    """One real fp32 artifact of the tiny model; each test works on its own copy."""
    return export_artifact(
        tiny_cross_encoder, tmp_path_factory.mktemp("exported") / "art", max_length=32, require_head=False
    )


@pytest.fixture()
def artifact(exported, tmp_path):
    return shutil.copytree(exported, tmp_path / "art")


def test_exported_artifact_loads_and_pins_every_file(artifact):
    art = load_artifact(artifact)
    assert set(art.manifest["files"]) == {"model.onnx", "tokenizer.json", "config.json", "tokenizer_config.json"}
    assert art.manifest["hf"] == {"config": "config.json", "tokenizer_config": "tokenizer_config.json"}
    assert art.graph()["file"] == "model.onnx" and art.kind == "cross-encoder"


def test_truncated_graph_is_refused(artifact):
    graph = artifact / "model.onnx"
    graph.write_bytes(graph.read_bytes()[: graph.stat().st_size // 2])
    with pytest.raises(ArtifactError, match="checksum mismatch for model.onnx"):
        load_artifact(artifact)


def test_one_changed_byte_in_tokenizer_is_refused(artifact):
    tok = artifact / "tokenizer.json"
    data = bytearray(tok.read_bytes())
    i = data.index(b'"[PAD]"') + 2
    data[i] = ord("Q")  # same length, different content
    tok.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="checksum mismatch for tokenizer.json"):
        load_artifact(artifact)


def test_missing_file_is_refused(artifact):
    (artifact / "tokenizer.json").unlink()
    with pytest.raises(ArtifactError, match="tokenizer.json listed in the manifest is missing"):
        load_artifact(artifact)


def test_newer_schema_is_refused_with_upgrade_hint(artifact):
    manifest = json.loads((artifact / "manifest.json").read_text())
    manifest["schema_version"] += 1
    (artifact / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="newer than this edgerank supports.*upgrade edgerank"):
        load_artifact(artifact)


def test_zip_form_round_trips(artifact, tmp_path, monkeypatch):
    monkeypatch.setenv("EDGERANK_HOME", str(tmp_path / "home"))
    archive = pack(artifact, tmp_path / "art.zip")
    art = load_artifact(archive)
    assert art.manifest == load_artifact(artifact).manifest
    for name in art.manifest["files"]:
        assert art.file(name).read_bytes() == (artifact / name).read_bytes()
    assert load_artifact(archive).path == art.path  # unpacked once, then reused


def test_tampered_zip_is_refused(artifact, tmp_path, monkeypatch):
    monkeypatch.setenv("EDGERANK_HOME", str(tmp_path / "home"))
    graph = artifact / "model.onnx"
    graph.write_bytes(graph.read_bytes()[:-10])
    with pytest.raises(ArtifactError, match="checksum mismatch"):
        load_artifact(pack(artifact, tmp_path / "bad.zip"))
