"""FlashLoader: at power-up, copy the program image (warpc.ir.image) from the board's SPI flash into the engine's
program memory (SPRAM is not initialised by the bitstream), checking it on the way.

Sequence, in 16-cycle "slots" (one byte at sck = clock / 2; a 4-bit cycle counter is the only bit/phase counter):

    slot(s)             cs_n  what
    1                   1     hold the flash deselected after reset
    1                   0     0xAB: release from deep power-down (the iCE40 may leave the flash powered down
                              after configuring itself from it; harmless if it is awake)
    TRES (wait_slots)   1     tRES1 = 3 us, rounded up to whole slots with margin
    4 + 12              0     READ: 0x03 + 24-bit offset, then the 12 header bytes, checked bit by bit against
                              the header this loader was built for (magic, design_id, n_words, word size,
                              version); any mismatch deselects after the header and sets `failed`
    n_words * wb        0     the words, little-endian: `wr_en` strobes once per word with `wr_addr`/`wr_data`
    2                   0     the CRC; then deselect and `ready` if the CRC-16 residue is 0, else `failed`

Mode 0: sck idles low; copi is set while sck is low; cipo is sampled on the cycle that raises sck (a clock
period after the flash changed it on the falling edge). That period must hold the round trip FPGA -> flash ->
FPGA (clock-to-out, the flash's tCLQV of ~7 ns, input delay): easy at 12 MHz, worth checking above ~30 MHz;
MAX_CLOCK_HZ (sck 25 MHz) keeps within the READ command's 50 MHz limit.

On the iCEBreaker, `connect_spi_flash(m, loader, platform.request("spi_flash_1x", 0))` wires it to the flash
(amaranth_boards' resource: subsignals cs, clk, copi, cipo, wp, hold; cs, wp and hold are PinsN, i.e. their `.o`
is the asserted level and the buffer inverts). Write the image with `iceprog -o 1M image.bin`.

`wr_en` fires before the CRC is known: the engine must not run until `ready` (a corrupt image is written to the
memory, then `failed` is set). `ready`/`failed` are sticky and exclusive; `busy` is neither. Exact timing: see
`boot_cycles`.
"""
from __future__ import annotations

import math

from amaranth.hdl import Cat, Const, Elaboratable, Module, Signal

from ..errors import ConfigError
from ..ir.image import (CRC16_INIT, CRC16_POLY, CRC_BYTES, IMAGE_OFFSET, MAX_WORDS, check_word_bits, header,
                        image_bytes)

CMD_READ = 0x03
CMD_RELEASE_PD = 0xAB
TRES1_S = 3e-6          # release-from-deep-power-down time (W25Q128JV tRES1)
TRES1_MARGIN = 8        # extra cycles on top of tRES1 (clock tolerance, PLL-derived clocks)
MAX_CLOCK_HZ = 50_000_000
SLOT = 16               # cycles per byte: 8 bits, sck toggling every cycle
CMD_BYTES = 4           # READ + 24-bit address
FLASH_BYTES = 1 << 24   # 24-bit addresses


def wait_slots(clock_hz: int) -> int:
    """Slots the loader keeps the flash deselected after 0xAB (at least tRES1 plus TRES1_MARGIN cycles)."""
    return math.ceil((math.ceil(TRES1_S * clock_hz) + TRES1_MARGIN) / SLOT)


class FlashLoader(Elaboratable):
    """Reads and checks the image at `offset` over SPI; see the module docstring."""

    def __init__(self, *, n_words: int, word_bits: int, design_id: int, offset: int = IMAGE_OFFSET,
                 clock_hz: int = 12_000_000) -> None:
        self._MustUse__silence = True  # until the arguments are checked: a refused loader is no unused one
        if isinstance(n_words, bool) or not isinstance(n_words, int) or not 1 <= n_words <= MAX_WORDS:
            raise ConfigError(f"FlashLoader n_words must be 1 to {MAX_WORDS}, got {n_words!r}")
        self.header = header(design_id, n_words, word_bits)  # validates all three (ConfigError / NetlistError)
        self.word_bytes = check_word_bits(word_bits)
        if isinstance(clock_hz, bool) or not isinstance(clock_hz, int) or not 0 < clock_hz <= MAX_CLOCK_HZ:
            raise ConfigError(f"FlashLoader clock must be 1 Hz to {MAX_CLOCK_HZ / 1e6:g} MHz, got {clock_hz!r}")
        size = image_bytes(n_words, word_bits)
        if isinstance(offset, bool) or not isinstance(offset, int) or not 0 <= offset <= FLASH_BYTES - size:
            raise ConfigError(f"image offset must leave room for the {size}-byte image in 24-bit flash "
                              f"addresses, got {offset!r}")
        self.n_words, self.word_bits, self.design_id = n_words, word_bits, design_id
        self.offset, self.clock_hz = offset, clock_hz
        self._MustUse__silence = False

        self.sck = Signal()
        self.cs_n = Signal(init=1)
        self.copi = Signal()
        self.cipo = Signal()
        self.wr_en = Signal()
        self.wr_addr = Signal(range(n_words))
        self.wr_data = Signal(word_bits, reset_less=True)
        self.ready = Signal()
        self.failed = Signal()
        self.busy = Signal()

    @staticmethod
    def boot_cycles(n_words: int, word_bits: int, clock_hz: int = 12_000_000) -> int:
        """Clock edges from the end of reset until `ready` reads 1 (a good image):
        16 * (1 + 1 + wait_slots(clock_hz) + 4 + 12 + n_words * word_bytes + 2). At 12 MHz, 4,096 64-bit words
        take 524,656 cycles = 43.7 ms. A bad header sets `failed` after the header, far sooner."""
        return SLOT * (2 + wait_slots(clock_hz) + CMD_BYTES + image_bytes(n_words, word_bits))

    def elaborate(self, platform) -> Module:
        m = Module()
        wb, n = self.word_bytes, self.n_words

        cyc = Signal(4)                        # position in the slot: sck half = cyc[0], bit (MSB first) = cyc[1:]
        bit, last_cycle = cyc[1:], cyc == SLOT - 1
        sample = ~cyc[0]                        # sck is low now and rises next cycle: cipo is stable
        byte = Signal(range(max(16, wb, wait_slots(self.clock_hz))))
        crc = Signal(16, init=CRC16_INIT, attrs={"keep": 1})  # keep: its name survives synthesis, so the formal check can pair it
        bad = Signal()                         # a header bit differed from the expected one
        word = self.wr_data                    # its top byte is the bit shift register

        # One 128-bit ROM for READ's 16 leading bytes: what the loader sends (command, address) and then what
        # it expects back (the header); bit (8 * byte + bit) is bit 7 - bit of that byte.
        seq = bytes([CMD_READ]) + self.offset.to_bytes(3, "big") + self.header
        rom = Const(sum(((b >> (7 - i)) & 1) << (8 * k + i) for k, b in enumerate(seq) for i in range(8)), 128)
        rom_bit = rom.bit_select(Cat(bit, byte[:4]), 1)
        wake_bit = Const(int(f"{CMD_RELEASE_PD:08b}"[::-1], 2), 8).bit_select(bit, 1)  # bit-reversed: MSB first

        fb = crc[15] ^ self.cipo
        crc_next = (crc << 1)[:16] ^ (Const(CRC16_POLY, 16) & fb.replicate(16))

        m.d.comb += self.busy.eq(~(self.ready | self.failed))
        m.d.sync += [self.wr_en.eq(0), cyc.eq(cyc + 1)]

        def next_slot(state: str | None = None, cs_n: int | None = None) -> None:
            """At the end of this slot: restart the byte count and (optionally) move on."""
            m.d.sync += byte.eq(0)
            if state is not None:
                m.next = state
            if cs_n is not None:
                m.d.sync += self.cs_n.eq(cs_n)

        def count(last: int, state: str, cs_n: int | None = None) -> None:
            with m.If(last_cycle):
                with m.If(byte == last):
                    next_slot(state, cs_n)
                with m.Else():
                    m.d.sync += byte.eq(byte + 1)

        with m.FSM():
            with m.State("RESET"):
                count(0, "WAKE", cs_n=0)
            with m.State("WAKE"):
                m.d.comb += self.copi.eq(wake_bit)
                m.d.sync += self.sck.eq(sample)
                count(0, "TRES", cs_n=1)
            with m.State("TRES"):
                count(wait_slots(self.clock_hz) - 1, "HEAD", cs_n=0)
            with m.State("HEAD"):              # bytes 0-3: command + address out; 4-15: header in
                m.d.comb += self.copi.eq(rom_bit)
                m.d.sync += self.sck.eq(sample)
                with m.If(sample & (byte >= CMD_BYTES)):
                    m.d.sync += [crc.eq(crc_next), bad.eq(bad | (self.cipo ^ rom_bit))]
                with m.If(last_cycle & (byte == len(seq) - 1)):
                    with m.If(bad):            # stop at once: no word of a foreign or blank image is written
                        next_slot("DONE", cs_n=1)
                        m.d.sync += self.failed.eq(1)
                    with m.Else():
                        next_slot("DATA")
                with m.Elif(last_cycle):
                    m.d.sync += byte.eq(byte + 1)
            with m.State("DATA"):
                m.d.sync += self.sck.eq(sample)
                with m.If(sample):
                    m.d.sync += [crc.eq(crc_next), word[-8:].eq(Cat(self.cipo, word[-8:-1]))]
                    if wb > 1:
                        with m.If(bit == 0):   # a new byte: the finished ones move down (little-endian)
                            m.d.sync += word[:-8].eq(word[8:])
                    with m.If((bit == 7) & (byte == wb - 1)):
                        m.d.sync += self.wr_en.eq(1)   # the word is complete in the next cycle
                with m.If(last_cycle):
                    with m.If(byte == wb - 1):
                        with m.If(self.wr_addr == n - 1):
                            next_slot("CRC")
                        with m.Else():
                            next_slot()
                            m.d.sync += self.wr_addr.eq(self.wr_addr + 1)
                    with m.Else():
                        m.d.sync += byte.eq(byte + 1)
            with m.State("CRC"):
                m.d.sync += self.sck.eq(sample)
                with m.If(sample):
                    m.d.sync += crc.eq(crc_next)
                with m.If(last_cycle & (byte == CRC_BYTES - 1)):
                    next_slot("DONE", cs_n=1)
                    m.d.sync += [self.ready.eq(crc == 0), self.failed.eq(crc != 0)]
                with m.Elif(last_cycle):
                    m.d.sync += byte.eq(byte + 1)
            with m.State("DONE"):
                pass
        return m


def connect_spi_flash(m: Module, loader: FlashLoader, pins) -> None:
    """Wire `loader` to an amaranth_boards `spi_flash_1x` resource (e.g. the iCEBreaker's
    platform.request("spi_flash_1x", 0)). cs is active-low at the pin (PinsN: cs.o = 1 selects), so it gets
    ~cs_n; wp and hold, if the resource has them, are held deasserted (pins high) so neither write-protect nor
    HOLD# can pause the read."""
    m.d.comb += [pins.cs.o.eq(~loader.cs_n), pins.clk.o.eq(loader.sck), pins.copi.o.eq(loader.copi),
                 loader.cipo.eq(pins.cipo.i)]
    for name in ("wp", "hold"):
        pin = getattr(pins, name, None)
        if pin is not None:
            m.d.comb += pin.o.eq(0)
