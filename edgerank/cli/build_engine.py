"""``edgerank build-engine``: a TensorRT engine from a TensorRT-target artifact, on the device."""

from __future__ import annotations

import click

from ._common import run_guarded


@click.command("build-engine")
@click.option("--artifact", required=True, type=click.Path(), help="Artifact exported with --target tensorrt.")
@click.option("--profile", help="Target profile (default: the one the artifact was exported for).")
@click.option("--out", required=True, type=click.Path(), help="Engine file to write (e.g. model.plan).")
@run_guarded
def command(artifact, profile, out):
    """Build a serialized engine with the TensorRT Python API (needs TensorRT 10+ and its GPU)."""
    from ..export.engine import build_artifact_engine

    path = build_artifact_engine(artifact, out, profile)
    click.echo(f"wrote {path}")
