"""A behavioural model of the iCEBreaker's SPI NOR flash (W25Q128JV class), just enough to simulate a loader that
reads a program image from it (warpc.hdl.boot.FlashLoader). Plain Python.

`step(cs_n, sck, copi)` is called once per system clock cycle with that cycle's pin levels and returns the cipo
level for the same cycle; the model finds sck edges by comparing with the previous call. SPI mode 0, MSB first:
copi is sampled on sck rising edges, cipo changes after falling edges (so it is stable at the next rising edge).
cipo reads 1 whenever the flash does not drive it (high-Z with a pull-up).

Commands (anything else is ignored until deselect; deselect resets the command state):
  0xAB  release from deep power-down: takes effect at deselect, then the flash needs `tres1_cycles` system
        cycles (tRES1, 3 us) before it accepts another command; a transaction started earlier is ignored.
  0xB9  deep power-down (at deselect).
  0x03  READ: a 24-bit address, then bytes stream from it for as long as sck runs, the address incrementing
        (wrapping at the end of the memory).
A powered-down flash (`powered_down=True`, as the iCE40 leaves it after configuration) answers only 0xAB, so a
loader that skips the wake-up reads all ones.

`commands` records the first 4 bytes received in each transaction (command + address), for tests.
"""
from __future__ import annotations

from ..errors import ConfigError

CMD_READ = 0x03
CMD_RELEASE_PD = 0xAB
CMD_POWER_DOWN = 0xB9


class SpiFlashModel:
    """Unwritten bytes read 0xFF. `contents`: bytes at address 0, or {address: bytes}."""

    def __init__(self, contents: bytes | dict[int, bytes] = b"", size: int = 16 << 20, *,
                 powered_down: bool = False, tres1_cycles: int = 36) -> None:
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ConfigError(f"flash size must be a positive number of bytes, got {size!r}")
        if isinstance(tres1_cycles, bool) or not isinstance(tres1_cycles, int) or tres1_cycles < 0:
            raise ConfigError(f"tres1_cycles must be a non-negative integer, got {tres1_cycles!r}")
        self.size = size
        self.tres1_cycles = tres1_cycles
        self.mem: dict[int, int] = {}  # sparse: a 16 MiB model holds only what was written
        segments = contents.items() if isinstance(contents, dict) else [(0, contents)]
        for addr, data in segments:
            if addr < 0 or addr + len(data) > size:
                raise ConfigError(f"flash contents at 0x{addr:X} ({len(data)} bytes) exceed the "
                                  f"{size}-byte flash")
            for i, b in enumerate(bytes(data)):
                self.mem[addr + i] = b
        self.powered_down = powered_down
        self.wake_at = 0            # cycle from which a released flash accepts commands (tRES1)
        self.cycle = 0
        self.commands: list[bytes] = []
        self._selected = False
        self._prev_sck = 0
        self._cipo = 1
        self._reset_transaction()

    def _reset_transaction(self) -> None:
        self._nbits = 0             # bits received in this transaction (counted up to 32)
        self._shift = 0
        self._cmd = -1
        self._asleep = False        # this transaction started while powered down / within tRES1
        self._reading = False
        self._addr = 0
        self._obyte = 0
        self._obit = 0
        self._cipo = 1

    def _deselect(self) -> None:
        if self._nbits >= 8:
            if self._cmd == CMD_RELEASE_PD:
                if self.powered_down:
                    self.wake_at = self.cycle + self.tres1_cycles
                self.powered_down = False
            elif self._cmd == CMD_POWER_DOWN and not self._asleep:
                self.powered_down = True
        self._selected = False
        self._reset_transaction()

    def read(self, addr: int, n: int) -> bytes:
        """What a READ at `addr` returns for n bytes (for tests)."""
        return bytes(self.mem.get((addr + i) % self.size, 0xFF) for i in range(n))

    def step(self, cs_n: int, sck: int, copi: int) -> int:
        """Advance one system clock cycle with these pin levels; returns cipo for this cycle."""
        self.cycle += 1
        prev, self._prev_sck = self._prev_sck, sck
        if cs_n:
            if self._selected:
                self._deselect()
            return 1
        if not self._selected:
            self._selected = True
            self._asleep = self.powered_down or self.cycle < self.wake_at
        if sck and not prev:                           # rising edge: sample copi
            if self._nbits < 32:
                self._shift = (self._shift << 1) | (copi & 1)
                self._nbits += 1
                n = self._nbits
                if n & 7 == 0:
                    if n == 8:
                        self._cmd = self._shift & 0xFF
                        self.commands.append(bytes([self._cmd]))
                    else:
                        self.commands[-1] += bytes([self._shift & 0xFF])
                    if n == 32 and self._cmd == CMD_READ and not self._asleep:
                        self._addr = (self._shift & 0xFFFFFF) % self.size
                        self._reading = True
                        self._obit = 0
        elif prev and not sck and self._reading:       # falling edge: drive the next data bit
            if self._obit == 0:
                self._obyte = self.mem.get(self._addr, 0xFF)
                self._addr = (self._addr + 1) % self.size
                self._obit = 8
            self._obit -= 1
            self._cipo = (self._obyte >> self._obit) & 1
        return self._cipo
