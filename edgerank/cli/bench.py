"""``edgerank bench``: latency, memory and quality of artifacts, torch models and peers; the CI gate."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import click
from click.core import ParameterSource

from ._common import BAD_INPUT_HELP, data_options, parse_data_options, run_guarded

EPILOG = BAD_INPUT_HELP + (
    "\n\n\b\nExit status: 0 done (and --check passed), 1 --check found a regression, 2 bad input\n"
    "(unreadable data, suite or baseline, a baseline of another workload)."
)


def _ints(value: str, option: str) -> list[int]:
    from ..bench import BenchError

    try:
        out = [int(x) for x in str(value).split(",") if x.strip()]
    except ValueError:
        raise BenchError(f"{option}: expected comma-separated integers, got {value!r}") from None
    if not out or min(out) < 1:
        raise BenchError(f"{option}: expected positive integers, got {value!r}")
    return out


def _list(value) -> list[str]:
    """A comma-separated option or a suite's TOML list, as a list of strings."""
    return [x.strip() for x in value.split(",") if x.strip()] if isinstance(value, str) else [str(x) for x in value]


def _merge_suite(options: dict, ctx: click.Context) -> None:
    """Fill options left at their defaults from the suite file (the command line wins)."""
    from ..bench.suite import load_suite

    for key, value in load_suite(options["suite"]).items():
        name = "json_out" if key == "json" else key
        if key in ("columns", "label_map") and isinstance(value, dict):
            value = [f"{k}={v}" for k, v in value.items()]
        if key in ("reference", "description"):
            options[key] = value
        elif ctx.get_parameter_source(name) in (ParameterSource.DEFAULT, None):
            options[name] = value


@click.command("bench", epilog=EPILOG)
@click.option("--artifact", "artifacts", multiple=True, type=click.Path(), help="edgerank artifact (repeatable).")
@click.option("--model", "models", multiple=True, type=click.Path(), help="Torch cross-encoder folder (repeatable).")
@click.option("--data", type=click.Path(), help="Judged table whose queries and catalog make the candidate lists.")
@click.option(
    "--teacher", type=click.Path(), help="Teacher folder (torch): gain kept and agreement are measured against it."
)
@click.option("--candidates", default="10,50,100,500", show_default=True, help="Candidate counts N per query.")
@click.option("--threads", type=click.IntRange(min=1), help="Threads for every subject (default: all usable cores).")
@click.option("--warmup", default=3, show_default=True, type=click.IntRange(min=0), help="Untimed calls per N.")
@click.option("--repeat", default=3, show_default=True, type=click.IntRange(min=1), help="Timed calls per query list.")
@click.option("--queries", default="100", show_default=True, help="Queries timed (a seeded sample), or 'all'.")
@click.option(
    "--quality-queries",
    default="all",
    show_default=True,
    help="Judged queries scored for quality (a seeded sample), or 'all'.",
)
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of the query sample and the fill-ins.")
@click.option("--max-length", default=128, show_default=True, type=int, help="Token limit for torch models and peers.")
@click.option("--peers", default="", help="Comma list of st, st-onnx, ort, optimum: run on each artifact's weights.")
@click.option(
    "--memory/--no-memory", default=True, show_default=True, help="Peak RSS per subject (a fresh process each)."
)
@click.option("--gpu/--no-gpu", default=True, show_default=True, help="Add CUDA subjects when a GPU is visible.")
@click.option("--suite", type=click.Path(), help="TOML suite (bench/suites/); command-line options win over it.")
@click.option("--json", "json_out", type=click.Path(), help="Write the results as JSON (e.g. a new baseline).")
@click.option("--markdown", type=click.Path(), help="Write the markdown report here.")
@click.option("--plot", type=click.Path(), help="Write the Pareto plot (quality vs p50) PNG here.")
@click.option("--check", type=click.Path(), help="Baseline JSON: exit 1 on a latency or quality regression.")
@click.option(
    "--max-regression",
    default="15%",
    show_default=True,
    help="Allowed rise of latency (fastest call) relative to the reference GEMM, for --check.",
)
@click.option(
    "--max-quality-drop",
    default=0.005,
    show_default=True,
    type=float,
    help="Allowed absolute drop of nDCG@10 and MRR@10, for --check.",
)
@click.option(
    "--retries",
    default=2,
    show_default=True,
    type=click.IntRange(min=0),
    help="Re-time the subjects --check sees a latency regression in (only those), up to this many "
    "times; each subject's best attempt is gated (a real slowdown survives, a noisy neighbour "
    "rarely does).",
)
@data_options
@run_guarded
def command(**options):
    """Benchmark artifacts (--artifact), torch models (--model, --teacher) and peers (--peers) on the
    same candidate lists: p50/p95/p99 per query of N candidates, pairs/s, size, load time, peak RSS,
    nDCG@10, MRR@10, the teacher's gain over BM25 kept and agreement with the teacher.

    \b
    CI gate:  edgerank bench --suite bench/suites/sample-shop.toml --check bench/baseline.json
    """
    from ..bench import BenchError, check
    from ..bench.plot import plot_pareto
    from ..bench.reference import ReferenceWorkload
    from ..bench.report import to_markdown, write_results
    from ..bench.runner import BenchConfig, run_bench

    if options["suite"]:
        _merge_suite(options, click.get_current_context())
    if not options["data"]:
        raise BenchError("--data is required (on the command line or in the suite)")
    queries, quality_queries = str(options["queries"]), str(options["quality_queries"])
    data_opts = parse_data_options(options["columns"], options["label_map"], options["gain_offset"])
    config = BenchConfig(
        data=options["data"],
        artifacts=list(options["artifacts"]),
        models=list(options["models"]),
        teacher=options["teacher"],
        candidates=_ints(",".join(_list(options["candidates"])), "--candidates"),
        threads=options["threads"],
        warmup=options["warmup"],
        repeat=options["repeat"],
        queries=None if queries == "all" else _ints(queries, "--queries")[0],
        seed=options["seed"],
        quality_queries=None if quality_queries == "all" else _ints(quality_queries, "--quality-queries")[0],
        max_length=options["max_length"],
        peers=_list(options["peers"]),
        memory=options["memory"],
        gpu=options["gpu"],
        reference=ReferenceWorkload(**options.get("reference", {})),
        **data_opts,
    )
    results = run_bench(config, log=lambda m: click.echo(m, err=True))
    click.echo(to_markdown(results))
    write_results(results, json_path=options["json_out"], markdown_path=options["markdown"])
    if options["plot"]:
        click.echo(f"Pareto plot: {plot_pareto(results, options['plot'])}")
    if options["check"]:
        try:
            baseline = json.loads(Path(options["check"]).read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise BenchError(f"{options['check']}: not a JSON baseline ({e})") from None
        limits = {
            "max_regression": check.parse_fraction(options["max_regression"]),
            "max_quality_drop": options["max_quality_drop"],
        }
        runs = [results]
        findings = check.compare(results, baseline, **limits)
        while (regressed := check.latency_regressed(findings)) and len(runs) <= options["retries"]:
            click.echo(
                f"check: latency regression on attempt {len(runs)}; re-timing {', '.join(regressed)} "
                f"(attempt {len(runs) + 1} of {options['retries'] + 1})",
                err=True,
            )
            runs.append(run_bench(dataclasses.replace(config, memory=False, only=regressed), log=lambda m: None))
            findings = check.compare(check.best_of(runs), baseline, **limits)
        passed, text = check.report(findings)
        click.echo(text)
        if not passed:
            sys.exit(1)
