"""A small 8N1 UART (no maintained Amaranth UART is on PyPI: amaranth-stdio's release there is an empty
placeholder). `divisor` = clock cycles per bit. Plain logic, so Amaranth's simulator checks it exactly."""
from __future__ import annotations

from amaranth.hdl import Cat, Elaboratable, Module, Signal

from ..errors import ConfigError


class UARTRx(Elaboratable):
    """`rx` line in; `data` + one-cycle `rdy` per received byte; `err` pulses on a bad stop bit."""

    def __init__(self, divisor: int) -> None:
        if divisor < 4:
            raise ConfigError(f"UART divisor must be >= 4 clock cycles per bit, got {divisor}")
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
        if divisor < 4:
            raise ConfigError(f"UART divisor must be >= 4 clock cycles per bit, got {divisor}")
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
