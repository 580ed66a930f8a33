"""Device choice for training and evaluation."""
from __future__ import annotations

import torch

from ..errors import ConfigError


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """'auto' -> CUDA when available, else CPU; errors for a CUDA request without CUDA."""
    if isinstance(device, torch.device):
        return device
    d = (device or "auto").lower()
    if d == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if d.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError("--device cuda requested but CUDA is not available (use --device auto or cpu)")
    try:
        return torch.device(d)
    except RuntimeError:
        raise ConfigError(f"unknown device {device!r}; use auto, cpu or cuda") from None
