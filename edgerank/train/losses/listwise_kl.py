"""Listwise KL divergence between the teacher's and the student's softmax over each query's
candidates (Hinton et al. 2015, "Distilling the Knowledge in a Neural Network", applied per
candidate list as in RankDistil / Reddi et al. 2021).

The temperature softens both distributions so the student also learns how the teacher orders the
products it does not put first; the loss is scaled by T² to keep gradient size independent of T.
"""

from __future__ import annotations

import torch
from torch import nn


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
