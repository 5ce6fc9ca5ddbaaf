"""One loss per module, each citing where it comes from. All take per-query groups of scores."""

from .listnet import ListNetLoss
from .listwise_kl import ListwiseKLLoss, auto_temperature
from .margin_mse import MarginMSELoss
from .pointwise_bce import PointwiseBCELoss
from .score_mse import ScoreMSELoss

__all__ = ["ListwiseKLLoss", "ListNetLoss", "MarginMSELoss", "PointwiseBCELoss", "ScoreMSELoss", "auto_temperature"]
