"""``edgerank export``: a teacher or student folder -> a verified ONNX artifact."""

from __future__ import annotations

import click

from ..export.config import DEFAULT_TARGET, PRECISIONS, TARGETS, WEIGHT_TYPES
from ._common import BAD_INPUT_HELP, data_options, parse_data_options, run_guarded

EPILOG = BAD_INPUT_HELP + (
    "\n\n\b\nExit 2 with nothing written (a previous artifact at --out is kept) when the fp32 graph's scores\n"
    "differ from torch by more than --parity-atol, or when --eval-data is given and the exported model,\n"
    "scored by the runtime on serving lists (judged products topped up to --gate-list-size from the\n"
    "table's catalog), loses more than --max-quality-drop of the fp32 model's nDCG@10 gain over BM25 on\n"
    "the random-fill lists, or its top-10 overlap with the fp32 model falls below --min-agreement on\n"
    "the BM25-fill or random-fill lists."
)


@click.command("export", epilog=EPILOG)
@click.option(
    "--model",
    required=True,
    type=click.Path(),
    help="Cross-encoder (teacher or student): a folder or a Hugging Face Hub id.",
)
@click.option("--out", required=True, type=click.Path(), help="Artifact folder to write (replaced atomically).")
@click.option("--precision", type=click.Choice(PRECISIONS), help="Graph precision (default: the profile's, else fp32).")
@click.option("--calibration", type=click.Path(), help="Table of query-product pairs to calibrate int8-static on.")
@click.option("--calibration-size", default=300, show_default=True, type=int, help="Pairs in the calibration set.")
@click.option(
    "--calibration-method", default="minmax", show_default=True, type=click.Choice(["minmax", "entropy", "percentile"])
)
@click.option("--seed", default=0, show_default=True, type=int, help="Seed for drawing the calibration set.")
@click.option(
    "--optimize", is_flag=True, help="Fuse attention/LayerNorm/GELU with ONNX Runtime's transformer optimizer."
)
@click.option(
    "--target",
    type=click.Choice(TARGETS),
    help=f"Where it will run; for INT8 a named preset of weight type, 7-bit reduce_range and per-channel "
    f"scales (default: the profile's, else {DEFAULT_TARGET}: 7-bit weights, safe on any x86-64 or ARM64 "
    "CPU; cpu-avx512-vnni and arm64 keep 8 bits). See edgerank/export/profiles/README.md.",
)
@click.option(
    "--profile",
    help="Target profile: a name shipped with edgerank (e.g. jetson-orin-fp16, cpu-avx2-int8) or a TOML file.",
)
@click.option("--max-length", default=128, show_default=True, type=int, help="Tokens per query-product pair.")
@click.option("--eval-data", type=click.Path(), help="Judged table for the quality gate and the probability fit.")
@click.option(
    "--gate-list-size",
    default=100,
    show_default=True,
    type=int,
    help="Serving-list length the quality gate scores (0: the judged lists only).",
)
@click.option(
    "--max-quality-drop",
    default=0.01,
    show_default=True,
    type=float,
    help="Largest allowed loss, as a share of the fp32 model's nDCG@10 gain over BM25 (random-fill lists).",
)
@click.option(
    "--min-agreement",
    default=0.97,
    show_default=True,
    type=float,
    help="Smallest allowed top-10 overlap with the fp32 model's order, on every fill.",
)
@click.option(
    "--reduce-range/--no-reduce-range", default=None, help="7-bit int8 weights (default: the target's preset)."
)
@click.option(
    "--weight-type",
    type=click.Choice(list(WEIGHT_TYPES)),
    help="int8-dynamic weights (default: the target's preset, int8): int8 (fastest kernels; 7-bit where "
    "the target may lack VNNI) or uint8 (full 8 bits without saturation on any x86 CPU, "
    "slower kernels).",
)
@click.option(
    "--quantize-embeddings/--keep-embeddings-fp32",
    default=True,
    show_default=True,
    help="int8 (CPU targets): also quantize the word-embedding table, most of a small model's size, "
    "in 8-bit blocks of 32 values.",
)
@click.option(
    "--prune-vocab",
    multiple=True,
    type=click.Path(),
    help="Keep only the wordpieces these tables use (judged queries and products, or a product catalog; "
    "repeatable), plus every single character: a smaller embedding table, the same scores on that "
    "text; other words are spelled from smaller pieces (gate it with --eval-data).",
)
@click.option("--parity-atol", default=1e-3, show_default=True, type=float)
@click.option("--allow-untrained-head", is_flag=True, help="Export a backbone whose classifier is freshly initialised.")
@click.option("--archive", type=click.Path(), help="Also write the artifact as one .zip file here.")
@data_options
@run_guarded
def command(
    model,
    out,
    precision,
    calibration,
    calibration_size,
    calibration_method,
    seed,
    optimize,
    target,
    profile,
    max_length,
    eval_data,
    gate_list_size,
    max_quality_drop,
    min_agreement,
    reduce_range,
    weight_type,
    quantize_embeddings,
    prune_vocab,
    parity_atol,
    allow_untrained_head,
    archive,
    columns,
    label_map,
    gain_offset,
):
    """Export to ONNX, check parity against torch, quantize, gate on quality, write the artifact."""
    from ..artifact import load_artifact
    from ..export import export_artifact

    path = export_artifact(
        model,
        out,
        precision,
        max_length,
        archive=archive,
        read_kwargs=parse_data_options(columns, label_map, gain_offset),
        calibration=calibration,
        calibration_size=calibration_size,
        calibration_method=calibration_method,
        seed=seed,
        optimize=optimize,
        target=target,
        profile=profile,
        eval_data=eval_data,
        gate_list_size=gate_list_size,
        max_quality_drop=max_quality_drop,
        min_agreement=min_agreement,
        reduce_range=reduce_range,
        weight_type=weight_type,
        quantize_embeddings=quantize_embeddings,
        prune_vocab=tuple(prune_vocab),
        parity_atol=parity_atol,
        require_head=not allow_untrained_head,
    )
    click.echo(summary(load_artifact(path).manifest, path))


def summary(manifest: dict, path) -> str:
    """What was written and how close it stayed to torch, in a few lines."""
    lines = [f"wrote {path} ({manifest['precision']}, target {manifest['target']})"]
    settings = manifest["export"]
    if manifest["precision"].startswith("int8"):
        lines.append(
            f"int8 settings for {manifest['target']}: {settings['weight_type']} weights, "
            f"{'7' if settings['reduce_range'] else '8'}-bit, "
            f"{'per-channel' if settings['per_channel'] else 'per-tensor'}"
        )
    for name, p in manifest["parity"].items():
        if isinstance(p, dict):
            lines.append(
                f"parity {name} vs torch on {manifest['parity']['pairs']} pairs: max|diff| "
                f"{p['max_abs_diff']:.2e}, Spearman {p['spearman']:.4f}, top-10 overlap {p['top10_overlap']:.3f}"
            )
    vocab = manifest["tokenizer"].get("vocabulary")
    if vocab:
        lines.append(
            f"vocabulary pruned to {vocab['kept']:,} of {vocab['of']:,} wordpieces "
            f"({vocab['used_by_texts']:,} used by {vocab['texts']:,} texts); parity pairs tokenized as before: "
            f"{vocab['unchanged_parity_pairs']:.1%}"
        )
    q = manifest.get("quality")
    if q:
        lines.append(quality_line(q))
    return "\n".join(lines)


def quality_line(q: dict) -> str:
    """The gate's numbers: nDCG@10 and the gain kept on the gated lists, top-10 overlap on every fill."""
    gated = q.get("comparison", {}).get(q.get("gated_on"))
    if gated is None:  # an artifact gated before serving lists existed
        return (
            f"quality on {q['queries']} queries: nDCG@10 {q['exported']['ndcg@10']:.4f} vs fp32 "
            f"{q['fp32']['ndcg@10']:.4f} (BM25 {q['bm25']['ndcg@10']:.4f})"
        )
    from ..core.metrics import format_kept

    where = "judged lists" if q["gated_on"] == "judged" else f"{q['gated_on']}-fill lists of {q['list_size']}"
    overlaps = ", ".join(f"{name} {v:.3f}" for name, v in q["top10_overlap"].items())
    return (
        f"quality on {q['queries']} queries, {where}: nDCG@10 {gated['exported']['ndcg@10']:.4f} vs fp32 "
        f"{gated['fp32']['ndcg@10']:.4f} (BM25 {gated['bm25']['ndcg@10']:.4f}); fp32 gain kept "
        f"{format_kept(q['gain_kept'], q.get('gain_kept_ci95'))}; top-10 overlap with fp32: {overlaps}"
    )
