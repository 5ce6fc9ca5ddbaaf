"""The training loop shared by the teacher and the distiller.

A plain loop over ``accelerate`` rather than a Trainer: batches are whole queries (listwise and
margin losses need every candidate of a query in the same batch), and the same script must run
unchanged on one CPU, under ``accelerate launch`` / ``torchrun`` with DDP, and resume after an
interrupt. Each process takes every N-th batch of the same seeded list, so no sampler is needed.
"""

from __future__ import annotations

import json
import math
import random
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from ..data import DataError, QueryGroup

RUN_CONFIG = "run_config.json"


class ResumeError(DataError):
    """A checkpoint left by a run with other arguments: resuming it would mix two trainings."""


@dataclass
class LoopConfig:
    epochs: float = 1.0
    batch_size: int = 32  # pairs per batch, packed from whole queries
    lr: float = 5e-5
    weight_decay: float = 0.01
    warmup: float = 0.1
    seed: int = 0
    checkpoint_every: int = 200  # optimizer steps between resumable checkpoints
    max_grad_norm: float = 1.0


def query_batches(groups: Sequence[QueryGroup], batch_size: int, seed: int) -> list[list[int]]:
    """Shuffle queries with ``seed`` and pack them whole into batches of about ``batch_size`` pairs.
    A query larger than the batch size gets a batch of its own."""
    order = list(range(len(groups)))
    random.Random(seed).shuffle(order)
    batches, current, pairs = [], [], 0
    for i in order:
        n = len(groups[i].texts)
        if current and pairs + n > batch_size:
            batches.append(current)
            current, pairs = [], 0
        current.append(i)
        pairs += n
    if current:
        batches.append(current)
    return batches


StepFn = Callable[[torch.nn.Module, list[QueryGroup]], torch.Tensor]


def train(
    model: torch.nn.Module,
    groups: Sequence[QueryGroup],
    step_fn: StepFn,
    config: LoopConfig,
    work_dir: Path,
    accelerator,
    extra_params: Sequence[torch.nn.Parameter] = (),
    desc: str = "train",
    run_config: dict | None = None,
) -> dict:
    """Train ``model`` in place; returns {"steps", "pairs", "seconds", "pairs_per_s", "last_loss"}.

    ``work_dir`` holds the resumable checkpoint; a run started again with the same arguments picks
    up after the last checkpoint (same batches, same RNG state) instead of starting over.
    ``run_config`` (the arguments that shape the training) is saved with each checkpoint, and a
    checkpoint saved with other arguments is refused rather than silently continued.
    """
    from tqdm.auto import tqdm
    from transformers import get_linear_schedule_with_warmup

    world, rank = accelerator.num_processes, accelerator.process_index
    epochs = max(1, math.ceil(config.epochs))
    per_epoch = [query_batches(groups, config.batch_size, config.seed + e) for e in range(epochs)]
    # Every process needs the same number of steps or DDP's collectives hang, and every epoch must
    # hold them: packing whole queries gives each epoch's shuffle a slightly different batch count.
    steps_per_epoch = min(len(batches) for batches in per_epoch) // world
    total = int(steps_per_epoch * config.epochs)
    if total < 1:
        raise DataError(
            f"too little training data: {len(groups)} queries make no full batch per process "
            f"({world} process(es), {config.epochs} epoch(s))"
        )

    params = list(model.parameters()) + list(extra_params)
    no_decay = lambda n: "bias" in n or "LayerNorm" in n or "layer_norm" in n  # noqa: E731
    named = list(model.named_parameters())
    groups_opt = [
        {"params": [p for n, p in named if not no_decay(n)], "weight_decay": config.weight_decay},
        {"params": [p for n, p in named if no_decay(n)] + list(extra_params), "weight_decay": 0.0},
    ]
    optimizer = torch.optim.AdamW(groups_opt, lr=config.lr)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(config.warmup * total), total)
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)

    ckpt = work_dir / "checkpoint"
    state_file = ckpt / "loop_state.json"
    done = 0
    if state_file.exists():
        check_resume(ckpt, run_config, work_dir)
        accelerator.load_state(str(ckpt))
        done = json.loads(state_file.read_text())["step"]
        accelerator.print(f"resuming from step {done}/{total} ({ckpt})")

    started, pairs, last_loss = time.perf_counter(), 0, float("nan")
    bar = tqdm(total=total, initial=done, desc=desc, unit="step", disable=not accelerator.is_local_main_process)
    model.train()
    for step in range(done, total):
        epoch, within = divmod(step, steps_per_epoch)
        batch = [groups[i] for i in per_epoch[epoch][within * world + rank]]
        loss = step_fn(model, batch)
        accelerator.backward(loss)
        accelerator.clip_grad_norm_(params, config.max_grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        last_loss = float(loss.detach())
        if not math.isfinite(last_loss):
            raise FloatingPointError(f"loss became {last_loss} at step {step}: lower --lr")
        pairs += sum(len(g.texts) for g in batch) * world
        rate = pairs / max(time.perf_counter() - started, 1e-9)
        bar.set_postfix(loss=f"{last_loss:.4f}", pairs_s=f"{rate:.0f}", epoch=epoch + 1)
        bar.update(1)
        if (step + 1) % config.checkpoint_every == 0 and step + 1 < total:
            _checkpoint(accelerator, ckpt, step + 1, run_config)
    bar.close()
    seconds = time.perf_counter() - started
    accelerator.wait_for_everyone()
    return {
        "steps": total,
        "resumed_from": done,
        "pairs": pairs,
        "seconds": round(seconds, 1),
        "pairs_per_s": round(pairs / max(seconds, 1e-9), 1),
        "last_loss": last_loss,
    }


def check_resume(ckpt: Path, run_config: dict | None, work_dir: Path) -> None:
    """Refuse a checkpoint whose saved arguments differ from this run's, naming the first few."""
    if run_config is None:
        return
    saved_file = ckpt / RUN_CONFIG
    if not saved_file.is_file():
        raise ResumeError(
            f"{ckpt}: this checkpoint does not record the arguments it was made with, so resuming "
            f"it could mix two trainings; delete {work_dir} to start over"
        )
    try:
        saved = json.loads(saved_file.read_text())
    except ValueError:
        raise ResumeError(f"{saved_file}: corrupt; delete {work_dir} to start over") from None
    diffs = _differences(saved, _plain(run_config))
    if diffs:
        shown = "; ".join(diffs[:3]) + (f"; and {len(diffs) - 3} more" if len(diffs) > 3 else "")
        raise ResumeError(
            f"{ckpt}: checkpoint was made with other arguments ({shown}); run the same command "
            f"to resume, or delete {work_dir} to start over"
        )


def _plain(config: dict) -> dict:
    """The config as JSON reads it back (tuples as lists, paths as strings), so saved and new compare equal."""
    return json.loads(json.dumps(config, sort_keys=True, default=str))


def _differences(saved, new, prefix: str = "") -> list[str]:
    if isinstance(saved, dict) and isinstance(new, dict):
        out = []
        for key in sorted(set(saved) | set(new), key=str):
            out += _differences(saved.get(key), new.get(key), f"{prefix}{key}.")
        return out
    return [] if saved == new else [f"{prefix.rstrip('.')} was {_short(saved)}, now {_short(new)}"]


def _short(value, width: int = 48) -> str:
    text = repr(value)
    return text if len(text) <= width else text[: width - 3] + "..."


def resume_key(config, ignore: Sequence[str] = ()) -> dict:
    """A run's dataclass config as the dict ``train`` compares on resume, without the ``ignore``
    fields (those that do not change the training, such as the dev table); the loop's checkpoint
    interval never counts."""
    import dataclasses

    key = dataclasses.asdict(config)
    for name in ignore:
        key.pop(name, None)
    if isinstance(key.get("loop"), dict):
        key["loop"].pop("checkpoint_every", None)
    return key


def _checkpoint(accelerator, ckpt: Path, step: int, run_config: dict | None = None) -> None:
    """Save to a temporary folder and rename, so an interrupt during saving keeps the previous one."""
    tmp = ckpt.with_name(ckpt.name + ".tmp")
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)  # before any rank writes its RNG state into it
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        (tmp / "loop_state.json").write_text(json.dumps({"step": step}))
        if run_config is not None:
            (tmp / RUN_CONFIG).write_text(json.dumps(_plain(run_config), indent=2))
        if ckpt.exists():
            shutil.rmtree(ckpt)
        tmp.rename(ckpt)
    accelerator.wait_for_everyone()
