"""Discretization: a trained model's hard description -> Netlist (one node per WARP-LUT / DLGN node)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import NetlistError
from .netlist import MAX_INPUT_BITS, InputBit, Netlist, Node


def from_description(desc: dict) -> Netlist:
    """Build the IR from `WarpNet.hard_description()` (plain numpy; no torch needed here).

    Inputs are all F*T thermometer bits in feature-major order; layer l's node j reads the signals of the
    previous layer (or of the inputs) given by its wiring; outputs are the last layer's nodes, grouped per class.
    """
    input_bits = int(desc.get("input_bits", 8))
    if not 1 <= input_bits <= MAX_INPUT_BITS:
        raise NetlistError(f"the model reads {input_bits}-bit features; the netlist supports 1..{MAX_INPUT_BITS}")
    thr = np.asarray(desc["thresholds"], dtype=np.int64)
    n_features, n_thr = thr.shape
    # features lie in [0, 2^input_bits): a threshold <= 0 is constant 1 and one >= 2^input_bits constant 0, so
    # clipping to [0, 2^input_bits] keeps every bit's value and the IR's threshold range
    thr = np.clip(thr, 0, 1 << input_bits)
    inputs = [InputBit(f, int(thr[f, j])) for f in range(n_features) for j in range(n_thr)]
    nodes: list[Node] = []
    prev = [2 + i for i in range(len(inputs))]  # signal ids of the previous layer's outputs
    for li, layer in enumerate(desc["layers"]):
        wiring = np.asarray(layer["wiring"], dtype=np.int64)
        tables = np.asarray(layer["tables"], dtype=np.uint8)
        k = int(layer["k"])
        if wiring.shape[1] != k or tables.shape != (wiring.shape[0], 1 << k):
            raise NetlistError(f"layer {li}: wiring {wiring.shape} / tables {tables.shape} disagree with k={k}")
        if wiring.size and (wiring.min() < 0 or wiring.max() >= len(prev)):
            raise NetlistError(f"layer {li}: wiring reads outside the previous layer's {len(prev)} outputs")
        weights = (1 << np.arange(1 << k, dtype=object))
        first = 2 + len(inputs) + len(nodes)
        for j in range(wiring.shape[0]):
            table = int(np.dot(tables[j].astype(object), weights))
            nodes.append(Node(tuple(prev[w] for w in wiring[j]), table, li))
        prev = list(range(first, first + wiring.shape[0]))
    classes = int(desc["classes"])
    if len(prev) % classes:
        raise NetlistError(f"{len(prev)} outputs do not split into {classes} classes")
    g = len(prev) // classes
    outputs = [prev[c * g : (c + 1) * g] for c in range(classes)]
    return Netlist(
        n_features=n_features,
        inputs=inputs,
        nodes=nodes,
        outputs=outputs,
        input_bits=input_bits,
        class_names=list(desc.get("class_names") or [str(c) for c in range(classes)]),
        tau_head=float(desc.get("tau_head", 1.0)),
        dataset=desc.get("dataset"),
    ).validate()


def from_model(model) -> Netlist:
    """Discretize a WarpNet (torch) into the IR."""
    net = from_description(model.hard_description())
    net.dataset = (getattr(model, "meta", None) or {}).get("data") or None
    return net


def from_checkpoint(path: str | Path) -> Netlist:
    """Discretize a checkpoint file (imports torch to read it)."""
    from ..checkpoint import load

    return from_model(load(path))
