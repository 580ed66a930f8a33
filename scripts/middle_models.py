"""Train the quick digits / Fashion-MNIST checkpoints the middle-end benchmarks use (when no frontend run exists).

    python scripts/middle_models.py fashion --steps 2000   # -> runs/middle/fashion_k2.safetensors
    python scripts/middle_models.py digits                  # -> runs/middle/digits_k2.safetensors
"""
from __future__ import annotations

import argparse
import gzip
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
FASHION = Path("/usr/share/datasets/fashion-mnist")


def read_idx_gz(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    shape = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def fashion():
    xtr = read_idx_gz(FASHION / "train-images-idx3-ubyte.gz").reshape(60000, -1).astype(np.int64)
    ytr = read_idx_gz(FASHION / "train-labels-idx1-ubyte.gz").astype(np.int64)
    xte = read_idx_gz(FASHION / "t10k-images-idx3-ubyte.gz").reshape(10000, -1).astype(np.int64)
    yte = read_idx_gz(FASHION / "t10k-labels-idx1-ubyte.gz").astype(np.int64)
    return xtr, ytr, xte, yte


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("dataset", choices=["digits", "fashion"])
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--k", type=int, default=2)
    ap.add_argument("--widths", default=None)
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    from ir_models import digits_split, model_counts, train_quick

    from warpc.checkpoint import save_checkpoint

    if a.dataset == "digits":
        xtr, ytr, xte, yte = digits_split()
        widths = [int(w) for w in (a.widths or "1000,500").split(",")]
        steps = a.steps or 600
    else:
        xtr, ytr, xte, yte = fashion()
        widths = [int(w) for w in (a.widths or "2000,2000").split(",")]
        steps = a.steps or 2000
    t = time.time()
    model = train_quick(xtr, ytr, 10, steps=steps, thresholds=3, widths=widths, k=a.k, init="residual", lr=0.05)
    acc = float((model_counts(model, xte).argmax(1) == yte).mean())
    out = Path(a.out or ROOT / "runs" / "middle" / f"{a.dataset}_k{a.k}.safetensors")
    save_checkpoint(out, model, {"metrics": {"test_acc": acc, "train_seconds": round(time.time() - t, 1),
                                             "steps": steps},
                                 "data": {"name": "digits" if a.dataset == "digits" else "fashion-mnist"}})
    print(f"{out}: test acc {acc:.4f} after {steps} steps, {time.time() - t:.0f} s")


if __name__ == "__main__":
    main()
