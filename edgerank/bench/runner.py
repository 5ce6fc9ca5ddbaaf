"""One benchmark run: every subject on the same candidate lists, then quality, ratios and the machine.

Order of work per subject: load (timed, imports excluded), peak RSS in a fresh process, one untimed
pass over the judged lists (quality: every evaluable query unless ``quality_queries`` says fewer) and
one over the sampled queries' BM25-filled serving lists of the headline N, then for each candidate
count N the timing loop over the sampled queries' lists of N (the random-filled serving lists). The
reference GEMM is timed before every subject and after the last, and each subject's latency is
divided by the references around it, so a machine that slows down midway (another job starting)
moves both numbers together. Last, every peer runs again interleaved list by list with its edgerank
artifact (``paired.py``): the peer ratios the report leads with. Quality is the shared comparison of
``edgerank.core.compare`` on the serving and judged lists.
"""

from __future__ import annotations

import datetime as dt
import os
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from ..artifact import sha256_file
from ..core.compare import compare
from ..core.groups import evaluable
from ..core.metrics import evaluate, gain_kept
from ..core.serving import serving_lists
from ..data import group_queries, read_table, table_catalog
from ..metrics import catalog_bm25
from . import BenchError
from .candidates import build_candidates, product_records, sample_queries
from .catalog import catalog_products, index_catalog, is_catalog_artifact
from .machine import describe_machine
from .memory import probe
from .paired import SETTLE_S, interleave, paired_ratio
from .peers import PEERS, PeerUnavailable, make_peers
from .reference import ReferenceWorkload
from .subjects import ArtifactSubject, Subject, TorchSubject, timed_load
from .timing import Latency

SCHEMA = 1
BM25 = "bm25"  # the baseline's key among the subjects' scores
_MB = 1024 * 1024


@dataclass
class BenchConfig:
    """Everything that decides what a run measures; saved in the results so a run can be repeated."""

    data: str
    artifacts: list[str] = field(default_factory=list)
    models: list[str] = field(default_factory=list)
    teacher: str | None = None
    candidates: list[int] = field(default_factory=lambda: [10, 50, 100, 500])
    threads: int | None = None  # None: every core this process may use
    warmup: int = 3
    repeat: int = 3
    queries: int | None = 100  # None: every query with two distinct labels
    #: Judged lists for quality (None: all). Separate from the timed sample because quality is cheap
    #: to measure and noisy on few queries: on Home Depot one student kept 78% of the teacher's gain
    #: on 40 queries and 94% on all 961.
    quality_queries: int | None = None
    seed: int = 0
    max_length: int = 128
    peers: list[str] = field(default_factory=list)
    memory: bool = True
    gpu: bool = True
    settle_s: float = SETTLE_S  # idle before each interleaved call (paired.py); tests shorten it
    only: list[str] | None = None  # subject names to bench (a --check retry re-times the regressed ones); None: all
    reference: ReferenceWorkload = field(default_factory=ReferenceWorkload)
    columns: Mapping[str, str] | None = None
    label_map: Mapping[str, float] | None = None
    gain_offset: float | str = "auto"

    def __post_init__(self):
        if not self.artifacts and not self.models and not self.teacher:
            raise BenchError("nothing to benchmark: give --artifact, --model or --teacher")
        if self.repeat < 1 or self.warmup < 0:
            raise BenchError(f"--repeat must be >= 1 and --warmup >= 0 (got {self.repeat}, {self.warmup})")
        unknown = sorted(set(self.peers) - set(PEERS))
        if unknown:  # checked before any data is read, so the error names the option, not a symptom
            raise BenchError(f"--peers: unknown peer(s) {', '.join(unknown)} (choose from {', '.join(PEERS)})")
        if self.threads is None:
            self.threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def headline_n(candidates: list[int]) -> int:
    """The candidate count the summary, the plot and agreement use: 100 when benched, else the largest."""
    return 100 if 100 in candidates else max(candidates)


def _unique_names(paths: list[str]) -> list[str]:
    names = [Path(p).name or str(p) for p in paths]
    return [n if names.count(n) == 1 else f"{Path(p).parent.name}/{n}" for n, p in zip(names, paths)]


@dataclass(frozen=True)
class Planned:
    role: str  # teacher | torch | edgerank | peer | gpu
    subject: Subject
    peer_of: str | None = None  # the edgerank artifact a peer runs the weights of


def plan_subjects(
    config: BenchConfig, indexes: Mapping[str, dict[str, Any]] | None = None
) -> tuple[list[Planned], list[dict[str, str]]]:
    """Subjects in run order, and notes for subjects that cannot run here. ``indexes`` maps a catalog
    student's artifact path to its index (``catalog.index_catalog``)."""
    from .gpu import gpu_subjects

    plan: list[Planned] = []
    skipped: list[dict[str, str]] = []
    models = [m for m in config.models if not config.teacher or Path(m).resolve() != Path(config.teacher).resolve()]
    gpu_models: list[tuple[str, str]] = []
    if config.teacher:
        name = f"teacher {Path(config.teacher).name} (torch)"
        plan.append(
            Planned(
                "teacher",
                TorchSubject(name=name, path=config.teacher, threads=config.threads, max_length=config.max_length),
            )
        )
        gpu_models.append((f"teacher {Path(config.teacher).name}", config.teacher))
    for name, path in zip(_unique_names(models), models):
        plan.append(
            Planned(
                "torch",
                TorchSubject(name=f"{name} (torch)", path=path, threads=config.threads, max_length=config.max_length),
            )
        )
        gpu_models.append((name, path))
    indexes = indexes or {}
    artifacts = [
        ArtifactSubject(
            name=name, path=path, threads=config.threads, index=indexes[path]["path"] if path in indexes else None
        )
        for name, path in zip(_unique_names(config.artifacts), config.artifacts)
    ]
    st_sources: set[Path] = set()  # the torch peer runs the source model: once for its fp32 and INT8 artifacts
    for art in artifacts:
        plan.append(Planned("edgerank", art))
        if art.index is not None:  # no peer runs a catalog student's towers
            continue
        peers, notes = make_peers(config.peers, art, threads=config.threads, max_length=config.max_length)
        for peer in peers:
            source = Path(peer.model_dir).resolve() if peer.type == "st" else None
            if source not in st_sources:
                plan.append(Planned("peer", peer, peer_of=art.name))
            if source is not None:
                st_sources.add(source)
        skipped += notes
    if config.gpu:
        for art in artifacts:  # the student an artifact was exported from, in torch on the GPU
            source = art.describe().get("source_model")
            if source and (Path(source) / "config.json").is_file():
                gpu_models.append((f"{art.name} source", source))
        unique: dict[Path, tuple[str, str]] = {}
        for name, path in gpu_models:
            unique.setdefault(Path(path).resolve(), (name, path))
        gpu_models = list(unique.values())
        subjects, notes = gpu_subjects(gpu_models, artifacts, max_length=config.max_length)
        plan += [Planned("gpu", s) for s in subjects]
        skipped += notes
    return plan, skipped


def run_bench(config: BenchConfig, log: Callable[[str], None] = lambda m: None) -> dict[str, Any]:
    """Benchmark every subject of ``config``; the returned dict is what ``--json`` writes."""
    df, read_report = read_table(config.data, columns=config.columns, label_map=config.label_map)
    sample = sample_queries(group_queries(df, config.gain_offset), config.queries, config.seed)
    try:
        lists = build_candidates(df, sample, sorted(set(config.candidates)), config.seed)
    except ValueError as e:
        raise BenchError(f"{config.data}: {e}") from None
    judged_groups = sample_queries(group_queries(df, config.gain_offset), config.quality_queries, config.seed)
    catalog = table_catalog(df)
    quality_lists = _quality_lists(judged_groups, sample, lists, catalog, config.seed)
    untimed = {
        name: [(g.query, product_records(df, g)) for g in groups]
        for name, groups in quality_lists.items()
        if name != "random"
    }  # random: the timed list of N
    records = {n: [(g.query, product_records(df, g)) for g in groups] for n, groups in lists.items()}
    with tempfile.TemporaryDirectory(prefix="edgerank-bench-") as scratch:
        indexes = {}  # catalog students rank from a warm index of the data's whole catalog
        for i, path in enumerate(p for p in config.artifacts if is_catalog_artifact(p)):
            log(f"indexing the catalog for {path}")
            indexes[path] = index_catalog(path, catalog_products(df), Path(scratch) / f"index-{i}", config.threads)
        plan, skipped = plan_subjects(config, indexes)
        if config.only is not None:
            plan = [p for p in plan if p.subject.name in config.only]
        log(
            f"{len(sample)} timed queries ({len(judged_groups)} for quality), candidate lists of "
            f"{', '.join(map(str, lists))}; {len(plan)} subjects; {config.threads} threads"
        )

        references = [config.reference.run(config.threads)]
        results: list[dict[str, Any]] = []
        scores: dict[str, dict[Any, list[np.ndarray]]] = {}
        for i, item in enumerate(plan, 1):
            subject = item.subject
            log(f"[{i}/{len(plan)}] {subject.name}")
            entry, subject_scores = _bench_subject(item, untimed, records, config)
            references.append(config.reference.run(config.threads))
            if subject_scores is not None:
                around = references[-2]["samples_ms"] + references[-1]["samples_ms"]
                ref_ms, ref_floor = float(np.median(around)), float(np.min(around))
                for lat in entry["latency"].values():
                    lat["reference_ms"] = ref_ms
                    lat["ratio_to_reference"] = lat["p50_ms"] / ref_ms
                    lat["floor_ratio_to_reference"] = lat["min_ms"] / ref_floor
                scores[subject.name] = subject_scores
                if getattr(subject, "index", None):
                    entry["index"] = {k: v for k, v in indexes[subject.path].items() if k != "path"}
                log("    " + ", ".join(f"N={n}: p50 {v['p50_ms']:.1f} ms" for n, v in entry["latency"].items()))
            else:
                skipped.append({"name": subject.name, "reason": entry["skipped"]})
                log(f"    skipped: {entry['skipped']}")
            results.append(entry)

        _add_paired(plan, results, records, config, log)
        bm25, bm25_scores = _bm25(quality_lists, lists, catalog)
        teacher = next((p.subject.name for p in plan if p.role == "teacher" and p.subject.name in scores), None)
        _add_quality(results, scores, quality_lists, lists, bm25, bm25_scores, teacher)
        _add_ratios(results, teacher)
        ref_ms = [r["ms"] for r in references]
        return {
            "schema": SCHEMA,
            "edgerank_version": __version__,
            "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "machine": describe_machine(),
            "workload": {
                "data": str(config.data),
                "data_name": Path(config.data).name,
                "data_sha256": sha256_file(config.data),
                "queries": len(sample),
                "quality_queries": len(judged_groups),
                "candidates": sorted(lists),
                "headline_n": headline_n(sorted(lists)),
                "seed": config.seed,
                "max_length": config.max_length,
                "threads": config.threads,
                "warmup": config.warmup,
                "repeat": config.repeat,
                "settle_s": config.settle_s,
                "read_warnings": read_report.warnings(),
            },
            "reference": {
                "ms": float(np.median(ref_ms)),
                "runs_ms": ref_ms,
                "shape": references[0]["shape"],
                "gflops": float(np.median([r["gflops"] for r in references])),
            },
            "bm25": bm25,
            "subjects": [r for r in results if "skipped" not in r],
            "skipped": skipped,
        }


def _bench_subject(item: Planned, untimed, records, config: BenchConfig):
    """One subject's entry (or a skip note) and its scores: ``{"judged": [...], "bm25": [...], n: [...]}``
    (``untimed``: the quality lists scored once, outside the timing loop)."""
    subject = item.subject
    entry: dict[str, Any] = {"name": subject.name, "role": item.role, "type": subject.type, "peer_of": item.peer_of}
    try:
        entry.update(subject.describe())
        load_ms = timed_load(subject, warm=subject.in_process)
        if subject.in_process:
            entry["load_ms"] = load_ms
            if config.memory:
                largest = max(records)
                entry["memory"] = probe(subject, *records[largest][0])
        subject_scores: dict[Any, list[np.ndarray]] = {}
        for name, lists in untimed.items():
            _, subject_scores[name] = subject.measure(lists, warmup=0, repeat=1)
        entry["latency"] = {}
        for n, lists in records.items():
            seconds, subject_scores[n] = subject.measure(lists, warmup=config.warmup, repeat=config.repeat)
            entry["latency"][str(n)] = vars(Latency.from_seconds(seconds, n))
        if not subject.in_process:
            entry["load_ms"] = subject.reported.get("load_ms")
            entry["memory"] = {
                "peak_rss_mb": subject.reported.get("peak_rss_mb"),
                "note": "peak of the peer's own process over the whole run",
            }
            entry["versions"] = subject.reported.get("versions")
    except PeerUnavailable as e:
        return {"name": subject.name, "role": item.role, "skipped": str(e)}, None
    finally:
        subject.close()
    entry["size_mb"] = entry.pop("size_bytes") / _MB
    entry["notes"] = subject.notes
    return entry, subject_scores


def _add_paired(
    plan: list[Planned], results: list[dict[str, Any]], records, config: BenchConfig, log: Callable[[str], None]
) -> None:
    """Each measured peer timed again, interleaved list by list with its edgerank artifact
    (``paired.py``): the peer ratio that machine drift between subjects cannot move."""
    measured = {e["name"]: e for e in results if "latency" in e}
    by_name = {p.subject.name: p.subject for p in plan}
    for item in plan:
        if item.role != "peer" or item.subject.name not in measured or item.peer_of not in measured:
            continue
        peer, edgerank, entry = item.subject, by_name[item.peer_of], measured[item.subject.name]
        log(f"interleaved: {peer.name} with {edgerank.name}")
        try:
            edgerank.load()
            peer.load()
            for n, lists in records.items():
                seconds = interleave(
                    edgerank, peer, lists, warmup=config.warmup, repeat=config.repeat, settle=config.settle_s
                )
                entry["latency"][str(n)]["paired"] = paired_ratio(*seconds)
        except PeerUnavailable as e:
            entry["notes"].append(f"no interleaved timing: {e}")
        finally:
            peer.close()
            edgerank.close()


def _quality_lists(judged, sample, lists, catalog, seed: int) -> dict[str, list]:
    """The list sets quality is compared on (``edgerank.core.compare``): serving lists of the headline
    N over the timed sample (the random fill is the timed list of N itself; the BM25 fill is scored
    once more, untimed), then the judged lists of the quality sample."""
    head = headline_n(sorted(lists))
    out = {"bm25": serving_lists(sample, catalog, "bm25", head, seed)}
    if evaluable(lists[head]):  # a list of N cut below two distinct labels has nothing to compare
        out["random"] = lists[head]
    out["judged"] = judged
    return out


def _bm25(quality_lists, lists, catalog) -> tuple[dict[str, Any], dict[Any, list[np.ndarray]]]:
    """BM25's metrics on the judged lists, each list of N and the serving lists, and its scores, from
    one index over the data's catalog."""
    scores = catalog_bm25({**quality_lists, **{n: groups for n, groups in lists.items()}}, catalog)
    out = {"judged": evaluate(quality_lists["judged"], scores["judged"])}
    for n, groups in lists.items():
        out[str(n)] = _evaluate_or_none(groups, scores[n])
    out["serving"] = {name: evaluate(quality_lists[name], scores[name]) for name in quality_lists if name != "judged"}
    return out, scores


def _evaluate_or_none(groups, scores) -> dict[str, float] | None:
    try:
        return evaluate(groups, scores)
    except ValueError:  # lists cut below two distinct labels (N smaller than the judged lists)
        return None


def _add_quality(results, scores, quality_lists, lists, bm25, bm25_scores, teacher: str | None) -> None:
    """The shared comparison (``edgerank.core.compare``) of every subject with BM25 and the teacher on
    the serving and judged lists, into each entry's ``quality``: the judged row at the top level (as
    earlier results), fidelity to the teacher on the headline list of N, and ``serving`` per fill;
    nDCG@10 / MRR@10 (and the gain kept) on each list of N go to that N's latency entry."""
    head = headline_n(sorted(lists))
    ranked = {name: {k: own[k if k != "random" else head] for k in quality_lists} for name, own in scores.items()}
    ranked[BM25] = {k: bm25_scores[k] for k in quality_lists}
    comparison = compare(quality_lists, ranked, teacher=teacher, baseline=BM25)
    for entry in results:
        if entry["name"] not in scores:
            continue
        row = {k: comparison[k][entry["name"]] for k in comparison}
        judged = row["judged"]
        entry["quality"] = {
            k: judged[k] for k in ("ndcg@10", "mrr@10", "queries", "gain_kept", "gain_kept_ci95") if k in judged
        }
        if teacher is not None and "random" in row:
            entry["quality"].update(
                {
                    "kendall_tau": row["random"]["kendall_tau"],
                    "top10_overlap": row["random"]["top10_overlap"],
                    "agreement_n": head,
                }
            )
        entry["quality"]["serving"] = {k: v for k, v in row.items() if k != "judged"} | {"size": head}
        own = scores[entry["name"]]
        for n, groups in lists.items():
            per_n = _evaluate_or_none(groups, own[n])
            if per_n is None:
                continue
            entry["latency"][str(n)].update({"ndcg@10": per_n["ndcg@10"], "mrr@10": per_n["mrr@10"]})
            t_n = _evaluate_or_none(groups, scores[teacher][n]) if teacher is not None else None
            if t_n is not None and bm25[str(n)] is not None:
                entry["latency"][str(n)]["gain_kept"] = gain_kept(
                    per_n["ndcg@10"], t_n["ndcg@10"], bm25[str(n)]["ndcg@10"]
                )


def _add_ratios(results, teacher_name: str | None) -> None:
    """Per N: each peer's p50 over its edgerank artifact's (>1: edgerank is faster), and every
    subject's speed-up over the teacher (teacher p50 / subject p50)."""
    by_name = {e["name"]: e for e in results if "latency" in e}
    teacher = by_name.get(teacher_name)
    for entry in by_name.values():
        paired = by_name.get(entry["peer_of"])
        for n, lat in entry["latency"].items():
            if paired is not None:
                lat["vs_edgerank"] = lat["p50_ms"] / paired["latency"][n]["p50_ms"]
            if teacher is not None:
                lat["speedup_vs_teacher"] = teacher["latency"][n]["p50_ms"] / lat["p50_ms"]
