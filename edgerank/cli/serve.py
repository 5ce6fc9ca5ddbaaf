"""``edgerank serve``: a local HTTP JSON ranking endpoint for kiosk apps in any language."""

from __future__ import annotations

import click

from ._common import run_guarded
from ._runtime import runtime_options


@click.command("serve")
@click.option("--artifact", required=True, type=click.Path(), help="Artifact folder or .zip (from edgerank export).")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Interface to bind. There is no authentication: keep it on loopback unless something else guards it.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
@click.option("--max-body-bytes", default=2 * 1024 * 1024, show_default=True, type=click.IntRange(min=1),
              help="Larger requests get 413.")
@click.option("--max-candidates", default=1000, show_default=True, type=click.IntRange(min=1),
              help="Requests with more products get 422.")
@click.option("--quiet", is_flag=True, help="No access log.")
@runtime_options
@run_guarded
def command(artifact, host, port, max_body_bytes, max_candidates, quiet, threads, providers, max_batch_size, blend):
    """POST /rank {query, products, top_k?, explain?, blend?} -> ranked ids and scores; GET /health."""
    from ..runtime.serve import serve
    from ._runtime import load_ranker

    ranker, blend_weights = load_ranker(artifact, threads, providers, max_batch_size, blend)
    if host not in ("127.0.0.1", "localhost", "::1"):
        click.echo(f"warning: binding {host}: anyone who can reach this port can query the ranker", err=True)
    serve(ranker, host, port, blend=blend_weights, max_body_bytes=max_body_bytes,
          max_candidates=max_candidates, quiet=quiet)
