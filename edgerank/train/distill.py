"""Distil a cross-encoder teacher into a small student that keeps its ranking."""

from __future__ import annotations

import dataclasses
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .. import __version__
from ..data import product_texts, read_table
from ..io import atomic_dir, write_json
from ..metrics import bm25_scorer
from ..modeling import ModelError, count_parameters, load_cross_encoder, load_tokenizer, resolve_model, tokenize_pairs
from .augment import DEFAULT_COPIES, augment_queries
from .loop import LoopConfig, resume_key, train
from .losses import ListwiseKLLoss, MarginMSELoss, PointwiseBCELoss, ScoreMSELoss, auto_temperature
from .students import (HiddenProjection, StudentSpec, check_not_larger, encoder_layers, matched_teacher_states,
                       select_layers, spread_layers, subclone)

TEACHER_LOSSES = ("margin-mse", "listwise-kl", "mse")
STUDENT_KINDS = ("cross-encoder", "late-interaction", "bi-encoder")


@dataclass
class DistillConfig:
    """A declarative distillation recipe (TextBrewer-style), saved with the student."""

    teacher: str
    train: str
    out: str
    dev: str | None = None
    layers: int | None = None  # keep N teacher layers (default 2 when neither student nor layers is given)
    teacher_layers: list[int] | None = None  # keep exactly these teacher layers (0-based) instead of spreading N
    student: str | None = None  # another local HF model as the student (cross-architecture)
    hidden_size: int | None = None  # narrower student, subcloned from the teacher
    losses: list[str] = field(default_factory=lambda: ["mse", "listwise-kl"])
    label_weight: float = 0.0  # weight of pointwise BCE on the table's labels, when it has them
    hidden_weight: float | None = None  # hidden-state transfer; default 1.0 for narrower students, else 0
    temperature: float | str = "auto"  # listwise-kl; "auto" = the teacher's median within-query spread
    max_length: int = 128
    extra_negatives: int = 0  # teacher-scored products from other queries added to each list
    negatives: str = "random"  # where they come from: random, or bm25 (the query's best unjudged lexical matches)
    # teacher-scored copies of each query's list under a perturbed query (train/augment.py); None: DEFAULT_COPIES
    # when the teacher scores the pairs, 0 with teacher_scores (a file made elsewhere lacks the copies)
    augment: int | None = None
    teacher_scores: str | None = None
    loop: LoopConfig = field(default_factory=lambda: LoopConfig(lr=1e-4))
    columns: dict[str, str] = field(default_factory=dict)
    label_map: dict[str, float] | None = None
    gain_offset: float | str = "auto"
    report_dir: str | None = None  # also copy the report here (e.g. bench/results)
    student_kind: str = "cross-encoder"  # or a catalog student: late-interaction / bi-encoder (train/towers.py)
    dim: int | None = None  # tower vector size; default 128 (late interaction) or 384 (bi-encoder)
    query_max_length: int = 32  # query tower tokens; the product tower reads max_length
    pooled_weight: float = 0.5  # late interaction: the same losses on search's pooled first stage (train/towers.py)
    shared_towers: bool = True  # one encoder for query and product towers (half the weights), else two copies


def make_teacher_loss(name: str, temperature: float):
    return {"margin-mse": lambda: MarginMSELoss(), "listwise-kl": lambda: ListwiseKLLoss(temperature),
            "mse": lambda: ScoreMSELoss()}[name]()


NEGATIVE_SOURCES = ("random", "bm25")


def add_extra_negatives(df: pd.DataFrame, per_query: int, seed: int, source: str = "random") -> pd.DataFrame:
    """Append, for each query, products judged for other queries, with no label, for the teacher to
    score. ``random`` draws the easy off-topic candidates a shop's retrieval also returns; ``bm25``
    takes the catalog's best lexical matches the query was not judged on, the near misses a small
    student must learn to order (more teacher signal on the part of the list that decides nDCG)."""
    if per_query <= 0:
        return df
    if source not in NEGATIVE_SOURCES:
        raise ModelError(f"unknown negative source {source!r} (choose from {', '.join(NEGATIVE_SOURCES)})")
    catalog = df.drop_duplicates("product_id")[["product_id", "product_title", "product_description"]].reset_index(drop=True)
    queries = df.groupby("query_id", sort=False)
    if source == "bm25":
        candidates = _bm25_candidates(catalog, [rows["query"].iloc[0] for _, rows in queries],
                                      per_query + int(queries.size().max()))
    else:
        rng = np.random.default_rng(seed)
        candidates = [rng.choice(len(catalog), size=min(len(catalog), per_query * 3), replace=False) for _ in range(queries.ngroups)]
    extra = []
    for (qid, rows), picks in zip(queries, candidates):
        pick = catalog.iloc[picks]
        pick = pick[~pick["product_id"].isin(set(rows["product_id"]))].head(per_query).copy()
        pick["query_id"], pick["query"] = qid, rows["query"].iloc[0]
        extra.append(pick)
    out = pd.concat([df] + extra, ignore_index=True)
    if "relevance" in df.columns:
        out["relevance"] = out["relevance"].astype(float)  # NaN = unjudged
    return out


def _bm25_candidates(catalog: pd.DataFrame, queries: list[str], k: int) -> list[np.ndarray]:
    """Catalog rows of each query's top-``k`` BM25 matches, best first (the baseline's BM25)."""
    scores = bm25_scorer(product_texts(catalog))
    return [np.argsort(-scores(query), kind="stable")[:k] for query in queries]


def build_student(config: DistillConfig, teacher) -> tuple[object, StudentSpec, Path | None]:
    """The student model, how it was made, and (for another model) the folder of its tokenizer."""
    if config.student:
        if config.layers or config.teacher_layers or config.hidden_size:
            raise ModelError("--student is a complete model: do not combine it with --layers or --hidden-size")
        student = load_cross_encoder(config.student)
        spec = StudentSpec(source="model", student_model=config.student)
        folder = Path(config.student)
    else:
        total = len(encoder_layers(teacher))
        layers = config.teacher_layers or spread_layers(total, config.layers or min(2, total))
        if config.layers and len(layers) != config.layers:
            raise ModelError(f"--layers {config.layers} and --teacher-layers {layers} disagree: give one of them")
        if config.hidden_size:
            student = subclone(teacher, layers, config.hidden_size)
            spec = StudentSpec(source="teacher-subclone", layers=layers, hidden_size=config.hidden_size)
        else:
            student = select_layers(teacher, layers)
            spec = StudentSpec(source="teacher-layers", layers=layers)
        folder = None
    check_not_larger(student, teacher)
    return student, spec, folder


def flops_per_pair(config, tokens: int) -> int:
    """Forward FLOPs of a BERT-style encoder for one pair of ``tokens`` tokens (2 FLOPs per
    multiply-add): per layer 8·s·h² (Q, K, V, output projections) + 4·s²·h (attention scores and
    mixing) + 4·s·h·i (feed-forward). Embedding lookups and the one-logit head are negligible."""
    s, h, i, n = tokens, config.hidden_size, config.intermediate_size, config.num_hidden_layers
    return int(n * (8 * s * h * h + 4 * s * s * h + 4 * s * h * i))


def distill(config: DistillConfig, *, log=print) -> dict:
    """Train the student, evaluate it against teacher and BM25, and write it with its report."""
    import torch
    from accelerate import Accelerator
    from accelerate.utils import set_seed

    accelerator = Accelerator(cpu=not torch.cuda.is_available())
    set_seed(config.loop.seed)
    if config.augment is None:  # the saved recipe records what ran
        config = dataclasses.replace(config, augment=0 if config.teacher_scores else DEFAULT_COPIES)
    for name in config.losses:
        if name not in TEACHER_LOSSES:
            raise ModelError(f"unknown distillation loss {name!r} (choose from {', '.join(TEACHER_LOSSES)})")
    teacher = load_cross_encoder(config.teacher, require_head=True)
    teacher_tok = load_tokenizer(config.teacher)
    if config.student_kind not in STUDENT_KINDS:
        raise ModelError(f"unknown --student-kind {config.student_kind!r} (choose from {', '.join(STUDENT_KINDS)})")
    towers = config.student_kind != "cross-encoder"
    if towers and config.hidden_weight:
        raise ModelError("hidden-state transfer matches pair hidden states; a tower student reads query and product "
                         "apart: use --hidden-weight 0")
    student, spec, student_folder = build_student(config, teacher)
    student_tok = load_tokenizer(student_folder) if student_folder else teacher_tok
    if towers:
        from .towers import DEFAULT_DIM, TowerSpec, build_towers

        student = build_towers(student, TowerSpec(kind=config.student_kind, dim=config.dim or DEFAULT_DIM[config.student_kind],
                                                  query_max_length=config.query_max_length,
                                                  product_max_length=config.max_length, layers=spec.layers,
                                                  shared=config.shared_towers))
    hidden_weight = 0.0 if towers else (
        config.hidden_weight if config.hidden_weight is not None else (1.0 if config.hidden_size else 0.0))
    if hidden_weight and student_folder is not None and student_tok.get_vocab() != teacher_tok.get_vocab():
        raise ModelError("hidden-state transfer needs the teacher's vocabulary; this student has its own: "
                         "distil on scores only (--hidden-weight 0)")

    df, report = read_table(config.train, columns=config.columns, label_map=config.label_map, require_relevance=False)
    for w in report.warnings():
        log(f"warning: {w}")
    if config.augment:
        before = len(df)
        df = augment_queries(df, config.augment, config.loop.seed)
        log(f"augment: {len(df) - before} pairs under perturbed queries added to {before} (unlabelled, teacher-scored)")
    df = add_extra_negatives(df, config.extra_negatives, config.loop.seed, config.negatives)
    pairs = pd.DataFrame({"query_id": df["query_id"], "query": df["query"], "product_id": df["product_id"],
                          "text": product_texts(df)})
    from .scores import teacher_scores

    device = accelerator.device
    teacher.to(device).eval()
    with accelerator.main_process_first():
        t_scores = teacher_scores(pairs, teacher_dir=resolve_model(config.teacher), model=teacher,
                                  tokenizer=teacher_tok, score_file=config.teacher_scores,
                                  max_length=config.max_length, log=log)
    from ..data import group_queries

    has_labels = "relevance" in df.columns and config.label_weight > 0
    groups = group_queries(df, config.gain_offset) if "relevance" in df.columns else group_queries(df.assign(relevance=0.0))
    temperature = config.temperature
    if temperature == "auto":
        temperature = auto_temperature(t_scores, [g.rows for g in groups])
        if "listwise-kl" in config.losses:
            log(f"listwise-kl temperature {temperature:.3f} (auto: the teacher's median within-query score spread)")
    losses = [make_teacher_loss(n, float(temperature)) for n in config.losses]
    label_loss = None
    if has_labels:
        label_loss = PointwiseBCELoss(float(np.nanmax(np.concatenate([g.labels for g in groups]))) or 1.0)

    projection = None
    if hidden_weight:
        projection = HiddenProjection(student.config.hidden_size, teacher.config.hidden_size,
                                      student.config.num_hidden_layers + 1).to(device)
        teacher_index = matched_teacher_states(student.config.num_hidden_layers, teacher.config.num_hidden_layers)

    if towers:
        from .towers import fit_scale, tower_inputs

        student.to(device)
        scale, bias = fit_scale(student, student_tok, groups, t_scores)
        log(f"tower score map fitted to the teacher: {scale:.2f} * similarity {bias:+.2f}")

    def step(model, batch):
        queries = [g.query for g in batch for _ in g.texts]
        texts = [t for g in batch for t in g.texts]
        sizes = [len(g.texts) for g in batch]
        first = None
        if towers:
            out = model(**tower_inputs(student_tok, queries, texts, student.spec, device),
                        first_stage=config.student_kind == "late-interaction")
            scores, first = out if isinstance(out, tuple) else (out, None)
        else:
            enc = {k: v.to(device) for k, v in tokenize_pairs(student_tok, queries, texts, config.max_length).items()}
            out = model(**enc, output_hidden_states=bool(hidden_weight))
            scores = out.logits.view(-1)
        target = torch.from_numpy(np.concatenate([t_scores[g.rows] for g in batch])).to(device)
        loss = sum(fn(scores, target, sizes) for fn in losses)
        if first is not None:  # multiplied even at weight 0, so DDP sees a gradient for every parameter
            loss = loss + config.pooled_weight * sum(fn(first, target, sizes) for fn in losses)
        if label_loss is not None:
            gains = torch.tensor(np.concatenate([g.labels for g in batch]), dtype=torch.float32, device=device)
            judged = ~torch.isnan(gains)
            if judged.any():
                loss = loss + config.label_weight * label_loss(scores[judged], gains[judged], [int(judged.sum())])
        if projection is not None:
            with torch.no_grad():
                t_hidden = teacher(**enc, output_hidden_states=True).hidden_states
            mask = enc["attention_mask"].unsqueeze(-1).float()
            for j, hs in enumerate(out.hidden_states):
                diff = (projection(j, hs) - t_hidden[teacher_index[j]]) * mask
                loss = loss + hidden_weight * diff.pow(2).sum() / (mask.sum() * diff.shape[-1])
        return loss

    out_dir = Path(config.out)
    work = out_dir.with_name(out_dir.name + ".partial")  # created by the first checkpoint
    log(f"student: {config.student_kind + ' ' if towers else ''}{spec.source} "
        f"{('layers ' + str(spec.layers)) if spec.layers else config.student}"
        f"{f', hidden {spec.hidden_size}' if spec.hidden_size else ''}; {count_parameters(student) / 1e6:.1f}M "
        f"parameters vs teacher {count_parameters(teacher) / 1e6:.1f}M; losses {'+'.join(config.losses)}"
        f"{f' + {config.label_weight}*labels' if label_loss else ''}{f' + {hidden_weight}*hidden' if projection else ''}")
    extra = list(projection.parameters()) if projection is not None else []
    stats = train(student, groups, step, config.loop, work, accelerator, extra_params=extra, desc="distill",
                  run_config=resume_key(config, ignore=("dev", "report_dir")))
    student = accelerator.unwrap_model(student)

    stats["temperature"] = float(temperature)
    result = {"edgerank_version": __version__, "student": dataclasses.asdict(spec), "train": stats,
              "parameters": {"student": count_parameters(student), "teacher": count_parameters(teacher)}}
    if accelerator.is_main_process:
        if config.dev:
            result["dev"] = _dev_report(config, student, student_tok, teacher, teacher_tok)
        with atomic_dir(out_dir) as tmp:
            if towers:
                from .towers import save_towers

                save_towers(student, student_tok, tmp)
            else:
                student.save_pretrained(tmp, safe_serialization=True)
                student_tok.save_pretrained(tmp)
            (tmp / "edgerank_distill.json").write_text(json.dumps(
                {"config": dataclasses.asdict(config), "student": dataclasses.asdict(spec)}, indent=2))
            write_json(tmp / "report.json", result)
        if config.report_dir:
            write_json(Path(config.report_dir) / f"distill-{out_dir.name}.json", result)
        shutil.rmtree(work, ignore_errors=True)
    accelerator.wait_for_everyone()
    return result


def _dev_report(config: DistillConfig, student, student_tok, teacher, teacher_tok) -> dict:
    """Student vs teacher vs BM25 on dev serving lists (both fills) and judged lists, plus cost per pair;
    refuses a student whose scores are constant."""
    from ..core.serving import DEFAULT_LIST_SIZE
    from ..data import group_queries
    from ..evaluate import CONSTANT_SCORE_STD, evaluate_model

    score_fn = None
    if config.student_kind != "cross-encoder":
        from .towers import score_tower_groups

        score_fn = lambda groups: score_tower_groups(student, student_tok, groups, progress=True)  # noqa: E731
    dev = evaluate_model(student, student_tok, config.dev, max_length=config.max_length, teacher=(teacher, teacher_tok),
                         columns=config.columns, label_map=config.label_map, gain_offset=config.gain_offset,
                         score_fn=score_fn, list_size=DEFAULT_LIST_SIZE)
    if dev["score_std"] < CONSTANT_SCORE_STD:
        raise ModelError(f"the student's dev scores do not vary (std {dev['score_std']:.2e}): training collapsed; "
                         "check the teacher loads in float32 and lower --lr")
    df, _ = read_table(config.dev, columns=config.columns, label_map=config.label_map, require_relevance=False)
    groups = group_queries(df.assign(relevance=0.0))
    lengths = [len(student_tok(g.query, t, truncation=True, max_length=config.max_length)["input_ids"])
               for g in groups for t in g.texts]
    median = int(np.median(lengths))
    dev["median_tokens"] = median
    dev["flops_per_pair"] = {"student": flops_per_pair(student.config, median),
                             "teacher": flops_per_pair(teacher.config, median)}
    if config.student_kind != "cross-encoder":  # per pair, only the query tower runs (once per query)
        q_tokens = int(np.median([len(student_tok(g.query, truncation=True, max_length=config.query_max_length)
                                      ["input_ids"]) for g in groups]))
        dev["median_query_tokens"] = q_tokens
        dev["flops_per_query"] = {"student": flops_per_pair(student.config, q_tokens)}
    return dev
