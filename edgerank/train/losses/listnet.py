"""ListNet top-one cross-entropy against graded labels (Cao et al. 2007, "Learning to Rank: From
Pairwise Approach to Listwise Approach").

Each query's gains become a target distribution (softmax of gain / temperature) and the scores'
softmax is trained towards it, so the model learns the order within a candidate list rather than
absolute labels. Lists whose labels are all equal carry no order and are skipped.
"""

from __future__ import annotations

import torch
from torch import nn


class ListNetLoss(nn.Module):
    def __init__(self, temperature: float = 1.0):
        super().__init__()
        self.temperature = temperature

    def forward(self, scores: torch.Tensor, gains: torch.Tensor, group_sizes: list[int]) -> torch.Tensor:
        losses = []
        for s, g in zip(torch.split(scores, group_sizes), torch.split(gains, group_sizes)):
            if len(s) < 2 or bool((g == g[0]).all()):
                continue
            target = torch.softmax(g / self.temperature, dim=0)
            losses.append(-(target * torch.log_softmax(s, dim=0)).sum())
        if not losses:
            return scores.sum() * 0.0  # keeps the graph (and DDP's gradient sync) intact
        return torch.stack(losses).mean()
