"""Fused training backends for WarpLUT (CPU C++ / Triton). `fused_forward` returns None when the plain PyTorch
path should be used (no fused backend for this device / configuration, or backend="torch")."""
from __future__ import annotations

import torch


def fused_forward(layer, x: torch.Tensor) -> torch.Tensor | None:
    return None
