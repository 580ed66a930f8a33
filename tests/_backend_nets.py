"""Small netlists for the backend tests: random IR nets (no torch) and a briefly trained digits WarpNet."""
from __future__ import annotations

import numpy as np

from warpc.ir.netlist import InputBit, Netlist, Node


def random_net(seed: int = 0, n_features: int = 6, thresholds: int = 3, widths=(24, 12), k: int = 2,
               classes: int = 3, input_bits: int = 8, extras: bool = True) -> Netlist:
    """Layered random net; with `extras`, outputs also use constants, inputs and repeated signals."""
    rng = np.random.default_rng(seed)
    top = (1 << input_bits) - 1
    inputs = [InputBit(f, int(t)) for f in range(n_features) for t in sorted(rng.integers(0, top + 2, thresholds))]
    nodes, prev = [], [2 + i for i in range(len(inputs))]
    for li, w in enumerate(widths):
        first = 2 + len(inputs) + len(nodes)
        for _ in range(w):
            kk = int(rng.integers(0, k + 1)) if extras else k
            fanin = tuple(int(v) for v in rng.choice(prev, size=kk, replace=len(prev) < kk))
            nodes.append(Node(fanin, int(rng.integers(0, 1 << (1 << kk))), li))
        prev = list(range(first, first + w))
    g = len(prev) // classes
    outputs = [prev[c * g:(c + 1) * g] for c in range(classes)]
    if extras:
        outputs[0] = outputs[0] + [1, 1, 0]
        outputs[-1] = outputs[-1] + [prev[0], prev[0], 2]
    return Netlist(n_features, inputs, nodes, outputs, input_bits=input_bits).validate()


def random_x(net: Netlist, n: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 1 << net.input_bits, size=(n, net.n_features))


def digits_data():
    from sklearn.datasets import load_digits

    d = load_digits()
    x, y = d.data.astype(np.int64), d.target.astype(np.int64)
    perm = np.random.default_rng(0).permutation(len(x))
    x, y = x[perm], y[perm]
    return x[:1437], y[:1437], x[1437:], y[1437:]


def digits_model(widths=(300, 300), steps: int = 150, seed: int = 0):
    """A WarpNet (k=2) trained for a few Adam steps on sklearn digits; returns (model, x_test, y_test)."""
    import torch

    from warpc.config import ModelConfig
    from warpc.nn import WarpNet

    xtr, ytr, xte, yte = digits_data()
    torch.manual_seed(seed)
    cfg = ModelConfig(n_features=64, classes=10, widths=list(widths), k=2, thresholds=3, tau_head=10.0, seed=seed)
    model = WarpNet(cfg).fit_encoder(xtr)
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    xt, yt = torch.tensor(xtr, dtype=torch.float32), torch.tensor(ytr)
    g = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(steps):
        idx = torch.randint(0, len(xt), (128,), generator=g)
        loss = torch.nn.functional.cross_entropy(model(xt[idx]), yt[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    return model, xte, yte


def train_small_digits(folder) -> "Path":
    """`warpc train --dataset digits --widths 200,100 --steps 300` into folder/digits.safetensors (the slow
    toolchain tests' model: seconds to train, a few hundred LUTs)."""
    from pathlib import Path

    from click.testing import CliRunner

    from warpc.cli import main

    ckpt = Path(folder) / "digits.safetensors"
    r = CliRunner().invoke(main, ["train", "--dataset", "digits", "--widths", "200,100", "--steps", "300",
                                  "--out", str(ckpt)])
    assert r.exit_code == 0, r.output
    return ckpt
