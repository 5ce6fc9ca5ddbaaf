"""Build a student cross-encoder from a teacher: keep some of its layers, narrow it, or take another model.

Layer selection keeps layers spread across the teacher's depth (the centre of each of N equal
segments) rather than the first N: lower layers carry lexical matching, upper ones the
relevance decision, and a student needs both. For N=2 of 6 this keeps layers 1 and 4 (0-based),
the choice that matched the teacher best in reference runs.

Narrower students are initialised by weight subcloning (Samragh et al. 2023, "Weight subcloning:
direct initialization of transformers using larger pretrained ones"): the most important
``hidden_size`` residual dimensions, heads and neurons of each kept layer, so training starts from
the teacher's features instead of noise; hidden-state transfer through a learned projection then pulls them back towards
the teacher's (TinyBERT, Jiao et al. 2020).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

from ..modeling import ModelError


@dataclass
class StudentSpec:
    """How the student was made; saved with it so every artifact can say where its layers came from."""

    source: str  # "teacher-layers" | "teacher-subclone" | "model"
    layers: list[int] | None = None  # teacher layers kept (0-based), in order
    hidden_size: int | None = None
    width_order: str | None = None  # narrower students: "importance" or "first" (see subclone)
    student_model: str | None = None


def spread_layers(total: int, keep: int) -> list[int]:
    """Centres of ``keep`` equal segments of ``total`` layers: 2 of 6 -> [1, 4]; 3 of 6 -> [1, 3, 5]."""
    if not 1 <= keep <= total:
        raise ModelError(f"cannot keep {keep} of the teacher's {total} layers (choose 1..{total})")
    return [int((i + 0.5) * total / keep) for i in range(keep)]


def encoder_layers(model: nn.Module) -> nn.ModuleList:
    """The list of transformer blocks of a BERT-like model (BERT, RoBERTa, MPNet, ELECTRA...)."""
    encoder = getattr(model.base_model, "encoder", None)
    layers = getattr(encoder, "layer", None)
    if not isinstance(layers, nn.ModuleList):
        raise ModelError(f"layer selection needs a BERT-like encoder with encoder.layer; "
                         f"{model.config.model_type} has none: pass --student DIR instead")
    return layers


def select_layers(teacher: nn.Module, layers: list[int]) -> nn.Module:
    """A copy of the teacher keeping only ``layers`` (embeddings and head are copied whole)."""
    blocks = encoder_layers(teacher)
    if any(not 0 <= i < len(blocks) for i in layers):
        raise ModelError(f"layers {layers} out of range for a {len(blocks)}-layer teacher")
    student = copy.deepcopy(teacher)
    student.base_model.encoder.layer = nn.ModuleList(copy.deepcopy(blocks[i]) for i in layers)
    student.config.num_hidden_layers = len(layers)
    for i, block in enumerate(student.base_model.encoder.layer):  # keep per-layer indices consistent
        for m in block.modules():
            if hasattr(m, "layer_idx"):
                m.layer_idx = i
    return student


def subclone(teacher: nn.Module, layers: list[int], hidden_size: int, *, order: str = "importance") -> nn.Module:
    """A narrower student: ``layers`` of the teacher cut to ``hidden_size`` dimensions.

    Head size is kept, so cutting the hidden dimension keeps whole attention heads and the attention
    arithmetic stays the teacher's. ``order="importance"`` keeps the residual dimensions, heads and
    feed-forward neurons that carry the most weight (see :func:`width_indices`), as weight
    subcloning prescribes; ``"first"`` keeps the first ones (the naive cut, for comparison).
    """
    cfg = teacher.config
    if cfg.model_type != "bert":
        raise ModelError(f"narrower students are built from BERT teachers; this one is {cfg.model_type}: "
                         "pass --student DIR with a small model instead")
    head_dim = cfg.hidden_size // cfg.num_attention_heads
    if hidden_size >= cfg.hidden_size or hidden_size % head_dim:
        raise ModelError(f"--hidden-size must be a multiple of {head_dim} below the teacher's {cfg.hidden_size}")
    from transformers import AutoModelForSequenceClassification

    new_cfg = copy.deepcopy(cfg)
    ratio = hidden_size / cfg.hidden_size
    new_cfg.update({"hidden_size": hidden_size, "num_attention_heads": hidden_size // head_dim,
                    "intermediate_size": int(cfg.intermediate_size * ratio), "num_hidden_layers": len(layers)})
    student = AutoModelForSequenceClassification.from_config(new_cfg, dtype=torch.float32)
    source = select_layers(teacher, layers).state_dict()
    keep = width_indices(source, new_cfg, head_dim, order)
    with torch.no_grad():
        for name, param in student.state_dict().items():
            src = source[name]
            kinds = _axis_kinds(name, src.dim())
            for axis, kind in enumerate(kinds):
                if kind is not None:
                    src = src.index_select(axis, keep[kind if kind == "hidden" else f"{kind}.{_layer_of(name)}"])
            param.copy_(src[tuple(slice(0, n) for n in param.shape)])
    return student


def width_indices(state: dict[str, torch.Tensor], cfg, head_dim: int, order: str) -> dict[str, torch.Tensor]:
    """Which residual dimensions ("hidden"), head dimensions ("heads.<layer>") and feed-forward
    neurons ("ffn.<layer>") a narrower copy keeps, sorted ascending.

    Importance is read from the weights alone, so it needs no data and is deterministic: a residual
    dimension by the summed |gain| of every LayerNorm that writes it (what the next layer sees of it),
    a head by the norm of its value rows times its output-projection columns (how much it can add to
    the residual), a neuron by the norm of its input row times its output column.
    """
    if order not in ("importance", "first"):
        raise ModelError(f"unknown width order {order!r} (importance, first)")
    heads, ffn = cfg.num_attention_heads, cfg.intermediate_size

    def top(scores: torch.Tensor, n: int) -> torch.Tensor:
        chosen = torch.arange(n) if order == "first" else torch.topk(scores, n).indices
        return chosen.sort().values

    norms = [v.abs() for k, v in state.items() if k.endswith("LayerNorm.weight")]
    keep = {"hidden": top(torch.stack(norms).sum(0), cfg.hidden_size)}
    for i in range(cfg.num_hidden_layers):
        p = f"{_prefix(state)}encoder.layer.{i}."
        value = state[p + "attention.self.value.weight"].reshape(-1, head_dim, state[p + "attention.self.value.weight"].shape[1])
        out = state[p + "attention.output.dense.weight"].reshape(-1, value.shape[0], head_dim)
        head_score = value.flatten(1).norm(dim=1) * out.transpose(0, 1).flatten(1).norm(dim=1)
        chosen = top(head_score, heads)
        keep[f"heads.{i}"] = (chosen[:, None] * head_dim + torch.arange(head_dim)).flatten()
        neuron_score = state[p + "intermediate.dense.weight"].norm(dim=1) * state[p + "output.dense.weight"].norm(dim=0)
        keep[f"ffn.{i}"] = top(neuron_score, ffn)
    return keep


def _prefix(state: dict[str, torch.Tensor]) -> str:
    return next(k for k in state if k.endswith("embeddings.word_embeddings.weight")).split("embeddings.")[0]


def _layer_of(name: str) -> int:
    return int(name.split("encoder.layer.")[1].split(".")[0])


def _axis_kinds(name: str, dims: int) -> tuple[str | None, ...]:
    """What each axis of a BERT parameter indexes: the residual ("hidden"), a layer's head
    dimensions ("heads"), its feed-forward neurons ("ffn"), or nothing narrowed (None)."""
    if "embeddings." in name and "LayerNorm" not in name:
        return (None, "hidden") if dims == 2 else (None,) * dims
    if any(f"attention.self.{m}." in name for m in ("query", "key", "value")):
        return ("heads", "hidden")[:dims]
    if "attention.output.dense." in name:
        return ("hidden", "heads")[:dims]
    if "intermediate.dense." in name:
        return ("ffn", "hidden")[:dims]
    if ".output.dense." in name:
        return ("hidden", "ffn")[:dims]
    if name.startswith("classifier."):
        return (None, "hidden")[:dims]
    return ("hidden",) * dims  # LayerNorms, pooler


def check_not_larger(student: nn.Module, teacher: nn.Module) -> None:
    from ..modeling import count_parameters

    s, t = count_parameters(student), count_parameters(teacher)
    if s > t:
        raise ModelError(f"the student ({s / 1e6:.1f}M parameters) is larger than the teacher ({t / 1e6:.1f}M): "
                         "distillation should shrink the ranker")


class HiddenProjection(nn.Module):
    """Learned maps from the student's hidden size to the teacher's, one per matched layer
    (TextBrewer's ``proj`` option); trained with the student and thrown away after."""

    def __init__(self, student_dim: int, teacher_dim: int, count: int):
        super().__init__()
        self.maps = nn.ModuleList(nn.Linear(student_dim, teacher_dim) for _ in range(count))

    def forward(self, i: int, hidden: torch.Tensor) -> torch.Tensor:
        return self.maps[i](hidden)
