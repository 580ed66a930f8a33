"""A small 8N1 UART (no maintained Amaranth UART is on PyPI: amaranth-stdio's release there is an empty
placeholder). `divisor` = clock cycles per bit (at least MIN_DIVISOR). Plain logic, so Amaranth's simulator checks
it exactly.

Rates (`uart_divisor`): the divisor is round(clock / baud); the receiver samples each bit in its middle, so the
line tolerates a few per cent of rate mismatch in total, and warpc allows at most MAX_RATE_ERROR on the board's
side. At the iCEBreaker's 12 MHz: 115200 (divisor 104, +0.16 %), 230400 (52, +0.16 %), 460800 (26, +0.16 %),
921600 (13, +0.16 %), 1 M (12), 1.5 M (8), 2 M (6) and 3 M (4) baud work, the last four exactly (so do the slow
rates down to 9600); 2.5 M (divisor 5: -4 %) and anything above 3 M (divisor < 4) are refused. The board's FTDI
FT2232H makes 12 MBaud / n (n in eighths), so 1, 1.5, 2 and 3 M are exact at both ends."""
from __future__ import annotations

from amaranth.hdl import Cat, Elaboratable, Module, Signal

from ..errors import ConfigError
from .framing import MAX_RATE_ERROR

MIN_DIVISOR = 4          # clock cycles per bit: the receiver's start-bit search and mid-bit sampling need them
STANDARD_RATES = (9600, 19200, 38400, 57600, 115200, 230400, 460800, 921600, 1_000_000, 1_500_000, 2_000_000,
                  3_000_000)


def rate_error(clock_hz: int, baud: int) -> float:
    d = max(1, round(clock_hz / baud))
    return clock_hz / d / baud - 1


def supported_rates(clock_hz: int) -> list[int]:
    """The standard rates a `clock_hz` design can run its UART at."""
    return [r for r in STANDARD_RATES
            if round(clock_hz / r) >= MIN_DIVISOR and abs(rate_error(clock_hz, r)) <= MAX_RATE_ERROR]


def uart_divisor(clock_hz: int, baud: int) -> int:
    """round(clock_hz / baud), or a ConfigError naming the rates that work at this clock."""
    if isinstance(baud, bool) or not isinstance(baud, int) or baud < 1:
        raise ConfigError(f"baud (--baud) must be a positive integer number of bits per second, got {baud!r}")
    ok = ", ".join(str(r) for r in supported_rates(clock_hz))
    d = round(clock_hz / baud)
    if d < MIN_DIVISOR:
        raise ConfigError(f"baud (--baud) {baud} is too fast for a {clock_hz / 1e6:g} MHz clock (the UART needs "
                          f">= {MIN_DIVISOR} clock cycles per bit, at most {clock_hz // MIN_DIVISOR} baud); "
                          f"supported rates: {ok}")
    err = rate_error(clock_hz, baud)
    if abs(err) > MAX_RATE_ERROR:
        raise ConfigError(f"baud (--baud) {baud} cannot be made from a {clock_hz / 1e6:g} MHz clock: the nearest "
                          f"divisor {d} gives {clock_hz / d:.0f} baud ({100 * err:+.1f} %, more than "
                          f"{100 * MAX_RATE_ERROR:g} %); supported rates: {ok}")
    return d


class UARTRx(Elaboratable):
    """`rx` line in; `data` + one-cycle `rdy` per received byte; `err` pulses on a bad stop bit."""

    def __init__(self, divisor: int) -> None:
        if divisor < MIN_DIVISOR:
            raise ConfigError(f"UART divisor must be >= {MIN_DIVISOR} clock cycles per bit, got {divisor}")
        self.divisor = divisor
        self.rx = Signal(init=1)
        self.data = Signal(8)
        self.rdy = Signal()
        self.err = Signal()

    def elaborate(self, platform) -> Module:
        m = Module()
        d = self.divisor
        sync1, sync2 = Signal(init=1), Signal(init=1)  # two-flop synchroniser against metastability
        m.d.sync += [sync1.eq(self.rx), sync2.eq(sync1)]
        timer = Signal(range(d + d // 2 + 1))
        shreg = Signal(8)
        count = Signal(range(9))
        m.d.sync += [self.rdy.eq(0), self.err.eq(0)]
        with m.FSM():
            with m.State("IDLE"):
                with m.If(~sync2):  # start bit: sample the first data bit 1.5 bit times later
                    m.d.sync += [timer.eq(d + d // 2 - 1), count.eq(0)]
                    m.next = "DATA"
            with m.State("DATA"):
                with m.If(timer == 0):
                    m.d.sync += [shreg.eq(Cat(shreg[1:], sync2)), timer.eq(d - 1),
                                 count.eq(count + 1)]
                    with m.If(count == 7):
                        m.next = "STOP"
                with m.Else():
                    m.d.sync += timer.eq(timer - 1)
            with m.State("STOP"):
                with m.If(timer == 0):
                    with m.If(sync2):
                        m.d.sync += [self.data.eq(shreg), self.rdy.eq(1)]
                    with m.Else():
                        m.d.sync += self.err.eq(1)
                    m.next = "WAIT"
                with m.Else():
                    m.d.sync += timer.eq(timer - 1)
            with m.State("WAIT"):  # a broken frame may hold the line low: wait for idle
                with m.If(sync2):
                    m.next = "IDLE"
        return m


class UARTTx(Elaboratable):
    """Set `data` and pulse `start` while `busy` is low; `tx` is the line."""

    def __init__(self, divisor: int) -> None:
        if divisor < MIN_DIVISOR:
            raise ConfigError(f"UART divisor must be >= {MIN_DIVISOR} clock cycles per bit, got {divisor}")
        self.divisor = divisor
        self.tx = Signal(init=1)
        self.data = Signal(8)
        self.start = Signal()
        self.busy = Signal()

    def elaborate(self, platform) -> Module:
        m = Module()
        d = self.divisor
        timer = Signal(range(d))
        shreg = Signal(10, init=0x3FF)
        count = Signal(range(11))
        m.d.comb += [self.tx.eq(shreg[0]), self.busy.eq(count != 0)]
        with m.If(count == 0):
            with m.If(self.start):
                m.d.sync += [shreg.eq((self.data << 1) | (1 << 9)), count.eq(10), timer.eq(d - 1)]
        with m.Elif(timer == 0):
            m.d.sync += [shreg.eq((shreg >> 1) | (1 << 9)), count.eq(count - 1), timer.eq(d - 1)]
        with m.Else():
            m.d.sync += timer.eq(timer - 1)
        return m
