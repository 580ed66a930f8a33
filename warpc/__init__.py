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
import sys

# OpenMP waiting (docs/kernels.md, "Threads and OpenMP waiting"; scripts/results/omp_wait*.json): torch's libgomp
# spins 300,000 rounds after each parallel region by default, which made a fused CPU training step 9x slower next
# to two busy processes on this 2-core machine; passive waits were the fastest there and with two trainings at
# once (2x faster than a short spin, GOMP_SPINCOUNT=10000), and cost 1.4x on a lightly loaded machine, the
# smallest worst case measured. libgomp reads this once, when torch loads it: it only takes effect when warpc is
# imported before torch, and never overrides a user's own OpenMP settings.
TORCH_LOADED_FIRST = "torch" in sys.modules  # then torch's OpenMP already runs with its own (or the user's) settings
if not TORCH_LOADED_FIRST and "OMP_WAIT_POLICY" not in os.environ and "GOMP_SPINCOUNT" not in os.environ:
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"

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


def estimate(source, board: str = "icebreaker", **kwargs) -> dict:
    """What a build of `source` on `board` will cost, without synthesis (see warpc.fpga.estimate.estimate)."""
    from .fpga.estimate import estimate as _estimate

    return _estimate(source, board=board, **kwargs)


def build(source, board: str = "icebreaker", out="build", **kwargs) -> dict:
    """Netlist / CompiledNet / checkpoint -> bitstream in `out` + report dict (see warpc.fpga.flow.build)."""
    from .fpga.flow import build as _build

    return _build(source, board=board, out=out, **kwargs)
