"""Small trained / random WarpNets for the middle-end tests and benchmarks (a tiny Adam loop, independent of
warpc.train so the tests do not move when the trainer changes)."""
from __future__ import annotations

import numpy as np


def digits_split(seed: int = 0):
    from sklearn.datasets import load_digits

    d = load_digits()
    x, y = d.data.astype(np.int64), d.target.astype(np.int64)
    idx = np.random.default_rng(seed).permutation(len(y))
    n_test = len(y) // 5
    return x[idx[n_test:]], y[idx[n_test:]], x[idx[:n_test]], y[idx[:n_test]]


def train_quick(x, y, classes: int, steps: int = 300, batch: int = 128, lr: float = 0.05, seed: int = 0, **cfg):
    """Build a WarpNet from ModelConfig(**cfg), fit its encoder and run `steps` Adam steps; returns it in eval."""
    import torch

    from warpc.config import ModelConfig
    from warpc.nn.model import WarpNet

    torch.manual_seed(seed)
    cfg.setdefault("widths", [400, 200])
    model = WarpNet(ModelConfig(n_features=x.shape[1], classes=classes, seed=seed, **cfg)).fit_encoder(x)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    xt = torch.tensor(x, dtype=torch.float32)
    yt = torch.tensor(y)
    gen = np.random.default_rng(seed)
    model.train()
    for _ in range(steps):
        b = gen.integers(0, len(y), size=batch)
        loss = torch.nn.functional.cross_entropy(model(xt[b]), yt[b])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


def model_counts(model, x) -> np.ndarray:
    import torch

    return model.counts(torch.tensor(np.asarray(x), dtype=torch.float32)).numpy()
