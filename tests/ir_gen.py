"""Hand-rolled random netlist generator for the middle-end tests (hypothesis-style: many seeds, edge cases)."""
from __future__ import annotations

import numpy as np

from warpc.ir.netlist import InputBit, Netlist, Node


def random_netlist(seed: int, n_inputs: int = 8, n_nodes: int = 40, max_k: int = 6, classes: int = 3,
                   n_features: int = 4, input_bits: int = 4) -> Netlist:
    """Random DAG with the awkward cases mixed in: constant / wire / inverter tables, repeated fan-ins, constant
    and input fan-ins, duplicate nodes and input bits, constant thresholds, outputs that are constants, inputs,
    repeated signals or inverters."""
    rng = np.random.default_rng(seed)
    top = (1 << input_bits) - 1
    inputs = []
    for _ in range(n_inputs):
        r = rng.random()
        thr = 0 if r < 0.1 else top + 1 if r < 0.2 else int(rng.integers(1, top + 1))
        inputs.append(InputBit(int(rng.integers(0, n_features)), thr))
    if n_inputs >= 2:
        inputs[-1] = inputs[0]  # duplicate input bit
    nodes: list[Node] = []
    for j in range(n_nodes):
        sid = 2 + n_inputs + j
        r = rng.random()
        if nodes and r < 0.08:  # exact duplicate of an earlier node
            nodes.append(nodes[int(rng.integers(0, len(nodes)))])
            continue
        k = int(rng.integers(1, max_k + 1))
        fan = [int(rng.integers(0, sid)) for _ in range(k)]
        if k >= 2 and rng.random() < 0.15:
            fan[1] = fan[0]  # repeated fan-in
        r = rng.random()
        if r < 0.08:
            table = 0 if rng.random() < 0.5 else (1 << (1 << k)) - 1
        elif r < 0.2:  # wire or inverter of one input
            i = int(rng.integers(0, k))
            table = sum(1 << c for c in range(1 << k) if (c >> i) & 1)
            if rng.random() < 0.5:
                table ^= (1 << (1 << k)) - 1
        else:
            table = int.from_bytes(rng.bytes(8), "little") & ((1 << (1 << k)) - 1)
        nodes.append(Node(tuple(fan), table, layer=j * 3 // n_nodes))
    n_sig = 2 + n_inputs + n_nodes
    outputs = []
    for c in range(classes):
        g = [int(rng.integers(max(0, n_sig - 15), n_sig)) for _ in range(int(rng.integers(0, 6)))]
        if rng.random() < 0.3:
            g.append(int(rng.integers(0, 2)))           # constant output
        if rng.random() < 0.3:
            g.append(int(rng.integers(2, 2 + n_inputs)))  # input bit as output
        if g and rng.random() < 0.3:
            g.append(g[0])                              # duplicate
        outputs.append(g)
    return Netlist(n_features=n_features, inputs=inputs, nodes=nodes, outputs=outputs,
                   input_bits=input_bits).validate()


def all_features(net: Netlist, n: int = 512, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 1 << net.input_bits, size=(n, net.n_features))
