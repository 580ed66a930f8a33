"""Thermometer input encoders over integer-valued features.

Features reach the model as integers in their raw hardware domain (e.g. 0..255 pixels; datasets record the scale
of any quantisation). Thresholds are integers in that domain: bit (f, j) = [x_f >= t_{f,j}], so hardware encodes
with plain integer compares. Output bit order is feature-major: bit index = f * T + j.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F

from ..config import ENCODERS
from ..errors import ConfigError, ShapeError


def fit_thresholds(x: np.ndarray, n_thresholds: int, method: str) -> np.ndarray:
    """Integer thresholds (F, T) from training features x (N, F): uniform over [min, max] or at quantiles."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ShapeError(f"features must be (samples, features), got shape {x.shape}")
    if method == "uniform" or method == "learnable":
        lo, hi = x.min(0), x.max(0)
        q = np.arange(1, n_thresholds + 1) / (n_thresholds + 1)
        t = lo[:, None] + (hi - lo)[:, None] * q[None, :]
    elif method == "distributive":
        q = np.arange(1, n_thresholds + 1) / (n_thresholds + 1)
        t = np.quantile(x, q, axis=0).T
    else:
        raise ConfigError(f"unknown encoder {method!r}; choose one of {ENCODERS}")
    # Integer thresholds, at least min+1 so that a bit is not constant 1 on the training data.
    t = np.ceil(t)
    t = np.maximum(t, x.min(0)[:, None] + 1)
    return t.astype(np.int64)


class Thermometer(nn.Module):
    """Thermometer encoder; `learnable=True` learns monotone thresholds (base + cumsum(softplus(increments)))
    with a sigmoid relaxation in training and the hard compare x >= ceil(t) at eval.

    `input_bits` bounds the hard thresholds to 0..2^input_bits (0: always 1, 2^input_bits: always 0 for features
    of that width), so learned thresholds that drift out of the feature range stay representable in hardware."""

    def __init__(self, n_features: int, n_thresholds: int, learnable: bool = False, temperature: float = 1.0,
                 input_bits: int = 8):
        super().__init__()
        if n_features < 1 or n_thresholds < 1:
            raise ConfigError("the encoder needs at least one feature and one threshold")
        self.n_features, self.n_thresholds, self.input_bits = n_features, n_thresholds, input_bits
        self.learnable, self.temperature = learnable, float(temperature)
        self.register_buffer("thresholds", torch.zeros(n_features, n_thresholds, dtype=torch.int64))
        if learnable:
            self.base = nn.Parameter(torch.zeros(n_features, 1))
            self.increments = nn.Parameter(torch.zeros(n_features, max(n_thresholds - 1, 0)))

    @property
    def out_features(self) -> int:
        return self.n_features * self.n_thresholds

    def fit(self, x: np.ndarray, method: str) -> "Thermometer":
        t = fit_thresholds(x, self.n_thresholds, method)
        self.thresholds.copy_(torch.from_numpy(t))
        if self.learnable:
            tf = torch.from_numpy(t).double()
            with torch.no_grad():
                self.base.copy_((tf[:, :1] - 0.5).float())
                d = (tf[:, 1:] - tf[:, :-1]).clamp_min(1e-3)
                self.increments.copy_(torch.log(torch.expm1(d)).float())  # softplus^-1
        return self

    def _soft_thresholds(self) -> torch.Tensor:
        return torch.cat([self.base, self.base + torch.cumsum(F.softplus(self.increments), -1)], -1)

    @torch.no_grad()
    def sync_thresholds(self) -> None:
        """Store the learned thresholds as integers (ceil) in the `thresholds` buffer."""
        if self.learnable:
            t = torch.ceil(self._soft_thresholds()).clamp(0, 1 << self.input_bits)
            self.thresholds.copy_(t.to(torch.int64))

    def hard_thresholds(self) -> np.ndarray:
        self.sync_thresholds()
        return self.thresholds.cpu().numpy().copy()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 2 or x.shape[1] != self.n_features:
            raise ShapeError(f"encoder expects (batch, {self.n_features}) features, got {tuple(x.shape)}")
        if self.training:
            # Training: computed node-major ((F*T, B) contiguous) and returned as its transposed (B, F*T) view:
            # the same values, faster here, and the fused WarpLUT kernels (warpc.nn.kernels) read it without a
            # layout copy. Use .reshape, not .view, on the result.
            if not self.learnable:
                from .kernels import thermometer_bits

                bits = thermometer_bits(x, self.thresholds)  # the C++ kernel when a fused CPU layer loaded it
                if bits is not None:
                    return bits.t()
            xt = x.t()[:, None, :]
            if self.learnable:
                t = self._soft_thresholds()
                bits = torch.sigmoid((xt - t[:, :, None]) / self.temperature)
            else:
                bits = (xt >= self.thresholds[:, :, None].to(x.dtype)).to(torch.float32)
            return bits.reshape(self.out_features, x.shape[0]).t()
        if self.learnable:
            self.sync_thresholds()
        return (x[:, :, None] >= self.thresholds[None].to(x.dtype)).to(torch.float32).flatten(1)
