"""Target profiles (the shipped TOML files and validation of bad ones) and the TensorRT build
command derived from them. TensorRT itself is not installed here; see export/README.md."""

from __future__ import annotations

import pytest

from edgerank.export import ExportError
from edgerank.export.profiles import available_profiles, load_profile
from edgerank.export.tensorrt import build_script, engine_flags, trtexec_command

INPUTS = ["input_ids", "attention_mask", "token_type_ids"]
VALID = """
description = "test device"
target = "tensorrt"
precision = "fp16"
workspace_mb = 512
[shapes.batch]
min = 1
opt = 8
max = 32
[shapes.sequence]
min = 8
opt = 32
max = 64
"""


def test_shipped_profiles_all_load():
    assert {"jetson-orin-fp16", "jetson-orin-int8", "t4-int8", "cpu-avx2-int8", "arm64-int8"} <= set(available_profiles())
    for name in available_profiles():
        p = load_profile(name)
        assert p.batch.min <= p.batch.opt <= p.batch.max and p.sequence.max >= 128
        assert (p.workspace_mb is not None) == (p.target == "tensorrt")
    assert load_profile("cpu-avx2-int8").reduce_range is True
    assert load_profile("arm64-int8").reduce_range is False


def test_trtexec_command_covers_every_input_and_the_profile(tmp_path):
    path = tmp_path / "dev.toml"
    path.write_text(VALID)
    cmd = trtexec_command(load_profile(path), INPUTS)
    assert cmd[:3] == ["trtexec", "--onnx=model.onnx", "--saveEngine=model.plan"]
    assert "--minShapes=input_ids:1x8,attention_mask:1x8,token_type_ids:1x8" in cmd
    assert "--optShapes=input_ids:8x32,attention_mask:8x32,token_type_ids:8x32" in cmd
    assert "--maxShapes=input_ids:32x64,attention_mask:32x64,token_type_ids:32x64" in cmd
    assert "--fp16" in cmd and "--int8" not in cmd and "--memPoolSize=workspace:512M" in cmd
    # MPNet-style graphs have no token_type_ids: the command names only what the graph takes.
    assert "--minShapes=input_ids:1x8,attention_mask:1x8" in trtexec_command(load_profile(path), INPUTS[:2])
    script = build_script(load_profile(path), INPUTS)
    assert script.startswith("#!/bin/sh") and "trtexec" in script and "set -e" in script


def test_engine_flags_per_precision():
    assert engine_flags("fp32") == ()
    assert engine_flags("fp16") == ("fp16",)
    assert engine_flags("int8-static") == ("int8", "fp16")
    with pytest.raises(ExportError, match="ONNX Runtime-only operators"):
        engine_flags("int8-dynamic")


@pytest.mark.parametrize("edit, message", [
    (("precision = \"fp16\"", "precision = \"int4\""), "field 'precision': 'int4' is not one of"),
    (("target = \"tensorrt\"", "target = \"tpu\""), "field 'target'"),
    (("opt = 8", "opt = 64"), "need min <= opt <= max, got 1 / 64 / 32"),
    (("min = 1", "min = 0"), "shapes.batch.min': expected a positive integer"),
    (("workspace_mb = 512", ""), "field 'workspace_mb': expected a positive integer, got None"),
    (("[shapes.sequence]", "[shapes.seq]"), r"missing table \[shapes.sequence\]"),
    (("description", "description = = "), "not valid TOML"),
])
def test_bad_profiles_name_file_and_field(tmp_path, edit, message):
    path = tmp_path / "bad.toml"
    path.write_text(VALID.replace(*edit, 1))
    with pytest.raises(ExportError, match=message) as err:
        load_profile(path)
    assert str(path) in str(err.value)


def test_unknown_profile_lists_the_available_ones():
    with pytest.raises(ExportError, match="available: .*jetson-orin-fp16"):
        load_profile("toaster")
