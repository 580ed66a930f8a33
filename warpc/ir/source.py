"""The one resolver: "a source" (checkpoint path, netlist JSON path, WarpNet, CompiledNet, Netlist, hard
description dict) -> a Netlist, and the test data that belongs to it.

Every stage that accepts a source (warpc.compile, warpc.build, `warpc predict / hdl / synth / run`) goes through
here; the dataset comes from the IR's explicit `Netlist.dataset` field, never from free-form metadata.
Reading a checkpoint or a model imports torch; everything else is numpy.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DatasetError, NetlistError, ShapeError
from .netlist import Netlist


def is_netlist_file(source) -> bool:
    return isinstance(source, (str, Path)) and Path(source).suffix.lower() == ".json"


def is_netlist_source(source) -> bool:
    """A source that is already a netlist (taken as it is, not compiled): a Netlist, its JSON file or its dict."""
    return isinstance(source, Netlist) or is_netlist_file(source) or (
        isinstance(source, dict) and source.get("format") == "warpc-netlist")


def to_netlist(source) -> Netlist:
    """A validated Netlist from any source (not optimised or packed: that is warpc.compile's job)."""
    from .compiler import CompiledNet
    from .discretize import from_checkpoint, from_description, from_model

    if isinstance(source, Netlist):
        return source.validate()
    if isinstance(source, CompiledNet):
        return source.netlist
    if isinstance(source, dict):
        return Netlist.from_dict(source) if source.get("format") == "warpc-netlist" else from_description(source)
    if isinstance(source, (str, Path)):
        p = Path(source)
        if not p.is_file():
            raise NetlistError(f"{p}: no such file (expected a checkpoint .safetensors or a netlist .json)")
        return Netlist.load(p) if is_netlist_file(p) else from_checkpoint(p)
    if hasattr(source, "hard_description"):
        return from_model(source)
    raise NetlistError(f"cannot compile a {type(source).__name__}; pass a checkpoint path, a netlist (JSON path "
                       "or Netlist), a CompiledNet or a WarpNet")


def compiled_netlist(source, lut_size: int | None = 4, **compile_kwargs) -> tuple[Netlist, dict]:
    """(netlist ready for `lut_size`-input LUT cells, provenance info).

    Netlists and CompiledNets are taken as they are (already compiled); nodes wider than `lut_size` are packed.
    Checkpoints and models are compiled (discretize, optimise, pack) with `compile_kwargs`.
    """
    from .compiler import CompiledNet, compile

    if isinstance(source, CompiledNet):
        net, info = source.netlist, {"source": "compiled net", "compile": source.report.get("summary")}
    elif is_netlist_source(source):
        net = to_netlist(source)
        info = {"source": str(source) if isinstance(source, (str, Path)) else "netlist"}
    else:
        cn = compile(source, K=lut_size, **compile_kwargs)
        net = cn.netlist
        info = {"source": str(source) if isinstance(source, (str, Path)) else type(source).__name__,
                "compile": {"K": lut_size, "stages": {k: len(v.nodes) for k, v in cn.stages.items()}}}
    if lut_size is not None and any(n.k > lut_size for n in net.nodes):
        from .pack import pack

        net, _ = pack(net, K=lut_size)
        info["packed_here"] = lut_size
    return net, info


SPLITS = ("train", "val", "test")


@dataclass
class SampleData:
    x: np.ndarray               # (N, n_features) int64 raw integer features
    y: np.ndarray | None        # (N,) int64 labels, when known
    name: str                   # where they came from, for reports


def sample_data(net: Netlist, *, x=None, y=None, dataset: str | Path | None = None, data_dir=None,
                split: str = "test", npz: str | Path | None = None) -> SampleData | None:
    """The samples to check or stream `net` with: given arrays, an `.npz` file (`x_<split>` / `x`, with the
    matching `y`), a named dataset / data file, or the dataset recorded in the IR (`net.dataset`, same split).
    None when nothing is known. Shapes and label ranges are checked against the netlist (a 2-class netlist
    cannot be scored on 10-class labels)."""
    check_sample_args(x=x, dataset=dataset, npz=npz, split=split)
    if x is not None:
        data = SampleData(np.asarray(x), None if y is None else np.asarray(y), "given arrays")
    elif npz is not None:
        from ..data import load_arrays

        xs, ys, name = load_arrays(npz, split)
        data = SampleData(xs, ys, name)
    elif dataset is not None or net.dataset:
        from ..data import dataset_from_meta, load_dataset

        if dataset is not None:
            # the recorded split seed, so that a named dataset splits as in training
            seed = (net.dataset or {}).get("seed", 0)
            if isinstance(seed, bool) or not isinstance(seed, int):
                raise DatasetError(f"the netlist's recorded dataset seed {seed!r} is not an integer")
            ds = load_dataset(dataset, data_dir=data_dir, input_bits=net.input_bits, seed=seed)
        else:
            try:
                ds = dataset_from_meta(net.dataset, data_dir=data_dir)
            except DatasetError as e:
                raise DatasetError(f"cannot rebuild the {split} split of the recorded dataset: {e}") from None
        xs, ys = ds.split(split)
        data = SampleData(xs, ys, f"{ds.name} {split} split")
    else:
        return None
    return check_samples(net, data)


def check_sample_args(*, x=None, dataset=None, npz=None, split: str = "test") -> None:
    """The cheap checks of sample_data's arguments, for callers that want them before a slow compile."""
    if split not in SPLITS:
        raise DatasetError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    if sum(v is not None for v in (x, dataset, npz)) > 1:
        raise DatasetError("pass one source of samples: arrays, a dataset, or an .npz file")


def check_samples(net: Netlist, data: SampleData) -> SampleData:
    x = data.x
    if x.dtype.kind not in "biuf":
        raise ShapeError(f"{data.name}: features must be numbers, got an array of {x.dtype}")
    if x.ndim != 2 or x.shape[1] != net.n_features:
        raise ShapeError(f"{data.name}: the netlist reads {net.n_features} features, the data has "
                         f"{x.shape[1] if x.ndim == 2 else 'shape ' + str(tuple(x.shape))}")
    if x.dtype.kind == "f":
        if not np.all(np.isfinite(x)) or np.any(x != np.round(x)):
            raise ShapeError(f"{data.name}: features must be integers (the hardware reads "
                             f"{net.input_bits}-bit unsigned values)")
    hi = (1 << net.input_bits) - 1
    if x.size and (x.min() < 0 or x.max() > hi):
        raise ShapeError(f"{data.name}: features range {x.min()}..{x.max()}, the netlist reads "
                         f"{net.input_bits}-bit unsigned values (0..{hi})")
    x = x.astype(np.int64)
    y = data.y
    if y is not None:
        y = np.asarray(y)
        if y.dtype.kind not in "biuf" or y.ndim != 1:
            raise ShapeError(f"{data.name}: labels must be one integer per sample, got {y.dtype} of shape "
                             f"{tuple(y.shape)}")
        if y.dtype.kind == "f" and (not np.all(np.isfinite(y)) or np.any(y != np.round(y))):
            raise ShapeError(f"{data.name}: labels must be integers")
        if len(y) != len(x):
            raise ShapeError(f"{data.name}: {len(x)} samples but {len(y)} labels")
        if y.size and (y.min() < 0 or y.max() >= net.classes):
            raise ShapeError(f"{data.name}: labels range {y.min():g}..{y.max():g}, but the netlist has "
                             f"{net.classes} classes")
        y = y.astype(np.int64)
    return SampleData(x, y, data.name)
