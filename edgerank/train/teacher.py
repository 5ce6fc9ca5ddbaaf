"""Fine-tune a full cross-encoder teacher on graded query–product judgements."""

from __future__ import annotations

import dataclasses
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from .. import __version__
from ..data import group_queries, read_table, table_catalog
from ..io import atomic_dir, write_json
from ..modeling import count_parameters, load_cross_encoder, load_tokenizer, resolve_backbone, tokenize_pairs
from .loop import LoopConfig, resume_key, train
from .losses import ListNetLoss, PointwiseBCELoss
from .negatives import split_count, with_negatives

#: Catalog negatives per training query (half BM25 near misses, half random products; train/negatives.py).
#: Eight roughly doubles a Home Depot list (median 7 judged products) and so the training time: enough
#: that every batch shows the teacher unjudged products of both kinds next to the judged ones, few
#: enough that the graded judgements still make most of each list's listwise signal.
DEFAULT_NEGATIVES = 8


@dataclass
class TeacherConfig:
    """Everything that decides how a teacher was made; saved next to it as ``edgerank_teacher.json``."""

    train: str
    out: str
    dev: str | None = None
    backbone: str | None = None
    loss: str = "pointwise"  # pointwise | listwise | pointwise+listwise
    max_length: int = 128
    loop: LoopConfig = field(default_factory=LoopConfig)
    columns: dict[str, str] = field(default_factory=dict)
    label_map: dict[str, float] | None = None
    gain_offset: float | str = "auto"
    negatives: int = DEFAULT_NEGATIVES  # unjudged catalog products per query, as the lowest grade; 0 = none


TEACHER_LOSSES = ("pointwise", "listwise", "pointwise+listwise")


def make_loss(name: str, max_gain: float):
    """One loss, or the sum of several joined by '+': the pointwise term keeps scores calibrated to
    the graded labels (and uses single-product queries), the listwise term trains the order within
    each candidate list, which is what nDCG measures."""
    parts = {"pointwise": lambda: PointwiseBCELoss(max_gain), "listwise": lambda: ListNetLoss()}
    names = [x.strip() for x in name.split("+")]
    unknown = [x for x in names if x not in parts]
    if unknown:
        raise ValueError(f"unknown teacher loss {name!r} ({', '.join(TEACHER_LOSSES)})")
    losses = [parts[x]() for x in names]
    if len(losses) == 1:
        return losses[0]
    return lambda scores, gains, sizes: sum(fn(scores, gains, sizes) for fn in losses)


def add_negatives(groups: list, train_df, config: TeacherConfig, log=print) -> list:
    """The judged lists topped up with ``config.negatives`` unjudged products of the training table's
    catalog each, labelled with the lowest gain of the table: a product nobody judged for a query is
    treated as the least relevant grade, which is how serving lists count it."""
    if config.negatives < 0:
        raise ValueError(f"negatives must be 0 or more, got {config.negatives}")
    if not config.negatives:
        return groups
    lowest = min(float(g.labels.min()) for g in groups)
    extended = with_negatives(groups, table_catalog(train_df), config.negatives, config.loop.seed, gain=lowest)
    bm25, rand = split_count(config.negatives)
    added = sum(len(e.texts) - len(g.texts) for e, g in zip(extended, groups))
    log(
        f"negatives: {added} unjudged catalog products added to {len(groups)} queries "
        f"(up to {bm25} BM25 near misses and {rand} random each, gain {lowest:g})"
    )
    return extended


def train_teacher(config: TeacherConfig, *, log=print) -> dict:
    """Train, evaluate on dev, and write a standard Hugging Face folder plus ``metrics.json``.

    Checkpoints live in ``<out>.partial/`` until the end, so an interrupted run resumes and the
    final folder appears only when complete.
    """
    import torch
    from accelerate import Accelerator
    from accelerate.utils import set_seed

    accelerator = Accelerator(cpu=not torch.cuda.is_available())
    set_seed(config.loop.seed)
    backbone = resolve_backbone(config.backbone)
    train_df, report = read_table(config.train, columns=config.columns, label_map=config.label_map)
    for w in report.warnings():
        log(f"warning: {w}")
    if config.dev:  # a bad dev table must stop the run now, not after the training it would judge
        read_table(config.dev, columns=config.columns, label_map=config.label_map)
    groups = group_queries(train_df, config.gain_offset)
    max_gain = max(float(g.labels.max()) for g in groups) or 1.0
    groups = add_negatives(groups, train_df, config, log)
    loss_fn = make_loss(config.loss, max_gain)

    model = load_cross_encoder(backbone)
    tokenizer = load_tokenizer(backbone)
    device = accelerator.device

    def step(m, batch):
        enc = tokenize_pairs(
            tokenizer, [g.query for g in batch for _ in g.texts], [t for g in batch for t in g.texts], config.max_length
        )
        scores = m(**{k: v.to(device) for k, v in enc.items()}).logits.view(-1)
        gains = torch.tensor([x for g in batch for x in g.labels], dtype=torch.float32, device=device)
        return loss_fn(scores, gains, [len(g.texts) for g in batch])

    out = Path(config.out)
    work = out.with_name(out.name + ".partial")
    log(f"teacher: {backbone} on {len(groups)} queries / {sum(len(g.texts) for g in groups)} pairs, loss={config.loss}")
    stats = train(
        model,
        groups,
        step,
        config.loop,
        work,
        accelerator,
        desc="teacher",
        run_config=resume_key(config, ignore=("dev",)),
    )
    model = accelerator.unwrap_model(model)

    metrics = {
        "edgerank_version": __version__,
        "backbone": str(backbone),
        "train": stats,
        "parameters": count_parameters(model),
    }
    if accelerator.is_main_process:
        if config.dev:
            from ..evaluate import evaluate_model

            metrics["dev"] = evaluate_model(
                model,
                tokenizer,
                config.dev,
                max_length=config.max_length,
                columns=config.columns,
                label_map=config.label_map,
                gain_offset=config.gain_offset,
            )
        with atomic_dir(out) as tmp:
            model.save_pretrained(tmp, safe_serialization=True)
            tokenizer.save_pretrained(tmp)
            (tmp / "edgerank_teacher.json").write_text(json.dumps(dataclasses.asdict(config), indent=2))
            write_json(tmp / "metrics.json", metrics)
        shutil.rmtree(work, ignore_errors=True)
    accelerator.wait_for_everyone()
    return metrics
