"""Pointwise binary cross-entropy on graded labels scaled to [0, 1].

The standard cross-encoder objective (Nogueira & Cho 2019, "Passage Re-ranking with BERT"; soft
labels as in sentence-transformers' ``BinaryCrossEntropyLoss``): each pair is judged on its own,
so it also works when a query has a single judged product.
"""

from __future__ import annotations

import torch
from torch import nn


class PointwiseBCELoss(nn.Module):
    def __init__(self, max_gain: float):
        super().__init__()
        if max_gain <= 0:
            raise ValueError("max_gain must be positive")
        self.max_gain = max_gain

    def forward(self, scores: torch.Tensor, gains: torch.Tensor, group_sizes: list[int]) -> torch.Tensor:
        """scores, gains: (pairs,); group_sizes: candidates per query, summing to pairs."""
        target = (gains / self.max_gain).clamp(0.0, 1.0)
        return nn.functional.binary_cross_entropy_with_logits(scores, target)
