"""Folded execution: a netlist IR compiled into a program that a small engine streams from memory.

The spatial backend gives every node its own LUT; the folded engine (warpc.hdl.folded) instead evaluates L
two-input nodes per clock from a program in SPRAM, with the activations (encoded input bits and node values) in
block RAM. The schedule does not depend on the data, so the same program serves every sample.

Compilation (`fold`):
1. `lower_to_k2`: every node with k > 2 is split by Shannon expansion into two-input gates (f = x ? f1 : f0 as
   (x & f1) | (~x & f0), constants and literals folded); the result is an ordinary Netlist, so the IR emulator
   checks the lowering like any pass.
2. Every output occurrence becomes a count operation. A node that no node reads and that is counted exactly once
   is evaluated inside its class's count phase and never stored ("fused"); every other counted signal is stored
   and summed, two signals per lane.
3. List scheduling: ENC words (thermometer bits from the raw features), then NODE words in level order, then per
   class 0..C-1 its COUNT / SUM words, the last one flagged END. A word may read an address only HAZARD words
   after the word that wrote it (the engine's read-to-write pipeline); NOP words fill the gaps.

Program word (`Layout`, least significant bit first):
    kind (2 bits) | END (1 bit) | lane 0 | lane 1 ... (L lanes of `lane_bits`)
  kind 0 NODE:  each lane y = tt[a0 | a1 << 1] over the activation bits at addresses a0, a1; y is stored.
  kind 1 ENC:   each lane y = [feature[f] >= t] (f = the lane's low `feature_bits`, t = the next input_bits + 1); y
                is stored. Lanes of a stored word write addresses wp*L + lane, then wp += 1.
  kind 2 COUNT: each lane y = tt[...] as NODE, added to the class accumulator (not stored). NOP = COUNT, tt 0.
  kind 3 SUM:   the accumulator adds bit(a_p) for each port p whose tt bit p is set (tt bits 0, 1).
  NODE lane:    a0 (A bits) | a1 (A bits) | tt (4 bits).
  END: after this word's count, the class's score is final (classes end in order 0, 1, ..); ties go to the lower
  class, as everywhere in warpc.

`run_program` is the naive reference: it decodes the words (not the compiler's data structures) and executes
them one at a time, checking the hazard rule and reads of unwritten addresses, so the compiler is tested against
the IR emulator and the engine RTL is tested against this.
"""
from __future__ import annotations

import heapq
from dataclasses import dataclass, field, replace

import numpy as np

from ..errors import NetlistError
from . import tt
from .netlist import CONST0, CONST1, Netlist, Node
from .passes import _like

HAZARD = 3            # a word may read what a word HAZARD or more program words earlier wrote
WORD_BITS = 64        # the program memory's width (4 x 16-bit SPRAM)
MAX_WORDS = 16384     # the program memory's depth (SB_SPRAM256KA: 16K words)
KIND_NODE, KIND_ENC, KIND_COUNT, KIND_SUM = 0, 1, 2, 3
KIND_NAMES = ("NODE", "ENC", "COUNT", "SUM")
AND2, OR2, ANDNOT2 = 0b1000, 0b1110, 0b0100  # ANDNOT2: ~x0 & x1 (fanin (x, f))
# an unused lane: all-zero bits (table 0 in NODE / COUNT / SUM words; in an ENC word feature 0 >= 0, stored at an
# address no word reads)
_IDLE_LANE = ("node", 0, 0, 0)


def _bits_for(n: int) -> int:
    return max(1, int(n).bit_length())


# --- 1. lowering to two-input nodes --------------------------------------------------------------------------
def lower_to_k2(net: Netlist) -> Netlist:
    """The same function with every node of k > 2 split into two-input gates (Shannon expansion on the last
    input, recursively; constant and single-literal cofactors cost nothing)."""
    if all(n.k <= 2 for n in net.nodes):
        return net
    first = net.first_node
    remap = list(range(first))
    nodes: list[Node] = []
    memo: dict[tuple, int] = {}

    def add(fan: tuple[int, ...], table: int, layer: int) -> int:
        key = (fan, table)
        if key not in memo:
            nodes.append(Node(fan, table, layer))
            memo[key] = first + len(nodes) - 1
        return memo[key]

    def build(table: int, fan: list[int], layer: int) -> int:
        k = len(fan)
        c = tt.is_const(table, k)
        if c is not None:
            return CONST1 if c else CONST0
        for i in range(k):  # drop inputs the table ignores
            if not tt.depends(table, k, i):
                return build(tt.cofactor(table, k, i, 0), fan[:i] + fan[i + 1:], layer)
        if k == 1 and table == 0b10:
            return fan[0]
        if k <= 2:
            return add(tuple(fan), table, layer)
        x = fan[-1]
        f0 = build(tt.cofactor(table, k, k - 1, 0), fan[:-1], layer)
        f1 = build(tt.cofactor(table, k, k - 1, 1), fan[:-1], layer)
        return mux(x, f0, f1, layer)

    def gate(a: int, b: int, table: int, layer: int) -> int:
        # constant operands fold away; the table is over (a, b) with a = input 0
        if a in (CONST0, CONST1):
            return build(tt.cofactor(table, 2, 0, a), [b], layer)
        if b in (CONST0, CONST1):
            return build(tt.cofactor(table, 2, 1, b), [a], layer)
        return build(table, [a, b], layer)

    def mux(x: int, f0: int, f1: int, layer: int) -> int:
        if f0 == f1:
            return f0
        hi = gate(x, f1, AND2, layer)       # x & f1
        lo = gate(x, f0, ANDNOT2, layer)    # ~x & f0
        return gate(hi, lo, OR2, layer)

    for n in net.nodes:
        remap.append(build(n.table, [remap[f] for f in n.fanin], n.layer))
    out = _like(net, list(net.inputs), nodes, [[remap[s] for s in g] for g in net.outputs])
    return replace(out, packed_k=None).validate()  # two-input gates, no longer a packing


# --- the program ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Layout:
    """Field positions of a program word (see the module docstring)."""

    lanes: int          # L nodes per word (per clock)
    addr_bits: int      # A: activation address width
    feature_bits: int   # feature index width (ENC lanes)
    input_bits: int     # feature value width (ENC lanes)

    @property
    def lane_bits(self) -> int:
        return max(2 * self.addr_bits + 4, self.feature_bits + self.input_bits + 1)

    @property
    def width(self) -> int:
        return 3 + self.lanes * self.lane_bits

    def lane(self, word: int, i: int) -> int:
        return (word >> (3 + i * self.lane_bits)) & ((1 << self.lane_bits) - 1)

    def node_fields(self, lane: int) -> tuple[int, int, int]:
        a = self.addr_bits
        m = (1 << a) - 1
        return lane & m, (lane >> a) & m, (lane >> (2 * a)) & 0xF

    def enc_fields(self, lane: int) -> tuple[int, int]:
        return lane & ((1 << self.feature_bits) - 1), (lane >> self.feature_bits) & ((2 << self.input_bits) - 1)

    def node_lane(self, a0: int, a1: int, table: int) -> int:
        return a0 | (a1 << self.addr_bits) | (table << (2 * self.addr_bits))

    def enc_lane(self, feature: int, threshold: int) -> int:
        return feature | (threshold << self.feature_bits)

    def word(self, kind: int, end: bool, lanes: list[int]) -> int:
        w = kind | (int(end) << 2)
        for i, v in enumerate(lanes):
            w |= v << (3 + i * self.lane_bits)
        return w

    def to_dict(self) -> dict:
        return {"lanes": self.lanes, "addr_bits": self.addr_bits, "feature_bits": self.feature_bits,
                "input_bits": self.input_bits, "lane_bits": self.lane_bits, "word_bits": self.width}


@dataclass
class Program:
    """A compiled folded program: `words` run in order for every sample."""

    layout: Layout
    words: list[int]
    n_features: int
    classes: int
    score_bits: int
    stored: int                  # activation addresses written per sample (wp * L at the end)
    counts: dict[str, int] = field(default_factory=dict)  # words per kind, NOPs, fused nodes, ...

    @property
    def n_words(self) -> int:
        return len(self.words)

    @property
    def activation_words(self) -> int:
        """Depth of the activation memory in L-bit words (every stored word's slot)."""
        return max(1, -(-self.stored // self.layout.lanes))

    def to_dict(self) -> dict:
        return {"layout": self.layout.to_dict(), "words": self.n_words, "classes": self.classes,
                "score_bits": self.score_bits, "activation_bits": self.stored,
                "program_bits": self.n_words * WORD_BITS, **self.counts}


class _Op:
    """One lane of work: kind NODE/COUNT/SUM, the signal it computes or sums, the signals it reads, its table."""

    __slots__ = ("kind", "sig", "reads", "table")

    def __init__(self, kind: int, sig: int | None, reads: tuple[int, ...], table: int = 0) -> None:
        self.kind, self.sig, self.reads, self.table = kind, sig, reads, table


def _node_ops(net: Netlist) -> tuple[list[_Op], list[list[_Op]], set[int]]:
    """Stored-node ops (in level order), per-class count ops, and the set of stored signals."""
    first = net.first_node
    live = {s for g in net.outputs for s in g if net.is_node(s)}
    for j in range(len(net.nodes) - 1, -1, -1):
        if net.node_id(j) in live:
            live.update(f for f in net.nodes[j].fanin if net.is_node(f))
    readers = {f for s in live for f in net.nodes[s - first].fanin}
    uses: dict[int, int] = {}
    for g in net.outputs:
        for s in g:
            uses[s] = uses.get(s, 0) + 1
    fused = {s for s, u in uses.items() if u == 1 and net.is_node(s) and s not in readers}
    per_class: list[list[_Op]] = []
    stored: set[int] = set()
    for g in net.outputs:
        ops = []
        for s in g:
            if s == CONST0:
                continue
            if s == CONST1:
                ops.append(_Op(KIND_COUNT, None, (), 0b1111))
            elif s in fused:
                n = net.nodes[s - first]
                ops.append(_Op(KIND_COUNT, s, n.fanin, n.table))
            else:
                ops.append(_Op(KIND_SUM, s, (s,)))
                stored.add(s)
        per_class.append(ops)
    # every live node that is not fused is stored (a node reads it, or it is summed), and so is every fanin
    stored |= live - fused
    stored |= {f for s in live for f in net.nodes[s - first].fanin if f > CONST1}
    levels = net.levels()
    node_ops = [_Op(KIND_NODE, s, net.nodes[s - net.first_node].fanin, net.nodes[s - net.first_node].table)
                for s in sorted((s for s in stored if net.is_node(s)), key=lambda s: (levels[s], s))]
    return node_ops, per_class, stored


def _two_port(op: _Op) -> tuple[tuple[int, ...], int]:
    """A NODE/COUNT op's reads as exactly the non-constant signals, with its table over them (k <= 2)."""
    reads, table = list(op.reads), op.table
    i = 0
    while i < len(reads):  # constant fanins fold into the table
        if reads[i] in (CONST0, CONST1):
            table = tt.cofactor(table, len(reads), i, reads[i])
            reads.pop(i)
        else:
            i += 1
    if len(reads) == 2 and reads[0] == reads[1]:
        table = (table & 1) | (((table >> 3) & 1) << 1)  # f(a, a): corners 0 and 3
        reads = reads[:1]
    return tuple(reads), table


def _expand(table: int, k: int) -> int:
    """A table over k <= 2 inputs as a 4-bit table over (a0, a1) (missing inputs are don't-cares)."""
    if k == 0:
        return 0b1111 if table & 1 else 0
    if k == 1:
        return table | (table << 2)
    return table


def fold(net: Netlist, lanes: int | None = None, hazard: int = HAZARD) -> Program:
    """Compile a netlist into a folded program. `lanes`: nodes per word (None: 2 when the word fits, else 1)."""
    net = lower_to_k2(net.validate())
    node_ops, per_class, stored = _node_ops(net)
    inputs = sorted(s for s in stored if net.is_input(s))
    fw, ib = _bits_for(net.n_features - 1), net.input_bits
    choices = [lanes] if lanes is not None else [2, 1]
    last_err = None
    for L in choices:
        if L not in (1, 2):
            raise NetlistError(f"lanes must be 1 or 2, got {L}")
        # slot addresses do not depend on the address width: schedule, then size the fields to what it stored
        words, n_stored, counts = _schedule(net, L, inputs, node_ops, per_class, hazard)
        A = _bits_for(max(1, n_stored - 1))
        lay = Layout(L, A, fw, ib)
        if lay.width > WORD_BITS:
            last_err = NetlistError(f"a program word would need {lay.width} bits ({L} lanes, {A}-bit "
                                    f"addresses) but the program memory is {WORD_BITS} bits wide")
            continue
        if len(words) > MAX_WORDS:
            raise NetlistError(f"the folded program needs {len(words)} words; the program memory holds {MAX_WORDS}")
        score_bits = _bits_for(max(len(g) for g in net.outputs))
        return Program(lay, [_encode(lay, w) for w in words], net.n_features, len(net.outputs), score_bits,
                       n_stored, counts)
    raise last_err or NetlistError("no program layout fits")


def _encode(lay: Layout, word: tuple) -> int:
    """A scheduled word (kind, end, lanes; a lane is ("node", a0, a1, table) or ("enc", feature, threshold))
    as the program word's bits."""
    kind, end, lanes = word
    return lay.word(kind, end, [lay.enc_lane(*ln[1:]) if ln[0] == "enc" else lay.node_lane(*ln[1:])
                                for ln in lanes])


def _schedule(net: Netlist, L: int, inputs: list[int], node_ops: list[_Op], per_class: list[list[_Op]],
              hazard: int) -> tuple[list[tuple], int, dict[str, int]]:
    """The words (kind, end, lanes) of an L-lane program, the activation addresses it stores, its statistics."""
    words: list[tuple] = []
    addr: dict[int, int] = {}      # signal -> activation address
    written: dict[int, int] = {}   # signal -> program word index that wrote it
    wp = 0
    nops = 0

    never = 1 << 62  # a read not written yet: its writer is scheduled later

    def ready_at(reads) -> int:
        return max((written[s] + hazard if s in written else never for s in reads if s > CONST1), default=0)

    def emit(kind: int, lanes_: list[tuple], end: bool = False) -> int:
        words.append((kind, end, lanes_ + [_IDLE_LANE] * (L - len(lanes_))))
        return len(words) - 1

    def nop_until(pc: int) -> None:
        nonlocal nops
        while len(words) < pc:
            emit(KIND_COUNT, [])
            nops += 1

    def store_word(kind: int, batch: list[tuple[int, int]]) -> None:
        """batch: (signal, lane payload) pairs; writes addresses wp*L + lane."""
        nonlocal wp
        pc = emit(kind, [p for _, p in batch])
        for i, (s, _) in enumerate(batch):
            addr[s] = wp * L + i
            written[s] = pc
        wp += 1

    # ENC: thermometer bits of the raw features
    for i in range(0, len(inputs), L):
        batch = []
        for s in inputs[i:i + L]:
            b = net.inputs[s - 2]
            batch.append((s, ("enc", b.feature, b.threshold)))
        store_word(KIND_ENC, batch)

    def node_lane(op: _Op) -> tuple:
        reads, table = _two_port(op)
        a = [addr[s] for s in reads] + [0] * (2 - len(reads))
        return ("node", a[0], a[1], _expand(table, len(reads)))

    # NODE words: list scheduling with a heap of ops whose fanins are all written, keyed by (ready word, level
    # order); an op enters the heap when its last stored fanin is scheduled
    waiting: dict[int, int] = {}          # op index -> fanins not yet written
    dependents: dict[int, list[int]] = {}
    heap: list[tuple[int, int]] = []
    for i, op in enumerate(node_ops):
        pend = {s for s in op.reads if s > CONST1 and s not in written}
        waiting[i] = len(pend)
        for s in pend:
            dependents.setdefault(s, []).append(i)
        if not pend:
            heapq.heappush(heap, (ready_at(op.reads), i))
    while heap:
        pc = len(words)
        if heap[0][0] > pc:
            nop_until(heap[0][0])
            continue
        batch = []
        while heap and heap[0][0] <= pc and len(batch) < L:
            batch.append(node_ops[heapq.heappop(heap)[1]])
        store_word(KIND_NODE, [(op.sig, node_lane(op)) for op in batch])
        for op in batch:
            for i in dependents.get(op.sig, ()):
                waiting[i] -= 1
                if waiting[i] == 0:
                    heapq.heappush(heap, (ready_at(node_ops[i].reads), i))
    if any(waiting.values()):
        raise NetlistError("internal: the schedule left nodes whose fanins were never written")

    # per class: COUNT lanes (fused nodes, constant ones) and SUM lanes (two stored signals each)
    for ops in per_class:
        units: list[tuple[int, tuple, tuple[int, ...]]] = []  # (kind, lane, reads)
        counts = [op for op in ops if op.kind == KIND_COUNT]
        sums = [op.sig for op in ops if op.kind == KIND_SUM]
        for op in counts:
            units.append((KIND_COUNT, node_lane(op) if op.sig is not None else ("node", 0, 0, 0b1111),
                          tuple(s for s in op.reads if s > CONST1)))
        for i in range(0, len(sums), 2):
            pair = sums[i:i + 2]
            a = [addr[s] for s in pair] + [0] * (2 - len(pair))
            units.append((KIND_SUM, ("node", a[0], a[1], 0b11 if len(pair) == 2 else 0b01), tuple(pair)))
        class_words = 0
        while units:
            pc = len(words)
            kind = next((u[0] for u in units if ready_at(u[2]) <= pc), None)
            if kind is None:
                nop_until(min(ready_at(u[2]) for u in units))
                continue
            batch, rest = [], []
            for idx, u in enumerate(units):
                if u[0] == kind and ready_at(u[2]) <= pc:
                    batch.append(u)
                    if len(batch) == L:
                        rest.extend(units[idx + 1:])
                        break
                else:
                    rest.append(u)
            units = rest
            emit(kind, [u[1] for u in batch], end=not units)
            class_words += 1
        if class_words == 0:
            emit(KIND_COUNT, [], end=True)

    kinds = [w[0] for w in words]
    counts = {"words_" + KIND_NAMES[k].lower(): kinds.count(k) for k in range(4)}
    counts.update(nops=nops, nodes_stored=len(node_ops), inputs_stored=len(inputs),
                  nodes_fused=sum(1 for ops in per_class for op in ops if op.kind == KIND_COUNT and op.sig),
                  nodes_after_lowering=len(net.nodes))
    return words, wp * L, counts


# --- the naive reference: decode and execute the words --------------------------------------------------------
def run_program(prog: Program, x: np.ndarray, hazard: int = HAZARD, chunk: int = 4096) -> np.ndarray:
    """Class scores (N, classes) of raw integer features, by executing the program's words one by one.
    Raises NetlistError on a hazard (a read fewer than `hazard` words after the write) or a read of an address
    no earlier word wrote (where the table depends on it)."""
    x = np.asarray(x)
    if x.ndim != 2 or x.shape[1] != prog.n_features:
        raise NetlistError(f"expected features of shape (N, {prog.n_features}), got {x.shape}")
    out = np.zeros((x.shape[0], prog.classes), dtype=np.int64)
    for i in range(0, x.shape[0], chunk):
        out[i:i + chunk] = _run_chunk(prog, x[i:i + chunk].astype(np.int64), hazard)
    return out


def _run_chunk(prog: Program, x: np.ndarray, hazard: int) -> np.ndarray:
    lay, L = prog.layout, prog.layout.lanes
    n = x.shape[0]
    size = 1 << lay.addr_bits
    mem = np.zeros((size, n), dtype=np.uint8)
    wrote = np.full(size, -1, dtype=np.int64)
    acc = np.zeros(n, dtype=np.int64)
    scores = np.zeros((n, prog.classes), dtype=np.int64)
    cls, wp = 0, 0

    def read(a: int, pc: int) -> np.ndarray:
        if wrote[a] < 0:
            raise NetlistError(f"word {pc} reads activation address {a}, which no earlier word wrote")
        if pc - wrote[a] < hazard:
            raise NetlistError(f"word {pc} reads address {a} only {pc - wrote[a]} words after word {wrote[a]} "
                               f"wrote it (the engine needs {hazard})")
        return mem[a]

    def lut(a0: int, a1: int, table: int, pc: int) -> np.ndarray:
        dep0 = tt.depends(table, 2, 0)
        dep1 = tt.depends(table, 2, 1)
        b0 = read(a0, pc) if dep0 else np.zeros(n, np.uint8)
        b1 = read(a1, pc) if dep1 else np.zeros(n, np.uint8)
        return ((table >> (b0 + 2 * b1).astype(np.int64)) & 1).astype(np.uint8)

    for pc, w in enumerate(prog.words):
        kind, end = w & 3, (w >> 2) & 1
        ys = []
        for i in range(L):
            lane = lay.lane(w, i)
            if kind == KIND_ENC:
                f, t = lay.enc_fields(lane)
                if f >= prog.n_features:
                    raise NetlistError(f"word {pc} lane {i} reads feature {f} of {prog.n_features}")
                ys.append((x[:, f] >= t).astype(np.uint8))
            elif kind == KIND_SUM:
                a0, a1, table = lay.node_fields(lane)
                for p, a in enumerate((a0, a1)):
                    if (table >> p) & 1:
                        acc += read(a, pc)
            else:
                ys.append(lut(*lay.node_fields(lane), pc))
        if kind in (KIND_NODE, KIND_ENC):
            for i, y in enumerate(ys):
                a = wp * L + i
                if a >= size:
                    raise NetlistError(f"word {pc} writes address {a} beyond the {size}-bit activation memory")
                mem[a] = y
                wrote[a] = pc
            wp += 1
        elif kind == KIND_COUNT:
            for y in ys:
                acc += y
        if end:
            if cls >= prog.classes:
                raise NetlistError(f"word {pc} ends class {cls}, but there are {prog.classes} classes")
            scores[:, cls] = acc
            acc[:] = 0
            cls += 1
    if cls != prog.classes:
        raise NetlistError(f"the program ends {cls} of {prog.classes} classes")
    return scores
