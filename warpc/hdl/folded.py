"""The folded engine: a netlist evaluated from memory, L two-input nodes per clock (see warpc.ir.fold for the
program it runs).

Memories:
- program: `n_words` words of the layout's width, read one per clock at `pc`; SPRAM on the iCE40 UP5K
  (`program_mem="spram"`: ceil(width / 16) SB_SPRAM256KA side by side, written by the boot loader through the
  `prog_*` port), or an Amaranth memory (`"portable"`, optionally initialised with the words) for simulation.
- activations: 2L copies (one per read port: L lanes x 2 inputs) of an (activation_words x L)-bit block RAM,
  written together at the write pointer, one L-bit word per stored program word.
- features: L copies of an (n_features x input_bits) block RAM, written by the shell as the bytes arrive.

Pipeline (one program word per clock; stage S0 is the cycle `pc` addresses the program memory):
  S1  the word arrives; every lane issues its activation reads (and ENC lanes their feature read)
  S2  the read data arrive; each lane computes y (truth table or comparison) and its count contribution
  S3  stored words write y into the activation copies (wp += 1); the accumulator adds the count; on END the
      class total moves to `fin` and the accumulator restarts
  S4  `fin` is compared with the best so far (strictly greater wins, so ties keep the lower class)
A word issued at pc = p writes at the clock edge that ends S3 (cycle p + 3); a word at pc = q reads at the edge
that ends its S1 (cycle q + 1), so it sees the value when q >= p + 3 = p + fold.HAZARD.
`done` rises for one cycle `latency(prog)` cycles after `start`, with `cls` (and `scores`) valid until the next
start.
"""
from __future__ import annotations

from amaranth.hdl import Cat, ClockSignal, Const, Elaboratable, Instance, Module, Mux, Signal
from amaranth.lib.memory import Memory

from ..errors import ConfigError
from ..ir.fold import HAZARD, KIND_COUNT, KIND_ENC, KIND_NODE, KIND_SUM, WORD_BITS, Program
from ..ir.netlist import Netlist
from .shell import FramedShell

SPRAM_DEPTH, SPRAM_WIDTH = 16384, 16
PIPELINE = 5  # cycles from the last word's pc to `done`
if HAZARD != 3:  # the stage plan above fixes the read-to-write distance the compiler must respect
    raise ImportError("warpc.hdl.folded is built for fold.HAZARD == 3")


def latency(prog: Program) -> int:
    """Clock cycles from `start` to `done` (one program pass)."""
    return prog.n_words + PIPELINE


# SB_RAM40_4K shapes (READ_MODE = WRITE_MODE = m): 256 << m words of 16 >> m bits; data bit k of a mode-m word
# sits on RDATA / WDATA pin EBR_PINS[m][k] (Yosys' cells_sim.v)
EBR_PINS = {0: list(range(16)), 1: list(range(0, 16, 2)), 2: [1, 5, 9, 13], 3: [3, 11]}


def ebr_shape(depth: int, width: int) -> tuple[int, int, int]:
    """(mode, banks, slices) of the cheapest SB_RAM40_4K tiling of a depth x width memory (fewest blocks, then
    fewest banks: the read multiplexer grows with them)."""
    best = None
    for m in range(4):
        banks, slices = -(-depth // (256 << m)), -(-width // (16 >> m))
        key = (banks * slices, banks)
        if best is None or key < best[0]:
            best = (key, m, banks, slices)
    return best[1], best[2], best[3]


def _addr11(addr: Signal, low: int):
    """The block's word address (the low `low` bits) on the 11-bit RADDR / WADDR pins, unused pins 0."""
    a = addr[:min(low, len(addr))]
    return Cat(a, Const(0, 11 - len(a)))


class EbrMemory(Elaboratable):
    """A depth x width RAM as explicit SB_RAM40_4K cells (one write port, one registered read port with enable),
    so the synthesised netlist holds the same cells as the RTL and the formal check pairs them one by one.
    Read data are valid the cycle after `ren`; a read and a write of the same word at one edge read the old word."""

    def __init__(self, depth: int, width: int) -> None:
        self.depth, self.width = depth, width
        self.mode, self.banks, self.slices = ebr_shape(depth, width)
        abits = max(1, (depth - 1).bit_length())
        self.raddr = Signal(abits)
        self.waddr = Signal(abits)
        self.ren = Signal()
        self.wen = Signal()
        self.rdata = Signal(width)
        self.wdata = Signal(width)

    def elaborate(self, platform) -> Module:
        m = Module()
        mode, pins = self.mode, EBR_PINS[self.mode]
        dw, low = 16 >> mode, 8 + mode  # data bits and word-address bits per block
        rbank = Signal(range(max(2, self.banks)))
        if self.banks > 1:
            with m.If(self.ren):
                m.d.sync += rbank.eq(self.raddr[low:])
        outs = []
        for b in range(self.banks):
            bank_out = []
            for j in range(self.slices):
                bits = range(j * dw, min(self.width, (j + 1) * dw))
                wdata = [Const(0, 1)] * 16
                for k, bit in enumerate(bits):
                    wdata[pins[k]] = self.wdata[bit]
                # keep: the name survives synthesis, so the formal check pairs the cells' outputs by name
                rdata = Signal(16, name=f"ebr{b}_{j}_rdata", attrs={"keep": 1})
                sel_w = self.wen if self.banks == 1 else self.wen & (self.waddr[low:] == b)
                m.submodules[f"ebr{b}_{j}"] = Instance(
                    "SB_RAM40_4K",
                    p_READ_MODE=mode, p_WRITE_MODE=mode,
                    **{f"p_INIT_{i:X}": Const(0, 256) for i in range(16)},
                    i_RCLK=ClockSignal(), i_RCLKE=Const(1), i_RE=self.ren,
                    i_RADDR=_addr11(self.raddr, low),
                    i_WCLK=ClockSignal(), i_WCLKE=Const(1), i_WE=sel_w,
                    i_WADDR=_addr11(self.waddr, low),
                    i_MASK=Const(0, 16), i_WDATA=Cat(*wdata), o_RDATA=rdata)
                bank_out += [rdata[pins[k]] for k in range(len(bits))]
            outs.append(Cat(*bank_out))
        if self.banks == 1:
            m.d.comb += self.rdata.eq(outs[0])
        else:
            with m.Switch(rbank):
                for b, o in enumerate(outs):
                    with m.Case(b):
                        m.d.comb += self.rdata.eq(o)
        return m


class _Port:
    """addr / data / en of one EbrMemory port, shaped like an Amaranth memory port."""

    def __init__(self, addr: Signal, data: Signal, en: Signal) -> None:
        self.addr, self.data, self.en = addr, data, en


def spram_count(prog: Program) -> int:
    """SB_SPRAM256KA blocks side by side for the program's word width."""
    return -(-prog.layout.width // SPRAM_WIDTH)


class FoldedEngine(Elaboratable):
    """Ports: `start` (a one-cycle strobe while idle), `busy`, `done` (one-cycle strobe), `cls`, `scores` (one
    Signal per class, when `scores=True`); feature write port `feat_we`/`feat_addr`/`feat_data`; program write
    port `prog_we`/`prog_addr`/`prog_data` (the boot loader's; only while idle)."""

    def __init__(self, prog: Program, *, program_mem: str = "portable", init_program: bool = False,
                 scores: bool = False) -> None:
        if program_mem not in ("portable", "spram"):
            raise ConfigError(f"program_mem must be 'portable' or 'spram', got {program_mem!r}")
        if program_mem == "spram" and prog.n_words > SPRAM_DEPTH:
            raise ConfigError(f"the program has {prog.n_words} words; SPRAM holds {SPRAM_DEPTH}")
        if init_program and program_mem != "portable":
            raise ConfigError("only the portable program memory can start initialised (SPRAM is loaded at boot)")
        self.prog, self.program_mem, self.init_program, self.with_scores = prog, program_mem, init_program, scores
        lay = prog.layout
        self.start = Signal()
        self.busy = Signal()
        self.done = Signal()
        self.cls = Signal(range(max(2, prog.classes)))
        self.scores = [Signal(prog.score_bits, name=f"score{c}") for c in range(prog.classes)] if scores else []
        self.feat_we = Signal()
        self.feat_addr = Signal(range(max(2, prog.n_features)))
        self.feat_data = Signal(lay.input_bits)
        self.prog_we = Signal()
        self.prog_addr = Signal(range(max(2, prog.n_words)))
        self.prog_data = Signal(WORD_BITS)

    def ports(self) -> list[Signal]:
        return [self.start, self.busy, self.done, self.cls, *self.scores, self.feat_we, self.feat_addr,
                self.feat_data, self.prog_we, self.prog_addr, self.prog_data]

    # --- program memory: one word per clock at `addr`, data one cycle later ---------------------------------
    def _program(self, m: Module, addr: Signal) -> Signal:
        prog, lay = self.prog, self.prog.layout
        word = Signal(lay.width)
        if self.program_mem == "portable":
            rp, wp = self._ram(m, "program", prog.n_words, lay.width,
                               init=list(prog.words) if self.init_program else [])
            m.d.comb += [rp.addr.eq(addr), word.eq(rp.data), wp.addr.eq(self.prog_addr),
                         wp.data.eq(self.prog_data[:lay.width]), wp.en.eq(self.prog_we)]
            return word
        for i in range(spram_count(prog)):
            out = Signal(SPRAM_WIDTH, name=f"spram{i}_out", attrs={"keep": 1})  # kept for the formal pairing
            m.submodules[f"spram{i}"] = Instance(
                "SB_SPRAM256KA",
                i_ADDRESS=addr, i_DATAIN=self.prog_data[i * SPRAM_WIDTH:(i + 1) * SPRAM_WIDTH],
                i_MASKWREN=Const(0b1111, 4), i_WREN=self.prog_we, i_CHIPSELECT=Const(1),
                i_CLOCK=ClockSignal(), i_STANDBY=Const(0), i_SLEEP=Const(0), i_POWEROFF=Const(1),
                o_DATAOUT=out)
            lo = i * SPRAM_WIDTH
            m.d.comb += word[lo:min(lay.width, lo + SPRAM_WIDTH)].eq(out)
        return word

    def _ram(self, m: Module, name: str, depth: int, width: int, init=()):
        """(read port, write port) of a block RAM, each with addr / data / en: an Amaranth memory (portable, with
        `init`), or explicit SB_RAM40_4K cells beside the SPRAM program (so the formal check pairs them cell by
        cell)."""
        if self.program_mem == "portable":
            mem = Memory(shape=width, depth=depth, init=list(init))
            m.submodules[name] = mem
            return mem.read_port(transparent_for=()), mem.write_port()
        m.submodules[name] = ebr = EbrMemory(depth, width)
        return (_Port(ebr.raddr, ebr.rdata, ebr.ren), _Port(ebr.waddr, ebr.wdata, ebr.wen))

    def elaborate(self, platform) -> Module:
        m = Module()
        prog, lay = self.prog, self.prog.layout
        L, A = lay.lanes, lay.addr_bits
        sel_bits = (L - 1).bit_length()  # address bits that pick the lane bit in an activation word
        n = prog.n_words

        # S0: the program counter
        pc = Signal(range(n + 1))
        run = Signal()
        addr = Signal(14 if self.program_mem == "spram" else range(max(2, n)))
        m.d.comb += addr.eq(Mux(self.prog_we, self.prog_addr, pc))
        v1 = Signal()  # S1 holds a word
        m.d.sync += v1.eq(run)
        with m.If(self.start & ~self.busy):
            m.d.sync += [pc.eq(0), run.eq(1)]
        with m.Elif(run):
            m.d.sync += pc.eq(pc + 1)
            with m.If(pc == n - 1):
                m.d.sync += run.eq(0)
        word = self._program(m, addr)

        # S1: decode, issue reads
        kind = word[0:2]
        end = word[2]
        lanes = [word[3 + i * lay.lane_bits: 3 + (i + 1) * lay.lane_bits] for i in range(L)]
        # the feature write port is registered: it decouples the receiver's timing from the memories (and gives
        # the netlist ports stable names); the engine starts long after the last feature's write
        fw_en, fw_addr = Signal(), Signal.like(self.feat_addr)
        fw_data = Signal.like(self.feat_data)
        m.d.sync += [fw_en.eq(self.feat_we), fw_addr.eq(self.feat_addr), fw_data.eq(self.feat_data)]
        act_rd = []    # [lane][port] -> L-bit read data (S2)
        feat_rd = []   # [lane] -> feature value (S2)
        act_ports_w = []
        for i in range(L):
            row = []
            for p in range(2):
                rp, wp = self._ram(m, f"act{i}_{p}", prog.activation_words, L)
                a = lanes[i][p * A:(p + 1) * A]
                # reads only for a valid word: outside a program pass the program memory's output is undefined
                m.d.comb += [rp.addr.eq(a[sel_bits:]), rp.en.eq(v1)]
                row.append(rp.data)
                act_ports_w.append(wp)
            act_rd.append(row)
            frp, fwp = self._ram(m, f"feat{i}", prog.n_features, lay.input_bits)
            m.d.comb += [frp.addr.eq(lanes[i][:lay.feature_bits]), frp.en.eq(v1), fwp.addr.eq(fw_addr),
                         fwp.data.eq(fw_data), fwp.en.eq(fw_en)]
            feat_rd.append(frp.data)
        # S1 -> S2 registers
        v2, kind2, end2 = Signal(), Signal(2), Signal()
        tt2 = [Signal(4, name=f"tt2_{i}") for i in range(L)]
        thr2 = [Signal(lay.input_bits + 1, name=f"thr2_{i}") for i in range(L)]
        sel2 = [[Signal(max(1, sel_bits), name=f"sel2_{i}_{p}") for p in range(2)] for i in range(L)]
        m.d.sync += [v2.eq(v1), kind2.eq(kind), end2.eq(end)]
        for i in range(L):
            m.d.sync += [tt2[i].eq(lanes[i][2 * A:2 * A + 4]),
                         thr2[i].eq(lanes[i][lay.feature_bits:lay.feature_bits + lay.input_bits + 1])]
            for p in range(2):
                if sel_bits:
                    m.d.sync += sel2[i][p].eq(lanes[i][p * A:p * A + sel_bits])

        # S2: compute
        ys, cnt_terms = [], []
        for i in range(L):
            b = [act_rd[i][p].bit_select(sel2[i][p], 1) if sel_bits else act_rd[i][p][0] for p in range(2)]
            lut = tt2[i].bit_select(Cat(b[0], b[1]), 1)
            ge = feat_rd[i] >= thr2[i]
            y = Signal(name=f"y2_{i}")
            m.d.comb += y.eq(Mux(kind2 == KIND_ENC, ge, lut))
            ys.append(y)
            cnt_terms += [Mux(kind2 == KIND_SUM, b[0] & tt2[i][0], Mux(kind2 == KIND_COUNT, y, 0)),
                          Mux(kind2 == KIND_SUM, b[1] & tt2[i][1], 0)]
        cnt = Signal(range(2 * L + 1))
        m.d.comb += cnt.eq(sum(cnt_terms))
        # S2 -> S3 registers
        y3 = Signal(L)
        store3, end3, cnt3 = Signal(), Signal(), Signal(range(2 * L + 1))
        m.d.sync += [y3.eq(Cat(*ys)), store3.eq(v2 & ((kind2 == KIND_NODE) | (kind2 == KIND_ENC))),
                     end3.eq(v2 & end2), cnt3.eq(Mux(v2, cnt, 0))]

        # S3: write back, count
        wptr = Signal(range(prog.activation_words + 1))
        acc = Signal(prog.score_bits)
        fin = Signal(prog.score_bits)
        fin_v = Signal()
        for w in act_ports_w:
            m.d.comb += [w.addr.eq(wptr), w.data.eq(y3), w.en.eq(store3)]
        m.d.sync += fin_v.eq(end3)
        with m.If(store3):
            m.d.sync += wptr.eq(wptr + 1)
        with m.If(end3):
            m.d.sync += [fin.eq(acc + cnt3), acc.eq(0)]
        with m.Else():
            m.d.sync += acc.eq(acc + cnt3)

        # S4: running argmax over the classes as they end
        cls_ctr = Signal(range(max(2, prog.classes)))
        best = Signal(prog.score_bits)
        last = Signal()
        with m.If(fin_v):
            with m.If((cls_ctr == 0) | (fin > best)):
                m.d.sync += [best.eq(fin), self.cls.eq(cls_ctr)]
            for c, s in enumerate(self.scores):
                with m.If(cls_ctr == c):
                    m.d.sync += s.eq(fin)
            m.d.sync += cls_ctr.eq(cls_ctr + 1)
            m.d.sync += last.eq(cls_ctr == prog.classes - 1)
        with m.Else():
            m.d.sync += last.eq(0)
        m.d.comb += self.done.eq(last)

        # sample start: restart the counters (the pipeline is empty while idle)
        with m.If(self.start & ~self.busy):
            m.d.sync += [wptr.eq(0), acc.eq(0), cls_ctr.eq(0), self.busy.eq(1)]
        with m.Elif(last):
            m.d.sync += self.busy.eq(0)
        return m


class FoldedShell(FramedShell):
    """The folded design behind the UART framing: features go into the engine's feature memories as they
    arrive; with `boot=True` a FlashLoader fills the program memory from the SPI flash at power-up, frames are
    ignored while it loads and answered NOPROG when the image was bad (the SPI pins are `sck`, `cs_n`, `copi`,
    `cipo`). With boot=False the (portable) program memory starts initialised, for simulation."""

    ENGINE, LOADER = "engine", "loader"

    def __init__(self, net: Netlist, prog: Program, *, divisor: int, scores: bool = False,
                 idle_cycles: int | None = None, program_mem: str = "spram", boot: bool = True,
                 clock_hz: int = 12_000_000) -> None:
        from ..ir.image import design_id_of
        from .boot import FlashLoader

        self.prog = prog
        self.engine = FoldedEngine(prog, program_mem=program_mem, init_program=not boot, scores=scores)
        super().__init__(net, divisor=divisor, classes=prog.classes, score_bits=prog.score_bits, scores=scores,
                         idle_cycles=idle_cycles)
        self.loader = None
        if boot:
            self.design_id = design_id_of(prog.words, WORD_BITS)
            self.loader = FlashLoader(n_words=prog.n_words, word_bits=WORD_BITS, design_id=self.design_id,
                                      clock_hz=clock_hz)
            self.ready, self.fault = self.loader.ready, self.loader.failed
            # the flash pins are the loader's (BoardTop connects them to the board's SPI flash)
            ld = self.loader
            self.sck, self.cs_n, self.copi, self.cipo = ld.sck, ld.cs_n, ld.copi, ld.cipo

    def _attach(self, m: Module) -> None:
        eng, ld = self.engine, self.loader
        m.submodules[self.ENGINE] = eng
        m.d.sync += eng.start.eq(0)
        if ld is not None:
            m.submodules[self.LOADER] = ld
            m.d.comb += [eng.prog_we.eq(ld.wr_en), eng.prog_addr.eq(ld.wr_addr), eng.prog_data.eq(ld.wr_data)]

    def _take_feature(self, m: Module, strobe, value, index) -> None:
        eng = self.engine
        m.d.comb += [eng.feat_we.eq(strobe), eng.feat_addr.eq(index), eng.feat_data.eq(value)]

    def _start(self, m: Module) -> None:
        m.d.sync += self.engine.start.eq(1)

    def describe(self) -> dict:
        """Timing facts for the build report."""
        prog = self.prog
        d = {"Latency_cycles": latency(prog), "Interval_cycles": latency(prog) + 1, "score_bits": prog.score_bits,
             "pipeline": {"engine_stages": PIPELINE, "program_words": prog.n_words},
             "Latency_from": "the last feature byte (the engine's start) to the class index; receiving a sample "
                             "over the UART takes its bytes' time"}
        if self.loader is not None:
            d["boot_cycles"] = self.loader.boot_cycles(prog.n_words, WORD_BITS, self.loader.clock_hz)
        return d

    def _done(self):
        return self.engine.done

    def _result(self):
        return self._reply_word(self.engine.cls, self.engine.scores)


def folded_block_modules(top: str = "top") -> dict[str, str]:
    """Block label -> module name in the synthesised BoardTop(FoldedShell) named `top` (as shell.block_modules is
    for the spatial design): the blocks the build keeps, reports and checks."""
    from .shell import BoardTop

    shell = f"{top}.{BoardTop.SHELL}"
    return {"engine": f"{shell}.{FoldedShell.ENGINE}", "loader": f"{shell}.{FoldedShell.LOADER}"}
