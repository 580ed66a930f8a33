"""The inference core: a netlist IR as an Amaranth design (encoder, LUT network, popcount, argmax, pipeline).

The core knows nothing about boards or UARTs (the shell wraps it). Blocks are separate Elaboratables so that a
synthesis with kept hierarchy reports resources per block.

Pipelining (``pipeline = N``): N = 0 is fully combinational (latency 0). N > 0 registers the encoded input bits,
the LUT network after every N LUT levels (signals that skip stages are delayed by register chains, so every path
has the same latency), the popcounts and the argmax. One new sample per clock (II = 1);
latency = 3 + ceil(depth / N) cycles (2 + ... with input_reg=False, when the bits come from a register).
"""
from __future__ import annotations

from dataclasses import dataclass

from amaranth.hdl import Cat, Const, Elaboratable, Instance, Module, Signal

from ..errors import ConfigError, NetlistError
from ..ir.netlist import Netlist

LUT_CELLS = ("sb_lut4", "portable")


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
    """Port widths and timing of a core, computable without elaborating it."""

    n_features: int
    input_bits: int
    n_inputs: int
    classes: int
    score_bits: int
    depth: int
    pipeline: int
    input_reg: bool = True

    @property
    def lut_stages(self) -> int:
        if self.pipeline <= 0:
            return 0
        return -(-self.depth // self.pipeline)

    @property
    def latency(self) -> int:
        """Cycles from a sample at the core's input to its class at the output (II = 1)."""
        return 0 if self.pipeline <= 0 else (3 if self.input_reg else 2) + self.lut_stages

    @property
    def class_bits(self) -> int:
        return _bits_for(self.classes - 1)


def core_shape(net: Netlist, pipeline: int = 0, input_reg: bool = True) -> CoreShape:
    return CoreShape(
        n_features=net.n_features,
        input_bits=net.input_bits,
        n_inputs=len(net.inputs),
        classes=net.classes,
        score_bits=_bits_for(max(len(g) for g in net.outputs)),
        depth=net.depth(),
        pipeline=max(0, int(pipeline)),
        input_reg=input_reg,
    )


def check_lut_cells(net: Netlist, lut_cells: str) -> None:
    if lut_cells not in LUT_CELLS:
        raise ConfigError(f"unknown LUT cell style {lut_cells!r}; choose one of {', '.join(LUT_CELLS)}")
    if lut_cells == "sb_lut4":
        big = [n.k for n in net.nodes if n.k > 4]
        if big:
            raise NetlistError(
                f"{len(big)} nodes have more than 4 inputs (up to {max(big)}); iCE40 SB_LUT4 cells take 4: "
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


class LutNetwork(Elaboratable):
    """The LUT nodes, as SB_LUT4 instances (iCE40) or portable table lookups, with pipeline registers every
    `pipeline` levels. `bits` must already be registered when pipeline > 0 (the core does that); `outputs` holds
    every output signal's value after the last register, in the order of `out_signals`."""

    def __init__(self, net: Netlist, pipeline: int = 0, lut_cells: str = "portable") -> None:
        check_lut_cells(net, lut_cells)
        self.net, self.pipeline, self.lut_cells = net, max(0, int(pipeline)), lut_cells
        self.shape = core_shape(net, pipeline)
        self.bits = Signal(max(1, len(net.inputs)))
        # distinct non-constant output signals, in first-use order
        seen: dict[int, None] = {}
        for g in net.outputs:
            for s in g:
                if not net.is_const(s):
                    seen.setdefault(s, None)
        self.out_signals: list[int] = list(seen)
        self.outputs = Signal(max(1, len(self.out_signals)))

    def elaborate(self, platform) -> Module:
        m = Module()
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

        for j, node in enumerate(net.nodes):
            sid = net.node_id(j)
            ins = [at(f, stage[sid]) for f in node.fanin]
            o = Signal(name=f"n{sid}")
            if node.k == 0:
                m.d.comb += o.eq(node.table & 1)
            elif self.lut_cells == "sb_lut4":
                pads = ins + [Const(0, 1)] * (4 - node.k)
                m.submodules[f"lut_{sid}"] = Instance(
                    "SB_LUT4",
                    p_LUT_INIT=Const(lut4_init(node.table, node.k), 16),
                    i_I0=pads[0], i_I1=pads[1], i_I2=pads[2], i_I3=pads[3],
                    o_O=o,
                )
            else:
                m.d.comb += o.eq(Const(node.table, 1 << node.k).bit_select(Cat(*ins), 1))
            comb[sid] = o
        final = self.shape.lut_stages  # outputs are registered at the end of the last stage
        for i, s in enumerate(self.out_signals):
            m.d.comb += self.outputs[i].eq(at(s, final) if N > 0 else comb[s])
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


class WarpCore(Elaboratable):
    """Netlist -> class index (+ scores). Ports: `x` (raw features, flat) or, with encoder=False, `bits` (the
    encoded input bits, as Netlist.encode gives them); `valid_in`; `cls`, `scores` (flat, score_bits per class),
    `valid_out`. `latency` is in cycles of the `sync` domain (0 = combinational)."""

    BLOCKS = ("lutnet", "popcount", "argmax")  # submodule names (module names in a kept hierarchy)

    def __init__(self, net: Netlist, *, pipeline: int = 0, lut_cells: str = "portable", encoder: bool = True,
                 input_reg: bool = True) -> None:
        net.validate()
        check_ports(net)
        check_lut_cells(net, lut_cells)
        if input_reg is False and encoder:
            raise ConfigError("input_reg=False needs encoder=False and bits that stay stable (e.g. a register)")
        self.net, self.lut_cells, self.with_encoder = net, lut_cells, encoder
        self.shape = core_shape(net, pipeline, input_reg)
        self.pipeline = self.shape.pipeline
        self.latency = self.shape.latency
        sh = self.shape
        if encoder:
            self.x = Signal(sh.n_features * sh.input_bits)
        else:
            self.bits = Signal(max(1, sh.n_inputs))
        self.valid_in = Signal()
        self.cls = Signal(sh.class_bits)
        self.scores = Signal(sh.classes * sh.score_bits)
        self.valid_out = Signal()

    def ports(self) -> list[Signal]:
        first = self.x if self.with_encoder else self.bits
        return [first, self.valid_in, self.cls, self.scores, self.valid_out]

    def elaborate(self, platform) -> Module:
        m = Module()
        net, sh, reg = self.net, self.shape, self.pipeline > 0
        lutnet = LutNetwork(net, self.pipeline, self.lut_cells)
        pop = Popcount(net, lutnet.out_signals, sh.score_bits)
        arg = Argmax(sh.classes, sh.score_bits)
        if self.with_encoder:
            m.submodules.encoder = enc = Encoder(net)
            m.d.comb += enc.x.eq(self.x)
            bits = enc.bits
        else:
            bits = self.bits
        for name, block in zip(self.BLOCKS, (lutnet, pop, arg)):
            m.submodules[name] = block
        if reg:
            if self.shape.input_reg:
                bits_r = Signal.like(lutnet.bits, name="bits_r", reset_less=True)  # the input register
                m.d.sync += bits_r.eq(bits)
                m.d.comb += lutnet.bits.eq(bits_r)
            else:  # the caller's bits are already a register (the shell's serial encoder): no second copy
                m.d.comb += lutnet.bits.eq(bits)
            m.d.comb += pop.outputs.eq(lutnet.outputs)  # registered inside lutnet after the last stage
            scores_r = Signal.like(pop.scores, name="scores_r", reset_less=True)
            m.d.sync += scores_r.eq(pop.scores)
            m.d.comb += arg.scores.eq(scores_r)
            m.d.sync += [self.cls.eq(arg.cls), self.scores.eq(scores_r)]
            valid = [self.valid_in]
            for t in range(self.latency - 1):
                v = Signal(name=f"valid{t + 1}")
                m.d.sync += v.eq(valid[-1])
                valid.append(v)
            m.d.sync += self.valid_out.eq(valid[-1])
        else:
            m.d.comb += [lutnet.bits.eq(bits), pop.outputs.eq(lutnet.outputs), arg.scores.eq(pop.scores),
                         self.cls.eq(arg.cls), self.scores.eq(pop.scores), self.valid_out.eq(self.valid_in)]
        return m
