"""WarpNet: thermometer encoder -> WarpLUT layers -> GroupSum, built from a ModelConfig."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..config import ModelConfig
from .encoders import Thermometer
from .groupsum import GroupSum, argmax_lowest
from .warplut import WarpLUT


class WarpNet(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config.validate()
        c = config
        self.encoder = Thermometer(c.n_features, c.thresholds, learnable=c.encoder == "learnable",
                                   input_bits=c.input_bits)
        layers, n_in = [], self.encoder.out_features
        for i, (width, k, tau) in enumerate(zip(c.widths, c.layer_ks(), c.layer_taus())):
            wiring = c.wiring if (c.wiring != "learnable" or i == 0) else "unique"
            layers.append(
                WarpLUT(n_in, width, k=k, tau=tau, sampling=c.sampling, init=c.init, wiring=wiring,
                        parametrization=c.parametrization, candidates=c.wiring_candidates, seed=c.seed * 1000 + i)
            )
            n_in = width
        self.layers = nn.ModuleList(layers)
        self.head = GroupSum(c.classes, c.tau_head)
        self.meta: dict = {}

    def fit_encoder(self, x_train: np.ndarray) -> "WarpNet":
        self.encoder.fit(np.asarray(x_train), self.config.encoder)
        return self

    def bits(self, x: torch.Tensor) -> torch.Tensor:
        """Last layer's outputs (relaxed in training, {0,1} in eval)."""
        h = self.encoder(x)
        for layer in self.layers:
            h = layer(h)
        return h

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.bits(x))

    @torch.no_grad()
    def counts(self, x: torch.Tensor) -> torch.Tensor:
        """Eval-mode popcount per class (int64): the hardware's class scores. The same as the eval-mode layers'
        outputs summed per class, computed node-major in uint8 through WarpLUT.hard_rows (no per-layer transposes)."""
        was = self.encoder.training
        self.encoder.eval()
        try:
            h = (self.encoder(x) > 0.5).t().to(torch.uint8).contiguous()
        finally:
            self.encoder.train(was)
        for layer in self.layers:
            h = layer.hard_rows(h)
        h = h.t()
        return h.reshape(h.shape[0], self.config.classes, -1).sum(-1, dtype=torch.int64)

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Eval-mode class index; ties go to the lowest index."""
        return argmax_lowest(self.counts(x))

    @torch.no_grad()
    def hard_description(self) -> dict:
        """Everything the hardware needs, as plain numpy/python (the input to warpc.ir.discretize)."""
        c = self.config
        return {
            "n_features": c.n_features,
            "input_bits": c.input_bits,
            "thresholds": self.encoder.hard_thresholds(),           # (F, T) int64, bit = [x_f >= t]
            "layers": [
                {"k": layer.k, "wiring": layer.wiring_indices().cpu().numpy().astype(np.int64),
                 "tables": layer.truth_tables()}                   # (out, k) and (out, 2^k) uint8
                for layer in self.layers
            ],
            "classes": c.classes,
            "tau_head": c.tau_head,
            "class_names": list(c.class_names) if c.class_names else [str(i) for i in range(c.classes)],
        }
