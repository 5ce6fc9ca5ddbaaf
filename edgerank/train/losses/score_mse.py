"""Plain MSE between student and teacher scores (the simplest knowledge distillation for
regression outputs; Ba & Caruana 2014, "Do Deep Nets Really Need to be Deep?").

Matches absolute scores, so the student also inherits the teacher's calibration — useful when the
exported artifact's scores are read as probabilities, and a strong anchor next to listwise losses.
"""

from __future__ import annotations

import torch
from torch import nn


class ScoreMSELoss(nn.Module):
    def forward(self, scores: torch.Tensor, teacher: torch.Tensor, group_sizes: list[int]) -> torch.Tensor:
        return nn.functional.mse_loss(scores, teacher)
