"""The naive, obviously-correct reference evaluator for the netlist IR (tests only): one sample at a time,
one node at a time, reading the truth-table bit at the corner formed by the fan-in values."""
from __future__ import annotations

import numpy as np


def reference_signals(net, bits: np.ndarray) -> np.ndarray:
    """All signal values (N, n_signals) uint8 from encoded input bits (N, I)."""
    bits = np.asarray(bits, dtype=np.uint8)
    vals = np.zeros((bits.shape[0], net.n_signals), dtype=np.uint8)
    vals[:, 1] = 1
    vals[:, 2 : net.first_node] = bits
    for j, n in enumerate(net.nodes):
        corner = np.zeros(bits.shape[0], dtype=np.int64)
        for i, f in enumerate(n.fanin):
            corner += vals[:, f].astype(np.int64) << i
        table_bits = np.array([(n.table >> c) & 1 for c in range(1 << n.k)], dtype=np.uint8)
        vals[:, net.node_id(j)] = table_bits[corner]
    return vals


def reference_counts_bits(net, bits: np.ndarray) -> np.ndarray:
    vals = reference_signals(net, bits)
    return np.stack([vals[:, g].sum(1).astype(np.int64) if g else np.zeros(len(vals), np.int64)
                     for g in net.outputs], 1)


def reference_counts(net, x: np.ndarray) -> np.ndarray:
    """Class scores from raw integer features: thermometer compare per input bit, then the netlist."""
    x = np.asarray(x)
    bits = np.zeros((len(x), len(net.inputs)), dtype=np.uint8)
    for i, b in enumerate(net.inputs):
        bits[:, i] = x[:, b.feature] >= b.threshold
    return reference_counts_bits(net, bits)


def reference_predict(net, x: np.ndarray) -> np.ndarray:
    counts = reference_counts(net, x)
    return np.array([int(np.flatnonzero(r == r.max())[0]) for r in counts], dtype=np.int64)
