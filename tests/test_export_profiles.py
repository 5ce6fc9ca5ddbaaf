"""Targets and their INT8 presets, target profiles (the shipped TOML files and validation of bad
ones) and the TensorRT build command derived from them. TensorRT itself is not needed; see
edgerank/export/profiles/README.md."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from onnx import numpy_helper

from edgerank.cli import main
from edgerank.export import ExportConfig, ExportError
from edgerank.export.profiles import PROFILE_DIR, available_profiles, load_profile
from edgerank.export.quantize import QUANTIZATION_PRESETS
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


def test_shipped_profiles_all_load_from_the_package():
    assert PROFILE_DIR.parent.name == "export" and PROFILE_DIR.parent.parent.name == "edgerank"
    assert {
        "jetson-orin-fp16",
        "jetson-orin-int8",
        "t4-int8",
        "cpu-avx2-int8",
        "cpu-avx512-vnni-int8",
        "arm64-int8",
    } <= set(available_profiles())
    for name in available_profiles():
        p = load_profile(name)
        assert p.batch.min <= p.batch.opt <= p.batch.max and p.sequence.max >= 128
        assert (p.workspace_mb is not None) == (p.target == "tensorrt")
    assert {name: load_profile(f"{name}-int8").target for name in ("cpu-avx2", "cpu-avx512-vnni", "arm64")} == {
        "cpu-avx2": "cpu-avx2",
        "cpu-avx512-vnni": "cpu-avx512-vnni",
        "arm64": "arm64",
    }


def resolved(**options) -> ExportConfig:
    config = ExportConfig(**options)
    config.resolve(load_profile(config.profile) if config.profile else None)
    return config


@pytest.mark.parametrize(
    "options, settings",
    [
        ({}, ("portable", True, "int8", True)),
        ({"target": "cpu-avx2"}, ("cpu-avx2", True, "int8", True)),
        ({"target": "cpu-avx512-vnni"}, ("cpu-avx512-vnni", False, "int8", True)),
        ({"target": "arm64"}, ("arm64", False, "int8", True)),
        ({"target": "arm64", "reduce_range": True, "weight_type": "uint8"}, ("arm64", True, "uint8", True)),
        ({"profile": "cpu-avx512-vnni-int8"}, ("cpu-avx512-vnni", False, "int8", True)),
    ],
)
def test_int8_settings_come_from_the_named_target(options, settings):
    config = resolved(precision="int8-dynamic", **options)
    assert (config.target, config.reduce_range, config.weight_type, config.per_channel) == settings


def test_portable_is_the_conservative_preset_and_fp32_takes_none():
    def settings(target: str) -> tuple:
        preset = QUANTIZATION_PRESETS[target]
        return preset.weight_type, preset.reduce_range, preset.per_channel

    assert settings("portable") == settings("cpu-avx2") == ("int8", True, True)  # 7-bit: safe without VNNI
    fp32 = resolved(precision="fp32")
    assert (fp32.target, fp32.reduce_range, fp32.weight_type, fp32.per_channel) == ("portable", None, None, None)
    with pytest.raises(ExportError, match="--target: 'cpu' is not one of portable, cpu-avx2, cpu-avx512-vnni"):
        resolved(precision="int8-dynamic", target="cpu")


def int8_weight_peak(graph) -> int:
    """The largest |value| among the graph's int8 weight tensors: at most 64 with 7-bit weights."""
    tensors = [
        numpy_helper.to_array(t)
        for t in onnx.load(str(graph)).graph.initializer
        if t.data_type == onnx.TensorProto.INT8 and len(t.dims) == 2
    ]
    return int(max(np.abs(t.astype(np.int16)).max() for t in tensors))


@pytest.mark.parametrize(
    "args, target, reduce_range",
    [
        ([], "portable", True),
        (["--target", "cpu-avx512-vnni"], "cpu-avx512-vnni", False),
    ],
)
def test_cli_target_picks_the_weights_and_the_manifest_records_it(
    tiny_cross_encoder, tmp_path, args, target, reduce_range
):
    out = tmp_path / "art"
    result = CliRunner().invoke(
        main,
        [
            "export",
            "--model",
            str(tiny_cross_encoder),
            "--out",
            str(out),
            "--precision",
            "int8-dynamic",
            "--max-length",
            "32",
            "--allow-untrained-head",
            *args,
        ],
    )
    assert result.exit_code == 0, result.output
    assert f"int8 settings for {target}: int8 weights, {7 if reduce_range else 8}-bit, per-channel" in result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["target"] == target and manifest["export"]["target"] == target
    assert manifest["export"]["quantization"]["reduce_range"] is reduce_range
    assert manifest["export"]["quantization"]["per_channel"] is True
    peak = int8_weight_peak(out / "model.onnx")
    assert peak <= 64 if reduce_range else peak > 64


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


@pytest.mark.parametrize(
    "edit, message",
    [
        (('precision = "fp16"', 'precision = "int4"'), "field 'precision': 'int4' is not one of"),
        (('target = "tensorrt"', 'target = "tpu"'), "field 'target'"),
        (("opt = 8", "opt = 64"), "need min <= opt <= max, got 1 / 64 / 32"),
        (("min = 1", "min = 0"), "shapes.batch.min': expected a positive integer"),
        (("workspace_mb = 512", ""), "field 'workspace_mb': expected a positive integer, got None"),
        (("[shapes.sequence]", "[shapes.seq]"), r"missing table \[shapes.sequence\]"),
        (("description", "description = = "), "not valid TOML"),
    ],
)
def test_bad_profiles_name_file_and_field(tmp_path, edit, message):
    path = tmp_path / "bad.toml"
    path.write_text(VALID.replace(*edit, 1))
    with pytest.raises(ExportError, match=message) as err:
        load_profile(path)
    assert str(path) in str(err.value)


def test_unknown_profile_lists_the_available_ones():
    with pytest.raises(ExportError, match="available: .*jetson-orin-fp16"):
        load_profile("toaster")
