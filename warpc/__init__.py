"""warpc: compile learned WARP-LUT logic networks into FPGA bitstreams.

Importing warpc is cheap and does not import torch; `warpc.load` (and the frontend) import it on first use.
Pipeline (hls4ml-like): ``result = warpc.train(cfg, ds, out=ckpt)`` -> ``model = warpc.load(ckpt)`` ->
``net = warpc.compile(ckpt)`` (netlist IR) -> ``net.predict(x)`` -> ``warpc.build(net, board="icebreaker")`` ->
report dict. The packages read as the pipeline: frontend ``nn/ data/ training/`` -> middle end ``ir/`` ->
backend ``hdl/`` (Amaranth designs) -> ``fpga/`` (toolchain, boards, equivalence, reports).
No public function here shares its name with a submodule (``warpc.compile`` lives in ``warpc/ir/compiler.py``,
``warpc.train`` in ``warpc/training/``, ``warpc.build`` in ``warpc/fpga/flow.py``).
"""
from __future__ import annotations

import os

# Spinning OpenMP waits made training ~10x slower on a busy 2-core machine (docs/frontend.md); passive waits cost
# nothing measurable when cores are free. Only effective when warpc is imported before torch.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"


def load(path, device="cpu"):
    """Load a checkpoint as a WarpNet in eval mode (see warpc.checkpoint)."""
    from .checkpoint import load as _load

    return _load(path, device)


def train(config, dataset, **kwargs):
    """Train a WarpNet (see warpc.training.train); returns a TrainResult with the best model and metrics."""
    from .training import train as _train

    return _train(config, dataset, **kwargs)


def compile(source, K: int | None = 4, optimize: bool = True, depth=None, **kwargs):
    """Checkpoint / model / netlist -> CompiledNet (optimised, packed into K-LUTs; see warpc.ir.compiler.compile)."""
    from .ir.compiler import compile as _compile

    return _compile(source, K=K, optimize=optimize, depth=depth, **kwargs)


def build(source, board: str = "icebreaker", out="build", **kwargs) -> dict:
    """Netlist / CompiledNet / checkpoint -> bitstream in `out` + report dict (see warpc.fpga.flow.build)."""
    from .fpga.flow import build as _build

    return _build(source, board=board, out=out, **kwargs)
