"""Listwise KL divergence between the teacher's and the student's softmax over each query's
candidates (Hinton et al. 2015, "Distilling the Knowledge in a Neural Network", applied per
candidate list as in RankDistil / Reddi et al. 2021).

The temperature softens both distributions so the student also learns how the teacher orders the
products it does not put first; the loss is scaled by T² to keep gradient size independent of T.

``auto_temperature`` sets T from the teacher itself. A cross-encoder trained with BCE on graded labels
can score one query's candidates within a few tenths of a logit of each other (the Home Depot teacher:
median within-query spread 0.14): at T = 1 the softmax over them is nearly flat, the KL reduces to a
centred MSE and says little about which product comes first. Dividing by the typical spread gives
every teacher's lists the same sharpness, whatever scale its training left its logits on.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn


def auto_temperature(teacher: np.ndarray, groups: Sequence[np.ndarray]) -> float:
    """The median standard deviation of the teacher's scores within a query (lists of 2 or more).

    ``groups`` holds each query's row indices into ``teacher``. Falls back to 1 when no list has two
    distinct scores (nothing to sharpen).
    """
    spreads = [float(np.std(teacher[rows])) for rows in groups if len(rows) > 1]
    spread = float(np.median(spreads)) if spreads else 0.0
    return spread if spread > 1e-6 else 1.0


class ListwiseKLLoss(nn.Module):
    def __init__(self, temperature: float = 1.0):
        super().__init__()
        self.temperature = temperature

    def forward(self, scores: torch.Tensor, teacher: torch.Tensor, group_sizes: list[int]) -> torch.Tensor:
        t = self.temperature
        losses = []
        for s, te in zip(torch.split(scores, group_sizes), torch.split(teacher, group_sizes)):
            if len(s) < 2:
                continue
            target = torch.softmax(te / t, dim=0)
            losses.append(nn.functional.kl_div(torch.log_softmax(s / t, dim=0), target, reduction="sum") * t * t)
        if not losses:
            return scores.sum() * 0.0
        return torch.stack(losses).mean()
