"""Distil a cross-encoder teacher into a small student that keeps its ranking."""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .. import __version__
from ..data import product_texts, read_table
from ..io import atomic_dir, write_json
from ..modeling import ModelError, count_parameters, load_cross_encoder, load_tokenizer, resolve_model, tokenize_pairs
from .augment import DEFAULT_COPIES, augment_queries
from .loop import LoopConfig, resume_key, train
from .losses import ListwiseKLLoss, MarginMSELoss, PointwiseBCELoss, ScoreMSELoss, auto_temperature
from .negatives import catalog_rows, split_count
from .students import (
    HiddenProjection,
    StudentSpec,
    check_not_larger,
    encoder_layers,
    matched_teacher_states,
    select_layers,
    spread_layers,
    subclone,
)

TEACHER_LOSSES = ("margin-mse", "listwise-kl", "mse")
STUDENT_KINDS = ("cross-encoder", "late-interaction", "bi-encoder")
#: Catalog products added to each training query's list (half BM25 near misses, half random): the student
#: is judged on serving lists of ~100 products, most of them unjudged, and should learn the teacher's
#: order where it will rank. Sixteen brings a Home Depot list (median 7 judged, 35 with the default
#: perturbed copies) to about 51 pairs, 1.5 times the pairs to score and train on.
DEFAULT_CATALOG_FILL = 16


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
    # unjudged products of the training catalog added to each query's list, half BM25 near misses, half random
    # (train/negatives.py), teacher-scored; None: DEFAULT_CATALOG_FILL when the teacher scores the pairs, 0 with
    # teacher_scores (a file made elsewhere lacks them)
    catalog_fill: int | None = None
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
    return {
        "margin-mse": lambda: MarginMSELoss(),
        "listwise-kl": lambda: ListwiseKLLoss(temperature),
        "mse": lambda: ScoreMSELoss(),
    }[name]()


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
    """Train the student, evaluate it against teacher and BM25, and write it with its report.

    The steps, each a function below: settle the recipe, load teacher and student, build the training
    lists, score them with the teacher, make the loss, train, then report and write.
    """
    import torch
    from accelerate import Accelerator
    from accelerate.utils import set_seed

    accelerator = Accelerator(cpu=not torch.cuda.is_available())
    set_seed(config.loop.seed)
    config = settle(config)
    models = load_models(config)
    df = training_lists(config, log)
    t_scores = score_with_teacher(config, df, models, accelerator, log)
    groups = _groups(df, config)
    objective = make_objective(
        config, models, groups, t_scores, accelerator.device, labelled="relevance" in df.columns, log=log
    )
    stats = train(
        models.student,
        groups,
        objective.step,
        config.loop,
        _work_dir(config),
        accelerator,
        extra_params=objective.extra_params,
        desc="distill",
        run_config=resume_key(config, ignore=("dev", "report_dir")),
    )
    stats["temperature"] = objective.temperature
    models.student = accelerator.unwrap_model(models.student)
    return write_student(config, models, stats, accelerator)


def settle(config: DistillConfig) -> DistillConfig:
    """The recipe with its defaults decided (so the saved recipe records what ran), or a clear refusal."""
    own_scores = not config.teacher_scores  # a score file made elsewhere lacks copies and fill-ins
    config = dataclasses.replace(
        config,
        augment=config.augment if config.augment is not None else (DEFAULT_COPIES if own_scores else 0),
        catalog_fill=config.catalog_fill
        if config.catalog_fill is not None
        else (DEFAULT_CATALOG_FILL if own_scores else 0),
    )
    for name in config.losses:
        if name not in TEACHER_LOSSES:
            raise ModelError(f"unknown distillation loss {name!r} (choose from {', '.join(TEACHER_LOSSES)})")
    if config.student_kind not in STUDENT_KINDS:
        raise ModelError(f"unknown --student-kind {config.student_kind!r} (choose from {', '.join(STUDENT_KINDS)})")
    if config.student_kind != "cross-encoder" and config.hidden_weight:
        raise ModelError(
            "hidden-state transfer matches pair hidden states; a tower student reads query and product "
            "apart: use --hidden-weight 0"
        )
    if config.catalog_fill < 0:
        raise ModelError(f"--catalog-fill must be 0 or more, got {config.catalog_fill}")
    return config


@dataclass
class Models:
    """Teacher and student with their tokenizers, and how the student was made."""

    teacher: Any
    teacher_tok: Any
    student: Any
    student_tok: Any
    spec: StudentSpec
    towers: bool  # a catalog student (query and product towers) rather than a cross-encoder
    hidden_weight: float  # weight of hidden-state transfer; 0 when off


def load_models(config: DistillConfig) -> Models:
    """The teacher, and the student built from it (or from ``config.student``), wrapped in towers when asked."""
    teacher = load_cross_encoder(config.teacher, require_head=True)
    teacher_tok = load_tokenizer(config.teacher)
    student, spec, student_folder = build_student(config, teacher)
    student_tok = load_tokenizer(student_folder) if student_folder else teacher_tok
    towers = config.student_kind != "cross-encoder"
    if towers:
        from ..modeling.towers import TowerSpec
        from .towers import DEFAULT_DIM, build_towers

        student = build_towers(
            student,
            TowerSpec(
                kind=config.student_kind,
                dim=config.dim or DEFAULT_DIM[config.student_kind],
                query_max_length=config.query_max_length,
                product_max_length=config.max_length,
                layers=spec.layers,
                shared=config.shared_towers,
            ),
        )
    hidden_weight = (
        0.0
        if towers
        else (config.hidden_weight if config.hidden_weight is not None else (1.0 if config.hidden_size else 0.0))
    )
    if hidden_weight and student_folder is not None and student_tok.get_vocab() != teacher_tok.get_vocab():
        raise ModelError(
            "hidden-state transfer needs the teacher's vocabulary; this student has its own: "
            "distil on scores only (--hidden-weight 0)"
        )
    return Models(teacher, teacher_tok, student, student_tok, spec, towers, hidden_weight)


def training_lists(config: DistillConfig, log=print) -> pd.DataFrame:
    """The training table's lists, each topped up with unjudged catalog products (``catalog_fill``), plus
    perturbed-query copies of the judged lists (``augment``): every pair the teacher scores and the
    student learns from. Copies keep the judged products only: a copy's list is about the query change,
    and copying the fill-ins too would multiply the pairs by the copies for products already seen."""
    df, report = read_table(config.train, columns=config.columns, label_map=config.label_map, require_relevance=False)
    for w in report.warnings():
        log(f"warning: {w}")
    fill = catalog_rows(df, config.catalog_fill, config.loop.seed)
    if config.augment:
        before = len(df)
        df = augment_queries(df, config.augment, config.loop.seed)
        log(f"augment: {len(df) - before} pairs under perturbed queries added to {before} (unlabelled, teacher-scored)")
    if len(fill):
        bm25, rand = split_count(config.catalog_fill)
        log(
            f"catalog fill: {len(fill)} unjudged products of the training catalog added to the lists "
            f"(up to {bm25} BM25 near misses and {rand} random per query, teacher-scored)"
        )
        df = pd.concat([df, fill], ignore_index=True)
    return df


def score_with_teacher(config: DistillConfig, df: pd.DataFrame, models: Models, accelerator, log=print) -> np.ndarray:
    """The teacher's score of every row of ``df``, from the score cache (or ``teacher_scores``) when there."""
    from .scores import teacher_scores

    pairs = pd.DataFrame(
        {"query_id": df["query_id"], "query": df["query"], "product_id": df["product_id"], "text": product_texts(df)}
    )
    models.teacher.to(accelerator.device).eval()
    with accelerator.main_process_first():
        return teacher_scores(
            pairs,
            teacher_dir=resolve_model(config.teacher),
            model=models.teacher,
            tokenizer=models.teacher_tok,
            score_file=config.teacher_scores,
            max_length=config.max_length,
            log=log,
        )


def _groups(df: pd.DataFrame, config: DistillConfig) -> list:
    """Each query's list; unjudged rows (copies, fill-ins) carry a NaN label."""
    from ..data import group_queries

    return (
        group_queries(df, config.gain_offset) if "relevance" in df.columns else group_queries(df.assign(relevance=0.0))
    )


@dataclass
class Objective:
    """What the training loop needs from the recipe: the loss of one batch and the extra parameters it trains."""

    step: Callable
    temperature: float
    extra_params: list = field(default_factory=list)


def make_objective(
    config: DistillConfig, models: Models, groups: list, t_scores: np.ndarray, device, *, labelled: bool, log=print
) -> Objective:
    """The teacher losses (with the listwise temperature decided), the optional label and hidden-state
    terms (labels only when the table has them: ``labelled``), and, for towers, their score map fitted
    to the teacher before the first step."""
    temperature = config.temperature
    if temperature == "auto":
        temperature = auto_temperature(t_scores, [g.rows for g in groups])
        if "listwise-kl" in config.losses:
            log(f"listwise-kl temperature {temperature:.3f} (auto: the teacher's median within-query score spread)")
    losses = [make_teacher_loss(n, float(temperature)) for n in config.losses]
    label_loss = None
    if config.label_weight > 0 and labelled:
        label_loss = PointwiseBCELoss(float(np.nanmax(np.concatenate([g.labels for g in groups]))) or 1.0)
    projection = None
    if models.hidden_weight:
        projection = HiddenProjection(
            models.student.config.hidden_size,
            models.teacher.config.hidden_size,
            models.student.config.num_hidden_layers + 1,
        ).to(device)
    if models.towers:
        _fit_tower_scale(models, groups, t_scores, device, log)
    step = DistillStep(config, models, t_scores, losses, label_loss, projection, device)
    _log_student(config, models, label_loss, projection, log)
    return Objective(step, float(temperature), list(projection.parameters()) if projection is not None else [])


def _fit_tower_scale(models: Models, groups: list, t_scores: np.ndarray, device, log=print) -> None:
    from .towers import fit_scale

    models.student.to(device)
    scale, bias = fit_scale(models.student, models.student_tok, groups, t_scores)
    log(f"tower score map fitted to the teacher: {scale:.2f} * similarity {bias:+.2f}")


def _log_student(config: DistillConfig, models: Models, label_loss, projection, log=print) -> None:
    spec = models.spec
    log(
        f"student: {config.student_kind + ' ' if models.towers else ''}{spec.source} "
        f"{('layers ' + str(spec.layers)) if spec.layers else config.student}"
        f"{f', hidden {spec.hidden_size}' if spec.hidden_size else ''}; {count_parameters(models.student) / 1e6:.1f}M "
        f"parameters vs teacher {count_parameters(models.teacher) / 1e6:.1f}M; losses {'+'.join(config.losses)}"
        f"{f' + {config.label_weight}*labels' if label_loss else ''}"
        f"{f' + {models.hidden_weight}*hidden' if projection else ''}"
    )


class DistillStep:
    """The loss of one batch of whole query lists: the teacher losses on the student's scores (and, for
    late interaction, on its pooled first stage), plus the label and hidden-state terms when on."""

    def __init__(
        self, config: DistillConfig, models: Models, t_scores: np.ndarray, losses: list, label_loss, projection, device
    ):
        self.config, self.models, self.t_scores, self.device = config, models, t_scores, device
        self.losses, self.label_loss, self.projection = losses, label_loss, projection
        if projection is not None:
            self.teacher_index = matched_teacher_states(
                models.student.config.num_hidden_layers, models.teacher.config.num_hidden_layers
            )

    def __call__(self, model, batch: list):
        import torch

        queries = [g.query for g in batch for _ in g.texts]
        texts = [t for g in batch for t in g.texts]
        sizes = [len(g.texts) for g in batch]
        scores, first, enc, out = self.forward(model, queries, texts)
        target = torch.from_numpy(np.concatenate([self.t_scores[g.rows] for g in batch])).to(self.device)
        loss = sum(fn(scores, target, sizes) for fn in self.losses)
        if first is not None:  # multiplied even at weight 0, so DDP sees a gradient for every parameter
            loss = loss + self.config.pooled_weight * sum(fn(first, target, sizes) for fn in self.losses)
        if self.label_loss is not None:
            loss = loss + self.label_term(scores, batch)
        if self.projection is not None:
            loss = loss + self.hidden_term(enc, out.hidden_states)
        return loss

    def forward(self, model, queries: list[str], texts: list[str]):
        """(scores, pooled first-stage scores or None, pair encoding or None, model output or None)."""
        if self.models.towers:
            from ..modeling.towers import tower_inputs

            inputs = tower_inputs(self.models.student_tok, queries, texts, self.models.student.spec, self.device)
            out = model(**inputs, first_stage=self.config.student_kind == "late-interaction")
            scores, first = out if isinstance(out, tuple) else (out, None)
            return scores, first, None, None
        enc = {
            k: v.to(self.device)
            for k, v in tokenize_pairs(self.models.student_tok, queries, texts, self.config.max_length).items()
        }
        out = model(**enc, output_hidden_states=self.projection is not None)
        return out.logits.view(-1), None, enc, out

    def label_term(self, scores, batch: list):
        """Pointwise BCE on the judged pairs of the batch (copies and fill-ins have no label)."""
        import torch

        gains = torch.tensor(np.concatenate([g.labels for g in batch]), dtype=torch.float32, device=self.device)
        judged = ~torch.isnan(gains)
        if not judged.any():
            return scores.sum() * 0.0
        return self.config.label_weight * self.label_loss(scores[judged], gains[judged], [int(judged.sum())])

    def hidden_term(self, enc: dict, hidden_states):
        """Hidden-state transfer: each student state, projected, against its matched teacher state."""
        import torch

        with torch.no_grad():
            t_hidden = self.models.teacher(**enc, output_hidden_states=True).hidden_states
        mask = enc["attention_mask"].unsqueeze(-1).float()
        loss = 0.0
        for j, hs in enumerate(hidden_states):
            diff = (self.projection(j, hs) - t_hidden[self.teacher_index[j]]) * mask
            loss = loss + self.models.hidden_weight * diff.pow(2).sum() / (mask.sum() * diff.shape[-1])
        return loss


def _work_dir(config: DistillConfig) -> Path:
    """``<out>.partial``: the resumable checkpoint, created by the first one."""
    out = Path(config.out)
    return out.with_name(out.name + ".partial")


def write_student(config: DistillConfig, models: Models, stats: dict, accelerator) -> dict:
    """The dev report, then the student folder with its recipe and report, written whole or not at all."""
    student, spec = models.student, models.spec
    result = {
        "edgerank_version": __version__,
        "student": dataclasses.asdict(spec),
        "train": stats,
        "parameters": {"student": count_parameters(student), "teacher": count_parameters(models.teacher)},
    }
    out_dir = Path(config.out)
    if accelerator.is_main_process:
        if config.dev:
            result["dev"] = _dev_report(config, student, models.student_tok, models.teacher, models.teacher_tok)
        with atomic_dir(out_dir) as tmp:
            if models.towers:
                from ..modeling.towers import save_towers

                save_towers(student, models.student_tok, tmp)
            else:
                student.save_pretrained(tmp, safe_serialization=True)
                models.student_tok.save_pretrained(tmp)
            (tmp / "edgerank_distill.json").write_text(
                json.dumps({"config": dataclasses.asdict(config), "student": dataclasses.asdict(spec)}, indent=2)
            )
            write_json(tmp / "report.json", result)
        if config.report_dir:
            write_json(Path(config.report_dir) / f"distill-{out_dir.name}.json", result)
        shutil.rmtree(_work_dir(config), ignore_errors=True)
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
        from ..modeling.towers import score_tower_groups

        score_fn = lambda groups: score_tower_groups(student, student_tok, groups, progress=True)  # noqa: E731
    dev = evaluate_model(
        student,
        student_tok,
        config.dev,
        max_length=config.max_length,
        teacher=(teacher, teacher_tok),
        columns=config.columns,
        label_map=config.label_map,
        gain_offset=config.gain_offset,
        score_fn=score_fn,
        list_size=DEFAULT_LIST_SIZE,
    )
    if dev["score_std"] < CONSTANT_SCORE_STD:
        raise ModelError(
            f"the student's dev scores do not vary (std {dev['score_std']:.2e}): training collapsed; "
            "check the teacher loads in float32 and lower --lr"
        )
    df, _ = read_table(config.dev, columns=config.columns, label_map=config.label_map, require_relevance=False)
    groups = group_queries(df.assign(relevance=0.0))
    lengths = [
        len(student_tok(g.query, t, truncation=True, max_length=config.max_length)["input_ids"])
        for g in groups
        for t in g.texts
    ]
    median = int(np.median(lengths))
    dev["median_tokens"] = median
    dev["flops_per_pair"] = {
        "student": flops_per_pair(student.config, median),
        "teacher": flops_per_pair(teacher.config, median),
    }
    if config.student_kind != "cross-encoder":  # per pair, only the query tower runs (once per query)
        q_tokens = int(
            np.median(
                [
                    len(student_tok(g.query, truncation=True, max_length=config.query_max_length)["input_ids"])
                    for g in groups
                ]
            )
        )
        dev["median_query_tokens"] = q_tokens
        dev["flops_per_query"] = {"student": flops_per_pair(student.config, q_tokens)}
    return dev
