"""UART board shell around the core, and the host <-> board protocol (8N1 bytes; warpc.fpga.protocol is the
host's side, warpc.hdl.framing holds the constants).

Host -> board, one frame per sample:
    SYNC (0xA5) | features | CHECK
  features: feature 0 first, each as ceil(input_bits / 8) little-endian bytes;
  CHECK: CRC-8/SMBUS (poly 0x07, init 0, no reflection, no final xor) of the feature bytes.
Board -> host, one reply per frame:
    ACK (0x06) | class | scores | CHECK   when CHECK matched: class index byte, then (when the shell was built with
                                        scores) every class score as ceil(score_bits / 8) little-endian bytes,
                                        then the CRC-8 of class and scores;
    NAK (0x15)                          when the frame was rejected: a wrong check byte, or no byte arrived for
                                        the idle timeout in the middle of a frame (a lost byte).
Bytes outside a frame are ignored until the next SYNC, and so are bytes that arrive while the board computes or
answers. The idle timeout is framing.idle_cycles(clock, divisor): max(IDLE_BYTES = 32 byte times, 2 ms) rounded
up to a power of two cycles (iCEBreaker: 5.5 ms at 115200 baud, 2.7 ms from 230400 up); a frame abandoned by it is
answered with a NAK, and the board waits for SYNC again.

What the host does (warpc.fpga.host.run_on_board): write a frame, read the reply; on a NAK, a wrong or missing
ACK, a short reply (its read timeout) or a wrong reply check byte, it waits twice framing.idle_timeout_s (an
upper bound of the idle timeout for any clock, so a frame the board is still in has been abandoned and its NAK
sent by then), discards its input, and sends the frame again,
up to `retries` times; then it gives up with a BoardError. A lost byte thus costs one idle timeout, and an extra or
corrupted byte is caught by CHECK (CRC-8 detects every 1- or 2-bit error and every error burst up to 8 bits; a
frame shifted by a duplicated or lost byte passes it with probability 1/256 at most, and the board only ever
answers a full-length frame). Computing the same sample twice is harmless, so resending is always safe.

The features are encoded while they arrive (SerialEncoder): each feature byte is compared with the thresholds
the net uses and only those bits are stored, instead of buffering n_features * input_bits raw bits (Fashion-MNIST:
6,272 flip-flops, more than the UP5K's 5,280 LCs). The core itself then runs without its parallel encoder.
"""
from __future__ import annotations

from amaranth.hdl import Cat, ClockDomain, Const, DomainRenamer, Elaboratable, Module, Mux, Signal
from amaranth.lib.cdc import FFSynchronizer, ResetSynchronizer

from ..errors import ConfigError
from ..families import primitives
from ..ir.netlist import Netlist
from .core import LUT_CELLS, WarpCore, _bits_for, lut4_init
from .framing import ACK_BYTE, IDLE_BYTES, NAK_BYTE, NOPROG_BYTE, SYNC_BYTE, crc8_matrix
from .uart import UARTRx, UARTTx


PLL_SETTLE_S = 100e-6  # without a LOCK signal: reset held this long after configuration (iCE40 PLL lock < 50 us)
CORE_DOMAIN = "core"  # the core's clock domain when it runs on a clock of its own (warpc synth --core-clock)


class _EncoderPlan:
    """The serial encoder as a list of LUT gates (at most 4 inputs each) plus one flip-flop per used input bit,
    computed from the netlist alone: `SerialEncoder` builds it, `SerialEncoder.cells` counts it.

    A gate input is ("strobe",), ("index", k), ("value", k), ("gate", g) or ("q", i) (the stored bit i itself);
    `table` is the truth table over the inputs, input 0 the least significant address bit."""

    def __init__(self, net: Netlist, low: int | None = None) -> None:
        self.net = net
        self.iw = _bits_for(net.n_features - 1)
        self.used = net.used_inputs()
        feats = sorted({net.inputs[i].feature for i in self.used})
        best = None
        for lw in ([low] if low is not None else range(self.iw + 1)):
            self.gates, self._memo = [], {}
            dec = {f: self._decode(f, lw) for f in feats}
            cost = len(self.gates)
            if best is None or cost < best[0]:
                best = (cost, lw, self.gates, self._memo, dec)
        _, self.low, self.gates, self._memo, self.decode = best
        self.ge: dict[int, object] = {}
        self.bit_gate: dict[int, tuple] = {}  # stored bit -> its gate
        self.same: dict[int, int] = {}        # a used bit -> the stored bit with the same (feature, threshold)
        first: dict[tuple[int, int], int] = {}
        for i in self.used:
            b = net.inputs[i]
            self.same[i] = first.setdefault((b.feature, b.threshold), i)
            if self.same[i] != i:
                continue
            lo, hi = self.decode[b.feature]
            ge = self._ge(b.threshold)
            ins = [s for s in (lo, hi, ge) if not isinstance(s, int)] + [("q", i)]
            # (lo & hi) ? ge : q, with constant inputs folded into the table
            def f(bits, lo=lo, hi=hi, ge=ge, ins=ins, q=("q", i)):
                val = dict(zip(ins, bits))
                get = lambda s: s if isinstance(s, int) else val[s]
                return get(ge) if (get(lo) and get(hi)) else val[q]
            self.bit_gate[i] = self._gate(ins, f, memo=False)

    def _gate(self, ins: list, fn, memo: bool = True) -> tuple:
        key = (tuple(ins), tuple(fn([(c >> j) & 1 for j in range(len(ins))]) for c in range(1 << len(ins))))
        if memo and key in self._memo:
            return self._memo[key]
        table = sum(int(bool(v)) << c for c, v in enumerate(key[1]))
        self.gates.append((list(ins), table))
        g = ("gate", len(self.gates) - 1)
        if memo:
            self._memo[key] = g
        return g

    def _conj(self, lits: list) -> object:
        """AND of (signal, wanted value) literals as a chain of LUT4s; the low-order prefix is built first and
        shared (memoised) between every conjunction that starts with it. Returns a signal or the int 1."""
        if not lits:
            return 1
        if len(lits) == 1 and lits[0][1] == 1:
            return lits[0][0]
        if len(lits) <= 4:
            pre, rest = [], lits
        else:
            pre, rest = [(self._conj(lits[:-3]), 1)], lits[-3:]
        alll = pre + rest
        return self._gate([s for s, _ in alll], lambda bits: all(b == w for b, (_, w) in zip(bits, alll)))

    def _decode(self, f: int, lw: int) -> tuple:
        """(lo, hi) for feature f: lo = strobe & index[:lw] == f's low bits, hi = index[lw:] == its high bits."""
        lo = self._conj([(("strobe",), 1)] + [(("index", k), (f >> k) & 1) for k in range(lw)])
        hi = self._conj([(("index", k), (f >> k) & 1) for k in range(lw, self.iw)])
        return lo, hi

    def _ge(self, t: int) -> object:
        """[value >= t]: 1 / 0 for thresholds outside the value range, else the LSB-first chain
        ge_i = t_i ? (v_i & ge_(i-1)) : (v_i | ge_(i-1)) from t's lowest set bit, 3 bits per LUT4 after the first 4
        (prefixes shared between thresholds with the same low bits)."""
        w = self.net.input_bits
        if t <= 0:
            return 1
        if t >= 1 << w:
            return 0
        if t not in self.ge:
            self.ge[t] = self._ge_bits(t, (t & -t).bit_length() - 1, w)
        return self.ge[t]

    def _ge_bits(self, t: int, lo: int, hi: int) -> object:
        """[value[lo:hi] >= t[lo:hi]] given t[lo] = 1 (so the bits below lo do not matter)."""
        n = hi - lo
        if n == 1:
            return ("value", lo)
        if n <= 4:
            pre, first = None, lo
        else:
            pre, first = self._ge_bits(t, lo, hi - 3), hi - 3
        ins = ([pre] if pre is not None else []) + [("value", k) for k in range(first, hi)]

        def fn(bits):
            res = bits[0] if pre is not None else None
            vb = bits[1:] if pre is not None else bits
            for j, k in enumerate(range(first, hi)):
                v = vb[j]
                if res is None:  # the lowest relevant bit: t has a 1 there
                    res = v
                elif (t >> k) & 1:
                    res = v & res
                else:
                    res = v | res
            return res
        return self._gate(ins, fn)


class SerialEncoder(Elaboratable):
    """One feature per `strobe` (any cadence): stores [value >= t] for the used (index, t) input bits in `bits`
(bits the net repeats with the same feature and threshold are stored once).

    Every stored bit is one 4-input LUT and its flip-flop: the LUT computes `(lo & hi) ? ge : q` from the feature's
    low-index predecode (which includes the strobe), its high-index predecode, the shared comparator
    [value >= t] and the bit's own output q, and feeds the flip-flop; nextpnr packs the two into one logic cell
    (LC). The shared part is small: the two predecoders (one LUT chain per distinct low / high index value; the
    split point minimises their total) and one comparator per distinct threshold (a chain of LUT4s, prefixes
    shared), `cells()` counts them exactly. With lut_cells="sb_lut4" every LUT is an explicit SB_LUT4 (so the
    count is exact, and the RTL and the synthesised netlist are the same cells: the formal proof is immediate);
    "portable" writes the same truth tables as plain Amaranth logic for any toolchain (ABC maps them, usually to
    the same count).

    Why 1 LC per stored bit is the bound of this architecture: an iCE40 flip-flop's D input comes only from the
    LUT of its own LC (there is no LUT bypass into another LC's flip-flop), so every bit that is stored in a
    flip-flop costs one LC, and its LUT is then free to compute the bit's next value: the cost above is already
    that bound plus the shared part. Doing better means not keeping the bits in flip-flops at all, e.g. writing
    them into block RAM and reading them out over several cycles into a core that consumes them a slice at a time
    (folded execution), which changes the core, not the encoder.

    Measured with synth_ice40 (the build's flags, block kept on its own; every flip-flop packs with its LUT, so
    LCs = LUTs): digits (64 features, 371 used bits, 14 thresholds): 467 LUT / 371 FF before (per-feature
    enables and comparators left to ABC) -> 417 LUT / 371 FF = 371 + 46 shared (16 decode, 30 compare);
    a 784-feature net with 1,127 used bits (1,103 distinct) and 29 thresholds: 1,225 -> 1,217 LUT = 1,103 + 114
    shared (65 decode, 49 compare); with 159 thresholds: 1,406 -> 1,377 LUT = 1,122 + 255 shared.
    `tests/test_hdl_encoder.py` checks the counts against Yosys. The build's formal proof (equiv.formal_check,
    which expands each SB_LUT4 into its model on both sides) proves this encoder in 77 s / 89 s of CPU on those
    784-feature nets (the previous one: 35 s / 48 s): the cells do not make that proof cheaper by themselves."""

    def __init__(self, net: Netlist, lut_cells: str = "portable") -> None:
        if lut_cells not in LUT_CELLS:
            raise ConfigError(f"unknown LUT cell style {lut_cells!r}; choose one of {', '.join(LUT_CELLS)}")
        self.net, self.lut_cells = net, lut_cells
        self.value = Signal(net.input_bits)
        self.index = Signal(_bits_for(net.n_features - 1))
        self.strobe = Signal()
        self.bits = Signal(max(1, len(net.inputs)))
        self.latency = 2  # a strobe's bits show in `bits` two cycles later (registered shared inputs, then q)

    @classmethod
    def cells(cls, net: Netlist, lut_cells: str = "sb_lut4") -> dict[str, int]:
        """The cells the encoder instantiates, without elaborating it: one LUT per gate of its plan, one flip-flop
        per used input bit, no carries (exact for sb_lut4; for portable it is the logic ABC is handed)."""
        plan = _EncoderPlan(net)
        staged = cls.staged_inputs(plan)
        bit_gates = {g[1] for g in plan.bit_gate.values()}
        read_by_logic = {r for g, (ins, _) in enumerate(plan.gates) if g not in bit_gates for r in ins}
        # packed LCs: a staged register shares its LC with the LUT that drives it, unless that LUT has other
        # readers or the register samples a raw port (strobe, a value bit)
        lone = sum(1 for r in staged if r[0] != "gate" or r in read_by_logic)
        return {"lut": len(plan.gates), "carry": 0, "ff": len(plan.bit_gate) + len(staged),
                "lc": len(plan.gates) + lone}

    @staticmethod
    def staged_inputs(plan) -> set:
        """The shared signals the bit LUTs read through a register (one flip-flop each, packed with its LUT)."""
        bit_gates = {g[1] for g in plan.bit_gate.values()}
        return {r for g in bit_gates for r in plan.gates[g][0] if r[0] != "q"}

    def elaborate(self, platform) -> Module:
        m = Module()
        plan = _EncoderPlan(self.net)
        outs: list[Signal] = []
        prim = primitives(self.lut_cells)
        per_bit = {g: i for i, g in plan.bit_gate.items()}
        # the stored bits (one per distinct input bit); reset_less: a reset would give these flip-flops their own
        # control set (iCE40 tiles share CE/SR), and a nearly full UP5K then does not place
        q = {i: Signal(name=f"q{i}", reset_less=True) for i in plan.bit_gate}

        def sig(ref):
            kind = ref[0]
            if kind == "strobe":
                return self.strobe
            if kind == "gate":
                return outs[ref[1]]
            if kind == "q":
                return q[ref[1]]
            return {"index": self.index, "value": self.value}[kind][ref[1]]

        staged: dict = {}

        def reg(ref):
            """The registered copy of a stored bit's shared input (predecode, comparator, strobe): the comparator
            chains and the high-fanout nets to ~1,700 bit LUTs then sit in separate clock cycles (>= 48 MHz)."""
            if ref not in staged:
                r = Signal(name=f"r_{'_'.join(str(x) for x in ref)}", reset_less=True)
                m.d.sync += r.eq(sig(ref))
                staged[ref] = r
            return staged[ref]

        for g, (ins, table) in enumerate(plan.gates):
            o = Signal(name=f"d{per_bit[('gate', g)]}" if ("gate", g) in per_bit else f"g{g}")
            if ("gate", g) in per_bit:
                srcs = [sig(r) if r[0] == "q" else reg(r) for r in ins]
            else:
                srcs = [sig(r) for r in ins]
            if prim is not None:
                pads = srcs + [Const(0, 1)] * (4 - len(srcs))
                m.submodules[f"lut_{g}"] = prim.lut4(lut4_init(table, len(srcs)), pads, o)
            else:
                m.d.comb += o.eq(Const(table, 1 << len(srcs)).bit_select(Cat(*srcs), 1))
            outs.append(o)
        for i, (_, g) in plan.bit_gate.items():
            m.d.sync += q[i].eq(outs[g])
        for i, j in plan.same.items():
            m.d.comb += self.bits[i].eq(q[j])
        return m


class FramedShell(Elaboratable):
    """rx/tx UART lines <-> an inference block, with the framing in the module docstring. Subclasses say where
    the features go (`_take_feature`), how a sample starts (`_start`), when it is done (`_done`) and what the
    answer is (`_result`); `ready` / `fault` let a block that must boot first (the folded engine) hold frames off
    while loading and answer NOPROG when its program image was bad. `idle_cycles`: the idle timeout in clock
    cycles, rounded up to a power of two (framing.idle_cycles(clock_hz, divisor) on a board; default IDLE_BYTES
    byte times)."""

    def __init__(self, net: Netlist, *, divisor: int, classes: int, score_bits: int, scores: bool,
                 idle_cycles: int | None) -> None:
        cycles = int(idle_cycles) if idle_cycles is not None else IDLE_BYTES * 10 * divisor
        self.idle_cycles = 1 << max(0, cycles - 1).bit_length()  # rounded up to a power of two
        if self.idle_cycles < 12 * divisor:
            raise ConfigError(f"idle timeout {self.idle_cycles} cycles is shorter than a byte ({10 * divisor})")
        self.net, self.divisor, self.with_scores = net, divisor, scores
        self.classes, self.score_bits = classes, score_bits
        self.rx = Signal(init=1)
        self.tx = Signal(init=1)
        self.busy = Signal()  # for an LED
        self.ready: object = Const(1)   # frames are taken only when ready ...
        self.fault: object = Const(0)   # ... and answered with NOPROG on a fault
        self.feature_bytes = -(-net.input_bits // 8)
        self.score_bytes = -(-score_bits // 8)
        self.payload_bytes = 1 + (classes * self.score_bytes if scores else 0)     # class (+ scores)
        self.request_bytes = 2 + net.n_features * self.feature_bytes               # sync + features + check
        self.reply_bytes = 2 + self.payload_bytes                                   # ack + payload + check

    # --- what a subclass provides ---------------------------------------------------------------------------
    def _attach(self, m: Module) -> None:
        raise NotImplementedError

    def _take_feature(self, m: Module, strobe, value, index) -> None:
        """Combinational: `value` is feature `index`, complete in the cycle `strobe` is high."""
        raise NotImplementedError

    def _start(self, m: Module) -> None:
        """Synchronous statements (in the cycle the check byte matched) that start the sample."""
        raise NotImplementedError

    def _done(self):
        raise NotImplementedError

    def _result(self):
        """The class index (bits 0..7) and, with scores, every class score (score_bytes each, from byte 1)."""
        raise NotImplementedError

    def _reply_word(self, cls, scores: list) -> object:
        word = cls.as_unsigned()
        if self.with_scores:
            for c, sc in enumerate(scores):
                word = word | (sc.as_unsigned() << (8 + 8 * c * self.score_bytes))
        return word

    def elaborate(self, platform) -> Module:
        m = Module()
        net = self.net
        m.submodules.rx = rx = UARTRx(self.divisor)
        m.submodules.tx = tx = UARTTx(self.divisor)
        self._attach(m)
        m.d.comb += [rx.rx.eq(self.rx), self.tx.eq(tx.tx)]
        fb, ib = self.feature_bytes, net.input_bits
        feat = Signal(range(net.n_features + 1))
        sub = Signal(range(fb + 1))
        acc = Signal(8 * fb)
        strobe = Signal()
        # the block takes each feature straight from the receiver (no copy registers, and unconditionally, so no
        # gating logic): it stores the feature at the clock edge that ends its last byte (strobe in RECV)
        value = (acc >> 8) | (rx.data << (8 * (fb - 1))) if fb > 1 else rx.data
        self._take_feature(m, strobe, value[:ib], feat)
        # One CRC-8 register, shared: it checks the request's features while receiving and computes the reply's
        # check byte while the payload goes out; it restarts from 0 (the flip-flops' reset pin) in SYNC and COMPUTE.
        crc = Signal(8)
        sending = Signal()  # in PAYLOAD: the CRC takes the byte being sent, else the byte received
        reply = Signal(8 * self.payload_bytes)
        x = crc ^ Mux(sending, reply[:8], rx.data)
        crc_next = Cat(*[_xor([x[k] for k in row]) for row in crc8_matrix()])
        # idle timer: cycles without a received byte inside a frame; its top bit (idle_cycles, a power of two)
        # is the timeout, so it needs no comparator
        idle = Signal(self.idle_cycles.bit_length())
        timeout = idle[-1]
        left = Signal(range(self.payload_bytes + 1))
        ok = Signal()  # the reply in flight is an ACK (payload and check byte follow), not a NAK
        noprog = Signal()  # the reply is NOPROG (the block has no valid program)

        def nak():
            m.d.sync += ok.eq(0)
            m.next = "HEAD"

        with m.FSM():
            with m.State("SYNC"):
                with m.If(rx.rdy & (rx.data == SYNC_BYTE)):
                    with m.If(self.fault):
                        m.d.sync += [noprog.eq(1), ok.eq(0)]
                        m.next = "HEAD"
                    with m.Elif(self.ready):  # while a block boots, frames are ignored (the host retries)
                        m.d.sync += [feat.eq(0), sub.eq(0)]
                        m.next = "RECV"
                m.d.sync += [idle.eq(0), crc.eq(0)]
            with m.State("RECV"):
                m.d.comb += self.busy.eq(1)
                m.d.sync += idle.eq(Mux(rx.rdy, 0, idle + 1))
                m.d.comb += strobe.eq(rx.rdy & (sub == fb - 1))
                with m.If(rx.rdy):
                    m.d.sync += [acc.eq(value), crc.eq(crc_next)]
                    with m.If(sub == fb - 1):
                        m.d.sync += [feat.eq(feat + 1), sub.eq(0)]
                        with m.If(feat == net.n_features - 1):
                            m.next = "CHECK"
                    with m.Else():
                        m.d.sync += sub.eq(sub + 1)
                with m.Elif(timeout):
                    nak()
            with m.State("CHECK"):  # the check byte: a byte time after the last strobe, its bits are stored (2 cycles)
                m.d.comb += self.busy.eq(1)
                m.d.sync += idle.eq(idle + 1)
                with m.If(rx.rdy):
                    with m.If(rx.data == crc):
                        self._start(m)
                        m.next = "COMPUTE"
                    with m.Else():
                        nak()
                with m.Elif(timeout):
                    nak()
            with m.State("COMPUTE"):
                m.d.comb += self.busy.eq(1)
                m.d.sync += crc.eq(0)
                with m.If(self._done()):
                    m.d.sync += [reply.eq(self._result()), left.eq(self.payload_bytes), ok.eq(1)]
                    m.next = "HEAD"
            with m.State("HEAD"):  # ACK, NAK or NOPROG
                m.d.comb += self.busy.eq(1)
                with m.If(~tx.busy):
                    m.d.comb += [tx.data.eq(Mux(noprog, NOPROG_BYTE, Mux(ok, ACK_BYTE, NAK_BYTE))),
                                 tx.start.eq(1)]
                    m.d.sync += noprog.eq(0)
                    with m.If(ok):
                        m.next = "PAYLOAD"
                    with m.Else():
                        m.next = "SYNC"
            with m.State("PAYLOAD"):
                m.d.comb += [self.busy.eq(1), sending.eq(1)]
                with m.If(~tx.busy):
                    m.d.comb += [tx.data.eq(reply[:8]), tx.start.eq(1)]
                    m.d.sync += [reply.eq(reply >> 8), left.eq(left - 1), crc.eq(crc_next)]
                    with m.If(left == 1):
                        m.next = "TAIL"
            with m.State("TAIL"):  # the reply's check byte
                m.d.comb += self.busy.eq(1)
                with m.If(~tx.busy):
                    m.d.comb += [tx.data.eq(crc), tx.start.eq(1)]
                    m.next = "SYNC"
        return m


class UartShell(FramedShell):
    """The spatial design: SerialEncoder -> WarpCore (encoder=False) behind the UART framing. Not board-specific:
    `BoardTop` connects it to a platform's pins."""

    ENCODER, CORE = "encoder", "core"  # submodule names: the synthesised hierarchy's module names derive from them

    def __init__(self, net: Netlist, *, divisor: int, pipeline: int = 1, lut_cells: str = "portable",
                 scores: bool = False, interval: int = 1, idle_cycles: int | None = None,
                 hard_carry: bool = True, core_domain: str | None = None) -> None:
        if core_domain is not None and (pipeline <= 0 or core_domain == "sync"):
            raise ConfigError("a core clock of its own needs a pipelined core (pipeline >= 1) and a domain other "
                              "than sync")
        self.core_domain = core_domain
        # the serial encoder's bit register is the core's input register (saves one FF per used input bit)
        self.core = WarpCore(net, pipeline=pipeline, lut_cells=lut_cells, encoder=False, input_reg=pipeline == 0,
                             interval=interval, scores=scores, hard_carry=hard_carry)
        self.encoder = SerialEncoder(net, lut_cells=lut_cells)
        sh = self.core.shape
        super().__init__(net, divisor=divisor, classes=sh.classes, score_bits=sh.score_bits, scores=scores,
                         idle_cycles=idle_cycles)

    def _attach(self, m: Module) -> None:
        m.submodules[self.ENCODER] = self.encoder
        core = self.core
        m.d.comb += core.bits.eq(self.encoder.bits)
        self._go = Signal(name="start")  # comb: high in the cycle the check byte matched
        if self.core_domain is None:
            m.submodules[self.CORE] = core
            m.d.sync += core.valid_in.eq(self._go)
            self._finished = core.valid_out
            self._cls, self._scores = core.cls, getattr(core, "scores", None)
            return
        self._attach_split(m, core, self.core_domain)

    def _attach_split(self, m: Module, core: WarpCore, cd: str) -> None:
        """The core in clock domain `cd` (a PLL's), the UART, framing and encoder in `sync` (the board's clock).

        Crossing sync -> cd: the encoded bits are quasi-static. The encoder writes them while feature bytes
        arrive and then not again before the reply has gone out; the start is a toggle that reaches the core
        through a two-flip-flop synchroniser a whole check byte (10 bit times) after the last bit was written. So
        whatever the routing delay from an encoder flip-flop into the core (nextpnr reports these paths as
        cross-domain and does not time them), the core's first registers sample settled values in the one cycle
        whose result is kept. Crossing cd -> sync: the core's class (and scores) are held in registers of cd
        from its valid_out on, and a toggle tells sync through another two-flip-flop synchroniser; the
        held values have been stable for two sync cycles when sync reads them."""
        m.submodules[self.CORE] = DomainRenamer(cd)(core)
        req = Signal(name="start_toggle")            # sync: flips once per sample
        m.d.sync += req.eq(req ^ self._go)
        req_c, req_c1 = Signal(name="start_toggle_core"), Signal(name="start_toggle_core_last")
        m.submodules.start_sync = FFSynchronizer(req, req_c, o_domain=cd)
        m.d[cd] += req_c1.eq(req_c)
        m.d.comb += core.valid_in.eq(req_c ^ req_c1)  # one cd cycle per sample
        ack = Signal(name="done_toggle")              # cd: flips when a result is held
        cls_h = Signal.like(core.cls, name="cls_held", reset_less=True)
        m.d[cd] += ack.eq(ack ^ core.valid_out)
        with m.If(core.valid_out):
            m.d[cd] += cls_h.eq(core.cls)
        self._cls, self._scores = cls_h, None
        if self.with_scores:
            self._scores = Signal.like(core.scores, name="scores_held", reset_less=True)
            with m.If(core.valid_out):
                m.d[cd] += self._scores.eq(core.scores)
        ack_s, ack_s1 = Signal(name="done_toggle_sync"), Signal(name="done_toggle_sync_last")
        m.submodules.done_sync = FFSynchronizer(ack, ack_s, o_domain="sync")
        m.d.sync += ack_s1.eq(ack_s)
        self._finished = ack_s ^ ack_s1

    def _take_feature(self, m: Module, strobe, value, index) -> None:
        enc = self.encoder
        m.d.comb += [enc.value.eq(value), enc.index.eq(index), enc.strobe.eq(strobe)]

    def _start(self, m: Module) -> None:
        m.d.comb += self._go.eq(1)

    def describe(self) -> dict:
        """Timing facts for the build report."""
        core = self.core
        return {"Latency_cycles": core.latency, "Interval_cycles": core.interval, "score_bits": core.shape.score_bits,
                "pipeline": {"lut_levels_per_stage": core.pipeline, "lut_stages": core.shape.lut_stages,
                             "depth": core.shape.depth},
                "Latency_from": "the encoded input bits (the shell's serial-encoder register, written as the last "
                                "feature byte arrives) to the class index; receiving a sample over the UART takes "
                                "its bytes' time"
                                + ("; in core-clock cycles, plus the clock-domain crossings (the start through two "
                                   "core-clock flip-flops, the result through two shell-clock flip-flops)"
                                   if self.core_domain else "")}

    def _done(self):
        return self._finished

    def _result(self):
        sb = self.score_bits
        scores = [self._scores[c * sb:(c + 1) * sb] for c in range(self.classes)] if self.with_scores else []
        return self._reply_word(self._cls, scores)


def _xor(bits):
    out = bits[0]
    for b in bits[1:]:
        out = out ^ b
    return out


class BoardTop(Elaboratable):
    """Connects a shell to a platform's `uart` and first LED (lit while a sample is in flight); a shell that boots
    from the SPI flash (FoldedShell) also gets the flash pins (`spi_flash_1x`) and lights the second LED when its
    program image was bad."""

    SHELL = "shell"

    def __init__(self, shell: FramedShell, pll=None, split_pll=None) -> None:
        self.shell = shell
        self.pll = pll  # (family PLL, board Hz, core Hz): the sync domain runs on the PLL's output, in reset until lock
        # (family split PLL, board Hz, core Hz): sync on the board clock, the shell's core domain on the PLL's
        self.split_pll = split_pll

    def elaborate(self, platform) -> Module:
        m = Module()
        m.submodules[self.SHELL] = shell = self.shell
        if self.split_pll is not None:
            make, f_in, f_out = self.split_pll
            board_clk, core_clk, locked = make(m, platform, f_in, f_out)
            m.domains.sync = sync = ClockDomain("sync")
            m.domains += (core := ClockDomain(shell.core_domain))
            m.d.comb += [sync.clk.eq(board_clk), core.clk.eq(core_clk)]
            # both domains stay in reset until the PLL has locked: its LOCK output where the family gives it,
            # else a power-on timer in the board clock (PLL_SETTLE_S); released in each domain's own clock
            if locked is None:
                por = ClockDomain("por", reset_less=True, local=True)
                m.domains += por
                m.d.comb += por.clk.eq(board_clk)
                delay = int(PLL_SETTLE_S * f_in)
                timer, locked = Signal(range(delay + 1), name="pll_settle"), Signal(name="pll_settled")
                with m.If(timer == delay):
                    m.d.por += locked.eq(1)
                with m.Else():
                    m.d.por += timer.eq(timer + 1)
            m.submodules.sync_reset = ResetSynchronizer(~locked, domain="sync")
            m.submodules.core_reset = ResetSynchronizer(~locked, domain=shell.core_domain)
        elif self.pll is not None:
            make, f_in, f_out = self.pll
            clk = platform.request(platform.default_clk, 0)
            pll_clk, locked = make(m, clk.i, f_in, f_out)
            m.domains.sync = cd = ClockDomain("sync")
            m.d.comb += [cd.clk.eq(pll_clk), cd.rst.eq(~locked)]
        uart = platform.request("uart", 0)
        m.d.comb += [shell.rx.eq(uart.rx.i), uart.tx.o.eq(shell.tx)]
        leds = []
        for i in range(2):
            try:
                leds.append(platform.request("led", i))
            except Exception:  # a board with fewer LEDs: nothing to show
                break
        if leds:
            m.d.comb += leds[0].o.eq(shell.busy)
        if getattr(shell, "cs_n", None) is not None:
            from .boot import connect_spi_flash

            connect_spi_flash(m, shell, platform.request("spi_flash_1x", 0))
            if len(leds) > 1:
                m.d.comb += leds[1].o.eq(shell.fault)
        return m


def block_modules(top: str = "top") -> dict[str, str]:
    """Block label -> module name in the synthesised BoardTop named `top` (Amaranth names a submodule's module
    <parent>.<submodule name>). The board build keeps these blocks' hierarchy, reports resources per block and
    checks each one for equivalence."""
    shell = f"{top}.{BoardTop.SHELL}"
    core = f"{shell}.{UartShell.CORE}"
    return {"encoder": f"{shell}.{UartShell.ENCODER}", **{b: f"{core}.{b}" for b in WarpCore.BLOCKS},
            "core": core}
