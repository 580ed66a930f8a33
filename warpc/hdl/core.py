"""The inference core: a netlist IR as an Amaranth design (encoder, LUT network, class counting, argmax).

The core knows nothing about boards or UARTs (the shell wraps it). Blocks are separate Elaboratables so that a
synthesis with kept hierarchy reports resources per block and proves each block on its own.

Two timing modes:
- ``pipeline = 0``: fully combinational (latency 0, interval 1): the LUT network, a balanced adder tree per class
  (`Popcount`) and a tournament (`Argmax`), written as plain Amaranth arithmetic. For `warpc hdl` users who place
  their own registers.
- ``pipeline = P > 0``: registers on the encoded input bits and after every P LUT levels (signals that skip stages
  are delayed by register chains); the last stage's values go, unregistered, into a class counter that registers
  them itself, then into an argmax. `interval = N` is the initiation interval (one new sample every N cycles):
  N = 1 counts with a pipelined compressor tree of explicit iCE40 cells (`popcount.TreeCounter`), N > 1 shifts
  each class's bits through chains of length N into small accumulators (`serial.SerialCounter`); the argmax is a
  pipelined tournament, or one sequential comparator when N leaves it the time (`serial.SerialArgmax`).
  latency = input register + (LUT stages - 1) + counter latency + argmax latency, from the blocks themselves.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from amaranth.hdl import Cat, Const, Elaboratable, Module, Signal

from ..errors import ConfigError, NetlistError
from ..families import CELL_STYLES, primitives
from ..ir.netlist import Netlist

LUT_CELLS = CELL_STYLES  # each family's explicit LUT4 cells (see warpc.families) or portable logic


def _bits_for(value: int) -> int:
    return max(1, int(value).bit_length())


def ge_const(value, t: int):
    """[value >= t] for an unsigned value and a constant 0 < t < 2^width, as AND/OR logic. Yosys would map a
    `>=` to a carry chain (one LC per bit); this form becomes ~width/3 LUT4s and shares nothing with carries."""
    res = None  # None = "all lower bits compared equal" = true
    for i in range(len(value)):  # LSB first: ge_i = t_i ? (v_i & ge_{i-1}) : (v_i | ge_{i-1})
        v = value[i]
        if (t >> i) & 1:
            res = v if res is None else (v & res)
        else:
            res = None if res is None else (v | res)
    return Const(1, 1) if res is None else res


def lut4_init(table: int, k: int) -> int:
    """16-bit SB_LUT4 LUT_INIT for a k <= 4 input table; unused inputs are tied to 0 but the table is replicated,
    so the cell computes the function whatever they carry."""
    mask = (1 << k) - 1
    return sum(((table >> (c & mask)) & 1) << c for c in range(16))


@dataclass(frozen=True)
class CoreShape:
    """Port widths and LUT staging of a core, computable without elaborating it (the latency comes from the
    counting and argmax blocks: `WarpCore.latency`)."""

    n_features: int
    input_bits: int
    n_inputs: int
    classes: int
    score_bits: int
    depth: int
    pipeline: int
    input_reg: bool = True
    interval: int = 1

    @property
    def lut_stages(self) -> int:
        if self.pipeline <= 0:
            return 0
        return -(-self.depth // self.pipeline)

    @property
    def last_stage(self) -> int:
        """The stage whose combinational values the class counter loads (0 for a net without LUT levels)."""
        return max(0, self.lut_stages - 1)

    @property
    def class_bits(self) -> int:
        return _bits_for(self.classes - 1)


def core_shape(net: Netlist, pipeline: int = 0, input_reg: bool = True, interval: int = 1) -> CoreShape:
    return CoreShape(
        n_features=net.n_features,
        input_bits=net.input_bits,
        n_inputs=len(net.inputs),
        classes=net.classes,
        score_bits=_bits_for(max(len(g) for g in net.outputs)),
        depth=net.depth(),
        pipeline=max(0, int(pipeline)),
        input_reg=input_reg,
        interval=max(1, int(interval)),
    )


def out_signals_of(net: Netlist) -> list[int]:
    """The distinct non-constant signals the class groups count, in first-use order (the counter's `values`)."""
    seen: dict[int, None] = {}
    for g in net.outputs:
        for s in g:
            if not net.is_const(s):
                seen.setdefault(s, None)
    return list(seen)


def check_interval(net: Netlist, pipeline: int, interval) -> int:
    """1 <= interval <= the largest class's bit count; interval > 1 needs a pipelined core (pipeline >= 1)."""
    widest = max(len(g) for g in net.outputs)
    if not isinstance(interval, (int, np.integer)) or isinstance(interval, bool) or interval < 1:
        raise ConfigError(f"interval (--interval) must be an integer >= 1 (cycles per sample), got {interval!r}")
    if interval > max(1, widest):
        raise ConfigError(f"interval (--interval) {interval} is more than the largest class's {widest} counted "
                          f"bits; choose 1..{max(1, widest)}")
    if interval > 1 and pipeline <= 0:
        raise ConfigError(f"interval {interval} needs a pipelined core: --pipeline 0 builds a combinational core "
                          "(interval 1)")
    return int(interval)


def check_lut_cells(net: Netlist, lut_cells: str) -> None:
    if lut_cells not in LUT_CELLS:
        raise ConfigError(f"unknown LUT cell style {lut_cells!r}; choose one of {', '.join(LUT_CELLS)}")
    prim = primitives(lut_cells)
    if prim is not None:
        big = [n.k for n in net.nodes if n.k > 4]
        if big:
            raise NetlistError(
                f"{len(big)} nodes have more than 4 inputs (up to {max(big)}); {prim.lut_type} cells take 4: "
                "pack the netlist first (warpc compile ... -K 4) or use lut_cells='portable'"
            )


def check_ports(net: Netlist) -> None:
    """A core needs an input port: at least one feature of at least one bit (else Verilog gets `x [-1:0]`)."""
    if net.n_features < 1 or net.input_bits < 1:
        raise NetlistError(f"the netlist reads {net.n_features} features of {net.input_bits} bits: the core would "
                           "have no input port; a netlist needs n_features >= 1 and input_bits >= 1")


def check_buildable(net: Netlist) -> None:
    """What `warpc hdl` / `warpc synth` refuse before writing anything: no input port, or class scores that read
    no input bit (constant: the model ignores its input; e.g. 0 LUT nodes and constant outputs). A net of 0 LUT
    nodes whose outputs read input bits directly is a valid (threshold) classifier and is built."""
    check_ports(net)
    if not net.used_inputs():
        nodes = "0 LUT nodes and" if not net.nodes else f"{len(net.nodes)} LUT nodes but"
        raise NetlistError(f"the netlist has {nodes} no class score reads any of its {len(net.inputs)} input bits "
                           "(every score is constant): nothing to build; check the model it came from")


class Encoder(Elaboratable):
    """Raw unsigned features (flat, feature f at bits [f*B, (f+1)*B)) -> the used thermometer bits [x_f >= t].
    Unused bits are 0. Identical (feature, threshold) pairs share one comparator."""

    def __init__(self, net: Netlist) -> None:
        self.net = net
        self.x = Signal(net.n_features * net.input_bits)
        self.bits = Signal(max(1, len(net.inputs)))

    def elaborate(self, platform) -> Module:
        m = Module()
        net, w = self.net, self.net.input_bits
        top = (1 << w) - 1
        cmp: dict[tuple[int, int], object] = {}
        for i in net.used_inputs():
            b = net.inputs[i]
            key = (b.feature, b.threshold)
            if key not in cmp:
                if b.threshold <= 0:
                    cmp[key] = Const(1, 1)
                elif b.threshold > top:
                    cmp[key] = Const(0, 1)
                else:
                    ge = Signal(name=f"ge_f{b.feature}_t{b.threshold}")
                    m.d.comb += ge.eq(ge_const(self.x[b.feature * w : (b.feature + 1) * w], b.threshold))
                    cmp[key] = ge
            m.d.comb += self.bits[i].eq(cmp[key])
        return m


def lutnet_cells(net: Netlist, pipeline: int, fused=()) -> dict[str, int]:
    """The LUTs and flip-flops `LutNetwork(net, pipeline, fused=fused)` instantiates, without elaborating it
    (mirrors its staging: one LUT per built node of k >= 1, one flip-flop per stage a value is carried)."""
    N = max(0, int(pipeline))
    out_signals = out_signals_of(net)
    stage = {s: 0 for s in range(net.n_signals)}
    if N > 0:
        levels = net.levels()
        for j in range(len(net.nodes)):
            stage[net.node_id(j)] = (int(levels[net.node_id(j)]) - 1) // N
    read = {f for node in net.nodes for f in node.fanin}
    skip = {s for s in fused if s not in read}
    # only nodes that reach a counted signal survive synthesis (Yosys drops the rest)
    live, todo = set(), [s for s in out_signals if s not in skip]
    todo += [f for s in fused for f in net.nodes[s - net.first_node].fanin]
    while todo:
        s = todo.pop()
        if s in live or not net.is_node(s):
            continue
        live.add(s)
        todo += net.nodes[s - net.first_node].fanin
    need: dict[int, int] = {}

    def use(s: int, when: int) -> None:
        if N > 0 and not net.is_const(s):
            need[s] = max(need.get(s, 0), when - stage[s])

    lut = 0
    for j, node in enumerate(net.nodes):
        sid = net.node_id(j)
        if sid in skip or sid not in live:
            continue
        lut += node.k > 0
        for f in node.fanin:
            use(f, stage[sid])
    last = core_shape(net, N).last_stage
    for s in out_signals:
        if s not in skip:
            use(s, last)
    for s in fused:
        for f in net.nodes[s - net.first_node].fanin:
            use(f, last)
    return {"lut": lut, "carry": 0, "ff": sum(need.values())}


class LutNetwork(Elaboratable):
    """The LUT nodes, as SB_LUT4 instances (iCE40) or portable table lookups, with pipeline registers every
    `pipeline` levels. `bits` must already be registered when pipeline > 0 (the core does that).

    `outputs` holds every counted signal's value (order of `out_signals`) as seen in the last LUT stage, not
    registered: the class counter registers it. Nodes in `fused` are computed by the counter from their fanins
    (`fanins`: each fused node's fanin values in the last stage, fused order); the network builds them only when
    another node reads them, and their `outputs` slots are 0."""

    def __init__(self, net: Netlist, pipeline: int = 0, lut_cells: str = "portable", fused=()) -> None:
        check_lut_cells(net, lut_cells)
        self.net, self.pipeline, self.lut_cells = net, max(0, int(pipeline)), lut_cells
        self.shape = core_shape(net, pipeline)
        self.bits = Signal(max(1, len(net.inputs)))
        self.out_signals: list[int] = out_signals_of(net)
        self.outputs = Signal(max(1, len(self.out_signals)))
        self.fused = [int(s) for s in fused]
        bad = [s for s in self.fused if not net.is_node(s) or s not in set(self.out_signals)]
        if bad:
            raise NetlistError(f"fused signals {bad[:5]} are not counted LUT nodes (internal error)")
        self.fanins = Signal(max(1, sum(net.nodes[s - net.first_node].k for s in self.fused)))

    def elaborate(self, platform) -> Module:
        m = Module()
        prim = primitives(self.lut_cells)
        net, N = self.net, self.pipeline
        levels = net.levels()
        # stage of a value = the cycle (after the input register) in which it is computed
        stage = {s: 0 for s in range(net.n_signals)}
        if N > 0:
            for j in range(len(net.nodes)):
                sid = net.node_id(j)
                stage[sid] = (int(levels[sid]) - 1) // N
        comb: dict[int, object] = {0: Const(0, 1), 1: Const(1, 1)}
        for i in range(len(net.inputs)):
            comb[net.input_id(i)] = self.bits[i]
        chains: dict[int, list] = {}

        def at(s: int, when: int):
            """Value of signal s as seen in stage `when` (>= its own stage): a register chain of the difference."""
            if net.is_const(s) or N == 0:
                return comb[s]
            d = when - stage[s]
            if d < 0:
                raise NetlistError(f"signal {s} is read before it is computed (internal pipelining error)")
            chain = chains.setdefault(s, [comb[s]])
            while len(chain) <= d:
                r = Signal(name=f"d{len(chain)}_s{s}", reset_less=True)
                m.d.sync += r.eq(chain[-1])
                chain.append(r)
            return chain[d]

        read = {f for node in net.nodes for f in node.fanin}
        skip = {s for s in self.fused if s not in read}
        for j, node in enumerate(net.nodes):
            sid = net.node_id(j)
            if sid in skip:
                continue
            ins = [at(f, stage[sid]) for f in node.fanin]
            o = Signal(name=f"n{sid}")
            if node.k == 0:
                m.d.comb += o.eq(node.table & 1)
            elif prim is not None:
                pads = ins + [Const(0, 1)] * (4 - node.k)
                m.submodules[f"lut_{sid}"] = prim.lut4(lut4_init(node.table, node.k), pads, o)
            else:
                m.d.comb += o.eq(Const(node.table, 1 << node.k).bit_select(Cat(*ins), 1))
            comb[sid] = o
        last = self.shape.last_stage
        for i, s in enumerate(self.out_signals):
            if s not in skip:
                m.d.comb += self.outputs[i].eq(at(s, last))
        pos = 0
        for s in self.fused:
            for f in net.nodes[s - net.first_node].fanin:
                m.d.comb += self.fanins[pos].eq(at(f, last))
                pos += 1
        return m


class Popcount(Elaboratable):
    """One balanced adder tree per class; constant-1 outputs become a constant offset, constant 0 is dropped,
    a repeated signal counts as often as it appears."""

    def __init__(self, net: Netlist, out_signals: list[int], score_bits: int) -> None:
        self.net, self.out_signals, self.score_bits = net, out_signals, score_bits
        self.outputs = Signal(max(1, len(out_signals)))
        self.scores = Signal(net.classes * score_bits)

    def elaborate(self, platform) -> Module:
        m = Module()
        index = {s: i for i, s in enumerate(self.out_signals)}
        sb = self.score_bits
        for c, group in enumerate(self.net.outputs):
            terms = [(self.outputs[index[s]], 1) for s in group if s >= 2]  # (value, max value)
            ones = sum(1 for s in group if s == 1)
            if ones:
                terms.append((Const(ones, _bits_for(ones)), ones))
            while len(terms) > 1:
                nxt = []
                for a in range(0, len(terms) - 1, 2):
                    (va, ma), (vb, mb) = terms[a], terms[a + 1]
                    mx = ma + mb
                    nxt.append(((va + vb)[: _bits_for(mx)], mx))
                if len(terms) % 2:
                    nxt.append(terms[-1])
                terms = nxt
            total = terms[0][0] if terms else Const(0, 1)
            sc = Signal(sb, name=f"score{c}")
            m.d.comb += sc.eq(total)
            m.d.comb += self.scores[c * sb : (c + 1) * sb].eq(sc)
        return m


class Argmax(Elaboratable):
    """Balanced tournament; the left operand always holds the lower class indices and wins ties, so ties go to
    the lowest index, as in software."""

    def __init__(self, classes: int, score_bits: int) -> None:
        self.classes, self.score_bits = classes, score_bits
        self.scores = Signal(classes * score_bits)
        self.cls = Signal(_bits_for(classes - 1))

    def elaborate(self, platform) -> Module:
        m = Module()
        sb, cb = self.score_bits, len(self.cls)
        entries = [(self.scores[c * sb : (c + 1) * sb], Const(c, cb)) for c in range(self.classes)]
        level = 0
        while len(entries) > 1:
            nxt = []
            for a in range(0, len(entries) - 1, 2):
                (sa, ia), (sbv, ib) = entries[a], entries[a + 1]
                take_b = Signal(name=f"l{level}_b{a // 2}")
                s, i = Signal(sb, name=f"l{level}_s{a // 2}"), Signal(cb, name=f"l{level}_i{a // 2}")
                m.d.comb += [take_b.eq(sbv > sa), s.eq(sa), i.eq(ia)]
                with m.If(take_b):
                    m.d.comb += [s.eq(sbv), i.eq(ib)]
                nxt.append((s, i))
            if len(entries) % 2:
                nxt.append(entries[-1])
            entries, level = nxt, level + 1
        m.d.comb += self.cls.eq(entries[0][1])
        return m


def make_counter(net: Netlist, out_signals: list[int], *, interval: int, lut_cells: str, hard_carry: bool = True):
    """The class counter for an interval: the pipelined cell tree at II = 1, shift chains into accumulators
    above."""
    if interval == 1:
        from .popcount import TreeCounter

        return TreeCounter(net, out_signals, lut_cells=lut_cells, hard_carry=hard_carry)
    from .serial import SerialCounter

    return SerialCounter(net, out_signals, interval=interval, lut_cells=lut_cells)


def make_argmax(classes: int, score_bits: int, *, interval: int, lut_cells: str, hard_carry: bool = True):
    """One sequential comparator when the interval leaves it the time, else the pipelined tournament."""
    from .serial import SerialArgmax

    if interval > 1 and SerialArgmax.fits(classes, interval):
        return SerialArgmax(classes, score_bits, interval=interval, lut_cells=lut_cells)
    from .argmax import TreeArgmax

    return TreeArgmax(classes, score_bits, lut_cells=lut_cells, hard_carry=hard_carry)


class WarpCore(Elaboratable):
    """Netlist -> class index (+ scores). Ports: `x` (raw features, flat) or, with encoder=False, `bits` (the
    encoded input bits, as Netlist.encode gives them); `valid_in`; `cls`, `scores` (flat, score_bits per class;
    only with scores=True), `valid_out`. `latency` is in cycles of the `sync` domain (0 = combinational);
    `interval` = cycles between samples (valid_in may rise at most once per interval; `bits` / `x` need to be
    valid only in the cycle valid_in is high)."""

    BLOCKS = ("lutnet", "popcount", "argmax")  # submodule names (module names in a kept hierarchy)

    def __init__(self, net: Netlist, *, pipeline: int = 0, lut_cells: str = "portable", encoder: bool = True,
                 input_reg: bool = True, interval: int = 1, scores: bool = True, hard_carry: bool = True) -> None:
        net.validate()
        check_ports(net)
        check_lut_cells(net, lut_cells)
        if input_reg is False and encoder:
            raise ConfigError("input_reg=False needs encoder=False and bits that stay stable (e.g. a register)")
        interval = check_interval(net, pipeline, interval)
        self.net, self.lut_cells, self.with_encoder, self.with_scores = net, lut_cells, encoder, scores
        self.shape = core_shape(net, pipeline, input_reg, interval)
        self.pipeline, self.interval = self.shape.pipeline, interval
        sh = self.shape
        out_signals = out_signals_of(net)
        if self.pipeline > 0:
            # hard_carry: the tree counters' chains on the family's carry chain where it has one (ECP5, Gowin)
            self.counter = make_counter(net, out_signals, interval=interval, lut_cells=lut_cells,
                                        hard_carry=hard_carry)
            # the argmax's few short chains route on any net (its inputs are the counters' registered scores):
            # the hard chain where the family has one, whatever the counter uses
            self.argmax = make_argmax(sh.classes, sh.score_bits, interval=interval, lut_cells=lut_cells,
                                      hard_carry=True)
            self.lutnet = LutNetwork(net, self.pipeline, lut_cells, fused=getattr(self.counter, "fused", ()))
            self.front_latency = int(sh.input_reg) + sh.last_stage  # valid_in -> the counter loads
            self.latency = self.front_latency + self.counter.latency + self.argmax.latency
        else:
            self.lutnet = LutNetwork(net, 0, lut_cells)
            self.counter = Popcount(net, out_signals, sh.score_bits)
            self.argmax = Argmax(sh.classes, sh.score_bits)
            self.front_latency = self.latency = 0
        if encoder:
            self.x = Signal(sh.n_features * sh.input_bits)
        else:
            self.bits = Signal(max(1, sh.n_inputs))
        self.valid_in = Signal()
        self.cls = Signal(sh.class_bits)
        if scores:
            self.scores = Signal(sh.classes * sh.score_bits)
        self.valid_out = Signal()

    def ports(self) -> list[Signal]:
        first = self.x if self.with_encoder else self.bits
        return [first, self.valid_in, self.cls] + ([self.scores] if self.with_scores else []) + [self.valid_out]

    def elaborate(self, platform) -> Module:
        m = Module()
        sh, lutnet, cnt, arg = self.shape, self.lutnet, self.counter, self.argmax
        if self.with_encoder:
            m.submodules.encoder = enc = Encoder(self.net)
            m.d.comb += enc.x.eq(self.x)
            bits = enc.bits
        else:
            bits = self.bits
        for name, block in zip(self.BLOCKS, (lutnet, cnt, arg)):
            m.submodules[name] = block
        if self.pipeline == 0:
            m.d.comb += [lutnet.bits.eq(bits), cnt.outputs.eq(lutnet.outputs), arg.scores.eq(cnt.scores),
                         self.cls.eq(arg.cls), self.valid_out.eq(self.valid_in)]
            if self.with_scores:
                m.d.comb += self.scores.eq(cnt.scores)
            return m
        if sh.input_reg:
            bits_r = Signal.like(lutnet.bits, name="bits_r", reset_less=True)  # the input register
            m.d.sync += bits_r.eq(bits)
            m.d.comb += lutnet.bits.eq(bits_r)
        else:  # the caller's bits are already a register (the shell's serial encoder): no second copy
            m.d.comb += lutnet.bits.eq(bits)
        valid = self.valid_in
        for t in range(self.front_latency):
            v = Signal(name=f"valid_front{t + 1}")
            m.d.sync += v.eq(valid)
            valid = v
        m.d.comb += [cnt.values.eq(lutnet.outputs), cnt.valid_in.eq(valid)]
        if len(getattr(cnt, "fused", ())):
            m.d.comb += cnt.fanins.eq(lutnet.fanins)
        m.d.comb += [arg.scores.eq(cnt.scores), arg.valid_in.eq(cnt.valid_out),
                     self.cls.eq(arg.cls), self.valid_out.eq(arg.valid_out)]
        if self.with_scores:
            # the counter holds its scores until its next valid_out; that is late enough when the argmax
            # finishes within one interval, else the scores follow the argmax through a delay line
            sc = cnt.scores
            if arg.latency >= self.interval:
                for t in range(arg.latency):
                    r = Signal.like(cnt.scores, name=f"scores_d{t + 1}", reset_less=True)
                    m.d.sync += r.eq(sc)
                    sc = r
            m.d.comb += self.scores.eq(sc)
        return m
