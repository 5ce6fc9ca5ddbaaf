"""Build a student cross-encoder from a teacher: keep some of its layers, narrow it, or take another model.

Layer selection keeps layers spread across the teacher's depth (the centre of each of N equal
segments) rather than the first N: lower layers carry lexical matching, upper ones the
relevance decision, and a student needs both. For N=2 of 6 this keeps layers 1 and 4 (0-based),
the choice that matched the teacher best in reference runs.

Narrower students are initialised by weight subcloning (Samragh et al. 2023, "Weight subcloning:
direct initialization of transformers using larger pretrained ones"): the first ``hidden_size``
dimensions and the first heads of each kept layer, so training starts from the teacher's features
instead of noise; hidden-state transfer through a learned projection then pulls them back towards
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
        raise ModelError(
            f"layer selection needs a BERT-like encoder with encoder.layer; "
            f"{model.config.model_type} has none: pass --student DIR instead"
        )
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


def subclone(teacher: nn.Module, layers: list[int], hidden_size: int) -> nn.Module:
    """A narrower student: ``layers`` of the teacher cut to the first ``hidden_size`` dimensions.

    Head size is kept, so cutting the hidden dimension keeps whole attention heads (the first
    ``hidden_size / head_dim`` of them) and the attention arithmetic stays the teacher's.
    """
    cfg = teacher.config
    if cfg.model_type != "bert":
        raise ModelError(
            f"narrower students are built from BERT teachers; this one is {cfg.model_type}: "
            "pass --student DIR with a small model instead"
        )
    head_dim = cfg.hidden_size // cfg.num_attention_heads
    if hidden_size >= cfg.hidden_size or hidden_size % head_dim:
        raise ModelError(f"--hidden-size must be a multiple of {head_dim} below the teacher's {cfg.hidden_size}")
    from transformers import AutoModelForSequenceClassification

    new_cfg = copy.deepcopy(cfg)
    ratio = hidden_size / cfg.hidden_size
    new_cfg.update(
        {
            "hidden_size": hidden_size,
            "num_attention_heads": hidden_size // head_dim,
            "intermediate_size": int(cfg.intermediate_size * ratio),
            "num_hidden_layers": len(layers),
        }
    )
    student = AutoModelForSequenceClassification.from_config(new_cfg, dtype=torch.float32)
    source = select_layers(teacher, layers).state_dict()
    with torch.no_grad():
        for name, param in student.state_dict().items():
            src = source[name]
            param.copy_(src[tuple(slice(0, n) for n in param.shape)])
    return student


def check_not_larger(student: nn.Module, teacher: nn.Module) -> None:
    from ..modeling import count_parameters

    s, t = count_parameters(student), count_parameters(teacher)
    if s > t:
        raise ModelError(
            f"the student ({s / 1e6:.1f}M parameters) is larger than the teacher ({t / 1e6:.1f}M): "
            "distillation should shrink the ranker"
        )


def matched_teacher_states(student_layers: int, teacher_layers: int) -> list[int]:
    """Which teacher hidden state (0 = embeddings, i = output of layer i) each student state imitates.

    TinyBERT's uniform mapping (Jiao et al. 2020): student layer m of M learns teacher layer
    m * N / M of N, so the student's last layer imitates the teacher's last one, the state the
    classification head was trained to read. 2 of 6 -> [0, 3, 6]; 6 of 6 -> [0, 1, ..., 6].
    """
    return [round(m * teacher_layers / student_layers) for m in range(student_layers + 1)]


class HiddenProjection(nn.Module):
    """Learned maps from the student's hidden size to the teacher's, one per matched layer
    (TextBrewer's ``proj`` option); trained with the student and thrown away after.

    Same-width maps start as the identity: a student cut from the teacher's layers already lives
    in the teacher's space, and a random map would first pull its states away from it.
    """

    def __init__(self, student_dim: int, teacher_dim: int, count: int):
        super().__init__()
        self.maps = nn.ModuleList(nn.Linear(student_dim, teacher_dim) for _ in range(count))
        if student_dim == teacher_dim:
            with torch.no_grad():
                for m in self.maps:
                    m.weight.copy_(torch.eye(teacher_dim))
                    m.bias.zero_()

    def forward(self, i: int, hidden: torch.Tensor) -> torch.Tensor:
        return self.maps[i](hidden)
