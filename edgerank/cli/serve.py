"""``edgerank serve``: a local HTTP JSON ranking endpoint for kiosk apps in any language."""

from __future__ import annotations

import click

from ._common import run_guarded
from ._runtime import runtime_options

_LIMITS = (
    "max_body_bytes",
    "max_candidates",
    "max_connections",
    "concurrency",
    "request_timeout",
    "idle_timeout",
    "body_timeout",
    "max_explain_pairs",
)


@click.command("serve")
@click.option("--artifact", required=True, type=click.Path(), help="Artifact folder or .zip (from edgerank export).")
@click.option(
    "--index",
    type=click.Path(),
    help="Catalog index of a late-interaction/bi-encoder artifact "
    "(edgerank index): enables POST /search; a replaced index is swapped in while serving.",
)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Interface to bind. There is no authentication: keep it on loopback unless something else guards it.",
)
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--blend",
    "blends",
    multiple=True,
    metavar="[NAME=]FILE",
    help="Blend weights (JSON or TOML) a request may pick by NAME; a FILE without NAME is the default, "
    'used unless a request sends "blend": false. Repeatable.',
)
@click.option(
    "--max-body-bytes",
    default=2 * 1024 * 1024,
    show_default=True,
    type=click.IntRange(min=1),
    help="Larger requests get 413.",
)
@click.option(
    "--max-candidates",
    default=1000,
    show_default=True,
    type=click.IntRange(min=1),
    help="Requests with more products get 422.",
)
@click.option(
    "--max-connections",
    default=256,
    show_default=True,
    type=click.IntRange(min=1),
    help="Open connections served at once (one thread each); one more gets 503.",
)
@click.option(
    "--concurrency",
    default=1,
    show_default=True,
    type=click.IntRange(min=1),
    help="Requests scored at once; the rest wait their turn.",
)
@click.option(
    "--request-timeout",
    default=30.0,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    help="Seconds a request may wait for its turn before a 503.",
)
@click.option(
    "--idle-timeout",
    default=30.0,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    help="Seconds to send a request's headers (and to keep an idle connection).",
)
@click.option(
    "--body-timeout",
    default=10.0,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    help="Seconds to send a request's body once its headers are in; then 408.",
)
@click.option(
    "--max-explain-pairs",
    default=2000,
    show_default=True,
    type=click.IntRange(min=0),
    help="Most extra pairs an explanation may cost (query words x explained items); 0 turns explain off.",
)
@click.option(
    "--allow-origin",
    "allow_origins",
    multiple=True,
    metavar="ORIGIN",
    help="A web origin whose pages may call the server (requests with any other Origin get 403).",
)
@click.option("--quiet", is_flag=True, help="No access log.")
@runtime_options
@run_guarded
def command(artifact, index, host, port, blends, allow_origins, quiet, threads, providers, max_batch_size, **limits):
    """POST /rank {query, products, top_k?, explain?, blend?} -> ranked ids and scores; POST /search {query,
    top_k?, depth?} with --index; GET /health; GET /metrics."""
    from ..runtime.serve import ServeLimits, serve
    from ._runtime import load_ranker

    named = _read_blends(blends)
    ranker = load_ranker(artifact, threads, providers, max_batch_size, index)
    if host not in ("127.0.0.1", "localhost", "::1"):
        click.echo(f"warning: binding {host}: anyone who can reach this port can query the ranker", err=True)
    serve(
        ranker,
        host,
        port,
        blends=named,
        quiet=quiet,
        limits=ServeLimits(**{k: limits[k] for k in _LIMITS}, allow_origins=tuple(allow_origins)),
    )


def _read_blends(specs: tuple[str, ...]) -> dict:
    """``NAME=FILE`` or ``FILE`` (named "default") into blends, each file read once at start."""
    from ..runtime import Blend

    named = {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        name, path = (name, path) if sep else ("default", spec)
        if not name or not path:
            raise click.BadParameter(f"{spec!r}: expected NAME=FILE or FILE", param_hint="--blend")
        if name in named:
            raise click.BadParameter(f"blend {name!r} given twice", param_hint="--blend")
        named[name] = Blend.from_file(path)
    return named
