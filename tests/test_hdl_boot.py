"""The flash boot path: the program image format (warpc.ir.image), the SPI flash model (warpc.fpga.spiflash) and
FlashLoader (warpc.hdl.boot) in Amaranth's simulator against that model, good and bad images."""
import random
import subprocess
import tempfile
from pathlib import Path

import pytest

from _cellsim import YOSYS, needs_yosys
from warpc.errors import ConfigError, NetlistError
from warpc.fpga.spiflash import SpiFlashModel
from warpc.hdl.boot import FlashLoader, connect_spi_flash, wait_slots
from warpc.ir.image import (HEADER_BYTES, IMAGE_OFFSET, MAGIC, VERSION, crc16, design_id_of, image_bytes,
                            pack_image, unpack_image)


def rand_words(n: int, word_bits: int, seed: int = 0) -> list[int]:
    rng = random.Random(seed)
    return [rng.getrandbits(word_bits) for _ in range(n)]


# --- image format ---------------------------------------------------------------------------------------------
def test_crc16_check_value():
    assert crc16(b"123456789") == 0x29B1
    assert crc16(b"") == 0xFFFF
    assert crc16(b"56789", crc16(b"1234")) == 0x29B1  # continues


@pytest.mark.parametrize("word_bits", [8, 16, 24, 64])
def test_pack_unpack_round_trip(word_bits):
    words = rand_words(37, word_bits, seed=word_bits)
    words[0], words[1] = 0, (1 << word_bits) - 1
    img = pack_image(words, word_bits)
    assert len(img) == image_bytes(37, word_bits) == HEADER_BYTES + 37 * word_bits // 8 + 2
    assert crc16(img) == 0                                     # the residue the hardware checks
    assert unpack_image(img, word_bits) == (design_id_of(words, word_bits), words)
    assert unpack_image(pack_image(words, word_bits, design_id=0xDEADBEEF), word_bits)[0] == 0xDEADBEEF


def test_image_layout():
    img = pack_image([0x0102030405060708, 0xA0], 64, design_id=0x11223344)
    assert img[:12] == MAGIC + bytes([0x44, 0x33, 0x22, 0x11, 2, 0, 8, VERSION])
    assert img[12:20] == bytes([8, 7, 6, 5, 4, 3, 2, 1])      # little-endian words
    assert img[20:28] == bytes([0xA0]) + bytes(7)
    assert int.from_bytes(img[-2:], "big") == crc16(img[:-2])  # big-endian trailer
    assert design_id_of([1, 2], 16) != design_id_of([2, 1], 16)


def test_pack_errors():
    with pytest.raises(ConfigError, match="multiple of 8"):
        pack_image([1], 12)
    with pytest.raises(ConfigError, match="multiple of 8"):
        pack_image([1], 72)
    with pytest.raises(NetlistError, match="word 1 .* does not fit in 16"):
        pack_image([1, 1 << 16], 16)
    with pytest.raises(NetlistError, match="does not fit"):
        pack_image([-1], 16)
    with pytest.raises(NetlistError, match="1 to 65535 words"):
        pack_image([], 16)
    with pytest.raises(NetlistError, match="1 to 65535 words"):
        pack_image([0] * 65536, 8)
    with pytest.raises(ConfigError, match="design_id"):
        pack_image([1], 8, design_id=1 << 32)


def _recrc(body: bytes) -> bytes:
    return body + crc16(body).to_bytes(2, "big")


def test_unpack_errors():
    img = pack_image(rand_words(5, 32), 32)
    cases = [
        (img[:13], "too short"),
        (_recrc(b"WFLX" + img[4:-2]), "magic"),
        (_recrc(img[:11] + bytes([VERSION + 1]) + img[12:-2]), "version"),
        (_recrc(img[:10] + bytes([2]) + img[11:-2]), "16-bit words, expected 32-bit"),
        (_recrc(img[:-6]), "length"),                    # one word short
        (img + b"\xff", "length"),                        # trailing byte
        (_recrc(img[:8] + bytes(2) + img[10:12]), "length"),  # n_words 0
        (img[:20] + bytes([img[20] ^ 4]) + img[21:], "CRC mismatch"),
        (img[:-1] + bytes([img[-1] ^ 1]), "CRC mismatch"),
    ]
    for data, msg in cases:
        with pytest.raises(NetlistError, match=msg) as e:
            unpack_image(data, 32)
        assert "\n" not in str(e.value)


# --- flash model ----------------------------------------------------------------------------------------------
def spi(flash: SpiFlashModel, out: bytes, n_in: int = 0, idle: int = 4) -> bytes:
    """One mode-0 transaction (two system cycles per sck period), then `idle` deselected cycles."""
    got = []
    bits = [(b >> (7 - i)) & 1 for b in out + bytes(n_in) for i in range(8)]
    for k, b in enumerate(bits):
        cipo = flash.step(0, 0, b)  # sck low: the flash drove cipo after the previous falling edge
        flash.step(0, 1, b)         # rising edge: the flash samples copi
        if k >= 8 * len(out):
            got.append(cipo)
    flash.step(0, 0, 0)
    for _ in range(idle):
        flash.step(1, 0, 0)
    return bytes(int("".join(map(str, got[i:i + 8])), 2) for i in range(0, len(got), 8))


def test_flash_model_read():
    f = SpiFlashModel({0x100: b"\x12\x34", 0x2000: b"\xAB"})
    assert spi(f, b"\x03\x00\x00\xFF", 4) == b"\xFF\x12\x34\xFF"  # streams, unwritten bytes read 0xFF
    assert spi(f, b"\x03\x00\x20\x00", 2) == b"\xAB\xFF"
    assert spi(f, b"\x05\x00\x00\x00", 2) == b"\xFF\xFF"           # unknown command: not driven
    assert f.commands == [b"\x03\x00\x00\xFF", b"\x03\x00\x20\x00", b"\x05\x00\x00\x00"]
    g = SpiFlashModel(b"\x01\x02\x03", size=4)
    assert spi(g, b"\x03\x00\x00\x02", 3) == b"\x03\xFF\x01"        # wraps at the end of the memory
    with pytest.raises(ConfigError, match="exceed"):
        SpiFlashModel({15: b"ab"}, size=16)


def test_flash_model_deep_power_down():
    f = SpiFlashModel(b"\x5A", powered_down=True, tres1_cycles=100)
    assert spi(f, b"\x03\x00\x00\x00", 1) == b"\xFF"               # asleep: READ ignored
    spi(f, b"\xAB", idle=10)
    assert spi(f, b"\x03\x00\x00\x00", 1) == b"\xFF"               # within tRES1: still ignored
    for _ in range(100):
        f.step(1, 0, 0)
    assert spi(f, b"\x03\x00\x00\x00", 1) == b"\x5A"
    spi(f, b"\xB9")
    assert spi(f, b"\x03\x00\x00\x00", 1) == b"\xFF"               # powered down again


# --- FlashLoader in simulation --------------------------------------------------------------------------------
def boot(loader: FlashLoader, flash: SpiFlashModel, extra: int = 40) -> dict:
    """Run until ready or failed (at most boot_cycles + 100), then `extra` cycles more; the model is stepped
    with each cycle's pins and drives cipo. Returns the writes, the cycle the result appeared and the end state."""
    from amaranth.sim import Simulator

    limit = FlashLoader.boot_cycles(loader.n_words, loader.word_bits, loader.clock_hz) + 100
    r = {"writes": [], "done_at": None, "after": []}

    async def bench(ctx):
        t, left = 0, extra
        while t < limit and left > 0:
            ctx.set(loader.cipo, flash.step(ctx.get(loader.cs_n), ctx.get(loader.sck), ctx.get(loader.copi)))
            if ctx.get(loader.wr_en):
                r["writes"].append((ctx.get(loader.wr_addr), ctx.get(loader.wr_data)))
            ready, failed = ctx.get(loader.ready), ctx.get(loader.failed)
            if r["done_at"] is None:
                if ready or failed:
                    r["done_at"] = t
                else:
                    assert ctx.get(loader.busy) == 1
            if r["done_at"] is not None:
                r["after"].append((ready, failed, ctx.get(loader.busy), ctx.get(loader.cs_n), ctx.get(loader.sck)))
                left -= 1
            await ctx.tick()
            t += 1

    sim = Simulator(loader)
    sim.add_clock(1 / loader.clock_hz)
    sim.add_testbench(bench)
    sim.run()
    r["ready"] = bool(r["after"]) and all(a[:3] == (1, 0, 0) for a in r["after"])
    r["failed"] = bool(r["after"]) and all(a[:3] == (0, 1, 0) for a in r["after"])
    r["released"] = all(a[3:] == (1, 0) for a in r["after"])    # flash deselected, sck idle, ever after
    return r


def loader_for(words, word_bits, **kw) -> FlashLoader:
    return FlashLoader(n_words=len(words), word_bits=word_bits, design_id=design_id_of(words, word_bits), **kw)


@pytest.mark.parametrize("n,word_bits", [(20, 64), (33, 16), (1, 8)])
def test_good_image(n, word_bits):
    words = rand_words(n, word_bits, seed=n)
    flash = SpiFlashModel({IMAGE_OFFSET: pack_image(words, word_bits)})
    r = boot(loader_for(words, word_bits), flash)
    assert r["writes"] == list(enumerate(words))                 # each word once, in order, at its address
    assert r["ready"] and not r["failed"] and r["released"]
    assert r["done_at"] == FlashLoader.boot_cycles(n, word_bits)
    assert flash.commands == [b"\xAB", b"\x03" + IMAGE_OFFSET.to_bytes(3, "big")]


def test_powered_down_flash_is_woken():
    words = rand_words(20, 64, seed=1)
    flash = SpiFlashModel({IMAGE_OFFSET: pack_image(words, 64)}, powered_down=True, tres1_cycles=36)
    r = boot(loader_for(words, 64), flash)
    assert r["ready"] and r["writes"] == list(enumerate(words))


def test_loader_waits_tres1():
    """A flash that needs longer than the loader waits reads all ones: the model does catch a short wait, and
    the loader's wait is what it says (whole slots of 16 cycles, at least 3 us)."""
    words = rand_words(4, 64, seed=2)
    wait = 16 * wait_slots(12_000_000)
    assert wait >= 36
    for tres1, ok in ((wait, True), (wait + 1, False)):
        flash = SpiFlashModel({IMAGE_OFFSET: pack_image(words, 64)}, powered_down=True, tres1_cycles=tres1)
        r = boot(loader_for(words, 64), flash, extra=2)
        assert (r["ready"], r["failed"]) == (ok, not ok)


def test_blank_flash_fails():
    r = boot(FlashLoader(n_words=20, word_bits=64, design_id=0x12345678), SpiFlashModel(b""))
    assert r["failed"] and not r["ready"] and r["released"]
    assert r["writes"] == []                                     # a bad header stops before any word is written


@pytest.mark.parametrize("pos", [0, 3, 5, 9, 10, 11, 12, 40, 12 + 20 * 8 - 1, 12 + 20 * 8, 12 + 20 * 8 + 1])
def test_flipped_bit_fails(pos):
    """Header (magic, design_id, n_words, word size, version), payload and CRC bytes."""
    words = rand_words(20, 64, seed=3)
    img = bytearray(pack_image(words, 64))
    img[pos] ^= 1 << (pos % 8)
    r = boot(loader_for(words, 64), SpiFlashModel({IMAGE_OFFSET: bytes(img)}))
    assert r["failed"] and not r["ready"] and r["released"]
    if pos < HEADER_BYTES:
        assert r["writes"] == []


def test_wrong_design_id_fails():
    words = rand_words(20, 64, seed=4)
    flash = SpiFlashModel({IMAGE_OFFSET: pack_image(words, 64, design_id=design_id_of(words, 64) ^ 0x100)})
    r = boot(loader_for(words, 64), flash)
    assert r["failed"] and not r["ready"] and r["writes"] == []


@pytest.mark.parametrize("n_image", [19, 21])
def test_wrong_n_words_fails(n_image):
    words = rand_words(20, 64, seed=5)
    other = (words + rand_words(1, 64))[:n_image]
    flash = SpiFlashModel({IMAGE_OFFSET: pack_image(other, 64, design_id=design_id_of(words, 64))})
    r = boot(loader_for(words, 64), flash)
    assert r["failed"] and not r["ready"] and r["writes"] == []


def test_wrong_word_size_fails():
    words = rand_words(20, 16, seed=6)
    flash = SpiFlashModel({IMAGE_OFFSET: pack_image(words, 16)})
    r = boot(FlashLoader(n_words=20, word_bits=32, design_id=design_id_of(words, 16)), flash)
    assert r["failed"] and not r["ready"]


def test_offset():
    words = rand_words(8, 32, seed=7)
    flash = SpiFlashModel({IMAGE_OFFSET + 0x1000: pack_image(words, 32)})
    r = boot(loader_for(words, 32), flash)                      # looks at IMAGE_OFFSET: blank
    assert r["failed"] and not r["ready"]
    flash = SpiFlashModel({IMAGE_OFFSET + 0x1000: pack_image(words, 32)})
    r = boot(loader_for(words, 32, offset=IMAGE_OFFSET + 0x1000), flash)
    assert r["ready"] and r["writes"] == list(enumerate(words))
    assert flash.commands[-1] == b"\x03" + (IMAGE_OFFSET + 0x1000).to_bytes(3, "big")


def test_other_clock():
    """At 30 MHz the tRES1 wait grows (90 cycles + margin) and a flash needing exactly 3 us still wakes."""
    words = rand_words(6, 64, seed=8)
    assert 16 * wait_slots(30_000_000) >= 90
    flash = SpiFlashModel({IMAGE_OFFSET: pack_image(words, 64)}, powered_down=True, tres1_cycles=90)
    r = boot(loader_for(words, 64, clock_hz=30_000_000), flash)
    assert r["ready"] and r["done_at"] == FlashLoader.boot_cycles(6, 64, 30_000_000)


def test_boot_cycles_full_size():
    # 16 cycles per byte: reset + 0xAB + 3 tRES1 slots + READ command + the 32,782-byte image
    assert FlashLoader.boot_cycles(4096, 64, 12_000_000) == 16 * (1 + 1 + 3 + 4 + 12 + 4096 * 8 + 2) == 524_656


def test_loader_config_errors():
    with pytest.raises(ConfigError, match="multiple of 8"):
        FlashLoader(n_words=4, word_bits=12, design_id=0)
    with pytest.raises(ConfigError, match="n_words must be 1 to 65535"):
        FlashLoader(n_words=0, word_bits=16, design_id=0)
    with pytest.raises(ConfigError, match="design_id"):
        FlashLoader(n_words=4, word_bits=16, design_id=-1)
    with pytest.raises(ConfigError, match="clock"):
        FlashLoader(n_words=4, word_bits=16, design_id=0, clock_hz=200_000_000)
    with pytest.raises(ConfigError, match="offset"):
        FlashLoader(n_words=4, word_bits=16, design_id=0, offset=(1 << 24) - 21)
    fits = FlashLoader(n_words=4, word_bits=16, design_id=0, offset=(1 << 24) - 22)  # the image just fits
    fits._MustUse__silence = True


@pytest.mark.filterwarnings("ignore:Using platform.request without:DeprecationWarning")  # shell.py's style too
def test_connect_icebreaker_flash():
    """The pins of amaranth_boards' iCEBreaker spi_flash_1x resource: cs (active-low, inverted by the buffer),
    clk, copi, cipo, wp and hold all driven / read (pins 16, 15, 14, 17, 12, 13)."""
    from amaranth.hdl import Elaboratable, Module
    from amaranth_boards.icebreaker import ICEBreakerPlatform

    class Top(Elaboratable):
        def elaborate(self, platform):
            m = Module()
            m.submodules.loader = loader = FlashLoader(n_words=4, word_bits=16, design_id=1)
            connect_spi_flash(m, loader, platform.request("spi_flash_1x", 0))
            m.d.comb += platform.request("led", 0).o.eq(loader.ready)
            return m

    plan = ICEBreakerPlatform().prepare(Top(), name="top")
    pcf = plan.files["top.pcf"]
    for pin, num in (("cs", 16), ("clk", 15), ("copi", 14), ("cipo", 17), ("wp", 12), ("hold", 13)):
        assert f"set_io spi_flash_1x_0__{pin}__io {num}" in pcf
    il = plan.files["top.il"]
    assert "connect \\spi_flash_1x_0__wp__o 1'0" in il and "connect \\spi_flash_1x_0__hold__o 1'0" in il


@needs_yosys
def test_loader_size_after_synthesis():
    """The full-size loader stays small on a 5,280-LC UP5K: its flip-flops are the word, CRC, address and a few
    counters; the logic around them stays under ~110 LUTs."""
    from amaranth.back import rtlil

    d = FlashLoader(n_words=4096, word_bits=64, design_id=0x12345678)
    il = rtlil.convert(d, name="top", ports=[d.sck, d.cs_n, d.copi, d.cipo, d.wr_en, d.wr_addr, d.wr_data,
                                              d.ready, d.failed, d.busy])
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "in.il").write_text(il)
        subprocess.run([YOSYS, "-q", "-p", "read_rtlil in.il; synth_ice40 -top top; tee -q -o stat.txt stat"],
                       cwd=tmp, check=True, capture_output=True)
        stat = (Path(tmp) / "stat.txt").read_text()
    cells = {}
    for line in stat.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0].startswith("SB_") and parts[1].isdigit():
            cells[parts[0]] = int(parts[1])
        elif len(parts) == 2 and parts[1].startswith("SB_") and parts[0].isdigit():  # newer Yosys: count first
            cells[parts[1]] = int(parts[0])
    ffs = sum(v for k, v in cells.items() if k.startswith("SB_DFF"))
    # word, CRC, wr_addr, byte, cycle, FSM (binary; Yosys may re-encode it), sck/cs_n/wr_en/ready/failed/bad
    assert ffs <= 64 + 16 + 12 + 4 + 4 + 7 + 6, cells
    assert 0 < cells["SB_LUT4"] <= 120, cells


@pytest.mark.slow
def test_full_size_image():
    """The engine's size: 4,096 64-bit words (524,656 cycles, 43.7 ms at 12 MHz), from a powered-down flash."""
    words = rand_words(4096, 64, seed=9)
    flash = SpiFlashModel({IMAGE_OFFSET: pack_image(words, 64)}, powered_down=True)
    r = boot(loader_for(words, 64), flash, extra=2)
    assert r["writes"] == list(enumerate(words))
    assert r["ready"] and r["done_at"] == FlashLoader.boot_cycles(4096, 64) == 524_656
