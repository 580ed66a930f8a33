"""GroupSum head: the last layer's outputs split into `classes` equal groups; score = popcount / tau."""
from __future__ import annotations

import torch
from torch import nn

from ..errors import ConfigError, ShapeError


class GroupSum(nn.Module):
    def __init__(self, classes: int, tau: float = 1.0) -> None:
        super().__init__()
        if classes < 2:
            raise ConfigError(f"GroupSum needs at least 2 classes, got {classes}")
        if not (float(tau) > 0 and float(tau) != float("inf")):
            raise ConfigError(f"GroupSum tau must be a positive finite number, got {tau}")
        self.classes, self.tau = classes, float(tau)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] % self.classes:
            raise ShapeError(f"GroupSum: {x.shape[-1]} outputs do not split into {self.classes} equal groups")
        g = x.shape[-1] // self.classes
        if x.dim() == 2 and not x.is_contiguous() and x.t().is_contiguous():
            # Fused kernels hand out node-major activations as a transposed view: sum in that layout, no copy.
            return x.t().reshape(self.classes, g, x.shape[0]).sum(1).t() / self.tau
        return x.reshape(*x.shape[:-1], self.classes, g).sum(-1) / self.tau

    def extra_repr(self) -> str:
        return f"classes={self.classes}, tau={self.tau:g}"


def argmax_lowest(scores: torch.Tensor) -> torch.Tensor:
    """Argmax over the last dim; ties go to the lowest class index (as the hardware does)."""
    best = scores.max(-1, keepdim=True).values
    idx = torch.arange(scores.shape[-1], device=scores.device).expand_as(scores)
    return torch.where(scores == best, idx, scores.shape[-1]).min(-1).values
