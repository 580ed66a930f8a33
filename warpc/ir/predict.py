"""`warpc predict` as a library call: a source (checkpoint, netlist JSON, model, Netlist) and its samples -> the
compiled netlist's class scores, emulated bit-exactly, and optionally the PyTorch model's scores beside them.

Source and dataset resolution go through warpc.ir.source (the one resolver); the emulator and the argmax are
warpc.ir.emulate's. Only `check=True` imports torch.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DatasetError, NetlistError
from .emulate import argmax_lowest, emulate_counts
from .netlist import Netlist
from .source import SampleData, check_sample_args, compiled_netlist, is_netlist_source, sample_data


@dataclass
class Prediction:
    netlist: Netlist              # what was emulated
    data: SampleData              # the samples (checked against the netlist) and where they came from
    counts: np.ndarray            # (N, classes) int64 class scores
    predictions: np.ndarray       # (N,) int64, ties to the lowest class
    torch_counts: np.ndarray | None = None   # the PyTorch model's scores, when check=True

    @property
    def accuracy(self) -> float | None:
        y = self.data.y
        return float((self.predictions == y).mean()) if y is not None and len(y) else None

    @property
    def bit_exact(self) -> bool | None:
        """Every class score equals PyTorch's (None when not checked)."""
        return None if self.torch_counts is None else bool(np.array_equal(self.torch_counts, self.counts))


def predict(source, *, lut_size: int | None = 4, optimize: bool = True, x=None, y=None,
            dataset: str | Path | None = None, data_dir=None, npz: str | Path | None = None, split: str = "test",
            check: bool = False) -> Prediction:
    """Emulate `source` on its samples: arrays `x` (and `y`), an `.npz` file, a named dataset or file, or the
    dataset the netlist records (same split). A checkpoint or model is compiled (optimised unless
    optimize=False, packed into `lut_size`-input LUTs); a netlist is emulated exactly as it is.
    check=True also runs the PyTorch model (checkpoints and models only) on the same samples."""
    if check and is_netlist_source(source):
        raise NetlistError("--check needs a checkpoint or a model: a netlist JSON has no PyTorch model to compare "
                           "with")
    check_sample_args(x=x, dataset=dataset, npz=npz, split=split)
    net, _ = compiled_netlist(source, lut_size=None if is_netlist_source(source) else lut_size, optimize=optimize)
    data = sample_data(net, x=x, y=y, dataset=dataset, data_dir=data_dir, split=split, npz=npz)
    if data is None:
        raise DatasetError("the netlist records no dataset; pass a dataset (--dataset) or an .npz file (--npz)")
    counts = emulate_counts(net, data.x)
    result = Prediction(net, data, counts, argmax_lowest(counts))
    if check:
        result.torch_counts = torch_counts(source, data.x)
    return result


def torch_counts(source, x: np.ndarray) -> np.ndarray:
    """The PyTorch model's (N, classes) int64 class scores (eval mode, hard semantics) for a checkpoint path or a
    WarpNet."""
    import torch

    if isinstance(source, (str, Path)):
        from ..checkpoint import load

        model = load(source)
    elif hasattr(source, "counts") and hasattr(source, "hard_description"):
        model = source
    else:
        raise NetlistError(f"cannot run a {type(source).__name__} in PyTorch; pass a checkpoint or a WarpNet")
    with torch.no_grad():
        return model.counts(torch.as_tensor(np.asarray(x), dtype=torch.float32)).cpu().numpy().astype(np.int64)
