"""Distilling catalog students: tower models (``edgerank.modeling.towers``) built over the encoder of
a cross-encoder-shaped student and trained from the cross-encoder teacher with the same losses.

The towers are initialised like the cross-encoder students (teacher layers spread across depth, or a
subclone). Cosines live in [-1, 1] while teacher logits span several units, so ``fit_scale`` starts
the learnable ``scale`` and ``bias`` at the least-squares fit to the teacher, and the first steps are
not spent stretching the range. Late interaction also trains search's pooled first stage with the
same losses (``DistillConfig.pooled_weight``).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..modeling.towers import TowerSpec, TowerStudent, score_tower_groups

DEFAULT_DIM = {"late-interaction": 128, "bi-encoder": 384}


def build_towers(student: nn.Module, spec: TowerSpec) -> TowerStudent:
    """Towers over the encoder of a cross-encoder-shaped student (layer-selected, subcloned or another
    model, as ``distill.build_student`` made it); its classification head is dropped."""
    return TowerStudent(student.base_model, spec)


def fit_scale(model: TowerStudent, tokenizer, groups, targets: np.ndarray, max_pairs: int = 512) -> tuple[float, float]:
    """Set ``scale`` and ``bias`` to the least-squares map from the untrained towers' similarities to the
    teacher's scores on the first ``max_pairs`` pairs. The slope is fitted on per-query centred values
    (ranking only needs within-query margins right); a non-positive slope keeps the default scale."""
    chosen, n = [], 0
    for g in groups:
        if n + len(g.texts) > max_pairs and chosen:
            break
        chosen.append(g)
        n += len(g.texts)
    with torch.no_grad():
        scale, bias = float(model.scale), float(model.bias)
        model.scale.fill_(1.0)
        model.bias.fill_(0.0)
        sims = score_tower_groups(model, tokenizer, chosen)
        t = [targets[g.rows] for g in chosen]
        xc = np.concatenate([s - s.mean() for s in sims])
        tc = np.concatenate([x - x.mean() for x in t])
        if (xc * xc).sum() > 0 and (xc * tc).sum() > 0:
            scale = float((xc * tc).sum() / (xc * xc).sum())
        bias = float(np.concatenate(t).mean() - scale * np.concatenate(sims).mean())
        model.scale.fill_(scale)
        model.bias.fill_(bias)
        if hasattr(model, "pooled_scale"):  # pooled cosines have a similar spread: start from the same map
            model.pooled_scale.fill_(scale)
            model.pooled_bias.fill_(bias)
    model.train()
    return scale, bias
