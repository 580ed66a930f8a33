"""The reference the hardware is compared with: the middle end's bit-parallel emulator when present, otherwise a
plain numpy evaluation of the IR (same semantics, written independently of the HDL)."""
from __future__ import annotations

import numpy as np

from ..ir.netlist import Netlist


def _numpy_counts(net: Netlist, x: np.ndarray) -> np.ndarray:
    n = x.shape[0]
    val = np.zeros((net.n_signals, n), dtype=bool)
    val[1] = True
    if net.inputs:
        val[2 : net.first_node] = net.encode(x).T.astype(bool)
    for j, node in enumerate(net.nodes):
        idx = np.zeros(n, dtype=np.int64)
        for i, f in enumerate(node.fanin):
            idx |= val[f].astype(np.int64) << i
        table = np.array([(node.table >> c) & 1 for c in range(1 << node.k)], dtype=bool)
        val[net.node_id(j)] = table[idx]
    return np.stack([val[g].sum(0) if g else np.zeros(n, dtype=np.int64) for g in net.outputs], 1).astype(np.int64)


def reference_counts(net: Netlist, x: np.ndarray) -> np.ndarray:
    """(N, classes) int64 class scores of the IR on integer features x (N, n_features)."""
    x = np.asarray(x)
    try:
        from ..ir.emulate import emulate_counts
    except ImportError:
        return _numpy_counts(net, x)
    return np.asarray(emulate_counts(net, x), dtype=np.int64)


def argmax_lowest(counts: np.ndarray) -> np.ndarray:
    """Argmax with ties to the lowest index (np.argmax already does this)."""
    return np.argmax(counts, axis=1).astype(np.int64)
