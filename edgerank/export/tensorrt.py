"""TensorRT: the ``trtexec`` build script written into a TensorRT-target artifact, and engine
building with the ``tensorrt`` Python API (TensorRT 10).

TensorRT cannot be installed where edgerank is developed (its wheels need NVIDIA's CUDA stack and
no GPU there has it), so ``build_engine`` is written against the TensorRT 10 Python API
documentation and is untested; everything it derives from the profile (shapes, flags, workspace)
is computed by plain functions shared with the trtexec command, and those are tested.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Sequence
from pathlib import Path

from .config import ExportError
from .profiles import TargetProfile

ENGINE_FLAGS = {"fp32": (), "fp16": ("fp16",), "int8-static": ("int8", "fp16")}


def engine_flags(precision: str) -> tuple[str, ...]:
    """Builder flags per profile precision. A QDQ graph (int8-static) carries its own scales (explicit
    quantization); fp16 is enabled next to int8 so layers left unquantized (LayerNorm, Softmax) do not
    fall back to fp32."""
    if precision not in ENGINE_FLAGS:
        raise ExportError(
            f"precision {precision!r} cannot be built by TensorRT (use fp32, fp16 or int8-static; "
            "int8-dynamic uses ONNX Runtime-only operators)"
        )
    return ENGINE_FLAGS[precision]


def input_shapes(profile: TargetProfile, inputs: Sequence[str], which: str) -> dict[str, tuple[int, int]]:
    """Every graph input is [batch, sequence]; TensorRT needs each one's min/opt/max explicitly."""
    return {name: profile.input_shapes(which) for name in inputs}


def check_sequence(profile: TargetProfile, max_length: int) -> None:
    """An engine cannot accept a sequence longer than its profile's max: refuse a mismatch at export."""
    if profile.sequence.max < max_length:
        raise ExportError(
            f"profile {profile.name}: shapes.sequence.max = {profile.sequence.max} is below "
            f"--max-length {max_length}; the engine would reject full-length pairs"
        )


def trtexec_command(
    profile: TargetProfile, inputs: Sequence[str], onnx_file: str = "model.onnx", engine_file: str = "model.plan"
) -> list[str]:
    """The ``trtexec`` argument list (TensorRT 10 spelling: --memPoolSize replaces --workspace)."""

    def spec(which: str) -> str:
        return ",".join(f"{n}:{b}x{s}" for n, (b, s) in input_shapes(profile, inputs, which).items())

    return (
        [
            "trtexec",
            f"--onnx={onnx_file}",
            f"--saveEngine={engine_file}",
            f"--minShapes={spec('min')}",
            f"--optShapes={spec('opt')}",
            f"--maxShapes={spec('max')}",
        ]
        + [f"--{flag}" for flag in engine_flags(profile.precision)]
        + [f"--memPoolSize=workspace:{profile.workspace_mb}M"]
    )


def build_script(profile: TargetProfile, inputs: Sequence[str]) -> str:
    """``build_engine.sh``: run on the device, next to model.onnx, to build model.plan."""
    cmd = trtexec_command(profile, inputs)
    body = " \\\n  ".join(shlex.quote(part) for part in cmd)
    return (
        "#!/bin/sh\n"
        f"# Build a TensorRT engine for profile '{profile.name}' ({profile.description}).\n"
        "# Run on the target device (TensorRT 10+, trtexec on PATH) inside this artifact folder.\n"
        "# Or, with the tensorrt Python package: edgerank build-engine --artifact . "
        f"--profile {profile.name} --out model.plan\n"
        'set -e\ncd "$(dirname "$0")"\n' + body + "\n"
    )


def import_tensorrt():
    """The ``tensorrt`` module, or an error that says how to get it."""
    try:
        import tensorrt
    except ImportError:
        raise ExportError(
            "building an engine needs the TensorRT Python package (TensorRT 10+), which is not "
            "installed: on a Jetson it comes with JetPack; elsewhere `pip install tensorrt` on a "
            "machine with an NVIDIA GPU and CUDA. Or run the artifact's build_engine.sh (trtexec)."
        ) from None
    return tensorrt


def build_engine(
    onnx_path: str | os.PathLike, profile: TargetProfile, inputs: Sequence[str], out: str | os.PathLike
) -> Path:
    """Parse the ONNX graph, add one optimization profile, set precision flags and workspace, and write
    the serialized engine (atomically). Not exercised in CI, which has no TensorRT or NVIDIA GPU."""
    trt = import_tensorrt()
    from ..io import atomic_write_bytes

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    # TensorRT 10 networks are always explicit-batch; the flag only exists (deprecated) for older code.
    explicit = getattr(trt.NetworkDefinitionCreationFlag, "EXPLICIT_BATCH", None)
    network = builder.create_network(0 if explicit is None else 1 << int(explicit))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ExportError(f"{onnx_path}: TensorRT cannot parse the graph: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, profile.workspace_mb << 20)
    for flag in engine_flags(profile.precision):
        config.set_flag(getattr(trt.BuilderFlag, flag.upper()))
    opt_profile = builder.create_optimization_profile()
    mins, opts, maxs = (input_shapes(profile, inputs, w) for w in ("min", "opt", "max"))
    for name in inputs:
        opt_profile.set_shape(name, mins[name], opts[name], maxs[name])
    config.add_optimization_profile(opt_profile)
    engine = builder.build_serialized_network(network, config)
    if engine is None:
        raise ExportError(f"{onnx_path}: TensorRT failed to build an engine for profile {profile.name}")
    atomic_write_bytes(out, bytes(engine))
    return Path(out)
