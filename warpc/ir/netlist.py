"""The netlist IR that every stage after discretization speaks (no torch here).

Signals are integers:  0 = constant 0, 1 = constant 1, 2 .. 2+I-1 = primary inputs (encoded input bits),
2+I .. = LUT nodes in topological order (a node only reads signals with smaller ids).

- InputBit(feature, threshold): the bit [x[feature] >= threshold] over the integer features the hardware receives
  (`input_bits` wide, unsigned), so the hardware can encode raw features itself.
- Node(fanin, table): k = len(fanin) <= 6 inputs; bit c of `table` is the output when fanin[i] = bit i of c
  (input 0 = least significant, as iCE40 LUT_INIT and BLIF).
- outputs[c]: the signals whose popcount is class c's score (a signal may appear more than once; constants and
  inputs are allowed). Argmax ties go to the lowest class index.

JSON form (format "warpc-netlist", version 1): see `to_dict`; truth tables are hex strings.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import NetlistError

CONST0, CONST1 = 0, 1
MAX_K = 6
FORMAT, FORMAT_VERSION = "warpc-netlist", 1
MAX_INPUT_BITS = 32      # feature width the encoder, the UART frames and the emulator's int64 compares support
MAX_FEATURES = 1 << 20   # far above any dataset warpc reads (CIFAR-10: 3,072); bounds the hardware's input port


@dataclass(frozen=True)
class InputBit:
    feature: int
    threshold: int


@dataclass(frozen=True)
class Node:
    fanin: tuple[int, ...]
    table: int
    layer: int = -1  # originating layer, for reports (-1 = unknown / made by a pass)

    @property
    def k(self) -> int:
        return len(self.fanin)


@dataclass
class Netlist:
    n_features: int
    inputs: list[InputBit]
    nodes: list[Node]
    outputs: list[list[int]]
    input_bits: int = 8
    class_names: list[str] | None = None
    tau_head: float = 1.0
    # What later stages need, carried explicitly: the dataset the net was trained on (warpc.data's
    # Dataset.to_meta(), enough to rebuild its test split for equivalence checks and `warpc run`), and the LUT
    # size the netlist was packed for (None = not packed).
    dataset: dict | None = None
    packed_k: int | None = None

    # --- signal ids ----------------------------------------------------------------------------------------
    @property
    def first_node(self) -> int:
        return 2 + len(self.inputs)

    @property
    def n_signals(self) -> int:
        return self.first_node + len(self.nodes)

    @property
    def classes(self) -> int:
        return len(self.outputs)

    def input_id(self, i: int) -> int:
        return 2 + i

    def node_id(self, j: int) -> int:
        return self.first_node + j

    def is_const(self, s: int) -> bool:
        return s < 2

    def is_input(self, s: int) -> bool:
        return 2 <= s < self.first_node

    def is_node(self, s: int) -> bool:
        return s >= self.first_node

    # --- checks and statistics -----------------------------------------------------------------------------
    def validate(self) -> "Netlist":
        if not 1 <= self.n_features <= MAX_FEATURES:
            raise NetlistError(f"n_features is {self.n_features}; expected 1..{MAX_FEATURES}")
        if not 1 <= self.input_bits <= MAX_INPUT_BITS:
            raise NetlistError(f"input_bits is {self.input_bits}; expected 1..{MAX_INPUT_BITS}")
        top = 1 << self.input_bits
        for i, b in enumerate(self.inputs):
            if not 0 <= b.feature < self.n_features:
                raise NetlistError(f"input {i} reads feature {b.feature}, but there are {self.n_features} features")
            # features lie in [0, 2^input_bits); 0 (always 1) and 2^input_bits (always 0) cover every constant
            if not 0 <= b.threshold <= top:
                raise NetlistError(f"input {i} has threshold {b.threshold}; with input_bits={self.input_bits} "
                                   f"thresholds must lie in 0..{top}")
        for j, n in enumerate(self.nodes):
            sid = self.node_id(j)
            if not 0 <= n.k <= MAX_K:
                raise NetlistError(f"node {sid} has {n.k} inputs (at most {MAX_K})")
            if not 0 <= n.table < (1 << (1 << n.k)):
                raise NetlistError(f"node {sid}: truth table does not fit 2^{n.k} bits")
            for f in n.fanin:
                if not 0 <= f < sid:
                    raise NetlistError(f"node {sid} reads signal {f}, which is not defined before it")
        if len(self.outputs) < 2:
            raise NetlistError("a netlist needs at least two output classes")
        for c, group in enumerate(self.outputs):
            for s in group:
                if not 0 <= s < self.n_signals:
                    raise NetlistError(f"output of class {c} references unknown signal {s}")
        if self.class_names is not None and len(self.class_names) != len(self.outputs):
            raise NetlistError("class_names and outputs disagree in length")
        return self

    def depth(self) -> int:
        """Logic depth in LUT levels (inputs and constants are level 0)."""
        level = np.zeros(self.n_signals, dtype=np.int64)
        for j, n in enumerate(self.nodes):
            level[self.node_id(j)] = 1 + max((level[f] for f in n.fanin), default=0)
        outs = [s for g in self.outputs for s in g]
        return int(level[outs].max()) if outs else 0

    def levels(self) -> np.ndarray:
        """Level of every signal (inputs/constants 0)."""
        level = np.zeros(self.n_signals, dtype=np.int64)
        for j, n in enumerate(self.nodes):
            level[self.node_id(j)] = 1 + max((int(level[f]) for f in n.fanin), default=0)
        return level

    def k_histogram(self) -> dict[int, int]:
        h: dict[int, int] = {}
        for n in self.nodes:
            h[n.k] = h.get(n.k, 0) + 1
        return dict(sorted(h.items()))

    def used_inputs(self) -> list[int]:
        """Indices (into self.inputs) of input bits that a node or an output reads."""
        used = {f for n in self.nodes for f in n.fanin} | {s for g in self.outputs for s in g}
        return [i for i in range(len(self.inputs)) if self.input_id(i) in used]

    def stats(self) -> dict:
        return {
            "inputs": len(self.inputs),
            "inputs_used": len(self.used_inputs()),
            "nodes": len(self.nodes),
            "nodes_by_k": {str(k): v for k, v in self.k_histogram().items()},
            "depth": self.depth(),
            "outputs": sum(len(g) for g in self.outputs),
            "classes": self.classes,
        }

    def encode(self, x: np.ndarray) -> np.ndarray:
        """Integer features (N, n_features) -> encoded input bits (N, I) uint8."""
        x = np.asarray(x)
        if x.ndim != 2 or x.shape[1] != self.n_features:
            from ..errors import ShapeError

            raise ShapeError(f"expected features of shape (N, {self.n_features}), got {x.shape}")
        if not self.inputs:
            return np.zeros((x.shape[0], 0), dtype=np.uint8)
        feat = np.array([b.feature for b in self.inputs])
        thr = np.array([b.threshold for b in self.inputs])
        return (x[:, feat] >= thr[None, :]).astype(np.uint8)

    # --- serialisation -------------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "n_features": self.n_features,
            "input_bits": self.input_bits,
            "inputs": [[b.feature, b.threshold] for b in self.inputs],
            "nodes": [{"fanin": list(n.fanin), "table": hex(n.table), "layer": n.layer} for n in self.nodes],
            "outputs": [list(g) for g in self.outputs],
            "class_names": self.class_names,
            "tau_head": self.tau_head,
            "dataset": self.dataset,
            "packed_k": self.packed_k,
        }

    @classmethod
    def from_dict(cls, d) -> "Netlist":
        """Parse the JSON form strictly: every field is type-checked (a string where an int belongs is an error,
        not a conversion), then the whole netlist is validated; any defect is one NetlistError naming the field."""
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise NetlistError("not a warpc netlist (expected a JSON object with \"format\": \"warpc-netlist\")")
        version = d.get("format_version", FORMAT_VERSION)
        if not _is_int(version) or version > FORMAT_VERSION:
            raise NetlistError(f"netlist format_version {version!r} is not supported (this warpc reads "
                               f"{FORMAT_VERSION})")
        missing = [k for k in ("n_features", "inputs", "nodes", "outputs") if k not in d]
        if missing:
            raise NetlistError(f"netlist JSON lacks the key(s) {', '.join(missing)}")
        legacy = d.get("meta") if isinstance(d.get("meta"), dict) else {}  # format 1 files before explicit fields
        inputs = _list(d["inputs"], "inputs")
        nodes = _list(d["nodes"], "nodes")
        outputs = _list(d["outputs"], "outputs")
        class_names = d.get("class_names")
        if class_names is not None and not (isinstance(class_names, list)
                                            and all(isinstance(c, str) for c in class_names)):
            raise NetlistError("netlist field 'class_names' must be a list of strings or null")
        dataset = d.get("dataset", legacy.get("data"))
        if dataset is not None and not isinstance(dataset, dict):
            raise NetlistError("netlist field 'dataset' must be an object or null")
        packed_k = d.get("packed_k", legacy.get("packed_K"))
        if packed_k is not None and not (_is_int(packed_k) and 1 <= packed_k <= MAX_K):
            raise NetlistError(f"netlist field 'packed_k' must be null or an integer 1..{MAX_K}, got {packed_k!r}")
        tau_head = d.get("tau_head", 1.0)
        if isinstance(tau_head, bool) or not isinstance(tau_head, (int, float)) or not math.isfinite(tau_head) \
                or tau_head <= 0:
            raise NetlistError(f"netlist field 'tau_head' must be a positive number, got {tau_head!r}")
        net = cls(
            n_features=_int(d["n_features"], "n_features"),
            input_bits=_int(d.get("input_bits", 8), "input_bits"),
            inputs=[InputBit(*_ints(b, f"inputs[{i}]", 2)) for i, b in enumerate(inputs)],
            nodes=[_node(n, j) for j, n in enumerate(nodes)],
            outputs=[_ints(g, f"outputs[{c}]") for c, g in enumerate(outputs)],
            class_names=class_names,
            tau_head=float(tau_head),
            dataset=dataset,
            packed_k=packed_k,
        )
        return net.validate()

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(json.dumps(self.to_dict(), indent=1))
        return path

    @classmethod
    def load(cls, path: str | Path) -> "Netlist":
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise NetlistError(f"cannot read netlist {path}: {e}") from None
        try:
            d = json.loads(text)
        except (ValueError, RecursionError) as e:  # JSONDecodeError, over-long integers, absurd nesting
            raise NetlistError(f"netlist {path} is not valid JSON: {str(e)[:200]}") from None
        try:
            return cls.from_dict(d)
        except NetlistError as e:
            raise NetlistError(f"netlist {path}: {e}") from None

    def copy(self) -> "Netlist":
        return Netlist.from_dict(json.loads(json.dumps(self.to_dict())))


# --- strict JSON field parsing (bool is an int subclass in Python, so it is excluded explicitly) ---------------
_HEX = re.compile(r"(0x)?[0-9a-fA-F]+")


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _int(v, where: str) -> int:
    if not _is_int(v):
        raise NetlistError(f"netlist field '{where}' must be an integer, got {v!r:.40}")
    return v


def _list(v, where: str) -> list:
    if not isinstance(v, list):
        raise NetlistError(f"netlist field '{where}' must be a list, got {type(v).__name__}")
    return v


def _ints(v, where: str, length: int | None = None) -> list[int]:
    items = _list(v, where)
    if length is not None and len(items) != length:
        raise NetlistError(f"netlist field '{where}' must have {length} entries, got {len(items)}")
    return [_int(s, f"{where}[{i}]") for i, s in enumerate(items)]


def _node(n, j: int) -> Node:
    where = f"nodes[{j}]"
    if not isinstance(n, dict) or "fanin" not in n or "table" not in n:
        raise NetlistError(f"netlist field '{where}' must be an object with 'fanin' and 'table'")
    table = n["table"]
    if not isinstance(table, str) or not _HEX.fullmatch(table) or len(table) > 2 + (1 << MAX_K) // 4:
        raise NetlistError(f"netlist field '{where}.table' must be a hex string such as \"0x8\", got {table!r:.40}")
    fanin = _ints(n["fanin"], f"{where}.fanin")
    if len(fanin) > MAX_K:
        raise NetlistError(f"netlist field '{where}.fanin' has {len(fanin)} inputs (at most {MAX_K})")
    return Node(tuple(fanin), int(table, 16), _int(n.get("layer", -1), f"{where}.layer"))
