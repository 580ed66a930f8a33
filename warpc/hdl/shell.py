"""UART board shell around the core.

Framing (host -> board): one sync byte (framing.SYNC_BYTE), then the sample's raw features, feature 0 first,
each as ceil(input_bits / 8) little-endian bytes. Board -> host: the class index byte, then, when the shell was built
with scores, every class score as ceil(score_bits / 8) little-endian bytes. Bytes outside a frame are ignored
until the next sync byte, so a host resynchronises by sending it again after a timeout.

The features are encoded while they arrive (SerialEncoder): each feature byte is compared with the thresholds
the net uses and only those bits are stored, instead of buffering n_features * input_bits raw bits (Fashion-MNIST:
6,272 flip-flops, more than the UP5K's 5,280 LCs). The core itself then runs without its parallel encoder.
"""
from __future__ import annotations

from amaranth.hdl import Const, Elaboratable, Module, Signal

from ..ir.netlist import Netlist
from .core import WarpCore, _bits_for, ge_const
from .framing import SYNC_BYTE
from .uart import UARTRx, UARTTx


class SerialEncoder(Elaboratable):
    """One feature per `strobe`: stores [value >= t] for the used (index, t) input bits in `bits`.

    Cost, measured by why: a stored bit needs its flip-flop (1 LC). Comparators are shared per distinct threshold.
    The feature decode is split into two one-hot predecoders (index low 5 bits with the strobe, and the high bits),
    so each used feature costs one 2-input AND for its enable instead of a full index compare (~3 LUT4s)."""

    LOW = 5

    def __init__(self, net: Netlist) -> None:
        self.net = net
        self.value = Signal(net.input_bits)
        self.index = Signal(_bits_for(net.n_features - 1))
        self.strobe = Signal()
        self.bits = Signal(max(1, len(net.inputs)))

    def elaborate(self, platform) -> Module:
        m = Module()
        net, top = self.net, (1 << self.net.input_bits) - 1
        lw = min(self.LOW, len(self.index))
        lo_idx, hi_idx = self.index[:lw], self.index[lw:]
        lo: dict[int, Signal] = {}
        hi: dict[int, object] = {}
        ge: dict[int, object] = {}
        hit: dict[int, Signal] = {}
        for i in net.used_inputs():
            b = net.inputs[i]
            t, f = b.threshold, b.feature
            if t not in ge:
                if t <= 0:
                    ge[t] = Const(1, 1)
                elif t > top:
                    ge[t] = Const(0, 1)
                else:
                    g = Signal(name=f"ge{t}")
                    m.d.comb += g.eq(ge_const(self.value, t))
                    ge[t] = g
            if f not in hit:
                fl, fh = f & ((1 << lw) - 1), f >> lw
                if fl not in lo:
                    lo[fl] = Signal(name=f"lo{fl}")
                    m.d.comb += lo[fl].eq(self.strobe & (lo_idx == fl))
                if fh not in hi:
                    if len(hi_idx):
                        hi[fh] = Signal(name=f"hi{fh}")
                        m.d.comb += hi[fh].eq(hi_idx == fh)
                    else:
                        hi[fh] = Const(1, 1)
                h = Signal(name=f"hit{f}")
                m.d.comb += h.eq(lo[fl] & hi[fh])
                hit[f] = h
            with m.If(hit[f]):
                m.d.sync += self.bits[i].eq(ge[t])
        return m


class UartShell(Elaboratable):
    """rx/tx UART lines <-> SerialEncoder -> WarpCore (encoder=False). Not board-specific: `BoardTop` connects
    it to a platform's pins."""

    ENCODER, CORE = "encoder", "core"  # submodule names: the synthesised hierarchy's module names derive from them

    def __init__(self, net: Netlist, *, divisor: int, pipeline: int = 1, lut_cells: str = "portable",
                 scores: bool = False) -> None:
        self.net, self.divisor, self.with_scores = net, divisor, scores
        # the serial encoder's bit register is the core's input register (saves one FF per used input bit)
        self.core = WarpCore(net, pipeline=pipeline, lut_cells=lut_cells, encoder=False, input_reg=pipeline == 0)
        self.encoder = SerialEncoder(net)
        self.rx = Signal(init=1)
        self.tx = Signal(init=1)
        self.busy = Signal()  # for an LED
        sh = self.core.shape
        self.feature_bytes = -(-net.input_bits // 8)
        self.score_bytes = -(-sh.score_bits // 8)
        self.reply_bytes = 1 + (sh.classes * self.score_bytes if scores else 0)

    def elaborate(self, platform) -> Module:
        m = Module()
        net, core, enc = self.net, self.core, self.encoder
        m.submodules.rx = rx = UARTRx(self.divisor)
        m.submodules.tx = tx = UARTTx(self.divisor)
        m.submodules[self.ENCODER] = enc
        m.submodules[self.CORE] = core
        m.d.comb += [rx.rx.eq(self.rx), self.tx.eq(tx.tx), core.bits.eq(enc.bits)]
        fb, ib = self.feature_bytes, net.input_bits
        feat = Signal(range(net.n_features + 1))
        sub = Signal(range(fb + 1))
        acc = Signal(8 * fb)
        m.d.sync += [enc.strobe.eq(0), core.valid_in.eq(0)]
        reply = Signal(8 * self.reply_bytes)
        left = Signal(range(self.reply_bytes + 1))
        with m.FSM():
            with m.State("SYNC"):
                with m.If(rx.rdy & (rx.data == SYNC_BYTE)):
                    m.d.sync += [feat.eq(0), sub.eq(0)]
                    m.next = "RECV"
            with m.State("RECV"):
                m.d.comb += self.busy.eq(1)
                with m.If(rx.rdy):
                    value = (acc >> 8) | (rx.data << (8 * (fb - 1))) if fb > 1 else rx.data
                    m.d.sync += acc.eq(value)
                    with m.If(sub == fb - 1):
                        m.d.sync += [enc.value.eq(value[:ib]), enc.index.eq(feat), enc.strobe.eq(1),
                                     feat.eq(feat + 1), sub.eq(0)]
                        with m.If(feat == net.n_features - 1):
                            m.next = "FIRE"
                    with m.Else():
                        m.d.sync += sub.eq(sub + 1)
            with m.State("FIRE"):  # the last strobe is being stored this cycle; start the core next cycle
                m.d.comb += self.busy.eq(1)
                m.d.sync += core.valid_in.eq(1)
                m.next = "COMPUTE"
            with m.State("COMPUTE"):
                m.d.comb += self.busy.eq(1)
                with m.If(core.valid_out):
                    sb, sbits = self.score_bytes, core.shape.score_bits
                    parts = [core.cls.as_unsigned()]
                    if self.with_scores:
                        for c in range(core.shape.classes):
                            parts.append(core.scores[c * sbits : (c + 1) * sbits].as_unsigned())
                    word = 0
                    for k, p in enumerate(parts):
                        shift = 0 if k == 0 else 8 + (k - 1) * 8 * sb
                        word = word | (p << shift)
                    m.d.sync += [reply.eq(word), left.eq(self.reply_bytes)]
                    m.next = "SEND"
            with m.State("SEND"):
                m.d.comb += self.busy.eq(1)
                with m.If(left == 0):
                    m.next = "SYNC"
                with m.Elif(~tx.busy):
                    m.d.comb += [tx.data.eq(reply[:8])]
                    m.d.sync += [reply.eq(reply >> 8), left.eq(left - 1)]
                    m.d.comb += tx.start.eq(1)
        return m


class BoardTop(Elaboratable):
    """Connects a UartShell to a platform's `uart` and first LED (lit while a sample is in flight)."""

    SHELL = "shell"

    def __init__(self, shell: UartShell) -> None:
        self.shell = shell

    def elaborate(self, platform) -> Module:
        m = Module()
        m.submodules[self.SHELL] = shell = self.shell
        uart = platform.request("uart", 0)
        m.d.comb += [shell.rx.eq(uart.rx.i), uart.tx.o.eq(shell.tx)]
        try:
            led = platform.request("led", 0)
            m.d.comb += led.o.eq(shell.busy)
        except Exception:  # a board without LEDs: nothing to show
            pass
        return m


def block_modules(top: str = "top") -> dict[str, str]:
    """Block label -> module name in the synthesised BoardTop named `top` (Amaranth names a submodule's module
    <parent>.<submodule name>). The board build keeps these blocks' hierarchy, reports resources per block and
    checks each one for equivalence."""
    shell = f"{top}.{BoardTop.SHELL}"
    core = f"{shell}.{UartShell.CORE}"
    return {"encoder": f"{shell}.{UartShell.ENCODER}", **{b: f"{core}.{b}" for b in WarpCore.BLOCKS},
            "core": core}
