"""Margin-MSE (Hofstätter et al. 2020, "Improving Efficient Neural Ranking Models with
Cross-Architecture Knowledge Distillation", arXiv:2010.02666).

For every pair of candidates (i, j) of the same query, the student's score margin s_i - s_j is
regressed onto the teacher's margin t_i - t_j. Only differences are matched, so the student is free
to use its own score scale — which is what lets architectures with different output ranges (a
narrower student, a bi-encoder) learn from a cross-encoder teacher.
"""

from __future__ import annotations

import torch
from torch import nn


class MarginMSELoss(nn.Module):
    def forward(self, scores: torch.Tensor, teacher: torch.Tensor, group_sizes: list[int]) -> torch.Tensor:
        losses = []
        for s, t in zip(torch.split(scores, group_sizes), torch.split(teacher, group_sizes)):
            if len(s) < 2:
                continue
            i, j = torch.triu_indices(len(s), len(s), offset=1, device=s.device)
            losses.append(((s[i] - s[j]) - (t[i] - t[j])).pow(2).mean())
        if not losses:
            return scores.sum() * 0.0
        return torch.stack(losses).mean()
